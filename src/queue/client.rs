//! `Queue`: the handle every part of pixdrop uses to put jobs in, read them, cancel or resubmit them.
//! It holds the shared connection pool; workers get their own connections from it (see
//! `worker_conn.rs`), and the upkeep runs on it (`maintenance.rs`, `reaper.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_redis::{Pool, Runtime};
use redis::AsyncCommands;
use serde_json::Value;

use super::backoff::Backoff;
use super::clock::{Clock, SystemClock};
use super::content::Pin;
use super::job::{JobId, JobRecord, JobState, Priority};
use super::keys::{KeyPrefix, Keys};
use super::scripts::Scripts;
use super::settings::QueueSettings;
use super::subject::Subject;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no redis connection available: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("unexpected answer from redis: {0}")]
    Protocol(String),
}

impl QueueError {
    /// True when the call may or may not have taken effect: it was sent, and no answer came back
    /// (the connection dropped, or the answer was too slow). Every other error means it did not.
    pub fn is_unknown_outcome(&self) -> bool {
        match self {
            Self::Redis(e) => {
                !e.is_connection_refusal()
                    && (e.is_io_error() || e.is_timeout() || e.is_connection_dropped())
            }
            // An answer came, just not one we understand: the call ran, with what effect is unclear.
            Self::Protocol(_) => true,
            Self::Pool(_) => false,
        }
    }
}

pub type QueueResult<T> = Result<T, QueueError>;

/// A cheap-to-clone handle on the queue.
#[derive(Clone)]
pub struct Queue {
    pub(super) inner: Arc<Inner>,
}

/// The queue's internals, shared by its modules and by no one else.
pub(super) struct Inner {
    pub client: redis::Client,
    pub pool: Pool,
    /// One multiplexed, self-reconnecting connection shared by every worker of this process for
    /// its non-blocking calls (activate, ack, fail, progress). Concurrent calls travel together,
    /// so Redis reads and answers many per syscall. Opened on first use.
    pub workers_conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    pub keys: Keys,
    pub scripts: Scripts,
    pub settings: QueueSettings,
    pub backoff: Backoff,
    pub clock: Arc<dyn Clock>,
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Cancelled; it was in this state before.
    Cancelled {
        was: JobState,
    },
    /// Already finished: nothing changed.
    Finished(JobState),
    NotFound,
}

/// What `resubmit` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResubmitOutcome {
    Queued,
    /// Only failed or cancelled jobs can be resubmitted; it is in this state.
    NotResubmittable(JobState),
    NotFound,
}

/// One job to create (see [`Queue::enqueue_as`]).
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Chosen by the caller, so it can tell afterwards whether an enqueue took effect.
    pub id: JobId,
    pub payload: Value,
    /// The content the job reads (an opaque name, such as a hash), counted as one of its
    /// references for as long as the job's record lives (see `content.rs`).
    pub content: Option<String>,
    /// The hex SHA-256 of a token whose holder may delete the job (see [`Queue::delete`]).
    pub delete_digest: Option<String>,
    pub priority: Priority,
}

impl NewJob {
    /// A job with a fresh id that holds on to nothing.
    pub fn new(payload: Value) -> Self {
        Self {
            id: JobId::new(),
            payload,
            content: None,
            delete_digest: None,
            priority: Priority::Normal,
        }
    }
}

/// An enqueue refused: the job at `index` names a blocked content. Nothing was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("job {index} of the batch names a blocked content")]
pub struct BlockedContent {
    pub index: usize,
}

/// How many jobs wait where: for health checks, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depths {
    pub waiting: u64,
    pub retrying: u64,
}

impl Queue {
    /// A queue on the Redis at `url`, its keys under `prefix`, with `pool_size` (at least 1)
    /// shared connections. Connects lazily; call `check_server` at start-up.
    pub fn connect(
        url: &str,
        prefix: &KeyPrefix,
        pool_size: usize,
        settings: &QueueSettings,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let mut pool_config = deadpool_redis::Config::from_url(url);
        pool_config.pool = Some(deadpool_redis::PoolConfig::new(pool_size));
        let pool = pool_config.create_pool(Some(Runtime::Tokio1))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                pool,
                workers_conn: tokio::sync::OnceCell::new(),
                keys: Keys::new(prefix),
                scripts: Scripts::load(),
                settings: settings.clone(),
                backoff: Backoff::from_settings(settings),
                clock: Arc::new(SystemClock),
            }),
        })
    }

    /// The same queue, reading time from `clock` (tests move it by hand).
    pub fn with_clock(self, clock: impl Clock) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                client: inner.client.clone(),
                pool: inner.pool.clone(),
                workers_conn: tokio::sync::OnceCell::new(),
                keys: inner.keys.clone(),
                scripts: Scripts::load(),
                settings: inner.settings.clone(),
                backoff: inner.backoff,
                clock: Arc::new(clock),
            }),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.inner.settings
    }

    /// The shared connection pool, for the other users of the same Redis (websocket tickets,
    /// quotas).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn redis_client(&self) -> &redis::Client {
        &self.inner.client
    }

    pub(super) fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The workers' shared connection (see `Inner::workers_conn`).
    pub(super) async fn workers_conn(&self) -> QueueResult<redis::aio::ConnectionManager> {
        let conn = self
            .inner
            .workers_conn
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
                    .set_response_timeout(Some(std::time::Duration::from_secs(10)))
                    .set_max_delay(std::time::Duration::from_secs(5));
                redis::aio::ConnectionManager::new_with_config(self.inner.client.clone(), config)
                    .await
            })
            .await?;
        Ok(conn.clone())
    }

    pub(super) async fn conn(&self) -> QueueResult<deadpool_redis::Connection> {
        Ok(self.inner.pool.get().await?)
    }

    /// True when Redis answers.
    pub async fn ping(&self) -> QueueResult<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Creates an anonymous job and queues it, in one atomic step that also publishes its `queued`
    /// event.
    pub async fn enqueue(&self, payload: &Value) -> QueueResult<JobId> {
        let ids = self.enqueue_batch(std::slice::from_ref(payload)).await?;
        Ok(ids[0])
    }

    /// Creates one anonymous job per payload and queues them all in one atomic step: all or none.
    pub async fn enqueue_batch(&self, payloads: &[Value]) -> QueueResult<Vec<JobId>> {
        let jobs: Vec<NewJob> = payloads.iter().cloned().map(NewJob::new).collect();
        self.enqueue_as(&jobs, &Subject::anonymous(), None)
            .await?
            .map_err(|blocked| QueueError::Protocol(format!("{blocked} with no content named")))?;
        Ok(jobs.iter().map(|job| job.id).collect())
    }

    /// Creates the jobs, owned by `subject`, with ids the caller chose, so that after an error
    /// whose outcome is unknown (see [`QueueError::is_unknown_outcome`]) it can ask whether they
    /// exist, or send the same batch again: ids that exist already are left as they are. Each
    /// job's content takes over its reference from `pin`, the upload's hold on it. A content
    /// that is blocked refuses the whole batch.
    pub async fn enqueue_as(
        &self,
        jobs: &[NewJob],
        subject: &Subject,
        pin: Option<&Pin>,
    ) -> QueueResult<Result<(), BlockedContent>> {
        let keys = &self.inner.keys;
        let mut invocation = self.inner.scripts.enqueue.prepare_invoke();
        invocation
            .key(keys.waiting())
            .key(keys.uploads_of(subject))
            .key(keys.blocked())
            .arg(self.inner.settings.max_attempts)
            .arg(self.now())
            .arg(keys.events())
            .arg(subject.field())
            .arg(keys.tag())
            .arg(pin.map_or("", |pin| pin.name.as_str()));
        for job in jobs {
            invocation
                .key(keys.job(&job.id))
                .arg(job.id.to_string())
                .arg(job.payload.to_string())
                .arg(job.content.as_deref().unwrap_or(""))
                .arg(job.delete_digest.as_deref().unwrap_or(""))
                .arg(job.priority.as_arg());
        }
        let mut conn = self.conn().await?;
        let created: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(match created {
            n if n < 0 => Err(BlockedContent {
                index: (-n - 1) as usize,
            }),
            _ => Ok(()),
        })
    }

    /// Which of `ids` have a record, in one round trip.
    pub async fn exist(&self, ids: &[JobId]) -> QueueResult<Vec<bool>> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.exists(self.inner.keys.job(id));
        }
        let mut conn = self.conn().await?;
        Ok(pipe.query_async(&mut *conn).await?)
    }

    /// The job's record, or `None` for an unknown (or expired) id.
    pub async fn job(&self, id: &JobId) -> QueueResult<Option<JobRecord>> {
        let mut conn = self.conn().await?;
        let hash: HashMap<String, String> = conn.hgetall(self.inner.keys.job(id)).await?;
        Ok(JobRecord::from_hash(*id, hash))
    }

    /// The records of many jobs in one round trip, in the order asked; `None` where unknown.
    pub async fn jobs(&self, ids: &[JobId]) -> QueueResult<Vec<Option<JobRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.inner.keys.job(id));
        }
        let mut conn = self.conn().await?;
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut *conn).await?;
        Ok(ids
            .iter()
            .zip(hashes)
            .map(|(id, hash)| JobRecord::from_hash(*id, hash))
            .collect())
    }

    /// Cancels a queued, retrying or active job of `subject` (an active job's worker is fenced
    /// off). Another subject's job is `NotFound`, as an unknown one is.
    pub async fn cancel(&self, id: &JobId, subject: &Subject) -> QueueResult<CancelOutcome> {
        let keys = &self.inner.keys;
        let mut conn = self.conn().await?;
        let (done, found): (i64, String) = self
            .inner
            .scripts
            .cancel
            .key(keys.job(id))
            .key(keys.waiting())
            .key(keys.retrying())
            .key(keys.finished())
            .arg(id.to_string())
            .arg(self.now())
            .arg(keys.events())
            .arg(subject.field())
            .invoke_async(&mut conn)
            .await?;
        Ok(match (done, found_state(&found)?) {
            (_, None) => CancelOutcome::NotFound,
            (1, Some(was)) => CancelOutcome::Cancelled { was },
            (_, Some(now)) => CancelOutcome::Finished(now),
        })
    }

    /// Puts a failed or cancelled job of `subject` back in the queue with fresh attempts. Another
    /// subject's job is `NotFound`, as an unknown one is.
    pub async fn resubmit(&self, id: &JobId, subject: &Subject) -> QueueResult<ResubmitOutcome> {
        self.resubmit_as(id, subject, false).await
    }

    /// Resubmits the job whoever owns it: an administrator's retry.
    pub async fn resubmit_any(&self, id: &JobId) -> QueueResult<ResubmitOutcome> {
        self.resubmit_as(id, &Subject::anonymous(), true).await
    }

    async fn resubmit_as(
        &self,
        id: &JobId,
        subject: &Subject,
        administrator: bool,
    ) -> QueueResult<ResubmitOutcome> {
        let keys = &self.inner.keys;
        let mut conn = self.conn().await?;
        let answer: Vec<String> = self
            .inner
            .scripts
            .resubmit
            .key(keys.job(id))
            .key(keys.waiting())
            .key(keys.finished())
            .arg(id.to_string())
            .arg(self.now())
            .arg(keys.events())
            .arg(subject.field())
            .arg(if administrator { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        Ok(match answer.as_slice() {
            [ok] if ok == "1" => ResubmitOutcome::Queued,
            [_, found] => match found_state(found)? {
                None => ResubmitOutcome::NotFound,
                Some(state) => ResubmitOutcome::NotResubmittable(state),
            },
            other => return Err(QueueError::Protocol(format!("resubmit answered {other:?}"))),
        })
    }

    pub async fn depths(&self) -> QueueResult<Depths> {
        let mut conn = self.conn().await?;
        let (waiting, retrying): (u64, u64) = redis::pipe()
            .llen(self.inner.keys.waiting())
            .zcard(self.inner.keys.retrying())
            .query_async(&mut conn)
            .await?;
        Ok(Depths { waiting, retrying })
    }
}

/// Reads a state a script reported, where `missing` means the job has no record (unknown, or
/// expired): `None`.
pub(super) fn found_state(found: &str) -> QueueResult<Option<JobState>> {
    match found {
        "missing" => Ok(None),
        state => state.parse().map(Some).map_err(QueueError::Protocol),
    }
}
