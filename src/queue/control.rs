//! Inspection and control for operators, across every instance: counts per state, finished jobs
//! listed newest first, retry and delete whoever owns the job, clean finished jobs by age, and
//! pause and resume processing (workers finish what they hold and claim nothing new: activation
//! refuses while `{prefix}:paused` exists, see `activate_job` in `lua/prelude.lua`).

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;

use super::client::{Queue, QueueError, QueueResult, ResubmitOutcome};
use super::job::{JobId, JobRecord, JobState};

/// How many jobs are where, across every instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Queued jobs, of every priority.
    pub waiting: u64,
    /// Of those, the high-priority ones.
    pub waiting_high: u64,
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

/// The whole queue at one moment, whichever processes did the work: its counts, and the counters
/// the scripts keep (`count` in `lua/prelude.lua`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub counts: Counts,
    /// Jobs that ended in each state since the queue began: `completed`, `failed`, `cancelled`;
    /// and `retried`, attempts that failed and were scheduled again.
    pub finished: BTreeMap<String, u64>,
    /// Jobs failed for good, and attempts retried, by error code.
    pub failed_by_code: BTreeMap<String, u64>,
    pub retried_by_code: BTreeMap<String, u64>,
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
    /// How many jobs are where, in one atomic read.
    pub async fn counts(&self) -> QueueResult<Counts> {
        Ok(self.stats().await?.counts)
    }

    /// The queue-wide figures, in one atomic read (see `lua/stats.lua`).
    pub async fn stats(&self) -> QueueResult<QueueStats> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let mut invocation = self.inner.scripts.stats.prepare_invoke();
        invocation
            .key(keys.waiting())
            .key(keys.retrying())
            .key(keys.workers())
            .key(keys.stats());
        for state in FINISHED_STATES {
            invocation.key(keys.finished_in(state));
        }
        let answer: Vec<redis::Value> = invocation
            .key(keys.paused())
            .arg(keys.tag())
            .invoke_async(&mut conn)
            .await?;
        let protocol = || QueueError::Protocol(format!("stats answered {answer:?}"));
        let number = |value: &redis::Value| -> QueueResult<u64> {
            redis::from_redis_value_ref(value).map_err(|_| protocol())
        };
        let [
            waiting,
            retrying,
            active,
            workers,
            completed,
            failed,
            cancelled,
            paused,
            waiting_high,
            counters @ ..,
        ] = answer.as_slice()
        else {
            return Err(protocol());
        };
        let mut stats = QueueStats {
            counts: Counts {
                waiting: number(waiting)?,
                waiting_high: number(waiting_high)?,
                retrying: number(retrying)?,
                active: number(active)?,
                completed: number(completed)?,
                failed: number(failed)?,
                cancelled: number(cancelled)?,
                workers: number(workers)?,
                paused: number(paused)? == 1,
            },
            ..QueueStats::default()
        };
        for pair in counters.chunks(2) {
            let [field, value] = pair else {
                return Err(protocol());
            };
            let field: String = redis::from_redis_value_ref(field).map_err(|_| protocol())?;
            let value = number(value)?;
            match field.split_once(':') {
                Some(("failed", code)) => stats.failed_by_code.insert(code.to_owned(), value),
                Some(("retried", code)) => stats.retried_by_code.insert(code.to_owned(), value),
                Some(_) => None,
                None => stats.finished.insert(field, value),
            };
        }
        Ok(stats)
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
    /// How many of its workers ran at its last heartbeat (an autoscaled pool runs between its
    /// `workers.min` and its slots).
    pub running: Option<u64>,
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
        let mut by_instance: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
        let mut next_value = || answers.next();
        let number = |value: Option<redis::Value>| -> Option<i64> {
            value.and_then(|value| redis::from_redis_value::<Option<i64>>(value).ok().flatten())
        };
        let mut instances = Vec::new();
        for (name, workers) in by_instance {
            // `<ms>` or `<ms>:<running>` (see `Queue::beat_running`).
            let beat: Option<String> =
                next_value().and_then(|value| redis::from_redis_value(value).ok());
            let (last_beat, running) = match beat.as_deref().map(|b| b.split_once(':')) {
                Some(Some((ms, running))) => (ms.parse().ok(), running.parse().ok()),
                Some(None) => (beat.as_deref().and_then(|ms| ms.parse().ok()), None),
                None => (None, None),
            };
            let lapses_in = number(next_value()).and_then(|ms| u64::try_from(ms).ok());
            let workers = workers
                .into_iter()
                .map(|name| WorkerSlot {
                    holding: number(next_value()).map_or(0, |n| n.max(0) as u64),
                    name,
                })
                .collect();
            instances.push(Instance {
                alive: lapses_in.is_some(),
                last_beat_ms: last_beat,
                lapses_in_ms: lapses_in,
                running,
                name,
                workers,
            });
        }
        Ok(instances)
    }
}
