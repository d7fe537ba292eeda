//! Many jobs through many workers: each completes, and completes once in the records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixdrop::queue::{Claimed, Handler, JobError, JobId, JobState, Progress, WorkerPool};
use serde_json::{Value, json};

use crate::support::{TestRedis, subscribe, workers};

/// Counts how often each job ran, and says which instance ran it.
#[derive(Clone)]
struct Counting {
    instance: &'static str,
    runs: Arc<Mutex<HashMap<JobId, u32>>>,
}

impl Handler for Counting {
    async fn handle(&self, job: &Claimed, _progress: &Progress) -> Result<Value, JobError> {
        *self.runs.lock().unwrap().entry(job.id).or_default() += 1;
        Ok(json!({"by": self.instance}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_jobs_through_eight_workers_in_two_instances_each_complete_once() {
    // Every job ends completed, exactly one `completed` event is published per job, and both
    // instances took part.
    const JOBS: usize = 2_000;
    let redis = TestRedis::start();
    let queue = redis.queue();
    let mut events = subscribe(&queue).await;
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let mut stops = Vec::new();
    let mut pools = Vec::new();
    for instance in ["a", "b"] {
        let handler = Counting {
            instance,
            runs: runs.clone(),
        };
        let pool = WorkerPool::new(queue.clone(), handler, workers(4));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        pools.push(tokio::spawn(pool.run(async {
            let _ = rx.await;
        })));
    }
    let payloads: Vec<Value> = (0..JOBS).map(|i| json!({"n": i})).collect();
    let mut ids = Vec::new();
    for chunk in payloads.chunks(250) {
        ids.extend(queue.enqueue_batch(chunk).await.unwrap());
    }

    let mut completed: HashMap<JobId, u32> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while completed.len() < JOBS {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("all jobs complete within a minute")
            .unwrap();
        if event.state == JobState::Completed {
            *completed.entry(event.id).or_default() += 1;
        }
    }
    // Give any duplicate completion a moment to show up before judging.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(event) = events.try_recv() {
        if event.state == JobState::Completed {
            *completed.entry(event.id).or_default() += 1;
        }
    }
    for stop in stops {
        stop.send(()).unwrap();
    }
    for pool in pools {
        pool.await.unwrap();
    }

    assert!(completed.values().all(|&n| n == 1), "a job completed twice");
    let mut by = HashMap::new();
    for id in &ids {
        let record = queue.job(id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Completed, "{id}");
        assert_eq!(completed.get(id), Some(&1), "{id}");
        *by.entry(record.result.unwrap()["by"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(by.len(), 2, "both instances worked: {by:?}");
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS);
    assert!(
        runs.values().all(|&n| n == 1),
        "no job ran twice without a crash"
    );
    let depths = queue.depths().await.unwrap();
    assert_eq!((depths.waiting, depths.retrying), (0, 0));
}

/// How many times Redis ran each of `commands` as a client's command (`INFO commandstats`; a
/// script's own calls count under their names, never as `evalsha`).
async fn calls(redis: &TestRedis, commands: &[&str]) -> Vec<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    commands
        .iter()
        .map(|command| {
            info.lines()
                .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_settles_each_job_and_starts_the_next_in_one_round_trip() {
    // With jobs waiting, a worker's ack claims and activates the next one: one script per job,
    // and a blocking claim only when the list ran dry (once at the start, once at the end).
    const JOBS: u64 = 300;
    let redis = TestRedis::start();
    let queue = redis.queue();
    let payloads: Vec<Value> = (0..JOBS).map(|i| json!({"n": i})).collect();
    let ids = queue.enqueue_batch(&payloads).await.unwrap();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let handler = Counting {
        instance: "a",
        runs: runs.clone(),
    };
    let before = calls(&redis, &["evalsha", "blmove"]).await;
    let pool = WorkerPool::new(queue.clone(), handler, workers(1));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stopped.await;
    }));
    crate::support::eventually(Duration::from_secs(30), "every job to run", || async {
        runs.lock().unwrap().len() == ids.len()
    })
    .await;
    let last = *ids.last().unwrap();
    crate::support::eventually(Duration::from_secs(10), "the last ack", || async {
        queue.job(&last).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    let after = calls(&redis, &["evalsha", "blmove"]).await;
    stop.send(()).unwrap();
    running.await.unwrap();
    let (scripts, claims) = (after[0] - before[0], after[1] - before[1]);
    // Upkeep (heartbeat, promote, reaper) adds a few scripts a second; the jobs take far less.
    assert!(
        (JOBS..JOBS + 20).contains(&scripts),
        "{scripts} scripts for {JOBS} jobs"
    );
    assert!(claims <= 3, "{claims} blocking claims for {JOBS} jobs");
}
