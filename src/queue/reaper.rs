//! Recovering jobs nobody is working on: the reaper returns the jobs of instances whose heartbeat
//! expired, and a worker returns ids stranded in its own processing list (see `lua/recover.lua`).

use std::fmt;
use std::str::FromStr;

use redis::AsyncCommands;

use super::client::{Queue, QueueError, QueueResult};
use super::job::JobId;
use super::keys::instance_of;

/// What `lua/recover.lua` did with one id of a processing list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The instance's heartbeat is back: nothing was done.
    Alive,
    /// The id was no longer in the list.
    Gone,
    /// The job is back in the waiting list.
    Requeued,
    /// Its worker died under it too often: failed as `stalled`.
    Failed,
    /// Finished or missing: the id was just removed from the list.
    Dropped,
}

impl Recovered {
    /// True when a job changed hands: requeued, or failed for stalling.
    pub fn moved_a_job(self) -> bool {
        matches!(self, Self::Requeued | Self::Failed)
    }
}

impl FromStr for Recovered {
    type Err = QueueError;
    fn from_str(s: &str) -> QueueResult<Self> {
        Ok(match s {
            "alive" => Self::Alive,
            "gone" => Self::Gone,
            "requeued" => Self::Requeued,
            "failed" => Self::Failed,
            "dropped" => Self::Dropped,
            other => return Err(QueueError::Protocol(format!("recover answered {other:?}"))),
        })
    }
}

impl fmt::Display for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Queue {
    /// Returns the jobs of every worker whose instance's heartbeat has expired to the waiting list
    /// (failing those that stalled too often), then forgets those workers. One instance reaps at a
    /// time, by a lock that lasts one reaper interval; if it lapses mid-run a second reaper is
    /// harmless, as every move is checked.
    ///
    /// A run that has taken longer than `heartbeat_stall_limit` stops: Redis was stalled under it
    /// long enough for live instances' heartbeats to lapse too.
    pub async fn reap_dead(&self) -> QueueResult<usize> {
        let started = tokio::time::Instant::now();
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let token = JobId::new().to_string();
        let locked: Option<String> = redis::cmd("SET")
            .arg(keys.reaper_lock())
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.settings().reaper_interval_ms)
            .query_async(&mut conn)
            .await?;
        if locked.is_none() {
            return Ok(0);
        }
        let workers: Vec<String> = conn.smembers(keys.workers()).await?;
        let mut recovered = 0;
        for worker in workers {
            let heartbeat = keys.heartbeat(instance_of(&worker));
            if conn.exists(&heartbeat).await? {
                continue;
            }
            let processing = keys.processing(&worker);
            let ids: Vec<String> = conn.lrange(&processing, 0, -1).await?;
            for raw in ids {
                if started.elapsed() > self.settings().heartbeat_stall_limit() {
                    tracing::warn!("redis answers slowly; reaping stops until it is steady");
                    return Ok(recovered);
                }
                let outcome = self.recover(&mut conn, &worker, &raw, true).await?;
                if outcome == Recovered::Alive {
                    break;
                }
                if outcome.moved_a_job() {
                    recovered += 1;
                    tracing::warn!(job_id = %raw, %worker, %outcome, "recovered a job from a dead instance");
                }
            }
            let _: i64 = self
                .inner
                .scripts
                .forget_worker
                .key(&heartbeat)
                .key(&processing)
                .key(keys.workers())
                .arg(&worker)
                .invoke_async(&mut conn)
                .await?;
        }
        Ok(recovered)
    }

    /// Registers the worker of every processing list that is not registered, so the reaper
    /// looks at it: a worker can claim before its instance's first heartbeat lands, or just after
    /// a reaper forgot it, and a process killed then would leave a list nobody scans. Returns how
    /// many were added. It SCANs every processing list, so it runs rarely.
    pub async fn adopt_unregistered_lists(&self) -> QueueResult<usize> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let found: Vec<String> = {
            let mut iter = conn
                .scan_match::<_, String>(keys.processing_pattern())
                .await?;
            let mut found = Vec::new();
            while let Some(key) = futures_util::StreamExt::next(&mut iter).await {
                found.push(key?);
            }
            found
        };
        let workers: Vec<&str> = found.iter().filter_map(|k| keys.worker_of(k)).collect();
        if workers.is_empty() {
            return Ok(0);
        }
        let added: usize = conn.sadd(keys.workers(), &workers).await?;
        if added > 0 {
            tracing::warn!(added, "found processing lists of unregistered workers");
        }
        Ok(added)
    }

    /// Runs `lua/recover.lua` for one id of one worker's processing list. With `require_dead`, it
    /// does nothing while the worker's instance still has a heartbeat.
    pub(super) async fn recover(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        worker: &str,
        raw_id: &str,
        require_dead: bool,
    ) -> QueueResult<Recovered> {
        let keys = self.keys();
        // A malformed id cannot name a job; give the script a key that holds nothing so it is
        // simply dropped from the list.
        let job_key = match raw_id.parse::<JobId>() {
            Ok(id) => keys.job(&id),
            Err(_) => keys.void().to_owned(),
        };
        let settings = self.settings();
        let outcome: String = self
            .inner
            .scripts
            .recover
            .key(keys.heartbeat(instance_of(worker)))
            .key(keys.processing(worker))
            .key(keys.waiting())
            .key(job_key)
            .key(keys.workers())
            .key(keys.finished())
            .arg(raw_id)
            .arg(worker)
            .arg(self.now())
            .arg(settings.max_stalls)
            .arg(keys.events())
            .arg(if require_dead { "1" } else { "0" })
            .invoke_async(conn)
            .await?;
        outcome.parse()
    }
}
