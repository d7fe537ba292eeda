//! Graceful shutdown: quick jobs finish within the grace period; slow ones are handed back at once.

use std::time::Duration;

use pixdrop::queue::{Claimed, Handler, JobError, JobState, Progress, WorkerPool};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{TestRedis, eventually, workers};

/// Takes as long as the payload's `ms` says.
struct Timed;

impl Handler for Timed {
    async fn handle(&self, job: &Claimed, progress: &Progress) -> Result<Value, JobError> {
        progress.report(10, "started").await.ok();
        let ms = job.payload["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({"slept": ms}))
    }
}

#[tokio::test]
async fn shutdown_lets_short_jobs_finish_and_hands_long_ones_back_at_once() {
    // After the grace period the unfinished job is queued again (its attempt not counted) and the
    // instance leaves no heartbeat or worker behind; the finished one stays completed.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let short = queue.enqueue(&json!({"ms": 300})).await.unwrap();
    let long = queue.enqueue(&json!({"ms": 60_000})).await.unwrap();
    let mut settings = workers(2);
    settings.shutdown_grace_secs = 1;
    let pool = WorkerPool::new(queue.clone(), Timed, settings);
    let instance = pool.instance().to_owned();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    eventually(Duration::from_secs(5), "both jobs active", || async {
        let a = queue.job(&short).await.unwrap().unwrap().state;
        let b = queue.job(&long).await.unwrap().unwrap().state;
        a == JobState::Active && b == JobState::Active
    })
    .await;

    let stopping = std::time::Instant::now();
    stop_tx.send(()).unwrap();
    running.await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "the grace period bounds the stop"
    );

    assert_eq!(
        queue.job(&short).await.unwrap().unwrap().state,
        JobState::Completed
    );
    let record = queue.job(&long).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Queued, 0));
    assert_eq!(queue.depths().await.unwrap().waiting, 1);
    let mut raw = redis.conn().await;
    let alive: bool = raw.exists(queue.keys().heartbeat(&instance)).await.unwrap();
    let registered: Vec<String> = raw.smembers(queue.keys().workers()).await.unwrap();
    assert!(!alive && registered.is_empty(), "retired: {registered:?}");
}
