//! Failures: transient errors retry after a backoff measured on a hand-moved clock, permanent ones
//! and exhausted ones fail for good, a timeout is transient, and a failed job can be resubmitted.

use std::time::Duration;

use pixdrop::queue::{
    Claimed, Handler, JobError, JobState, ManualClock, Progress, ResubmitOutcome, Settled,
    WorkerPool,
};
use pixdrop::queue::{QueueSettings, Subject};
use serde_json::{Value, json};

use crate::support::{TestRedis, eventually, quick_settings, workers};
use crate::transitions::claim;

/// Exact delays (no jitter) so the clock can be moved to the millisecond.
fn exact_backoff() -> QueueSettings {
    QueueSettings {
        backoff_base_ms: 1_000,
        backoff_factor: 2.0,
        backoff_max_ms: 3_000,
        backoff_jitter: 0.0,
        max_attempts: 4,
        ..quick_settings()
    }
}

#[tokio::test]
async fn a_transient_failure_waits_out_its_backoff_before_it_is_queued_again() {
    // Retry n is due base * factor^(n-1) (capped) after the failure, and not a millisecond sooner.
    let redis = TestRedis::start();
    let clock = ManualClock::new(1_700_000_000_000);
    let queue = redis.queue_with(exact_backoff()).with_clock(clock.clone());
    let id = queue.enqueue(&json!({})).await.unwrap();

    for expected_delay in [1_000, 2_000, 3_000] {
        let (mut conn, job) = claim(&queue, "i/0").await;
        let failed_at = pixdrop::queue::Clock::now_ms(&clock);
        conn.fail(&job, &JobError::transient("io-error", "disk hiccup"))
            .await
            .unwrap();
        let record = queue.job(&id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Retrying);
        assert_eq!(record.due_at, Some(failed_at + expected_delay));
        assert_eq!(record.error.as_ref().unwrap().code, "io-error");

        clock.advance_ms(expected_delay - 1);
        assert_eq!(queue.promote_due().await.unwrap(), 0, "not due yet");
        assert_eq!(
            queue.job(&id).await.unwrap().unwrap().state,
            JobState::Retrying
        );
        clock.advance_ms(1);
        assert_eq!(queue.promote_due().await.unwrap(), 1, "due now");
        assert_eq!(
            queue.job(&id).await.unwrap().unwrap().state,
            JobState::Queued
        );
    }
}

#[tokio::test]
async fn a_job_out_of_attempts_fails_for_good_with_its_last_reason() {
    // max_attempts runs, then `failed` with the error and no further retry.
    let redis = TestRedis::start();
    let clock = ManualClock::new(1_000);
    let queue = redis.queue_with(exact_backoff()).with_clock(clock.clone());
    let id = queue.enqueue(&json!({})).await.unwrap();
    for attempt in 1..=4 {
        let (mut conn, job) = claim(&queue, "i/0").await;
        assert_eq!(job.attempt, attempt);
        let error = JobError::transient("io-error", format!("failure {attempt}"));
        assert_eq!(conn.fail(&job, &error).await.unwrap(), Settled::Done);
        clock.advance_ms(10_000);
        queue.promote_due().await.unwrap();
    }
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.attempts, 4);
    let error = record.error.unwrap();
    assert_eq!(error.code, "io-error");
    assert_eq!(error.detail, "failure 4 (gave up after 4 attempts)");
    let depths = queue.depths().await.unwrap();
    assert_eq!((depths.waiting, depths.retrying), (0, 0));
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_without_a_retry() {
    // A corrupt image will never decode: one attempt, then failed with the reason.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    let (mut conn, job) = claim(&queue, "i/0").await;
    let error = JobError::permanent("corrupt-image", "the JPEG data ends early");
    conn.fail(&job, &error).await.unwrap();
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Failed, 1));
    assert_eq!(record.error.unwrap().detail, "the JPEG data ends early");
    assert_eq!(queue.depths().await.unwrap().retrying, 0);
}

#[tokio::test]
async fn a_failed_job_can_be_resubmitted_with_fresh_attempts() {
    // POST /jobs/{id}/retry's primitive: failed -> queued, attempts and error reset, no expiry.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({"n": 1})).await.unwrap();
    let (mut conn, job) = claim(&queue, "i/0").await;
    conn.fail(&job, &JobError::permanent("corrupt-image", "bad"))
        .await
        .unwrap();
    assert_eq!(
        queue.resubmit(&id, &Subject::anonymous()).await.unwrap(),
        ResubmitOutcome::Queued
    );
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.attempts, record.error),
        (JobState::Queued, 0, None)
    );
    let (_conn, again) = claim(&queue, "i/0").await;
    assert_eq!(
        (again.id, again.attempt, again.payload.clone()),
        (id, 1, json!({"n": 1}))
    );
    assert_eq!(
        queue.resubmit(&id, &Subject::anonymous()).await.unwrap(),
        ResubmitOutcome::NotResubmittable(JobState::Active)
    );
}

#[tokio::test]
async fn several_schedulers_running_at_once_promote_each_job_once() {
    // Every instance runs the scheduler; the atomic ZREM means no job is pushed twice.
    let redis = TestRedis::start();
    let clock = ManualClock::new(1_000);
    let queue = redis.queue_with(exact_backoff()).with_clock(clock.clone());
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(queue.enqueue(&json!({})).await.unwrap());
    }
    let mut conn = pixdrop::queue::WorkerConn::open(&queue, "i/0")
        .await
        .unwrap();
    for _ in 0..300 {
        let pixdrop::queue::Claim::Job(job) = conn.claim().await.unwrap() else {
            panic!()
        };
        conn.fail(&job, &JobError::transient("io", "x"))
            .await
            .unwrap();
    }
    clock.advance_ms(5_000);
    let promoters: Vec<_> = (0..6)
        .map(|_| {
            let q = queue.clone();
            tokio::spawn(async move { q.promote_due().await.unwrap() })
        })
        .collect();
    let mut total = 0;
    for p in promoters {
        total += p.await.unwrap();
    }
    assert_eq!(total, 300);
    let waiting: Vec<String> =
        redis::AsyncCommands::lrange(&mut redis.conn().await, queue.keys().waiting(), 0, -1)
            .await
            .unwrap();
    let unique: std::collections::HashSet<_> = waiting.iter().collect();
    assert_eq!((waiting.len(), unique.len()), (300, 300));
}

/// Sleeps far longer than the job timeout.
struct Sleeper;

impl Handler for Sleeper {
    async fn handle(&self, _job: &Claimed, _progress: &Progress) -> Result<Value, JobError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(json!("too late"))
    }
}

#[tokio::test]
async fn a_job_over_its_timeout_is_failed_as_transient_and_retried() {
    // The worker enforces the per-job timeout; the failure is retryable with code `timeout`.
    let redis = TestRedis::start();
    let queue = redis.queue_with(QueueSettings {
        backoff_base_ms: 60_000,
        backoff_max_ms: 60_000,
        ..quick_settings()
    });
    let id = queue.enqueue(&json!({})).await.unwrap();
    let mut settings = workers(1);
    settings.job_timeout_secs = 1;
    let pool = WorkerPool::new(queue.clone(), Sleeper, settings);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    eventually(Duration::from_secs(10), "the timeout", || async {
        queue.job(&id).await.unwrap().unwrap().state == JobState::Retrying
    })
    .await;
    let record = queue.job(&id).await.unwrap().unwrap();
    let error = record.error.unwrap();
    assert_eq!(error.code, "timeout");
    assert!(error.detail.contains("longer than 1 s"), "{}", error.detail);
    stop_tx.send(()).unwrap();
    running.await.unwrap();
}
