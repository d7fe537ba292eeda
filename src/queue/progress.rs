//! `Progress`: what a handler calls to report how far a job is. Each report is fenced by the job's
//! lease and published as an event, so watchers see it live.

use redis::aio::ConnectionManager;

use super::client::{Queue, QueueResult};
use super::worker_conn::{Claimed, WorkerConn};

/// Reports progress for one claimed job. Cheap to create; each report is one script call.
pub struct Progress {
    queue: Queue,
    /// The process's shared connection for worker scripts.
    conn: ConnectionManager,
    owner: String,
    job: Claimed,
}

impl Progress {
    pub(super) fn new(queue: Queue, conn: ConnectionManager, owner: String, job: Claimed) -> Self {
        Self {
            queue,
            conn,
            owner,
            job,
        }
    }

    /// Records `percent` (0-100) and the current step. `Ok(false)` means the lease is lost (the job
    /// was cancelled or recovered elsewhere): the handler may stop early.
    pub async fn report(&self, percent: u8, step: &str) -> QueueResult<bool> {
        let keys = self.queue.keys();
        let recorded: i64 = self
            .queue
            .inner
            .scripts
            .progress
            .key(keys.job(&self.job.id))
            .arg(self.job.id.to_string())
            .arg(&self.owner)
            .arg(self.job.lease())
            .arg(self.queue.now())
            .arg(percent.min(100))
            .arg(step)
            .arg(keys.events())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(recorded == 1)
    }
}

impl WorkerConn {
    /// A reporter for a job this worker holds.
    pub fn progress_reporter(&self, job: &Claimed) -> Progress {
        Progress::new(
            self.queue().clone(),
            self.scripts_connection().clone(),
            self.name().to_owned(),
            job.clone(),
        )
    }
}
