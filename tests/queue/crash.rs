//! `kill -9` of a real worker process in the middle of a job: the job is recovered and completes on
//! another instance, and no job is lost.

use std::process::{Command, Stdio};
use std::time::Duration;

use pixdrop::queue::{Claimed, Handler, JobError, JobState, Progress, Queue, WorkerPool};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{TestRedis, eventually, quick_settings, workers};

const CHILD_REDIS: &str = "PIXDROP_CRASH_TEST_REDIS";

/// Marks each job it starts with its process id; in the child, jobs marked `slow` never finish.
struct Marking {
    slow: bool,
}

impl Handler for Marking {
    async fn handle(&self, job: &Claimed, progress: &Progress) -> Result<Value, JobError> {
        progress
            .report(5, &format!("pid {}", std::process::id()))
            .await
            .ok();
        if self.slow && job.payload["slow"] == json!(true) {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Ok(json!({"pid": std::process::id()}))
    }
}

#[tokio::test]
#[ignore = "not a test: the worker process the crash test starts and kills"]
async fn crash_test_child_worker() {
    let url = std::env::var(CHILD_REDIS).expect("started by the crash test");
    let prefix = pixdrop::queue::KeyPrefix::parse("pixdrop").unwrap();
    let queue = Queue::connect(&url, &prefix, 4, &quick_settings()).unwrap();
    WorkerPool::new(queue, Marking { slow: true }, workers(2))
        .run(std::future::pending())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_process_is_killed_completes_on_another_instance() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let slow = queue.enqueue(&json!({"slow": true})).await.unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_test_child_worker",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_REDIS, redis.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    eventually(
        Duration::from_secs(20),
        "the child to start the slow job",
        || async {
            let record = queue.job(&slow).await.unwrap().unwrap();
            record.step == Some(format!("pid {child_pid}"))
        },
    )
    .await;
    let mut others = Vec::new();
    for n in 0..30 {
        others.push(queue.enqueue(&json!({"n": n})).await.unwrap());
    }

    child.kill().unwrap(); // SIGKILL: no destructor, no hand-back, the heartbeat just stops.
    child.wait().unwrap();
    assert_eq!(
        queue.job(&slow).await.unwrap().unwrap().state,
        JobState::Active
    );

    let pool = WorkerPool::new(queue.clone(), Marking { slow: false }, workers(2));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    eventually(Duration::from_secs(20), "every job to complete", || async {
        let mut all = true;
        for id in others.iter().chain([&slow]) {
            all &= queue.job(id).await.unwrap().unwrap().state == JobState::Completed;
        }
        all
    })
    .await;
    stop_tx.send(()).unwrap();
    running.await.unwrap();

    let record = queue.job(&slow).await.unwrap().unwrap();
    assert_eq!(
        record.result,
        Some(json!({"pid": std::process::id()})),
        "finished here"
    );
    assert_eq!((record.stalls, record.attempts), (1, 2));
    let leftover: Vec<String> = redis
        .conn()
        .await
        .smembers(queue.keys().workers())
        .await
        .unwrap();
    assert!(
        leftover.is_empty(),
        "the dead instance was forgotten: {leftover:?}"
    );
}
