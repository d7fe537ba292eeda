//! Jobs whose worker vanished come back: from dead instances (the reaper), from a live worker's own
//! list after a lost reply, and a poison pill that keeps killing workers is failed, not looped.

use pixdrop::queue::{JobState, Queue, WorkerConn};
use pixdrop::queue::{QueueSettings, Subject};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{TestRedis, quick_settings};
use crate::transitions::claim;

/// Declares `instance` dead: registered once, heartbeat gone.
async fn kill_instance(redis: &TestRedis, queue: &Queue, instance: &str) {
    queue
        .beat(instance, &[format!("{instance}/0")])
        .await
        .unwrap();
    let _: () = redis
        .conn()
        .await
        .del(queue.keys().heartbeat(instance))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_job_that_kills_its_worker_too_often_fails_as_a_poison_pill() {
    // max_stalls recoveries, then the next stall fails the job with code `stalled`.
    let redis = TestRedis::start();
    let queue = redis.queue_with(QueueSettings {
        max_stalls: 2,
        max_attempts: 10,
        ..quick_settings()
    });
    let id = queue.enqueue(&json!({})).await.unwrap();
    for round in 1..=3 {
        let instance = format!("victim{round}");
        let (_conn, _job) = claim(&queue, &format!("{instance}/0")).await;
        kill_instance(&redis, &queue, &instance).await;
        assert_eq!(queue.reap_dead().await.unwrap(), 1);
        let record = queue.job(&id).await.unwrap().unwrap();
        assert_eq!(record.stalls, round);
        let expected = if round <= 2 {
            JobState::Queued
        } else {
            JobState::Failed
        };
        assert_eq!(record.state, expected, "after stall {round}");
        // Let the reaper lock lapse so the next round can reap at once.
        redis.release_reaper_lock(&queue).await;
    }
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(record.error.unwrap().code, "stalled");
    assert_eq!(queue.depths().await.unwrap().waiting, 0);

    // A retry by hand keeps the crash count: one more stall fails it again at once, so a file
    // that crashes workers cannot be looped through them forever.
    queue.resubmit(&id, &Subject::anonymous()).await.unwrap();
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!((record.state, record.stalls), (JobState::Queued, 3));
    let (_conn, _job) = claim(&queue, "victim4/0").await;
    kill_instance(&redis, &queue, "victim4").await;
    assert_eq!(queue.reap_dead().await.unwrap(), 1);
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!((record.state, record.stalls), (JobState::Failed, 4));
}

#[tokio::test]
async fn a_job_claimed_by_a_worker_that_died_before_activating_it_is_recovered_without_a_stall() {
    // BLMOVE moved the id, then the process died before `activate`: back to waiting, nothing counted.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    let mut raw = redis.conn().await;
    let moved: Option<String> = raw
        .lmove(
            queue.keys().waiting(),
            queue.keys().processing("gone/0"),
            redis::Direction::Right,
            redis::Direction::Left,
        )
        .await
        .unwrap();
    assert_eq!(moved, Some(id.to_string()));
    kill_instance(&redis, &queue, "gone").await;
    assert_eq!(queue.reap_dead().await.unwrap(), 1);
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.stalls, record.attempts),
        (JobState::Queued, 0, 0)
    );
    let workers: Vec<String> = raw.smembers(queue.keys().workers()).await.unwrap();
    assert!(
        workers.is_empty(),
        "the dead worker is forgotten: {workers:?}"
    );
}

#[tokio::test]
async fn a_live_worker_returns_ids_stranded_in_its_own_list_when_it_reconnects() {
    // A BLMOVE whose reply was lost leaves an id only this worker's list holds; reconnecting sweeps it.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    queue.beat("live", &["live/0".to_string()]).await.unwrap();
    let mut raw = redis.conn().await;
    let _: Option<String> = raw
        .lmove(
            queue.keys().waiting(),
            queue.keys().processing("live/0"),
            redis::Direction::Right,
            redis::Direction::Left,
        )
        .await
        .unwrap();
    assert_eq!(
        queue.reap_dead().await.unwrap(),
        0,
        "the instance is alive: not the reaper's"
    );
    let mut conn = WorkerConn::open(&queue, "live/0").await.unwrap();
    assert_eq!(conn.recover_stranded().await.unwrap(), 1);
    assert_eq!(queue.depths().await.unwrap().waiting, 1);
    assert_eq!(
        queue.job(&id).await.unwrap().unwrap().state,
        JobState::Queued
    );
}

#[tokio::test]
async fn garbage_in_a_processing_list_is_dropped_without_harm() {
    // An id that is not a job id (a stray write) must not wedge recovery.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let mut raw = redis.conn().await;
    let _: () = raw
        .lpush(queue.keys().processing("live/0"), "not-a-job")
        .await
        .unwrap();
    let mut conn = WorkerConn::open(&queue, "live/0").await.unwrap();
    assert_eq!(conn.recover_stranded().await.unwrap(), 0);
    let left: i64 = raw.llen(queue.keys().processing("live/0")).await.unwrap();
    assert_eq!(left, 0);
}
