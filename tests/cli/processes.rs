//! pixdrop as several processes on one external Redis: two `serve --no-workers` and two
//! `pixdrop worker`s. Uploads through either HTTP process are spread over both workers, every job's
//! events reach the sockets of both HTTP processes, and a worker killed with SIGKILL in the middle
//! of a job loses nothing: its job comes back and completes elsewhere, once in the records.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use redis::AsyncCommands;
use serde_json::Value;

use crate::photo::noisy_jpeg;
use crate::support::TestRedis;
use crate::{pixdrop, upload_photo};

/// A pixdrop process on the test's Redis; killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(storage: &std::path::Path, redis: &TestRedis, args: &[&str]) -> Process {
    let child = pixdrop(storage)
        .args(args)
        .env("PIXDROP__REDIS__URL", redis.url())
        .env("PIXDROP__SERVER__BIND", "127.0.0.1:0")
        .env("PIXDROP__WORKERS__CONCURRENCY", "1")
        // A dead worker's job comes back within a couple of seconds.
        .env("PIXDROP__QUEUE__HEARTBEAT_INTERVAL_MS", "300")
        .env("PIXDROP__QUEUE__HEARTBEAT_TTL_MS", "1500")
        .env("PIXDROP__QUEUE__REAPER_INTERVAL_MS", "300")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Process(child)
}

/// An HTTP process and its address, once it said where it listens.
fn serve(storage: &std::path::Path, redis: &TestRedis) -> (Process, String) {
    let mut process = start(storage, redis, &["serve", "--no-workers"]);
    let mut lines = BufReader::new(process.0.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("pixdrop says where it runs").unwrap();
        if let Some(address) = line.strip_prefix("pixdrop is running: ") {
            break address.trim_end_matches('/').to_owned();
        }
    };
    // Keep draining, so the process never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (process, address)
}

async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pid in a job's `owner` (`{pid}-{uuid}/{slot}`), if it was claimed.
async fn owner_pid(conn: &mut redis::aio::MultiplexedConnection, id: &str) -> Option<u32> {
    let owner: Option<String> = conn
        .hget(format!("{{pixdrop}}:job:{id}"), "owner")
        .await
        .unwrap();
    owner?.split('-').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_http_processes_and_two_workers_share_the_work_and_survive_a_kill() {
    const UPLOADS: u32 = 16;
    let redis = TestRedis::start();
    let storage = tempfile::tempdir().unwrap();
    let (_http_a, a) = serve(storage.path(), &redis);
    let (_http_b, b) = serve(storage.path(), &redis);
    let mut doomed = start(storage.path(), &redis, &["worker"]);
    let _survivor = start(storage.path(), &redis, &["worker"]);
    let doomed_pid = doomed.0.id();
    let mut conn = redis.conn().await;
    eventually(Duration::from_secs(30), "both workers to register", || {
        let mut conn = conn.clone();
        async move {
            let workers: Vec<String> = conn.smembers("{pixdrop}:workers").await.unwrap();
            workers.len() >= 2
        }
    })
    .await;

    let mut ids = Vec::new();
    for n in 0..UPLOADS {
        let address = if n % 2 == 0 { &a } else { &b };
        // Each photo its own bytes, so none reuses another's variants.
        ids.push(upload_photo(address, &noisy_jpeg(900 + n, 700)).await);
    }
    let query = format!("?job={}", ids.join("&job="));
    let mut sockets = Vec::new();
    for address in [&a, &b] {
        let url = format!("{}/ws{query}", address.replacen("http", "ws", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        sockets.push(socket);
    }

    // Killed in the middle of a job of its own, after it completed at least one. It is frozen
    // (SIGSTOP) first, so what it holds cannot change between looking and killing; if it held
    // nothing at that moment, it is thawed and the look repeats. On a loaded machine every job
    // may finish between two looks: more photos are then uploaded, and watched, until it is caught.
    let deadline = Instant::now() + Duration::from_secs(60);
    let signal = |signal| {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(doomed_pid as i32, signal) };
    };
    let held = loop {
        assert!(
            Instant::now() < deadline,
            "the doomed worker never got busy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut done = false;
        let mut unfinished = 0;
        for id in &ids {
            let state: Option<String> = conn
                .hget(format!("{{pixdrop}}:job:{id}"), "state")
                .await
                .unwrap();
            done |= state.as_deref() == Some("completed")
                && owner_pid(&mut conn, id).await == Some(doomed_pid);
            unfinished += usize::from(state.as_deref() != Some("completed"));
        }
        if unfinished == 0 {
            let mut more = Vec::new();
            for n in 0..4 {
                let photo = noisy_jpeg(900 + (ids.len() + n) as u32, 700);
                more.push(upload_photo(if n % 2 == 0 { &a } else { &b }, &photo).await);
            }
            let subscribe = serde_json::json!({ "subscribe": more }).to_string();
            for socket in &mut sockets {
                socket.send(subscribe.clone().into()).await.unwrap();
            }
            ids.extend(more);
            continue;
        }
        if !done {
            continue;
        }
        signal(libc::SIGSTOP);
        let mut held = HashSet::new();
        for id in &ids {
            let state: Option<String> = conn
                .hget(format!("{{pixdrop}}:job:{id}"), "state")
                .await
                .unwrap();
            if state.as_deref() == Some("active")
                && owner_pid(&mut conn, id).await == Some(doomed_pid)
            {
                held.insert(id.clone());
            }
        }
        if !held.is_empty() {
            break held;
        }
        signal(libc::SIGCONT);
    };
    signal(libc::SIGKILL);
    doomed.0.wait().unwrap();
    // Its pool may run more workers than cores, so it may hold more than one job.
    assert!(!held.is_empty(), "killed in the middle of a job");

    // Every job completes, as both HTTP processes' sockets see, through events as they happen.
    for socket in &mut sockets {
        let mut completed = HashSet::new();
        let mut events = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while completed.len() < ids.len() {
            let message = tokio::time::timeout_at(deadline, socket.next())
                .await
                .expect("every job completes in time")
                .unwrap()
                .unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let message: Value = serde_json::from_str(text).unwrap();
            if message["type"] == "event" {
                events += 1;
            }
            if message["state"] == "completed" {
                completed.insert(message["id"].as_str().unwrap().to_owned());
            }
        }
        assert!(events > 0, "the socket saw events, not only snapshots");
    }

    let mut by_pid: HashMap<u32, usize> = HashMap::new();
    for id in &ids {
        let record: HashMap<String, String> =
            conn.hgetall(format!("{{pixdrop}}:job:{id}")).await.unwrap();
        assert_eq!(record["state"], "completed", "{id}: {record:?}");
        *by_pid
            .entry(owner_pid(&mut conn, id).await.unwrap())
            .or_default() += 1;
        let stalls: u32 = record["stalls"].parse().unwrap();
        assert_eq!(stalls, u32::from(held.contains(id)), "{id}: {record:?}");
        if held.contains(id) {
            assert_ne!(
                owner_pid(&mut conn, id).await,
                Some(doomed_pid),
                "the killed worker's job completed elsewhere"
            );
        }
    }
    assert_eq!(by_pid.len(), 2, "both workers completed jobs: {by_pid:?}");
    let completed: u64 = conn.hget("{pixdrop}:stats", "completed").await.unwrap();
    assert_eq!(
        completed,
        ids.len() as u64,
        "each job completed once in the records"
    );
}
