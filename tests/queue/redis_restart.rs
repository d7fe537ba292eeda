//! Redis killed and restarted (from its AOF) under load: workers reconnect by themselves and every
//! accepted job completes.

use std::time::Duration;

use pixdrop::queue::{Claimed, Handler, JobError, JobId, JobState, Progress, Queue, WorkerPool};
use serde_json::{Value, json};

use crate::support::{TestRedis, eventually, workers};

struct Brief;

impl Handler for Brief {
    async fn handle(&self, _job: &Claimed, progress: &Progress) -> Result<Value, JobError> {
        progress.report(50, "working").await.ok();
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(json!("ok"))
    }
}

/// Enqueues, trying again while Redis is away (an HTTP handler would answer 503 instead).
async fn enqueue_patiently(queue: &Queue, n: usize) -> JobId {
    for _ in 0..200 {
        if let Ok(id) = queue.enqueue(&json!({"n": n})).await {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis never came back");
}

async fn completed(queue: &Queue, ids: &[JobId]) -> usize {
    let mut n = 0;
    for id in ids {
        if let Ok(Some(r)) = queue.job(id).await {
            n += usize::from(r.state == JobState::Completed);
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_after_a_redis_restart_and_every_accepted_job_completes() {
    let mut redis = TestRedis::start();
    let queue = redis.queue();
    let mut ids = Vec::new();
    for n in 0..400 {
        ids.push(queue.enqueue(&json!({"n": n})).await.unwrap());
    }
    let pool = WorkerPool::new(queue.clone(), Brief, workers(4));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    eventually(Duration::from_secs(20), "some progress", || async {
        completed(&queue, &ids).await >= 50
    })
    .await;

    redis.server.kill(); // mid-load, without warning
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.server.restart().expect("redis restarts from its AOF");
    for n in 400..500 {
        ids.push(enqueue_patiently(&queue, n).await);
    }

    eventually(Duration::from_secs(60), "every job to complete", || async {
        completed(&queue, &ids).await == ids.len()
    })
    .await;
    stop_tx.send(()).unwrap();
    running.await.unwrap();
    let depths = queue.depths().await.unwrap();
    assert_eq!((depths.waiting, depths.retrying), (0, 0));
}
