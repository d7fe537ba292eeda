//! Removing jobs for good: one by its owner or the holder of its delete token, every job naming a
//! content (an administrator's purge), and finished jobs whose retention is over. Each is one
//! script around the prelude's `remove_job`, which takes the record, its place in every list and
//! index and its content reference together, and schedules what storage holds for the sweep
//! (see `content.rs`): Redis first, files after.

use std::time::Duration;

use super::client::{Queue, QueueError, QueueResult};
use super::control::FINISHED_STATES;
use super::job::{JobId, JobState};
use super::subject::Subject;

/// A job removed, as its record was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub id: JobId,
    /// The state it was in.
    pub state: JobState,
    pub subject: Subject,
    /// Its payload, raw: the producer reads what it needs (a size to give back to a quota).
    pub payload: String,
    /// The content it named.
    pub content: Option<String>,
}

/// Who asks to delete a job.
#[derive(Debug, Clone, Copy)]
pub struct DeleteProof<'a> {
    /// The caller's subject: a named one may delete its own jobs.
    pub subject: &'a Subject,
    /// The hex SHA-256 of the delete token presented, if any.
    pub token_digest: Option<&'a str>,
}

/// Jobs removed by one script, at most: a purge or an expiry runs as many as it needs.
const REMOVE_BATCH: usize = 200;

impl Queue {
    /// Removes the job if `proof` allows it: `None` when there is no such job, or the caller may
    /// not delete it (the two are told apart by no one). `outputs_delay`: how long after an active
    /// job's removal its outputs are swept once more, as its worker may write until it learns.
    pub async fn delete(
        &self,
        id: &JobId,
        proof: DeleteProof<'_>,
        outputs_delay: Duration,
    ) -> QueueResult<Option<Removed>> {
        let digest = proof.token_digest.unwrap_or("");
        self.remove_one(id, proof.subject.field(), digest, false, outputs_delay)
            .await
    }

    /// Removes the job whoever owns it: an administrator's delete. `None` when there is none.
    pub async fn delete_any(
        &self,
        id: &JobId,
        outputs_delay: Duration,
    ) -> QueueResult<Option<Removed>> {
        self.remove_one(id, "", "", true, outputs_delay).await
    }

    async fn remove_one(
        &self,
        id: &JobId,
        subject: &str,
        token_digest: &str,
        administrator: bool,
        outputs_delay: Duration,
    ) -> QueueResult<Option<Removed>> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let answer: Vec<String> = self
            .inner
            .scripts
            .delete
            .key(keys.job(id))
            .arg(id.to_string())
            .arg(self.now())
            .arg(keys.tag())
            .arg(keys.events())
            .arg(outputs_delay.as_millis() as u64)
            .arg(subject)
            .arg(token_digest)
            .arg(if administrator { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        match answer.as_slice() {
            [] => Ok(None),
            [state, subject, payload, content] => Ok(Some(removed(
                id.to_string(),
                state,
                subject,
                payload,
                content,
            )?)),
            other => Err(QueueError::Protocol(format!("delete answered {other:?}"))),
        }
    }

    /// Removes every job naming `content`, whoever owns it, and blocks it when `block` says so
    /// (see `lua/purge.lua`), a batch per script so that a popular content does not hold Redis.
    pub async fn purge(
        &self,
        content: &str,
        block: bool,
        outputs_delay: Duration,
    ) -> QueueResult<Vec<Removed>> {
        let keys = self.keys();
        self.remove_in_batches(|| {
            let mut invocation = self.inner.scripts.purge.prepare_invoke();
            invocation
                .key(keys.blocked())
                .key(keys.content_refs(content))
                .arg(content)
                .arg(self.now())
                .arg(keys.tag())
                .arg(keys.events())
                .arg(outputs_delay.as_millis() as u64)
                .arg(if block { "1" } else { "0" });
            invocation
        })
        .await
    }

    /// Removes finished jobs whose retention is over, a batch at a time, until none is due.
    pub async fn expire_due(&self) -> QueueResult<Vec<Removed>> {
        let keys = self.keys();
        self.remove_in_batches(|| {
            let settings = self.settings();
            let mut invocation = self.inner.scripts.expire.prepare_invoke();
            for state in FINISHED_STATES {
                invocation.key(keys.finished_in(state));
            }
            invocation
                .key(keys.finished())
                .arg(self.now())
                .arg(keys.tag())
                .arg(keys.events())
                .arg(settings.completed_retention_secs * 1000)
                .arg(settings.failed_retention_secs * 1000)
                // Cancelled jobs are kept as failed ones are.
                .arg(settings.failed_retention_secs * 1000);
            invocation
        })
        .await
    }

    /// Removes the finished jobs in `state` that finished before `before_ms`, a batch at a time.
    /// `outputs_delay`: as for [`Queue::delete`], for jobs cancelled while active.
    pub async fn clean_finished(
        &self,
        state: JobState,
        before_ms: u64,
        outputs_delay: Duration,
    ) -> QueueResult<Vec<Removed>> {
        self.clean(state, before_ms.to_string(), 0, outputs_delay)
            .await
    }

    /// Removes the oldest finished jobs in `state` beyond the newest `keep`.
    pub async fn trim_finished(
        &self,
        state: JobState,
        keep: u64,
        outputs_delay: Duration,
    ) -> QueueResult<Vec<Removed>> {
        self.clean(state, String::new(), keep, outputs_delay).await
    }

    /// `lua/clean.lua`: by age when `before_ms` is set, else by count.
    async fn clean(
        &self,
        state: JobState,
        before_ms: String,
        keep: u64,
        outputs_delay: Duration,
    ) -> QueueResult<Vec<Removed>> {
        let keys = self.keys();
        let index = keys.finished_in(state);
        self.remove_in_batches(|| {
            let mut invocation = self.inner.scripts.clean.prepare_invoke();
            invocation
                .key(&index)
                .arg(self.now())
                .arg(keys.tag())
                .arg(keys.events())
                .arg(&before_ms)
                .arg(keep)
                .arg(outputs_delay.as_millis() as u64);
            invocation
        })
        .await
    }

    /// Runs a removal script, made afresh by `invocation` (its time is read anew) with the batch
    /// size as its last argument, until a batch comes back short.
    async fn remove_in_batches<'a>(
        &self,
        invocation: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> QueueResult<Vec<Removed>> {
        let mut conn = self.conn().await?;
        let mut all = Vec::new();
        loop {
            let mut batch = invocation();
            batch.arg(REMOVE_BATCH);
            let answer: Vec<String> = batch.invoke_async(&mut conn).await?;
            let (looked_at, removed) = removed_list(answer)?;
            // Ids without a record are dropped without a report: the batch is full whenever
            // the script looked at as many ids as it was allowed.
            let more = looked_at == REMOVE_BATCH;
            all.extend(removed);
            if !more {
                return Ok(all);
            }
        }
    }
}

fn removed(
    id: String,
    state: &str,
    subject: &str,
    payload: &str,
    content: &str,
) -> QueueResult<Removed> {
    Ok(Removed {
        id: id
            .parse()
            .map_err(|_| QueueError::Protocol(format!("removed job {id:?}")))?,
        state: state.parse().map_err(QueueError::Protocol)?,
        subject: Subject::from_field(Some(subject.to_owned())),
        payload: payload.to_owned(),
        content: (!content.is_empty()).then(|| content.to_owned()),
    })
}

/// Reads `{ids looked at, id, state, subject, payload, content, ...}`.
fn removed_list(mut answer: Vec<String>) -> QueueResult<(usize, Vec<Removed>)> {
    let protocol = |answer: &[String]| {
        QueueError::Protocol(format!("a list of removed jobs of {} values", answer.len()))
    };
    if answer.is_empty() || !(answer.len() - 1).is_multiple_of(5) {
        return Err(protocol(&answer));
    }
    let looked_at = answer.remove(0).parse().map_err(|_| protocol(&answer))?;
    let removed = answer
        .chunks(5)
        .map(|c| removed(c[0].clone(), &c[1], &c[2], &c[3], &c[4]))
        .collect::<QueueResult<_>>()?;
    Ok((looked_at, removed))
}
