//! Websocket fan-out under load: a release `pixdrop` with 2,000 open sockets (or as many as asked),
//! each watching one job, while photos are uploaded and processed. Each job is watched by ten
//! sockets; every event a socket receives is timed from its transition (the event's `updated_at`,
//! written by the worker on this machine's clock) to its arrival. Prints how many events arrived,
//! their delay at p50, p99 and worst, and whether every socket saw its job complete; exits 1 when
//! one did not or p99 is 100 ms or more.
//!
//!   cargo build --release && cargo bench --bench fanout            # 2000 sockets
//!   cargo bench --bench fanout -- 500                              # 500 sockets

#[path = "../tests/support/photo.rs"]
mod photo;

// Each bench uses part of it.
#[allow(dead_code)]
#[path = "support/server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use server::Server;

/// Sockets watching each job.
const WATCHERS_PER_JOB: usize = 10;
/// Uploads in flight while the sockets watch.
const UPLOADERS: usize = 4;

fn main() {
    let sockets = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(2000, |a| a.parse::<usize>().expect("argument: [sockets]"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if !runtime.block_on(fan_out(sockets)) {
        std::process::exit(1);
    }
}

/// What one socket saw.
#[derive(Default)]
struct Seen {
    delays_ms: Vec<f64>,
    completed: bool,
    /// The last message, to show what a socket that missed the completion saw instead.
    last: String,
}

async fn fan_out(sockets: usize) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let jobs = sockets.div_ceil(WATCHERS_PER_JOB);
    let ws_url = format!("{}/ws", server.address.replace("http://", "ws://"));

    // Every socket open before the first upload; each then waits for its job's id.
    let opened = Instant::now();
    let mut orders = Vec::with_capacity(sockets);
    let mut watchers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let (socket, _) = connect_async(&ws_url).await.expect("the socket opens");
        let (tell, told) = mpsc::channel::<String>(1);
        orders.push(tell);
        watchers.push(tokio::spawn(watch(socket, told)));
    }
    println!(
        "fanout: {sockets} sockets open in {:.1} s; uploading {jobs} photos",
        opened.elapsed().as_secs_f64()
    );

    let photo = Arc::new(photo::noisy_jpeg(1600, 1200));
    let next = Arc::new(AtomicUsize::new(0));
    let orders = Arc::new(orders);
    let address = Arc::new(server.address.clone());
    let uploaders: Vec<_> = (0..UPLOADERS)
        .map(|_| {
            let (photo, next, orders, address) =
                (photo.clone(), next.clone(), orders.clone(), address.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= jobs {
                        return;
                    }
                    let part = reqwest::multipart::Part::bytes(photo.to_vec()).file_name("p.jpg");
                    let form = reqwest::multipart::Form::new().part("file", part);
                    let answer: Value = client
                        .post(format!("{address}/upload"))
                        .multipart(form)
                        .send()
                        .await
                        .expect("the upload is answered")
                        .json()
                        .await
                        .expect("a JSON answer");
                    let id = answer["jobs"][0]["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("no job in {answer}"))
                        .to_owned();
                    for socket in (n * WATCHERS_PER_JOB..(n + 1) * WATCHERS_PER_JOB)
                        .take_while(|&s| s < orders.len())
                    {
                        let _ = orders[socket].send(id.clone()).await;
                    }
                }
            })
        })
        .collect();
    for uploader in uploaders {
        uploader.await.unwrap();
    }
    drop(orders);

    let mut delays = Vec::new();
    let mut incomplete = 0;
    for watcher in watchers {
        let seen = watcher.await.unwrap();
        if !seen.completed {
            if incomplete == 0 {
                println!(
                    "fanout: a socket missed its job's completion; it last saw {}",
                    seen.last
                );
            }
            incomplete += 1;
        }
        delays.extend(seen.delays_ms);
    }
    delays.sort_by(f64::total_cmp);
    let at = |share: f64| delays[((delays.len() as f64 * share).ceil() as usize).max(1) - 1];
    let (p50, p99, worst) = (at(0.5), at(0.99), at(1.0));
    println!(
        "fanout: {} events to {sockets} sockets ({jobs} jobs, {WATCHERS_PER_JOB} sockets each): \
         delay p50 {p50:.1} ms, p99 {p99:.1} ms, worst {worst:.1} ms; {incomplete} sockets \
         missed their job's completion",
        delays.len()
    );
    incomplete == 0 && p99 < 100.0
}

/// One socket: subscribes to the job it is told, times every event of it until the job
/// completes (or 120 s pass), then closes.
async fn watch(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    mut told: mpsc::Receiver<String>,
) -> Seen {
    let mut seen = Seen::default();
    let Some(job) = told.recv().await else {
        return seen;
    };
    let subscribe = json!({ "subscribe": [job] }).to_string();
    if socket.send(Message::text(subscribe)).await.is_err() {
        return seen;
    }
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = &mut deadline => break,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            // Pings (answered by tungstenite itself) and the like.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            other => {
                seen.last = format!("{other:?}");
                break;
            }
        };
        seen.last = text.to_string();
        let arrived = SystemTime::now();
        let Ok(message) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let view = &message;
        if message["type"] == "event" {
            let stamp = view["updated_at"].as_str().unwrap_or_default();
            if let Ok(at) = humantime::parse_rfc3339(stamp) {
                let delay = arrived.duration_since(at).unwrap_or_default();
                seen.delays_ms.push(delay.as_secs_f64() * 1000.0);
            }
        }
        if view["state"] == "completed" {
            seen.completed = true;
            break;
        }
    }
    let _ = socket.close(None).await;
    seen
}
