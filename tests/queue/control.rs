//! An operator's hold on the queue: counts per state, finished jobs listed newest first, retry all
//! failed, clean finished jobs by age, delete whoever owns a job, and a pause that every instance
//! honours.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pixdrop::queue::{
    Claimed, Handler, JobError, JobId, JobState, Progress, Queue, ResubmitOutcome, WorkerPool,
};
use serde_json::{Value, json};

use crate::support::{TestRedis, eventually, workers};

/// Fails jobs whose payload says `fail`, waits `slow_ms` on those that say so, completes the rest.
#[derive(Clone, Default)]
struct Scripted {
    runs: Arc<AtomicUsize>,
}

impl Handler for Scripted {
    async fn handle(&self, job: &Claimed, _progress: &Progress) -> Result<Value, JobError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if let Some(ms) = job.payload["slow_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if job.payload["fail"] == true {
            return Err(JobError::permanent("broken", "this one is meant to fail"));
        }
        Ok(json!({}))
    }
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start(queue: &Queue, handler: Scripted, concurrency: usize) -> Running {
    let pool = WorkerPool::new(queue.clone(), handler, workers(concurrency));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pool.run(async {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn state(queue: &Queue, id: &JobId) -> JobState {
    queue.job(id).await.unwrap().unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_on_every_instance_while_running_jobs_finish() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let handler = Scripted::default();
    let pools = [
        start(&queue, handler.clone(), 2),
        start(&queue, handler.clone(), 2),
    ];
    let running = queue.enqueue(&json!({"slow_ms": 600})).await.unwrap();
    eventually(Duration::from_secs(10), "the slow job to start", || async {
        state(&queue, &running).await == JobState::Active
    })
    .await;
    queue.pause().await.unwrap();
    let mut held = Vec::new();
    for n in 0..6 {
        held.push(queue.enqueue(&json!({"n": n})).await.unwrap());
    }
    eventually(
        Duration::from_secs(10),
        "the running job to finish",
        || async { state(&queue, &running).await == JobState::Completed },
    )
    .await;
    // Four idle workers on two instances, a second and more: none claims.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let counts = queue.counts().await.unwrap();
    assert!(counts.paused);
    assert_eq!((counts.waiting, counts.active), (6, 0), "{counts:?}");
    assert_eq!(handler.runs.load(Ordering::SeqCst), 1);
    for id in &held {
        assert_eq!(state(&queue, id).await, JobState::Queued);
    }

    queue.resume().await.unwrap();
    eventually(
        Duration::from_secs(10),
        "every held job to complete",
        || async {
            let mut all = true;
            for id in &held {
                all &= state(&queue, id).await == JobState::Completed;
            }
            all
        },
    )
    .await;
    assert_eq!(handler.runs.load(Ordering::SeqCst), 7, "each ran once");
    assert!(!queue.counts().await.unwrap().paused);
    for pool in pools {
        pool.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_counted_listed_retried_and_cleaned_by_age() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for n in 0..3 {
        ok.push(queue.enqueue(&json!({"n": n})).await.unwrap());
        bad.push(queue.enqueue(&json!({"n": n, "fail": true})).await.unwrap());
    }
    let pool = start(&queue, Scripted::default(), 2);
    eventually(Duration::from_secs(10), "every job to finish", || async {
        let counts = queue.counts().await.unwrap();
        counts.completed == 3 && counts.failed == 3
    })
    .await;
    pool.stop().await;
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.active, counts.cancelled), (0, 0, 0));

    // Newest first, paginated, with the error.
    let first = queue.finished_jobs(JobState::Failed, 0, 2).await.unwrap();
    let second = queue.finished_jobs(JobState::Failed, 2, 2).await.unwrap();
    assert_eq!(
        (first.total, first.jobs.len(), second.jobs.len()),
        (3, 2, 1)
    );
    let listed: Vec<&pixdrop::queue::JobRecord> = first.jobs.iter().chain(&second.jobs).collect();
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].finished_at >= w[1].finished_at),
        "newest first"
    );
    for job in &listed {
        assert!(bad.contains(&job.id));
        assert_eq!(job.error.as_ref().unwrap().code, "broken");
    }

    // One retried by an administrator, whoever owns it; then all the others.
    assert_eq!(
        queue.resubmit_any(&bad[0]).await.unwrap(),
        ResubmitOutcome::Queued
    );
    assert_eq!(queue.retry_all_failed().await.unwrap(), 2);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.failed), (3, 0));

    // Cleaned by age: nothing finished before an hour ago; every completed job before now.
    let old = queue.finished_before(Duration::from_secs(3600));
    assert!(
        queue
            .clean_finished(JobState::Completed, old, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let removed = queue
        .clean_finished(
            JobState::Completed,
            queue.finished_before(Duration::ZERO) + 1,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(removed.len(), 3);
    for id in &ok {
        assert!(queue.job(id).await.unwrap().is_none());
    }
    assert_eq!(queue.counts().await.unwrap().completed, 0);

    // An administrator's delete takes any job, queued ones out of the waiting list too.
    let gone = queue
        .delete_any(&bad[1], Duration::from_secs(1))
        .await
        .unwrap()
        .expect("removed");
    assert_eq!(gone.state, JobState::Queued);
    assert_eq!(queue.counts().await.unwrap().waiting, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_on_job_starts_holds_across_two_instances() {
    // Three starts a second between two instances of two workers each: nine jobs take three
    // windows, never more than three starts in one.
    let redis = TestRedis::start();
    let queue = redis.queue_with(pixdrop::queue::QueueSettings {
        rate_limit_jobs: 3,
        rate_limit_window_ms: 1000,
        ..crate::support::quick_settings()
    });
    let mut ids = Vec::new();
    for n in 0..9 {
        ids.push(queue.enqueue(&json!({"n": n})).await.unwrap());
    }
    let handler = Scripted::default();
    let pools = [
        start(&queue, handler.clone(), 2),
        start(&queue, handler.clone(), 2),
    ];
    eventually(Duration::from_secs(15), "every job to complete", || async {
        let mut all = true;
        for id in &ids {
            all &= state(&queue, id).await == JobState::Completed;
        }
        all
    })
    .await;
    let mut per_window = std::collections::BTreeMap::<u64, u32>::new();
    for id in &ids {
        let started = queue.job(id).await.unwrap().unwrap().started_at.unwrap();
        *per_window.entry(started / 1000).or_default() += 1;
    }
    assert!(per_window.values().all(|&n| n <= 3), "{per_window:?}");
    assert!(per_window.len() >= 3, "{per_window:?}");
    assert_eq!(handler.runs.load(Ordering::SeqCst), 9, "each ran once");
    for pool in pools {
        pool.stop().await;
    }
}

/// Sleeps, and notes the most jobs it ran at once.
#[derive(Clone, Default)]
struct Overlap {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Handler for Overlap {
    async fn handle(&self, _job: &Claimed, _progress: &Progress) -> Result<Value, JobError> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(json!({}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_under_a_burst_and_shrinks_back_when_idle() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let handler = Overlap::default();
    let settings = pixdrop::queue::WorkerSettings {
        concurrency: None,
        min: 1,
        max: 4,
        idle_secs: 1,
        ..workers(1)
    };
    let pool = WorkerPool::new(queue.clone(), handler.clone(), settings);
    let size = pool.size();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stopped.await;
    }));
    eventually(Duration::from_secs(5), "the first worker", || async {
        size.running.load(Ordering::SeqCst) == 1
    })
    .await;
    // Every instance's heartbeat says how many of its workers run.
    let running_told = || async {
        let instances = queue.instances().await.unwrap();
        assert_eq!(instances.len(), 1, "{instances:?}");
        assert_eq!(instances[0].workers.len(), 4, "its slots");
        instances[0].running
    };
    eventually(
        Duration::from_secs(5),
        "the heartbeat to tell one",
        || async { running_told().await == Some(1) },
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..16 {
        ids.push(queue.enqueue(&json!({"n": n})).await.unwrap());
    }
    eventually(
        Duration::from_secs(10),
        "the heartbeat to tell four",
        || async { running_told().await == Some(4) },
    )
    .await;
    eventually(Duration::from_secs(20), "the burst to complete", || async {
        let mut all = true;
        for id in &ids {
            all &= state(&queue, id).await == JobState::Completed;
        }
        all
    })
    .await;
    assert_eq!(
        handler.most.load(Ordering::SeqCst),
        4,
        "grew to the maximum while jobs waited"
    );
    eventually(
        Duration::from_secs(10),
        "the pool to shrink to one",
        || async { size.running.load(Ordering::SeqCst) == 1 },
    )
    .await;
    // Back to one worker, which still takes jobs.
    let late = queue.enqueue(&json!({})).await.unwrap();
    eventually(Duration::from_secs(5), "a job after the shrink", || async {
        state(&queue, &late).await == JobState::Completed
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap();
    assert_eq!(size.running.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_occurrence_of_a_repeatable_task_goes_to_one_instance_and_survives_restarts() {
    let redis = TestRedis::start();
    let clock = pixdrop::queue::ManualClock::new(1_000_000_000_000);
    let instances: Vec<Queue> = (0..3)
        .map(|_| redis.queue().with_clock(clock.clone()))
        .collect();
    let every = Duration::from_secs(60);
    let mut takers = Vec::new();
    for occurrence in 0..5 {
        // Every instance asks four times at the same moment: one gets it.
        let asks = instances.iter().enumerate().flat_map(|(n, queue)| {
            (0..4).map(move |_| async move {
                let runner = format!("instance-{n}");
                queue
                    .take_due("chore", every, &runner)
                    .await
                    .unwrap()
                    .then_some(runner)
            })
        });
        let taken: Vec<String> = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(taken.len(), 1, "occurrence {occurrence}: {taken:?}");
        takers.push(taken[0].clone());
        // Not again before the interval is over.
        clock.advance_ms(59_999);
        for queue in &instances {
            assert!(!queue.take_due("chore", every, "late").await.unwrap());
        }
        clock.advance_ms(1);
    }
    // A process started now (a restart) finds the schedule where it was.
    let restarted = redis.queue().with_clock(clock.clone());
    let tasks = restarted.repeating().await.unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].name, "chore");
    assert_eq!(tasks[0].runs, 5);
    assert_eq!(tasks[0].last_runner.as_deref(), Some(takers[4].as_str()));
    assert!(
        restarted
            .take_due("chore", every, "restarted")
            .await
            .unwrap()
    );
    assert!(
        !restarted
            .take_due("chore", every, "restarted")
            .await
            .unwrap()
    );
    assert_eq!(restarted.repeating().await.unwrap()[0].runs, 6);
}

#[tokio::test]
async fn the_expiry_schedule_of_earlier_versions_is_still_honoured_and_drained() {
    // Earlier versions scheduled each finished job's removal in `{prefix}:finished`, scored by when
    // to remove it. Such an entry is removed when it falls due, record and all, then is gone.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    let mut conn = pixdrop::queue::WorkerConn::open(&queue, "old/0")
        .await
        .unwrap();
    let pixdrop::queue::Claim::Job(job) = conn.claim().await.unwrap() else {
        panic!("expected a job");
    };
    conn.ack(&job, &json!({})).await.unwrap();
    let keys = queue.keys();
    let mut redis_conn = redis.conn().await;
    // As an earlier version left it: in the old schedule, due in a minute, in no state's index.
    let due = queue.job(&id).await.unwrap().unwrap().updated_at + 60_000;
    let () = redis::AsyncCommands::zrem(
        &mut redis_conn,
        keys.finished_in(JobState::Completed),
        id.to_string(),
    )
    .await
    .unwrap();
    let () = redis::AsyncCommands::zadd(&mut redis_conn, keys.finished(), id.to_string(), due)
        .await
        .unwrap();

    let at = |ms: u64| {
        redis
            .queue()
            .with_clock(pixdrop::queue::ManualClock::new(ms))
    };
    assert!(at(due - 1).expire_due().await.unwrap().is_empty());
    let expired = at(due).expire_due().await.unwrap();
    assert_eq!(expired.len(), 1);
    assert!(queue.job(&id).await.unwrap().is_none());
    let left: i64 = redis::AsyncCommands::zcard(&mut redis_conn, keys.finished())
        .await
        .unwrap();
    assert_eq!(left, 0);
}
