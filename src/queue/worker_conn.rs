//! `WorkerConn`: one worker's own Redis connection and the steps of a job's life it takes on it —
//! claim (BLMOVE into its processing list), activate, progress, ack, retry, fail, hand back, and
//! recovering ids in its own list it does not hold. The pool loops over these steps; tests drive
//! them one at a time to reach every transition.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use serde_json::Value;

use super::client::{Queue, QueueError, QueueResult, found_state};
use super::job::{ErrorKind, JobError, JobId, JobState};

/// What the waiting list holds for each high-priority job, in place of its id (see `line_up` in
/// `lua/prelude.lua`).
const HIGH_PRIORITY_MARKER: &str = "high";

/// A worker's connections: its own for BLMOVE (which blocks the connection it runs on), and the
/// process's shared one for the scripts.
pub struct WorkerConn {
    queue: Queue,
    conn: MultiplexedConnection,
    scripts: ConnectionManager,
    /// `{instance}/{slot}`: owner of the processing list and of the jobs it activates.
    name: String,
    processing: String,
}

/// A job this worker holds: what the handler needs, and the lease that fences every later call.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: JobId,
    /// This run's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    pub payload: Value,
    /// When the job last entered the queue (ms since the epoch, the queue's clock): how long it
    /// waited for a worker is measured from here.
    pub queued_at: u64,
    lease: String,
}

impl Claimed {
    /// The fencing token handed out at activation.
    pub(super) fn lease(&self) -> &str {
        &self.lease
    }
}

/// The answer to a claim.
#[derive(Debug)]
pub enum Claim {
    /// Nothing arrived within the block time.
    Empty,
    /// A job is ours to run.
    Job(Claimed),
    /// Processing is paused: the id went back to the front of the waiting list.
    Paused,
    /// The rate limit's starts for this window are used up: the id went back to the front of
    /// the waiting list; the window ends after `wait`.
    Limited { wait: std::time::Duration },
    /// An id arrived but its job is not runnable (cancelled meanwhile, or expired): it was dropped.
    /// `state` is the job's, or `None` when it has no record (or the id was malformed).
    Skipped { id: String, state: Option<JobState> },
}

/// The answer to ack, retry, fail and hand back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Done,
    /// The lease was lost (the job was cancelled, or reaped while this worker was cut off, and may
    /// be running elsewhere): the record was not changed. Carries the job's current state, or
    /// `None` when its record is gone.
    LeaseLost {
        state: Option<JobState>,
    },
}

impl WorkerConn {
    /// Opens the worker's connection. Its response timeout outlasts the BLMOVE block time, so a
    /// quiet queue is not mistaken for a dead server, while a dead server is still noticed.
    pub async fn open(queue: &Queue, name: &str) -> QueueResult<Self> {
        let block = queue.settings().claim_block();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(block + Duration::from_secs(10)));
        let conn = queue
            .redis_client()
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let scripts = queue.workers_conn().await?;
        Ok(Self {
            queue: queue.clone(),
            conn,
            scripts,
            name: name.to_owned(),
            processing: queue.keys().processing(name),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to the block time for a job, moves it into this worker's processing list
    /// (BLMOVE, so it is never in no list at all), then activates it.
    pub async fn claim(&mut self) -> QueueResult<Claim> {
        let block = self.queue.settings().claim_block_secs;
        let waiting = self.queue.keys().waiting().to_owned();
        let id: Option<String> = self
            .conn
            .blmove(
                &waiting,
                &self.processing,
                redis::Direction::Right,
                redis::Direction::Left,
                block,
            )
            .await?;
        match id {
            None => Ok(Claim::Empty),
            Some(raw) => self.activate(&raw).await,
        }
    }

    /// Marks a just-claimed id active, or resolves a claimed high-priority marker to its job and
    /// marks that one active (see `lua/activate.lua`).
    pub async fn activate(&mut self, raw_id: &str) -> QueueResult<Claim> {
        let keys = self.queue.keys();
        let job_key = match raw_id.parse::<JobId>() {
            Ok(id) => keys.job(&id),
            Err(_) if raw_id == HIGH_PRIORITY_MARKER => keys.void().to_owned(),
            Err(_) => {
                // Not a job of ours: let recovery drop it like any stranded id.
                self.queue
                    .recover(&mut self.conn, &self.name, raw_id, false)
                    .await?;
                return Ok(Claim::Skipped {
                    id: raw_id.to_owned(),
                    state: None,
                });
            }
        };
        let answer: Vec<String> = self
            .queue
            .inner
            .scripts
            .activate
            .key(job_key)
            .key(&self.processing)
            .arg(raw_id)
            .arg(&self.name)
            .arg(self.queue.now())
            .arg(keys.events())
            .arg(self.queue.settings().rate_limit_jobs)
            .arg(self.queue.settings().rate_limit_window_ms)
            .arg(self.queue.settings().priority_burst)
            .arg(keys.tag())
            .invoke_async(&mut self.scripts)
            .await?;
        activation(raw_id, &answer)
    }

    /// Records progress; `false` when the lease is lost (cancelled or reaped): stop working.
    pub async fn progress(&mut self, job: &Claimed, percent: u8, step: &str) -> QueueResult<bool> {
        self.progress_reporter(job).report(percent, step).await
    }

    pub(super) fn queue(&self) -> &Queue {
        &self.queue
    }

    pub(super) fn scripts_connection(&self) -> &ConnectionManager {
        &self.scripts
    }

    /// The job succeeded with `result`.
    pub async fn ack(&mut self, job: &Claimed, result: &Value) -> QueueResult<Settled> {
        Ok(self.ack_inner(job, result, false).await?.0)
    }

    /// Acks, and in the same atomic step moves the next waiting id (if any) into this worker's
    /// list and activates it: a busy worker so settles one job and starts the next in one round
    /// trip. The claim is `None` when nothing was waiting.
    pub async fn ack_and_claim_next(
        &mut self,
        job: &Claimed,
        result: &Value,
    ) -> QueueResult<(Settled, Option<Claim>)> {
        self.ack_inner(job, result, true).await
    }

    async fn ack_inner(
        &mut self,
        job: &Claimed,
        result: &Value,
        claim_next: bool,
    ) -> QueueResult<(Settled, Option<Claim>)> {
        let keys = self.queue.keys();
        let scripts = &self.queue.inner.scripts;
        let mut invocation = fenced(&scripts.ack, &self.queue, &self.processing, &self.name, job);
        invocation
            .key(keys.finished())
            .arg(result.to_string())
            .arg(keys.events())
            .arg(if claim_next { "1" } else { "0" })
            .arg(keys.tag())
            .arg(self.queue.settings().rate_limit_jobs)
            .arg(self.queue.settings().rate_limit_window_ms)
            .arg(self.queue.settings().priority_burst);
        let answer: Vec<String> = invocation.invoke_async(&mut self.scripts).await?;
        let protocol = || QueueError::Protocol(format!("ack answered {answer:?}"));
        let (settled, next) = match answer.as_slice() {
            [done, _, next @ ..] if done == "1" => (Settled::Done, next),
            [done, found, next @ ..] if done == "0" => (
                Settled::LeaseLost {
                    state: found_state(found)?,
                },
                next,
            ),
            _ => return Err(protocol()),
        };
        let next = match next {
            [] => None,
            [raw_id, activated @ ..] => Some(activation(raw_id, activated)?),
        };
        Ok((settled, next))
    }

    /// The attempt failed: retry after a backoff when the error is transient and attempts remain,
    /// otherwise fail the job for good.
    pub async fn fail(&mut self, job: &Claimed, error: &JobError) -> QueueResult<Settled> {
        let keys = self.queue.keys();
        let now = self.queue.now();
        let retryable = error.kind == ErrorKind::Transient;
        if retryable && job.attempt < job.max_attempts {
            let delay = self
                .queue
                .inner
                .backoff
                .delay_ms(job.attempt, &mut rand::rng());
            let scripts = &self.queue.inner.scripts;
            let mut invocation = fenced(
                &scripts.retry,
                &self.queue,
                &self.processing,
                &self.name,
                job,
            );
            invocation
                .key(keys.retrying())
                .arg(now + delay)
                .arg(&error.code)
                .arg(&error.detail)
                .arg(keys.events());
            return settled(invocation.invoke_async(&mut self.scripts).await?);
        }
        let detail = if retryable {
            format!("{} (gave up after {} attempts)", error.detail, job.attempt)
        } else {
            error.detail.clone()
        };
        let scripts = &self.queue.inner.scripts;
        let mut invocation = fenced(
            &scripts.fail,
            &self.queue,
            &self.processing,
            &self.name,
            job,
        );
        invocation
            .key(keys.finished())
            .arg(&error.code)
            .arg(detail)
            .arg(keys.events());
        settled(invocation.invoke_async(&mut self.scripts).await?)
    }

    /// Returns an unfinished job to the front of the waiting list (graceful shutdown).
    pub async fn hand_back(&mut self, job: &Claimed) -> QueueResult<Settled> {
        let keys = self.queue.keys();
        let scripts = &self.queue.inner.scripts;
        let mut invocation = fenced(
            &scripts.hand_back,
            &self.queue,
            &self.processing,
            &self.name,
            job,
        );
        invocation.arg(keys.events());
        settled(invocation.invoke_async(&mut self.scripts).await?)
    }

    /// Returns every id in this worker's processing list to the queue. Call it only while the
    /// worker holds no job: after (re)connecting, an id there is one whose BLMOVE or activate
    /// reply was lost, and nobody else would ever pick it up while this instance lives.
    pub async fn recover_stranded(&mut self) -> QueueResult<usize> {
        let ids: Vec<String> = self.conn.lrange(&self.processing, 0, -1).await?;
        let mut recovered = 0;
        for raw in &ids {
            let outcome = self
                .queue
                .recover(&mut self.conn, &self.name, raw, false)
                .await?;
            if outcome.moved_a_job() {
                tracing::warn!(job_id = %raw, worker = %self.name, %outcome, "recovered a stranded job");
                recovered += 1;
            }
        }
        Ok(recovered)
    }
}

/// The start every fenced transition's invocation shares: KEYS[1] the job hash, KEYS[2] this
/// worker's processing list, KEYS[3] the waiting list (see `release` in `lua/prelude.lua`);
/// ARGV[1..4] id, owner, lease, now. Callers append the rest.
fn fenced<'a>(
    script: &'a redis::Script,
    queue: &Queue,
    processing: &str,
    owner: &str,
    job: &Claimed,
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(queue.keys().job(&job.id))
        .key(processing)
        .key(queue.keys().waiting())
        .arg(job.id.to_string())
        .arg(owner)
        .arg(&job.lease)
        .arg(queue.now());
    invocation
}

/// Decodes an activation's answer (see `activate_job` in `lua/prelude.lua`) for `raw_id`, the id
/// or marker claimed; an activated job's id comes with the answer, as a marker is resolved to
/// its job only there.
fn activation(raw_id: &str, answer: &[String]) -> QueueResult<Claim> {
    let protocol = || QueueError::Protocol(format!("activation answered {answer:?}"));
    match answer {
        [status, lease, attempt, max_attempts, payload, queued_at, id] if status == "active" => {
            Ok(Claim::Job(Claimed {
                id: id.parse().map_err(|_| protocol())?,
                lease: lease.clone(),
                attempt: attempt.parse().map_err(|_| protocol())?,
                max_attempts: max_attempts.parse().map_err(|_| protocol())?,
                payload: serde_json::from_str(payload).unwrap_or(Value::Null),
                queued_at: queued_at.parse().map_err(|_| protocol())?,
            }))
        }
        [status] if status == "paused" => Ok(Claim::Paused),
        [status, ms] if status == "limited" => Ok(Claim::Limited {
            wait: std::time::Duration::from_millis(ms.parse().map_err(|_| protocol())?),
        }),
        [status, found] if status == "skip" => Ok(Claim::Skipped {
            id: raw_id.to_owned(),
            state: found_state(found)?,
        }),
        _ => Err(protocol()),
    }
}

/// Decodes `{1}` or `{0, state}`, the answer of every fenced transition.
fn settled(answer: Vec<String>) -> QueueResult<Settled> {
    match answer.as_slice() {
        [done] if done == "1" => Ok(Settled::Done),
        [_, found] => Ok(Settled::LeaseLost {
            state: found_state(found)?,
        }),
        other => Err(QueueError::Protocol(format!("unexpected answer {other:?}"))),
    }
}
