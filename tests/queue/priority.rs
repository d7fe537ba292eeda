//! Priorities: a high-priority job is claimed before a backlog of bulk ones, high-priority jobs run
//! in the order they came, a stream of them cannot starve the bulk line, and every path in and
//! out of line (cancel, delete, hand back, a lost activation, a pause) keeps one marker per job.

use std::time::Duration;

use pixdrop::queue::{
    CancelOutcome, Claim, JobId, NewJob, Priority, Queue, QueueSettings, Settled, Subject,
    WorkerConn,
};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{TestRedis, quick_settings};

/// Enqueues one anonymous job per `n`, each with payload `{"n": n}`, in `priority`'s line.
async fn enqueue(queue: &Queue, priority: Priority, ns: std::ops::Range<u32>) -> Vec<JobId> {
    let jobs: Vec<NewJob> = ns
        .map(|n| NewJob {
            priority,
            ..NewJob::new(json!({ "n": n, "priority": priority.as_str() }))
        })
        .collect();
    queue
        .enqueue_as(&jobs, &Subject::anonymous(), None)
        .await
        .unwrap()
        .unwrap();
    jobs.iter().map(|job| job.id).collect()
}

/// Claims one job and acks it at once, returning its id.
async fn run_next(conn: &mut WorkerConn) -> JobId {
    match conn.claim().await.unwrap() {
        Claim::Job(job) => {
            assert_eq!(conn.ack(&job, &json!({})).await.unwrap(), Settled::Done);
            job.id
        }
        other => panic!("expected a job, got {other:?}"),
    }
}

/// Runs the next `n` jobs one after another, returning their ids in the order they ran.
async fn run_several(conn: &mut WorkerConn, n: usize) -> Vec<JobId> {
    let mut order = Vec::with_capacity(n);
    for _ in 0..n {
        order.push(run_next(conn).await);
    }
    order
}

fn with_burst(burst: u32) -> QueueSettings {
    QueueSettings {
        priority_burst: burst,
        ..quick_settings()
    }
}

#[tokio::test]
async fn a_high_priority_job_overtakes_a_backlog_and_high_jobs_keep_their_order() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let bulk = enqueue(&queue, Priority::Normal, 0..20).await;
    let high = enqueue(&queue, Priority::High, 0..3).await;
    let record = queue.job(&high[0]).await.unwrap().unwrap();
    assert_eq!(record.priority, Priority::High);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.waiting_high), (23, 3), "{counts:?}");

    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    let order = run_several(&mut conn, 23).await;
    let expected: Vec<JobId> = high.iter().chain(&bulk).copied().collect();
    assert_eq!(
        order, expected,
        "high first in their order, then bulk in theirs"
    );
    assert!(matches!(conn.claim().await.unwrap(), Claim::Empty));
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.waiting_high), (0, 0), "{counts:?}");
}

#[tokio::test]
async fn a_stream_of_high_priority_jobs_lets_one_bulk_job_through_per_burst() {
    let redis = TestRedis::start();
    let queue = redis.queue_with(with_burst(3));
    let bulk = enqueue(&queue, Priority::Normal, 0..3).await;
    let high = enqueue(&queue, Priority::High, 0..9).await;

    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    let order = run_several(&mut conn, 12).await;
    let (h, b) = (&high, &bulk);
    let expected = vec![
        h[0], h[1], h[2], b[0], h[3], h[4], h[5], b[1], h[6], h[7], h[8], b[2],
    ];
    assert_eq!(order, expected);
}

#[tokio::test]
async fn the_next_job_an_ack_claims_follows_the_same_priorities() {
    let redis = TestRedis::start();
    let queue = redis.queue_with(with_burst(2));
    let bulk = enqueue(&queue, Priority::Normal, 0..2).await;
    let high = enqueue(&queue, Priority::High, 0..3).await;

    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    let Claim::Job(mut job) = conn.claim().await.unwrap() else {
        panic!("expected a job");
    };
    let mut order = vec![job.id];
    loop {
        match conn.ack_and_claim_next(&job, &json!({})).await.unwrap() {
            (Settled::Done, Some(Claim::Job(next))) => {
                order.push(next.id);
                job = next;
            }
            (Settled::Done, None) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(order, vec![high[0], high[1], bulk[0], high[2], bulk[1]]);
}

#[tokio::test]
async fn cancelled_and_deleted_high_priority_jobs_take_their_markers_with_them() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let bulk = enqueue(&queue, Priority::Normal, 0..2).await;
    let high = enqueue(&queue, Priority::High, 0..3).await;
    assert_eq!(
        queue.cancel(&high[0], &Subject::anonymous()).await.unwrap(),
        CancelOutcome::Cancelled {
            was: pixdrop::queue::JobState::Queued
        }
    );
    assert!(
        queue
            .delete_any(&high[1], Duration::ZERO)
            .await
            .unwrap()
            .is_some()
    );
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.waiting_high), (3, 1), "{counts:?}");
    let waiting: Vec<String> = redis
        .conn()
        .await
        .lrange(queue.keys().waiting(), 0, -1)
        .await
        .unwrap();
    assert_eq!(waiting.iter().filter(|id| *id == "high").count(), 1);

    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    let order = run_several(&mut conn, 3).await;
    assert_eq!(order, [high[2], bulk[0], bulk[1]]);
    assert!(matches!(conn.claim().await.unwrap(), Claim::Empty));
}

#[tokio::test]
async fn a_handed_back_high_priority_job_runs_next_in_its_line() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let first = enqueue(&queue, Priority::High, 0..1).await[0];
    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    let Claim::Job(job) = conn.claim().await.unwrap() else {
        panic!("expected a job");
    };
    assert_eq!(job.id, first);
    let later = enqueue(&queue, Priority::High, 1..2).await[0];
    let bulk = enqueue(&queue, Priority::Normal, 0..1).await[0];
    assert_eq!(conn.hand_back(&job).await.unwrap(), Settled::Done);
    assert_eq!(queue.counts().await.unwrap().waiting_high, 2);

    let order = run_several(&mut conn, 3).await;
    assert_eq!(order, [first, later, bulk]);
}

#[tokio::test]
async fn a_marker_claimed_but_never_resolved_goes_back_for_its_job() {
    // The worker's BLMOVE took the marker, then its activation was lost: recovering the worker's
    // list puts the marker back, and the high-priority job still runs first.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let bulk = enqueue(&queue, Priority::Normal, 0..1).await[0];
    let high = enqueue(&queue, Priority::High, 0..1).await[0];
    let keys = queue.keys();
    let moved: Option<String> = redis
        .conn()
        .await
        .lmove(
            keys.waiting(),
            keys.processing("i/0"),
            redis::Direction::Right,
            redis::Direction::Left,
        )
        .await
        .unwrap();
    assert_eq!(moved.as_deref(), Some("high"));

    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    assert_eq!(conn.recover_stranded().await.unwrap(), 1);
    assert_eq!(run_next(&mut conn).await, high);
    assert_eq!(run_next(&mut conn).await, bulk);
}

#[tokio::test]
async fn a_pause_sends_a_claimed_marker_back_unresolved() {
    let redis = TestRedis::start();
    let queue = redis.queue();
    let bulk = enqueue(&queue, Priority::Normal, 0..1).await[0];
    let high = enqueue(&queue, Priority::High, 0..1).await[0];
    queue.pause().await.unwrap();
    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    assert!(matches!(conn.claim().await.unwrap(), Claim::Paused));
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.waiting_high), (2, 1), "{counts:?}");

    queue.resume().await.unwrap();
    assert_eq!(run_next(&mut conn).await, high);
    assert_eq!(run_next(&mut conn).await, bulk);
}

#[tokio::test]
async fn behind_a_long_high_priority_backlog_the_bulk_line_still_gets_its_turn() {
    // More markers than the claim end's first read covers: the bulk job is found past them.
    let redis = TestRedis::start();
    let queue = redis.queue_with(with_burst(3));
    let bulk = enqueue(&queue, Priority::Normal, 0..2).await;
    let high = enqueue(&queue, Priority::High, 0..200).await;

    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    let order = run_several(&mut conn, 8).await;
    let (h, b) = (&high, &bulk);
    assert_eq!(order, vec![h[0], h[1], h[2], b[0], h[3], h[4], h[5], b[1]]);
    // With no bulk job left, the high-priority line runs on, in order.
    for expected in &high[6..20] {
        assert_eq!(run_next(&mut conn).await, *expected);
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!(
        (counts.waiting, counts.waiting_high),
        (180, 180),
        "{counts:?}"
    );
}
