//! Each transition of a job, driven one step at a time through `WorkerConn`.

use pixdrop::queue::{
    CancelOutcome, Claim, Claimed, JobError, JobState, Queue, Settled, Subject, WorkerConn,
};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{TestRedis, subscribe};

/// Claims the next job as `worker`, failing the test if none comes.
pub async fn claim(queue: &Queue, worker: &str) -> (WorkerConn, Claimed) {
    let mut conn = WorkerConn::open(queue, worker).await.unwrap();
    match conn.claim().await.unwrap() {
        Claim::Job(job) => (conn, job),
        other => panic!("expected a job, got {other:?}"),
    }
}

#[tokio::test]
async fn enqueue_creates_a_queued_record_and_publishes_its_event() {
    // One atomic step writes the record, pushes the id and tells subscribers.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let mut events = subscribe(&queue).await;
    let id = queue.enqueue(&json!({"photo": "a.jpg"})).await.unwrap();

    let record = queue.job(&id).await.unwrap().expect("record exists");
    assert_eq!(record.state, JobState::Queued);
    assert_eq!((record.attempts, record.max_attempts), (0, 3));
    assert_eq!(record.payload, json!({"photo": "a.jpg"}));
    assert!(record.created_at > 0 && record.error.is_none());
    assert_eq!(queue.depths().await.unwrap().waiting, 1);

    let event = events.recv().await.unwrap();
    assert_eq!((event.id, event.state), (id, JobState::Queued));
}

#[tokio::test]
async fn a_claimed_job_is_active_and_its_ack_completes_it_and_schedules_expiry() {
    // claim -> active (attempt 1) -> ack -> completed with the result, out of every list, expiring.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    let mut events = subscribe(&queue).await;

    let (mut conn, job) = claim(&queue, "i1/0").await;
    assert_eq!((job.id, job.attempt, job.max_attempts), (id, 1, 3));
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Active);
    assert!(record.started_at.is_some());

    assert!(conn.progress(&job, 40, "decoded").await.unwrap());
    assert_eq!(
        conn.ack(&job, &json!({"variants": 2})).await.unwrap(),
        Settled::Done
    );

    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Completed);
    assert_eq!(record.result, Some(json!({"variants": 2})));
    assert_eq!(record.progress, 100);
    let mut redis_conn = redis.conn().await;
    let ttl: i64 = redis_conn.pttl(queue.keys().job(&id)).await.unwrap();
    assert_eq!(
        ttl, -1,
        "no TTL: the record goes with its references, not silently"
    );
    let finished: Option<f64> = redis_conn
        .zscore(
            queue.keys().finished_in(JobState::Completed),
            id.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        finished.expect("indexed as completed, for its removal") as u64,
        record.updated_at
    );
    // Its retention (a day) is counted from there: not yet due a moment before, due at its end.
    let finished_at = record.updated_at;
    let clocked = |at: u64| {
        let clock = pixdrop::queue::ManualClock::new(at);
        redis.queue().with_clock(clock)
    };
    assert!(
        clocked(finished_at + 86_399_999)
            .expire_due()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(queue.job(&id).await.unwrap().is_some());
    let expired = clocked(finished_at + 86_400_000)
        .expire_due()
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert!(queue.job(&id).await.unwrap().is_none());
    let processing: i64 = redis_conn
        .llen(queue.keys().processing("i1/0"))
        .await
        .unwrap();
    assert_eq!(processing, 0);

    let states: Vec<(JobState, u8)> = [
        events.recv().await.unwrap(),
        events.recv().await.unwrap(),
        events.recv().await.unwrap(),
    ]
    .iter()
    .map(|e| (e.state, e.progress))
    .collect();
    assert_eq!(
        states,
        [
            (JobState::Active, 0),
            (JobState::Active, 40),
            (JobState::Completed, 100)
        ]
    );
}

#[tokio::test]
async fn a_repeated_ack_whose_first_reply_was_lost_is_accepted_once() {
    // Retrying an ack after a network error must neither fail nor complete the job twice.
    let redis = TestRedis::start();
    let queue = redis.queue();
    queue.enqueue(&json!({})).await.unwrap();
    let (mut conn, job) = claim(&queue, "i1/0").await;
    assert_eq!(conn.ack(&job, &json!(1)).await.unwrap(), Settled::Done);
    assert_eq!(conn.ack(&job, &json!(1)).await.unwrap(), Settled::Done);
}

#[tokio::test]
async fn ack_after_the_job_was_reaped_changes_nothing_and_reports_the_lost_lease() {
    // A worker cut off long enough to be declared dead must not overwrite the new owner's work.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    // "dead/0" never sends a heartbeat, so the reaper takes its job back.
    let (mut stale, stale_job) = claim(&queue, "dead/0").await;
    queue.beat("dead", &["dead/0".to_string()]).await.unwrap();
    redis
        .conn()
        .await
        .del::<_, ()>(queue.keys().heartbeat("dead"))
        .await
        .unwrap();
    assert_eq!(queue.reap_dead().await.unwrap(), 1);
    assert_eq!(
        queue.job(&id).await.unwrap().unwrap().state,
        JobState::Queued
    );

    let (mut fresh, fresh_job) = claim(&queue, "alive/0").await;
    assert_eq!(
        fresh_job.attempt, 2,
        "the stalled run counted as an attempt"
    );

    let lost = stale.ack(&stale_job, &json!("stale")).await.unwrap();
    assert_eq!(
        lost,
        Settled::LeaseLost {
            state: Some(JobState::Active)
        }
    );
    assert!(!stale.progress(&stale_job, 90, "late").await.unwrap());
    let failed = stale
        .fail(&stale_job, &JobError::permanent("x", "y"))
        .await
        .unwrap();
    assert!(matches!(failed, Settled::LeaseLost { .. }));
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.progress, record.stalls),
        (JobState::Active, 0, 1)
    );

    assert_eq!(
        fresh.ack(&fresh_job, &json!("fresh")).await.unwrap(),
        Settled::Done
    );
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(record.result, Some(json!("fresh")));
}

#[tokio::test]
async fn the_reaper_leaves_the_jobs_of_live_instances_alone() {
    // A heartbeat present means the instance is alive, however long its job runs.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    queue.beat("busy", &["busy/0".to_string()]).await.unwrap();
    let (_conn, _job) = claim(&queue, "busy/0").await;
    assert_eq!(queue.reap_dead().await.unwrap(), 0);
    assert_eq!(
        queue.job(&id).await.unwrap().unwrap().state,
        JobState::Active
    );
}

#[tokio::test]
async fn cancel_of_a_queued_job_takes_it_out_of_the_waiting_list() {
    // A cancelled job must never be claimed.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    assert_eq!(
        queue.cancel(&id, &Subject::anonymous()).await.unwrap(),
        CancelOutcome::Cancelled {
            was: JobState::Queued
        }
    );
    assert_eq!(queue.depths().await.unwrap().waiting, 0);
    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    assert!(matches!(conn.claim().await.unwrap(), Claim::Empty));
    assert_eq!(
        queue.job(&id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
}

#[tokio::test]
async fn cancel_of_an_active_job_fences_off_its_worker() {
    // The worker's later ack is refused and the job stays cancelled, out of the worker's list.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    let (mut conn, job) = claim(&queue, "i/0").await;
    assert_eq!(
        queue.cancel(&id, &Subject::anonymous()).await.unwrap(),
        CancelOutcome::Cancelled {
            was: JobState::Active
        }
    );
    assert!(
        !conn.progress(&job, 50, "x").await.unwrap(),
        "progress tells the handler to stop"
    );
    assert_eq!(
        conn.ack(&job, &json!(1)).await.unwrap(),
        Settled::LeaseLost {
            state: Some(JobState::Cancelled)
        }
    );
    let record = queue.job(&id).await.unwrap().unwrap();
    assert_eq!((record.state, record.result), (JobState::Cancelled, None));
    let processing: i64 = redis
        .conn()
        .await
        .llen(queue.keys().processing("i/0"))
        .await
        .unwrap();
    assert_eq!(processing, 0);
}

#[tokio::test]
async fn cancel_of_a_finished_or_unknown_job_is_refused() {
    // Finished work stays finished; an unknown id is reported as such.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    let (mut conn, job) = claim(&queue, "i/0").await;
    conn.ack(&job, &json!(1)).await.unwrap();
    assert_eq!(
        queue.cancel(&id, &Subject::anonymous()).await.unwrap(),
        CancelOutcome::Finished(JobState::Completed)
    );
    let unknown = pixdrop::queue::JobId::new();
    assert_eq!(
        queue.cancel(&unknown, &Subject::anonymous()).await.unwrap(),
        CancelOutcome::NotFound
    );
}

#[tokio::test]
async fn a_cancelled_id_still_in_the_waiting_list_is_skipped_not_run() {
    // Belt and braces: whatever puts a non-queued id in front of a worker, activate refuses it.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let id = queue.enqueue(&json!({})).await.unwrap();
    queue.cancel(&id, &Subject::anonymous()).await.unwrap();
    let mut raw = redis.conn().await;
    raw.lpush::<_, _, ()>(queue.keys().waiting(), id.to_string())
        .await
        .unwrap();
    let mut conn = WorkerConn::open(&queue, "i/0").await.unwrap();
    match conn.claim().await.unwrap() {
        Claim::Skipped { state, .. } => assert_eq!(state, Some(JobState::Cancelled)),
        other => panic!("expected a skip, got {other:?}"),
    }
    let processing: i64 = raw.llen(queue.keys().processing("i/0")).await.unwrap();
    assert_eq!(processing, 0);
}

#[tokio::test]
async fn every_key_shares_one_hash_tag() {
    // Redis Cluster needs every key a script touches in one slot: all keys carry `{prefix}`.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let a = queue.enqueue(&json!({})).await.unwrap();
    queue.enqueue(&json!({})).await.unwrap();
    queue.beat("i", &["i/0".to_string()]).await.unwrap();
    let (mut conn, job) = claim(&queue, "i/0").await;
    conn.fail(&job, &JobError::transient("io", "disk hiccup"))
        .await
        .unwrap();
    let (_c2, _j2) = claim(&queue, "i/0").await;
    queue.cancel(&a, &Subject::anonymous()).await.unwrap();
    queue.reap_dead().await.unwrap();
    // Contents, pins, their removal and the garbage schedule too.
    let content = "c0ffee".to_string();
    let pin = queue
        .pin(
            std::slice::from_ref(&content),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    let owned = pixdrop::queue::NewJob {
        content: Some(content.clone()),
        ..pixdrop::queue::NewJob::new(json!({}))
    };
    let owner = Subject::parse("owner").unwrap();
    queue
        .enqueue_as(std::slice::from_ref(&owned), &owner, Some(&pin))
        .await
        .unwrap()
        .unwrap();
    queue
        .purge(&content, true, std::time::Duration::ZERO)
        .await
        .unwrap();
    queue
        .take_due("chore", std::time::Duration::from_secs(5), "here")
        .await
        .unwrap();
    let keys: Vec<String> = redis.conn().await.keys("*").await.unwrap();
    for expected in [queue.keys().blocked(), queue.keys().garbage()] {
        assert!(keys.iter().any(|k| k == expected), "{expected} in {keys:?}");
    }
    assert!(keys.len() >= 4, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("{pixdrop}:")), "{keys:?}");
}

/// The ids in `worker`'s processing list.
async fn processing_list(redis: &TestRedis, queue: &Queue, worker: &str) -> Vec<String> {
    redis
        .conn()
        .await
        .lrange(queue.keys().processing(worker), 0, -1)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_ack_can_claim_and_activate_the_next_waiting_job_in_the_same_step() {
    // A busy worker's ack moves the next id into its own list and activates it: the answer is the
    // job to run, with its lease, as a claim would give it.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let first = queue.enqueue(&json!({"n": 1})).await.unwrap();
    let second = queue.enqueue(&json!({"n": 2})).await.unwrap();
    let (mut conn, job) = claim(&queue, "i/0").await;
    assert_eq!(job.id, first);
    let (settled, next) = conn.ack_and_claim_next(&job, &json!(1)).await.unwrap();
    assert_eq!(settled, Settled::Done);
    let next = match next {
        Some(Claim::Job(next)) => next,
        other => panic!("expected the second job, got {other:?}"),
    };
    assert_eq!(
        (next.id, next.attempt, next.payload.clone()),
        (second, 1, json!({"n": 2}))
    );
    let processing = processing_list(&redis, &queue, "i/0").await;
    assert_eq!(
        processing,
        [second.to_string()],
        "claimed: in the worker's list, not waiting"
    );
    let record = queue.job(&second).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Active);
    assert_eq!(
        conn.ack(&next, &json!(2)).await.unwrap(),
        Settled::Done,
        "the lease the ack handed out fences the next job's own ack"
    );
    let (settled, next) = conn.ack_and_claim_next(&job, &json!(1)).await.unwrap();
    assert_eq!(
        (settled, next.is_none()),
        (Settled::Done, true),
        "a repeated ack; nothing left to claim"
    );
}

#[tokio::test]
async fn an_ack_drops_a_next_id_without_a_record_and_still_claims_after_a_lost_lease() {
    // The id the ack moves may name no runnable job (here: a record Redis lost): it is dropped from
    // the worker's list and reported as skipped. A lost lease still lets the worker claim.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let first = queue.enqueue(&json!({})).await.unwrap();
    let second = queue.enqueue(&json!({})).await.unwrap();
    let (mut conn, job) = claim(&queue, "i/0").await;
    assert_eq!(job.id, first);
    let lost = pixdrop::queue::JobId::new();
    let _: i64 = redis
        .conn()
        .await
        .rpush(queue.keys().waiting(), lost.to_string())
        .await
        .unwrap();
    let (settled, next) = conn.ack_and_claim_next(&job, &json!(1)).await.unwrap();
    assert_eq!(settled, Settled::Done);
    match next {
        Some(Claim::Skipped { id, state }) => assert_eq!((id, state), (lost.to_string(), None)),
        other => panic!("expected the lost id skipped, got {other:?}"),
    }
    let processing = processing_list(&redis, &queue, "i/0").await;
    assert!(processing.is_empty(), "{processing:?}");
    let anyone = Subject::anonymous();
    let (mut conn, job) = claim(&queue, "i/0").await;
    assert_eq!(job.id, second);
    queue.cancel(&second, &anyone).await.unwrap();
    let third = queue.enqueue(&json!({})).await.unwrap();
    let (settled, next) = conn.ack_and_claim_next(&job, &json!(1)).await.unwrap();
    assert_eq!(
        settled,
        Settled::LeaseLost {
            state: Some(JobState::Cancelled)
        }
    );
    match next {
        Some(Claim::Job(next)) => assert_eq!(next.id, third),
        other => panic!("expected the third job, got {other:?}"),
    }
}

#[tokio::test]
async fn deleting_an_active_job_fences_off_its_worker_and_sweeps_its_outputs_later() {
    // The job goes at once; its worker's ack is refused (no record), its processing list is
    // emptied, and its outputs are swept once now-ish and again after the delay, when the worker
    // can have written no more.
    let redis = TestRedis::start();
    let queue = redis.queue();
    let owner = Subject::parse("owner").unwrap();
    let job = pixdrop::queue::NewJob::new(json!({}));
    queue
        .enqueue_as(std::slice::from_ref(&job), &owner, None)
        .await
        .unwrap()
        .unwrap();
    let (mut conn, claimed) = claim(&queue, "i/0").await;
    let stranger = Subject::parse("stranger").unwrap();
    let refused = pixdrop::queue::DeleteProof {
        subject: &stranger,
        token_digest: Some("00"),
    };
    let delay = std::time::Duration::from_secs(60);
    assert_eq!(queue.delete(&job.id, refused, delay).await.unwrap(), None);

    let proof = pixdrop::queue::DeleteProof {
        subject: &owner,
        token_digest: None,
    };
    let removed = queue.delete(&job.id, proof, delay).await.unwrap().unwrap();
    assert_eq!(removed.state, JobState::Active);
    assert!(queue.job(&job.id).await.unwrap().is_none());
    assert_eq!(
        conn.ack(&claimed, &json!(1)).await.unwrap(),
        Settled::LeaseLost { state: None }
    );
    let mut redis_conn = redis.conn().await;
    let processing: i64 = redis_conn
        .llen(queue.keys().processing("i/0"))
        .await
        .unwrap();
    assert_eq!(processing, 0);
    let due: f64 = redis_conn
        .zscore(queue.keys().garbage(), format!("outputs:{}", job.id))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert!(due > now + 50_000.0, "outputs swept again after the delay");
    assert_eq!(
        queue.delete(&job.id, proof, delay).await.unwrap(),
        None,
        "once"
    );
}
