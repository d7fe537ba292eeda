//! Every Redis key and channel the queue uses, one function each. All share the hash tag `{prefix}`,
//! so they map to one Redis Cluster slot and any script may touch any of them.

use std::fmt;

use super::job::{JobId, JobState};
use super::subject::Subject;

/// The `redis.key_prefix`, checked: non-empty and free of braces, so `{prefix}` is a hash tag
/// Redis Cluster honours (it ignores `{}`, and a brace inside would end the tag early).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// `Err` says why, to follow the setting's name and value.
    pub fn parse(prefix: &str) -> Result<Self, &'static str> {
        if prefix.is_empty() {
            return Err("must not be empty: every key is tagged {prefix} for Redis Cluster");
        }
        if prefix.contains(['{', '}']) {
            return Err("must not contain '{' or '}': pixdrop adds the braces of the hash tag");
        }
        Ok(Self(prefix.to_owned()))
    }
}

impl KeyPrefix {
    /// `{prefix}`, braces included: what every key of pixdrop starts with.
    pub fn tag(&self) -> String {
        format!("{{{}}}", self.0)
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Keys {
    /// `{prefix}`, braces included.
    tag: String,
    /// The hot keys, built once: every claim and transition names them.
    waiting: String,
    retrying: String,
    workers: String,
    events: String,
    void: String,
    finished: String,
    garbage: String,
    blocked: String,
    stats: String,
}

impl Keys {
    pub fn new(prefix: &KeyPrefix) -> Self {
        let tag = prefix.tag();
        Self {
            waiting: format!("{tag}:waiting"),
            retrying: format!("{tag}:retrying"),
            workers: format!("{tag}:workers"),
            events: format!("{tag}:events"),
            void: format!("{tag}:void"),
            finished: format!("{tag}:finished"),
            garbage: format!("{tag}:garbage"),
            blocked: format!("{tag}:blocked"),
            stats: format!("{tag}:stats"),
            tag,
        }
    }

    /// The job's record, a hash.
    pub fn job(&self, id: &JobId) -> String {
        format!("{}:job:{}", self.tag, id)
    }

    /// What the scripts prepend to an id to name its record (for ids they read from an index).
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.tag)
    }

    /// The subject's uploads: a sorted set of job ids, all scored 0, so they sort by id, which is
    /// by upload time (UUIDv7). Ids whose record expired are dropped lazily (see `enqueue.lua`
    /// and `Queue::list`).
    pub fn uploads_of(&self, subject: &Subject) -> String {
        match subject.name() {
            Some(name) => format!("{}:uploads:subject:{name}", self.tag),
            None => format!("{}:uploads:anonymous", self.tag),
        }
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

    /// Matches every processing list, for the sweep that finds lists of unregistered workers.
    pub fn processing_pattern(&self) -> String {
        format!("{}:processing:*", self.tag)
    }

    /// The worker whose processing list `key` is.
    pub fn worker_of<'k>(&self, processing_key: &'k str) -> Option<&'k str> {
        processing_key
            .strip_prefix(self.tag.as_str())?
            .strip_prefix(":processing:")
    }

    /// Present while the instance is alive; expires when it stops renewing it.
    pub fn heartbeat(&self, instance: &str) -> String {
        format!("{}:heartbeat:{}", self.tag, instance)
    }

    /// Held by the one reaper running at a time across all instances.
    pub fn reaper_lock(&self) -> String {
        format!("{}:reaper-lock", self.tag)
    }

    /// A key nothing ever writes: named to a script in place of a job's hash when an id read from
    /// a list is malformed, so the script sees no job and just drops the id.
    pub fn void(&self) -> &str {
        &self.void
    }

    /// `{prefix}`, braces included: scripts that name keys by an id they read (a job's subject
    /// index, a content's references) build them from it, as `lua/prelude.lua` says.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Hash of queue-wide counters: jobs completed, failed (and by error code), cancelled, retried
    /// (see `count` in `lua/prelude.lua`).
    pub fn stats(&self) -> &str {
        &self.stats
    }

    /// The index of finished jobs in `state` (completed, failed, cancelled), scored by when they
    /// finished (ms): counted, listed newest first and cleaned by age by the admin API.
    pub fn finished_in(&self, state: JobState) -> String {
        format!("{}:{state}", self.finished)
    }

    /// The repeatable tasks' schedule: a sorted set of task names scored by when each is next
    /// due (ms); see `lua/repeat.lua`.
    pub fn repeat_schedule(&self) -> String {
        format!("{}:repeat", self.tag)
    }

    /// What each repeatable task has done: a hash of `<task>:runs`, `<task>:last_run` (ms) and
    /// `<task>:last_runner` (the instance).
    pub fn repeat_runs(&self) -> String {
        format!("{}:repeat:runs", self.tag)
    }

    /// Present while processing is paused across all instances.
    pub fn paused(&self) -> String {
        format!("{}:paused", self.tag)
    }

    /// What the indexes of finished jobs per state are named after (see `finished_in`); also the
    /// expiry schedule earlier versions kept, drained by `expire.lua`.
    pub fn finished(&self) -> &str {
        &self.finished
    }

    /// The jobs referencing a content (scored +inf), and the pins of uploads about to reference it
    /// (scored by when they lapse): see `content.rs`.
    pub fn content_refs(&self, content: &str) -> String {
        format!("{}:content:{content}", self.tag)
    }

    /// Sorted set of what storage holds for removed jobs and unreferenced contents, scored by when
    /// the sweep may take it (ms): `outputs:<job id>` and `content:<content>`.
    pub fn garbage(&self) -> &str {
        &self.garbage
    }

    /// Set of contents no job may reference again.
    pub fn blocked(&self) -> &str {
        &self.blocked
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
