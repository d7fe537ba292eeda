//! The windows in which an accepted job could be lost or run twice, each closed: a lost
//! activation, a worker claiming before its instance is registered, a Redis outage longer than
//! the heartbeat TTL, and a batch enqueue cut short.

use pixdrop::queue::{JobError, JobState, Queue, Settled};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::TestRedis;
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
