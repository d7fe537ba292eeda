//! Every Redis key and channel the queue uses, one function each. All share the hash tag `{prefix}`,
//! so they map to one Redis Cluster slot and any script may touch any of them.

use super::job::JobId;

#[derive(Debug, Clone)]
pub struct Keys {
    /// `{prefix}`, braces included.
    tag: String,
    /// The hot keys, built once: every claim and transition names them.
    waiting: String,
    retrying: String,
    workers: String,
    events: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
        Self {
            waiting: format!("{tag}:waiting"),
            retrying: format!("{tag}:retrying"),
            workers: format!("{tag}:workers"),
            events: format!("{tag}:events"),
            tag,
        }
    }

    /// The job's record, a hash.
    pub fn job(&self, id: &JobId) -> String {
        format!("{}:job:{}", self.tag, id)
    }

    /// Ids waiting to be claimed: pushed on the left, claimed from the right (FIFO); recovered jobs
    /// go back on the right, so they run next.
    pub fn waiting(&self) -> &str {
        &self.waiting
    }

    /// Sorted set of jobs waiting out a backoff, scored by due time (ms).
    pub fn retrying(&self) -> &str {
        &self.retrying
    }

    /// Set of every worker name with a processing list, so the reaper finds them without SCAN.
    pub fn workers(&self) -> &str {
        &self.workers
    }

    /// Ids one worker has claimed and not finished.
    pub fn processing(&self, worker: &str) -> String {
        format!("{}:processing:{}", self.tag, worker)
    }

    /// Present while the instance is alive; expires when it stops renewing it.
    pub fn heartbeat(&self, instance: &str) -> String {
        format!("{}:heartbeat:{}", self.tag, instance)
    }

    /// Held by the one reaper running at a time across all instances.
    pub fn reaper_lock(&self) -> String {
        format!("{}:reaper-lock", self.tag)
    }

    /// The pub/sub channel every transition publishes its event on.
    pub fn events(&self) -> &str {
        &self.events
    }
}

/// A worker's name is `{instance}/{slot}`; the instance part finds its heartbeat.
pub fn instance_of(worker: &str) -> &str {
    worker
        .rsplit_once('/')
        .map_or(worker, |(instance, _)| instance)
}
