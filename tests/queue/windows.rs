//! The windows in which an accepted job could be lost or run twice, each closed: a lost
//! activation, a worker claiming before its instance is registered, a Redis outage longer than
//! the heartbeat TTL, and a batch enqueue cut short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixdrop::queue::{
    Claimed, Handler, JobError, JobId, JobState, Progress, Queue, QueueSettings, Settled,
    WorkerPool,
};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{TestRedis, quick_settings, workers};
use crate::transitions::claim;

/// Rewrites the job's record as it was before its activation, as a Redis that crashed and
/// replayed an AOF missing the activation's write would have it; the id stays in the list.
async fn lose_activation(redis: &TestRedis, queue: &Queue, id: &pixdrop::queue::JobId) {
    let mut conn = redis.conn().await;
    let key = queue.keys().job(id);
    let _: () = conn
        .hset_multiple(
            &key,
            &[("state", "queued"), ("attempts", "0"), ("lease", "0")],
        )
        .await
        .unwrap();
    let _: () = conn.hdel(&key, &["owner", "started_at"]).await.unwrap();
}

async fn waiting(redis: &TestRedis, queue: &Queue) -> Vec<String> {
    redis
        .conn()
        .await
        .lrange(queue.keys().waiting(), 0, -1)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_whose_activation_was_lost_goes_back_to_waiting_however_its_worker_settles_it() {
    // The worker's call is refused (its lease was never stored), and the job, `queued` yet in no
    // list but the worker's, is put back in the waiting list instead of being lost.
    let redis = TestRedis::start();
    let queue = redis.queue();
    for settle in ["ack", "fail", "retry", "hand back"] {
        let id = queue.enqueue(&json!({})).await.unwrap();
        let (mut conn, job) = claim(&queue, "w/0").await;
        lose_activation(&redis, &queue, &id).await;
        let settled = match settle {
            "ack" => conn.ack(&job, &json!(1)).await,
            "fail" => conn.fail(&job, &JobError::permanent("bad", "x")).await,
            "retry" => conn.fail(&job, &JobError::transient("io", "x")).await,
            _ => conn.hand_back(&job).await,
        }
        .unwrap();
        assert_eq!(
            settled,
            Settled::LeaseLost {
                state: Some(JobState::Queued)
            },
            "{settle}"
        );
        assert_eq!(waiting(&redis, &queue).await, [id.to_string()], "{settle}");
        let processing: Vec<String> = redis
            .conn()
            .await
            .lrange(queue.keys().processing("w/0"), 0, -1)
            .await
            .unwrap();
        assert!(processing.is_empty(), "{settle}");
        // And it runs to completion from there.
        let (mut conn, job) = claim(&queue, "w/0").await;
        assert_eq!(job.id, id);
        assert_eq!(conn.ack(&job, &json!(1)).await.unwrap(), Settled::Done);
    }
}

#[tokio::test]
async fn a_processing_list_of_a_worker_never_registered_is_found_and_its_job_recovered() {
    // A worker claimed before its instance's first heartbeat registered it, then its process was
    // killed: no heartbeat, not in the set of workers. The rare sweep adopts its list, and the
    // reaper returns the job.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    let (_conn, job) = claim(&queue, "ghost/0").await;
    assert_eq!(job.id, id);
    assert_eq!(
        queue.reap_dead().await.unwrap(),
        0,
        "the reaper alone never sees it"
    );
    redis.release_reaper_lock(&queue).await;

    assert_eq!(queue.adopt_unregistered_lists().await.unwrap(), 1);
    assert_eq!(queue.reap_dead().await.unwrap(), 1);
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!((record.state, record.stalls), (JobState::Queued, 1));
    assert_eq!(waiting(&redis, &queue).await, [id.to_string()]);
}

/// Counts every run of every job; each run takes `run_for`.
struct Counting {
    runs: Arc<Mutex<HashMap<JobId, u32>>>,
    run_for: Duration,
}

impl Handler for Counting {
    async fn handle(&self, job: &Claimed, _progress: &Progress) -> Result<Value, JobError> {
        *self.runs.lock().unwrap().entry(job.id).or_default() += 1;
        tokio::time::sleep(self.run_for).await;
        Ok(json!("ok"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_was_frozen_for_three_heartbeat_ttls_a_live_instances_job_is_not_reaped() {
    // Every heartbeat expires while Redis is frozen, live ones too. Another instance is running a
    // job and renews its heartbeat 200 ms after Redis is back, as a live one would. This pool's
    // reaper waits until Redis has been steady for a TTL, so it neither requeues that job (a second
    // run, and a false stall) nor runs it itself.
    let mut redis = TestRedis::start();
    let settings = QueueSettings {
        heartbeat_ttl_ms: 1000,
        ..quick_settings()
    };
    let queue = redis.queue_with(settings.clone());
    let id = queue.enqueue(&json!({})).await.unwrap();
    let other = ["other/0".to_owned()];
    queue.beat("other", &other).await.unwrap();
    let (mut conn, job) = claim(&queue, "other/0").await;

    let runs = Arc::new(Mutex::new(HashMap::new()));
    let handler = Counting {
        runs: runs.clone(),
        run_for: Duration::from_millis(10),
    };
    let pool = WorkerPool::new(queue.clone(), handler, workers(1));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    // The pool's reaper is past its own start-up wait, reaping as usual, and "other" is alive.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        queue.beat("other", &other).await.unwrap();
    }

    redis.server.pause();
    tokio::time::sleep(Duration::from_millis(3 * settings.heartbeat_ttl_ms)).await;
    redis.server.resume();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..4 {
        queue.beat("other", &other).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.stalls),
        (JobState::Active, 0),
        "the live instance's job was reaped"
    );
    assert_eq!(conn.ack(&job, &json!(1)).await.unwrap(), Settled::Done);
    stop_tx.send(()).unwrap();
    running.await.unwrap();
    assert!(
        runs.lock().unwrap().is_empty(),
        "the pool ran another's job"
    );
}

#[tokio::test]
async fn a_job_an_ack_claimed_whose_reply_was_lost_goes_back_without_a_stall() {
    // The ack ran and activated the next job, but its answer never came: the worker reconnects
    // and sweeps its own list. That job never ran and nobody died, so it is queued again with its
    // attempt given back and no stall counted.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let first = queue.enqueue(&json!({})).await.unwrap();
    let second = queue.enqueue(&json!({})).await.unwrap();
    let (mut conn, job) = claim(&queue, "w/0").await;
    assert_eq!(job.id, first);
    let (_, lost) = conn.ack_and_claim_next(&job, &json!(1)).await.unwrap();
    assert!(matches!(lost, Some(pixdrop::queue::Claim::Job(_))));
    let record = queue.job(&second).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Active, 1));

    let mut fresh = pixdrop::queue::WorkerConn::open(&queue, "w/0")
        .await
        .unwrap();
    assert_eq!(fresh.recover_stranded().await.unwrap(), 1);
    let record = queue.job(&second).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.attempts, record.stalls),
        (JobState::Queued, 0, 0)
    );
    assert_eq!(waiting(&redis, &queue).await, [second.to_string()]);
}
