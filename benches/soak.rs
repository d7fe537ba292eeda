//! The soak: a release `pixdrop` process, with the Redis it starts and owns, taking a mix of valid
//! and hostile uploads for ten minutes (or as long as asked) while 500 websockets watch the jobs.
//! Every minute it prints what was sent, what came back, and pixdrop's resident memory, now and
//! at its peak. At the end every accepted job must settle as its kind should (a photo completes,
//! a pixel bomb fails), every refusal must have been the one its kind earns, the sockets must all
//! still be open and `/readyz` green; anything else is printed and the soak exits 1.
//!
//!   scripts/soak                            # 10 minutes, 500 sockets
//!   cargo bench --bench soak -- 2 100       # 2 minutes, 100 sockets (pixdrop built --release)

#[allow(dead_code)]
#[path = "../tests/api/raw.rs"]
mod raw;

#[path = "../tests/support/photo.rs"]
mod photo;

#[path = "support/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use photo::noisy_jpeg;
use server::{Server, memory_of, ready};

/// Upload tasks sending at once, and the pause each takes between two requests.
const UPLOADERS: usize = 8;
const PAUSE: Duration = Duration::from_millis(200);
/// Each job is watched by the sockets whose number is the same modulo this (500 sockets: 10 each).
const WATCH_GROUPS: usize = 50;
/// Limits the soak runs pixdrop with, so the hostile kinds are cheap to send.
const MAX_FILE_BYTES: usize = 8 << 20;
const IDLE_TIMEOUT_SECS: u64 = 5;

/// What one request is, and what it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A 6 MP JPEG: 202, then completed.
    Photo,
    /// A PNG whose header claims 40000 x 40000 pixels: 202, then failed.
    PixelBomb,
    /// The first third of the photo: 202, then settled either way.
    Truncated,
    /// `00 00 00 08 ftypab`: 415.
    ShortFtyp,
    /// A part header that never ends, 1 MiB of it: 400.
    HeaderBomb,
    /// A body ending in a line break before its closing boundary: 400.
    Unfinished,
    /// Ten text fields: 413.
    TooManyFields,
    /// A file over `uploads.max_file_bytes`: 413.
    Oversized,
    /// A body that stops arriving: 408 after the idle timeout.
    Stalled,
}

/// The mix, cycled through by every uploader: photos are four in twelve.
const MIX: [Kind; 12] = [
    Kind::Photo,
    Kind::ShortFtyp,
    Kind::Photo,
    Kind::HeaderBomb,
    Kind::PixelBomb,
    Kind::Unfinished,
    Kind::Photo,
    Kind::TooManyFields,
    Kind::Truncated,
    Kind::Oversized,
    Kind::Photo,
    Kind::Stalled,
];

impl Kind {
    fn expected_status(self) -> u16 {
        match self {
            Kind::Photo | Kind::PixelBomb | Kind::Truncated => 202,
            Kind::ShortFtyp => 415,
            Kind::HeaderBomb | Kind::Unfinished => 400,
            Kind::TooManyFields | Kind::Oversized => 413,
            Kind::Stalled => 408,
        }
    }

    /// The end states an accepted job of this kind may reach.
    fn settles_as(self) -> &'static [&'static str] {
        match self {
            Kind::Photo => &["completed"],
            Kind::PixelBomb => &["failed"],
            _ => &["completed", "failed"],
        }
    }
}

/// Everything the tasks count, read by the minute reports.
#[derive(Default)]
struct Tally {
    /// (kind, status) → answers.
    answers: Mutex<BTreeMap<(Kind, u16), u64>>,
    /// Accepted jobs still to check at the end, with their kind.
    accepted: Mutex<Vec<(String, Kind)>>,
    events: AtomicU64,
    sockets_open: AtomicU64,
    sockets_lost: AtomicU64,
}

struct Payloads {
    photo: Vec<u8>,
    pixel_bomb: Vec<u8>,
}

fn main() {
    let mut numbers = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse::<u64>().expect("arguments: [minutes] [sockets]"));
    let minutes = numbers.next().unwrap_or(10);
    let sockets = numbers.next().unwrap_or(500) as usize;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let failures = runtime.block_on(soak(minutes, sockets));
    if failures > 0 {
        eprintln!("soak: {failures} failures");
        std::process::exit(1);
    }
}

async fn soak(minutes: u64, sockets: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            (
                "PIXDROP__UPLOADS__MAX_FILE_BYTES",
                MAX_FILE_BYTES.to_string(),
            ),
            (
                "PIXDROP__UPLOADS__BODY_IDLE_TIMEOUT_SECS",
                IDLE_TIMEOUT_SECS.to_string(),
            ),
        ],
    )
    .await;
    let address = server.address.clone();
    println!(
        "soak: pixdrop pid {} at {address}, {minutes} min, {sockets} sockets, {UPLOADERS} uploaders",
        server.child.id()
    );
    let payloads = Arc::new(Payloads {
        photo: photo(),
        pixel_bomb: png_header(40_000, 40_000),
    });
    let tally = Arc::new(Tally::default());
    let (ids, _) = broadcast::channel::<String>(4096);

    for n in 0..sockets {
        tokio::spawn(watch(address.clone(), n, ids.subscribe(), tally.clone()));
    }
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    let uploaders: Vec<_> = (0..UPLOADERS)
        .map(|n| {
            let (address, payloads, tally, ids) = (
                address.clone(),
                payloads.clone(),
                tally.clone(),
                ids.clone(),
            );
            tokio::spawn(
                async move { upload_until(n, until, &address, &payloads, &tally, &ids).await },
            )
        })
        .collect();

    let started = Instant::now();
    let mut minute = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(60).min(until - Instant::now())).await;
        minute += 1;
        report(minute, started, &server, &tally).await;
    }
    for uploader in uploaders {
        uploader.await.unwrap();
    }

    let mut failures = 0;
    for ((kind, status), count) in tally.answers.lock().unwrap().iter() {
        if *status != kind.expected_status() {
            println!(
                "FAIL: {count} x {kind:?} answered {status}, not {}",
                kind.expected_status()
            );
            failures += 1;
        }
    }
    failures += check_settled(&address, &tally).await;
    let lost = tally.sockets_lost.load(Ordering::Relaxed);
    if lost > 0 {
        println!("FAIL: {lost} websockets closed under load");
        failures += 1;
    }
    if !ready(&address).await {
        println!("FAIL: /readyz is not green after the soak");
        failures += 1;
    }
    println!("soak: done, {failures} failures");
    report(minute + 1, started, &server, &tally).await;
    failures
}

/// One uploader: the mix, round and round, until `until`.
async fn upload_until(
    n: usize,
    until: Instant,
    address: &str,
    payloads: &Payloads,
    tally: &Tally,
    ids: &broadcast::Sender<String>,
) {
    let client = reqwest::Client::new();
    let mut turn = n;
    while Instant::now() < until {
        let kind = MIX[turn % MIX.len()];
        turn += 1;
        let (status, body) = send(kind, &client, address, payloads).await;
        *tally
            .answers
            .lock()
            .unwrap()
            .entry((kind, status))
            .or_default() += 1;
        if status == 202 {
            for job in body["jobs"].as_array().into_iter().flatten() {
                let id = job["id"].as_str().unwrap().to_owned();
                let _ = ids.send(id.clone());
                tally.accepted.lock().unwrap().push((id, kind));
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Sends one request of `kind`; its status and JSON body.
async fn send(
    kind: Kind,
    client: &reqwest::Client,
    address: &str,
    payloads: &Payloads,
) -> (u16, Value) {
    let file = |bytes: Vec<u8>, name: &str| {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        reqwest::multipart::Form::new().part("file", part)
    };
    let form = match kind {
        Kind::Photo => file(payloads.photo.clone(), "photo.jpg"),
        Kind::PixelBomb => file(payloads.pixel_bomb.clone(), "bomb.png"),
        Kind::Truncated => file(
            payloads.photo[..payloads.photo.len() / 3].to_vec(),
            "cut.jpg",
        ),
        Kind::ShortFtyp => file(b"\0\0\0\x08ftypab".to_vec(), "x.heic"),
        Kind::HeaderBomb
        | Kind::Unfinished
        | Kind::TooManyFields
        | Kind::Oversized
        | Kind::Stalled => {
            let answer = raw_send(kind, address, &payloads.photo).await;
            let body = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            return (answer.status, body);
        }
    };
    match client
        .post(format!("{address}/upload"))
        .multipart(form)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        // A client still writing when the refusal comes sees a broken pipe: counted as 0.
        Err(_) => (0, Value::Null),
    }
}

/// The kinds an ordinary client cannot send, or cannot read the answer to (it is still writing
/// when the refusal comes), by hand over TCP.
async fn raw_send(kind: Kind, address: &str, photo: &[u8]) -> raw::Answer {
    const FILE_PART: &str =
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n";
    match kind {
        Kind::HeaderBomb => {
            let head = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; x=\"";
            let body = std::iter::once(head.as_bytes().to_vec())
                .chain(std::iter::repeat_n(vec![b'a'; 64 * 1024], 16));
            raw::chunked_upload(address, body, Duration::ZERO).await
        }
        Kind::Unfinished => {
            let body = [FILE_PART.as_bytes(), b"\xff\xd8\xff\xe0 short\r\n"].concat();
            raw::chunked_upload(address, std::iter::once(body), Duration::ZERO).await
        }
        Kind::TooManyFields => {
            let fields = (0..10).map(|i| {
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nvalue\r\n")
                    .into_bytes()
            });
            let body = fields.chain([FILE_PART.as_bytes().to_vec(), photo[..1024].to_vec()]);
            raw::chunked_upload(address, body, Duration::ZERO).await
        }
        Kind::Oversized => {
            // The photo, then filler past the file limit.
            let body = [FILE_PART.as_bytes(), photo].concat();
            let filler = MAX_FILE_BYTES.div_ceil(64 * 1024) + 1;
            let body = std::iter::once(body).chain(std::iter::repeat_n(vec![0; 64 * 1024], filler));
            raw::chunked_upload(address, body, Duration::ZERO).await
        }
        Kind::Stalled => raw::answer_of(raw::stalled_upload(address).await).await,
        _ => unreachable!("{kind:?} is sent by reqwest"),
    }
}

/// One websocket, open for the whole soak: watches the jobs of its group and counts the events.
async fn watch(address: String, n: usize, mut ids: broadcast::Receiver<String>, tally: Arc<Tally>) {
    let url = format!("{}/ws", address.replace("http://", "ws://"));
    let (mut socket, _) = match connect_async(&url).await {
        Ok(connected) => connected,
        Err(e) => {
            eprintln!("socket {n} refused: {e}");
            tally.sockets_lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    tally.sockets_open.fetch_add(1, Ordering::Relaxed);
    let mut seen = 0usize;
    loop {
        tokio::select! {
            id = ids.recv() => match id {
                Ok(id) => {
                    seen += 1;
                    if seen % WATCH_GROUPS == n % WATCH_GROUPS {
                        let subscribe = json!({ "subscribe": [id] }).to_string();
                        if socket.send(Message::text(subscribe)).await.is_err() {
                            break;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(_))) => {
                    tally.events.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    tally.sockets_open.fetch_sub(1, Ordering::Relaxed);
    tally.sockets_lost.fetch_add(1, Ordering::Relaxed);
}

/// Waits for every accepted job to settle, then checks each settled as its kind should.
async fn check_settled(address: &str, tally: &Tally) -> usize {
    let accepted = tally.accepted.lock().unwrap().clone();
    println!(
        "soak: waiting for {} accepted jobs to settle",
        accepted.len()
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut failures = 0;
    for (id, kind) in accepted {
        let state = loop {
            let view: Value = client
                .get(format!("{address}/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let state = view["state"].as_str().unwrap_or("unknown").to_owned();
            if ["completed", "failed", "cancelled"].contains(&state.as_str())
                || Instant::now() > deadline
            {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if !kind.settles_as().contains(&state.as_str()) {
            println!("FAIL: {kind:?} job {id} ended {state}");
            failures += 1;
        }
    }
    failures
}

async fn report(minute: u64, started: Instant, server: &Server, tally: &Tally) {
    let (rss, peak) = memory_of(server.child.id());
    let redis = server.redis_pid().map(memory_of).map_or(0, |(rss, _)| rss);
    let answers: u64 = tally.answers.lock().unwrap().values().sum();
    let accepted = tally.accepted.lock().unwrap().len();
    let ready = ready(&server.address).await;
    println!(
        "minute {minute:>2} ({:>4} s): {answers} requests, {} accepted, {} events to {} open \
         sockets; pixdrop resident {} MiB (peak {} MiB), redis {} MiB, ready: {}",
        started.elapsed().as_secs(),
        accepted,
        tally.events.load(Ordering::Relaxed),
        tally.sockets_open.load(Ordering::Relaxed),
        rss >> 20,
        peak >> 20,
        redis >> 20,
        ready,
    );
    for ((kind, status), count) in tally.answers.lock().unwrap().iter() {
        println!("    {kind:?} {status}: {count}");
    }
}

/// The soak's photo: 6 MP, within the file limit.
fn photo() -> Vec<u8> {
    let out = noisy_jpeg(3000, 2000);
    assert!(
        out.len() < MAX_FILE_BYTES,
        "the photo is within the file limit"
    );
    out
}

/// A PNG of a few dozen bytes whose header claims `width` x `height` RGB pixels: a signature, an
/// IHDR chunk and an empty IEND.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IEND", &[])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let chunk = [kind, data].concat();
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}
