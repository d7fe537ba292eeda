//! `kill -9` of a real worker process, in the middle of a job and the instant after its claim: the
//! job is recovered and completes on another instance, once in the records, and no job is lost.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pixdrop::queue::{Claimed, Handler, JobError, JobId, JobState, Progress, Queue, WorkerPool};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{TestRedis, eventually, quick_settings, workers};

const CHILD_REDIS: &str = "PIXDROP_CRASH_TEST_REDIS";
const CHILD_DIES_ON_CLAIM: &str = "PIXDROP_CRASH_TEST_DIE_ON_CLAIM";

/// What a worker does with the jobs it starts.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Finishes every job.
    Finish,
    /// Never finishes a job marked `slow` (the child, until it is killed).
    HangOnSlow,
    /// Kills its own process with SIGKILL the moment it starts a job (the child).
    DieOnClaim,
}

/// Counts each run of a job in Redis (`runs:{id}`), marks the job with its process id, then does
/// as its mode says.
struct Marking {
    mode: Mode,
    redis: redis::Client,
}

impl Marking {
    fn new(mode: Mode, url: &str) -> Self {
        Self {
            mode,
            redis: redis::Client::open(url).unwrap(),
        }
    }
}

impl Handler for Marking {
    async fn handle(&self, job: &Claimed, progress: &Progress) -> Result<Value, JobError> {
        let mut conn = self.redis.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = conn.incr(runs_key(&job.id), 1).await.unwrap();
        if self.mode == Mode::DieOnClaim {
            // SAFETY: kill(2) on our own pid; nothing after it runs.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        progress
            .report(5, &format!("pid {}", std::process::id()))
            .await
            .ok();
        if self.mode == Mode::HangOnSlow && job.payload["slow"] == json!(true) {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Ok(json!({"pid": std::process::id()}))
    }
}

fn runs_key(id: &impl std::fmt::Display) -> String {
    format!("runs:{id}")
}

#[tokio::test]
#[ignore = "not a test: the worker process the crash tests start and kill"]
async fn crash_test_child_worker() {
    let url = std::env::var(CHILD_REDIS).expect("started by a crash test");
    let mode = match std::env::var(CHILD_DIES_ON_CLAIM) {
        Ok(_) => Mode::DieOnClaim,
        Err(_) => Mode::HangOnSlow,
    };
    let prefix = pixdrop::queue::KeyPrefix::parse("pixdrop").unwrap();
    let queue = Queue::connect(&url, &prefix, 4, &quick_settings()).unwrap();
    WorkerPool::new(queue, Marking::new(mode, &url), workers(2))
        .run(std::future::pending())
        .await;
}

/// Starts the child worker process against `redis`.
fn child_worker(redis: &TestRedis, dies_on_claim: bool) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "crash::crash_test_child_worker",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_REDIS, redis.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if dies_on_claim {
        command.env(CHILD_DIES_ON_CLAIM, "1");
    }
    command.spawn().unwrap()
}

/// Runs a pool here until every one of `ids` is completed.
async fn complete_here(queue: &Queue, url: &str, ids: &[JobId]) {
    let pool = WorkerPool::new(queue.clone(), Marking::new(Mode::Finish, url), workers(2));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    eventually(Duration::from_secs(20), "every job to complete", || async {
        let mut all = true;
        for id in ids {
            all &= queue.job(id).await.unwrap().unwrap().state == JobState::Completed;
        }
        all
    })
    .await;
    stop_tx.send(()).unwrap();
    running.await.unwrap();
}

async fn runs_of(redis: &TestRedis, id: &JobId) -> i64 {
    let runs: Option<i64> = redis.conn().await.get(runs_key(id)).await.unwrap();
    runs.unwrap_or(0)
}

async fn live_instances(redis: &TestRedis, queue: &Queue) -> Vec<String> {
    redis
        .conn()
        .await
        .smembers(queue.keys().workers())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_process_dies_the_instant_it_is_claimed_runs_again_once() {
    // The window between a claim and the claiming instance's next heartbeat: the process is gone
    // before it reported anything. Its jobs come back once its heartbeat lapses, each runs once
    // more and completes, and none is counted as stalled more than once.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(queue.enqueue(&json!({"n": n})).await.unwrap());
    }
    let mut child = child_worker(&redis, true);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the child died on its first claim"
    );
    // What the child held when it died: claimed (active), whether or not its run had begun.
    let mut held = Vec::new();
    let mut runs_before = Vec::new();
    for id in &ids {
        if queue.job(id).await.unwrap().unwrap().state == JobState::Active {
            held.push(*id);
        }
        runs_before.push(runs_of(&redis, id).await);
    }
    assert!(!held.is_empty(), "the child claimed a job before dying");

    complete_here(&queue, &redis.url(), &ids).await;
    for (id, before) in ids.iter().zip(runs_before) {
        let record = queue.job(id).await.unwrap().unwrap();
        assert!(
            before <= i64::from(held.contains(id)),
            "runs in the child of {id}"
        );
        assert_eq!(runs_of(&redis, id).await - before, 1, "runs here of {id}");
        assert_eq!(
            record.stalls,
            u32::from(held.contains(id)),
            "stalls of {id}"
        );
        assert_eq!(record.result, Some(json!({"pid": std::process::id()})));
    }
    // The reaper forgets the dead workers one by one, after returning their jobs: the jobs of one
    // may complete here before it reaches the next.
    eventually(
        Duration::from_secs(30),
        "the dead instance's workers to be forgotten",
        || async { live_instances(&redis, &queue).await.is_empty() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_process_is_killed_completes_on_another_instance() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let slow = queue.enqueue(&json!({"slow": true})).await.unwrap();
    let mut child = child_worker(&redis, false);
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

    let all: Vec<JobId> = others.iter().chain([&slow]).copied().collect();
    complete_here(&queue, &redis.url(), &all).await;

    let record = queue.job(&slow).await.unwrap().unwrap();
    assert_eq!(
        record.result,
        Some(json!({"pid": std::process::id()})),
        "finished here"
    );
    assert_eq!((record.stalls, record.attempts), (1, 2));
    let leftover = live_instances(&redis, &queue).await;
    assert!(
        leftover.is_empty(),
        "the dead instance was forgotten: {leftover:?}"
    );
}
