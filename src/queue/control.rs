//! Inspection and control for operators, across every instance: counts per state, finished jobs
//! listed newest first, retry and delete whoever owns the job, clean finished jobs by age, and
//! pause and resume processing (workers finish what they hold and claim nothing new: activation
//! refuses while `{prefix}:paused` exists, see `activate_job` in `lua/prelude.lua`).

use std::time::Duration;

use redis::AsyncCommands;

use super::client::{Queue, QueueResult, ResubmitOutcome};
use super::job::{JobId, JobRecord, JobState};

/// How many jobs are where, across every instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub waiting: u64,
    pub retrying: u64,
    pub active: u64,
    /// Finished records still kept (until their retention ends or they are cleaned).
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Worker slots registered, across every instance (each registers up to its `workers.max`).
    pub workers: u64,
    pub paused: bool,
}

/// One page of finished jobs, newest first.
#[derive(Debug, Clone)]
pub struct FinishedPage {
    /// How many there are in all.
    pub total: u64,
    pub jobs: Vec<JobRecord>,
}

/// Most jobs one retry-all resubmits.
pub const RETRY_ALL_MAX: usize = 10_000;

/// The final states, whose jobs have an index of their own.
pub const FINISHED_STATES: [JobState; 3] =
    [JobState::Completed, JobState::Failed, JobState::Cancelled];

impl Queue {
    pub async fn counts(&self) -> QueueResult<Counts> {
        let stats = self.stats().await?;
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let (completed, failed, cancelled, paused): (u64, u64, u64, bool) = redis::pipe()
            .zcard(keys.finished_in(JobState::Completed))
            .zcard(keys.finished_in(JobState::Failed))
            .zcard(keys.finished_in(JobState::Cancelled))
            .exists(keys.paused())
            .query_async(&mut conn)
            .await?;
        Ok(Counts {
            waiting: stats.waiting,
            retrying: stats.retrying,
            active: stats.active,
            completed,
            failed,
            cancelled,
            workers: stats.workers,
            paused,
        })
    }

    /// Finished jobs in `state`, newest first, from `offset`. Records removed meanwhile are left
    /// out of the page.
    pub async fn finished_jobs(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> QueueResult<FinishedPage> {
        let index = self.keys().finished_in(state);
        let mut conn = self.conn().await?;
        let (total, ids): (u64, Vec<String>) = redis::pipe()
            .zcard(&index)
            .zrevrange(&index, offset as isize, (offset + limit) as isize - 1)
            .query_async(&mut conn)
            .await?;
        drop(conn);
        let ids: Vec<JobId> = ids.iter().filter_map(|id| id.parse().ok()).collect();
        let jobs = self.jobs(&ids).await?.into_iter().flatten().collect();
        Ok(FinishedPage { total, jobs })
    }

    /// Puts the jobs failed at this moment back in the queue, the oldest first and at most
    /// [`RETRY_ALL_MAX`] of them (call again for more); how many went. The ids are read once, so a
    /// job that fails again meanwhile is not retried twice.
    pub async fn retry_all_failed(&self) -> QueueResult<usize> {
        let index = self.keys().finished_in(JobState::Failed);
        let ids: Vec<String> = self
            .conn()
            .await?
            .zrange(&index, 0, RETRY_ALL_MAX as isize - 1)
            .await?;
        let mut retried = 0;
        for id in ids.iter().filter_map(|raw| raw.parse::<JobId>().ok()) {
            if self.resubmit_any(&id).await? == ResubmitOutcome::Queued {
                retried += 1;
            }
        }
        Ok(retried)
    }

    /// Stops every instance's workers from claiming (running jobs finish).
    pub async fn pause(&self) -> QueueResult<()> {
        let () = self.conn().await?.set(self.keys().paused(), 1).await?;
        Ok(())
    }

    pub async fn resume(&self) -> QueueResult<()> {
        let _: i64 = self.conn().await?.del(self.keys().paused()).await?;
        Ok(())
    }

    pub async fn is_paused(&self) -> QueueResult<bool> {
        Ok(self.conn().await?.exists(self.keys().paused()).await?)
    }

    /// The cut-off time `older_than` ago, on the queue's clock, for `clean_finished`.
    pub fn finished_before(&self, older_than: Duration) -> u64 {
        self.now().saturating_sub(older_than.as_millis() as u64)
    }
}

/// One instance (a process's worker pool) as the queue knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    /// `{pid}-{start id}`.
    pub name: String,
    /// Whether its heartbeat is alive: a dead one's jobs go back when the reaper reaches it.
    pub alive: bool,
    /// Its last heartbeat (ms since the epoch, its clock), and how long until it lapses.
    pub last_beat_ms: Option<u64>,
    pub lapses_in_ms: Option<u64>,
    /// Its worker slots (up to its `workers.max`), each with the jobs it holds (0 or 1).
    pub workers: Vec<WorkerSlot>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerSlot {
    pub name: String,
    pub holding: u64,
}

impl Queue {
    /// Every instance with registered workers, alive or not yet reaped, by name.
    pub async fn instances(&self) -> QueueResult<Vec<Instance>> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let mut names: Vec<String> = conn.smembers(keys.workers()).await?;
        names.sort();
        let mut by_instance: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for name in names {
            let instance = name
                .split_once('/')
                .map_or(name.as_str(), |(i, _)| i)
                .to_owned();
            by_instance.entry(instance).or_default().push(name);
        }
        if by_instance.is_empty() {
            // An empty pipeline is no request at all.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (instance, workers) in &by_instance {
            pipe.get(keys.heartbeat(instance))
                .pttl(keys.heartbeat(instance));
            for worker in workers {
                pipe.llen(keys.processing(worker));
            }
        }
        let answers: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut answers = answers.into_iter();
        let mut next = || -> Option<i64> {
            answers
                .next()
                .and_then(|value| redis::from_redis_value::<Option<i64>>(value).ok().flatten())
        };
        let mut instances = Vec::new();
        for (name, workers) in by_instance {
            let last_beat = next().and_then(|ms| u64::try_from(ms).ok());
            let lapses_in = next().and_then(|ms| u64::try_from(ms).ok());
            let workers = workers
                .into_iter()
                .map(|name| WorkerSlot {
                    holding: next().map_or(0, |n| n.max(0) as u64),
                    name,
                })
                .collect();
            instances.push(Instance {
                alive: lapses_in.is_some(),
                last_beat_ms: last_beat,
                lapses_in_ms: lapses_in,
                name,
                workers,
            });
        }
        Ok(instances)
    }
}
