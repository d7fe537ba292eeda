//! The queue's settings (`[queue]`) and the worker pool's (`[workers]`), each checked once when
//! loaded (see `crate::validate`); the queue uses them as they are.

use std::time::Duration;

use serde::Deserialize;

use crate::validate::Checks;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Runs of a job before it is failed for good (stalls are counted separately).
    pub max_attempts: u32,
    /// First retry delay; each further retry multiplies it by `backoff_factor`, up to the cap.
    pub backoff_base_ms: u64,
    pub backoff_factor: f64,
    pub backoff_max_ms: u64,
    /// Share of each delay that is randomised (0 = none, 1 = anywhere from 0 to the full delay).
    pub backoff_jitter: f64,
    /// How often an instance renews its heartbeat, and how long the heartbeat lives.
    pub heartbeat_interval_ms: u64,
    pub heartbeat_ttl_ms: u64,
    /// How often the reaper looks for instances whose heartbeat expired; also how long one
    /// reaper holds the lock that keeps the others out.
    pub reaper_interval_ms: u64,
    /// A job whose worker died more often than this is failed as a poison pill.
    pub max_stalls: u32,
    /// How often due retries are moved back to the waiting list.
    pub scheduler_interval_ms: u64,
    /// How long finished job records are kept before Redis expires them.
    pub completed_retention_secs: u64,
    pub failed_retention_secs: u64,
    /// At most this many finished records kept per state, the oldest removed first (cancelled ones
    /// follow the failed cap); 0 is no cap, only the retention.
    pub completed_max_count: u64,
    pub failed_max_count: u64,
    /// How long a worker's BLMOVE blocks before it looks around (shutdown, reconnect).
    pub claim_block_secs: f64,
    /// At most this many job starts per window across all instances, counted in Redis at claim
    /// time; 0 is no limit.
    pub rate_limit_jobs: u64,
    pub rate_limit_window_ms: u64,
    /// After every so many high-priority starts, one waiting bulk job starts: what keeps a
    /// stream of high-priority uploads from starving the rest.
    pub priority_burst: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_factor: 2.0,
            backoff_max_ms: 300_000,
            backoff_jitter: 0.5,
            heartbeat_interval_ms: 2_000,
            heartbeat_ttl_ms: 10_000,
            reaper_interval_ms: 5_000,
            max_stalls: 3,
            scheduler_interval_ms: 500,
            completed_retention_secs: 86_400,
            failed_retention_secs: 7 * 86_400,
            completed_max_count: 0,
            failed_max_count: 0,
            claim_block_secs: 2.0,
            rate_limit_jobs: 0,
            rate_limit_window_ms: 1_000,
            priority_burst: 8,
        }
    }
}

/// A hundred years: longer retentions are refused.
const MAX_RETENTION_SECS: u64 = 100 * 365 * 86_400;
/// Below this a timer would spin rather than wait.
const MIN_INTERVAL_MS: u64 = 10;
/// BLMOVE takes 0 as "block forever"; anything shorter than this is a busy loop.
const MIN_CLAIM_BLOCK_SECS: f64 = 0.1;

impl QueueSettings {
    pub fn rate_limit_window(&self) -> Duration {
        Duration::from_millis(self.rate_limit_window_ms)
    }

    pub fn check(&self, checks: &mut Checks) {
        checks.at_least("queue.max_attempts", self.max_attempts, 1);
        checks.require(
            self.backoff_factor.is_finite() && self.backoff_factor >= 1.0,
            "queue.backoff_factor",
            || {
                format!(
                    "queue.backoff_factor ({}) must be a number of at least 1: delays never shrink",
                    self.backoff_factor
                )
            },
        );
        checks.require(
            self.backoff_max_ms >= self.backoff_base_ms,
            "queue.backoff_max_ms",
            || {
                format!(
                    "queue.backoff_max_ms ({}) must be at least queue.backoff_base_ms ({})",
                    self.backoff_max_ms, self.backoff_base_ms
                )
            },
        );
        checks.require(
            (0.0..=1.0).contains(&self.backoff_jitter),
            "queue.backoff_jitter",
            || {
                format!(
                    "queue.backoff_jitter ({}) must be between 0 and 1",
                    self.backoff_jitter
                )
            },
        );
        checks.at_least(
            "queue.heartbeat_interval_ms",
            self.heartbeat_interval_ms,
            MIN_INTERVAL_MS,
        );
        checks.require(
            self.heartbeat_ttl_ms > self.heartbeat_interval_ms,
            "queue.heartbeat_ttl_ms",
            || {
                format!(
                    "queue.heartbeat_ttl_ms ({}) must be greater than queue.heartbeat_interval_ms ({}): \
                     a live instance's heartbeat would expire between two renewals",
                    self.heartbeat_ttl_ms, self.heartbeat_interval_ms
                )
            },
        );
        checks.at_least("queue.priority_burst", self.priority_burst, 1);
        checks.at_least(
            "queue.rate_limit_window_ms",
            self.rate_limit_window_ms,
            MIN_INTERVAL_MS,
        );
        checks.at_least(
            "queue.reaper_interval_ms",
            self.reaper_interval_ms,
            MIN_INTERVAL_MS,
        );
        checks.at_least(
            "queue.scheduler_interval_ms",
            self.scheduler_interval_ms,
            MIN_INTERVAL_MS,
        );
        for (setting, secs) in [
            (
                "queue.completed_retention_secs",
                self.completed_retention_secs,
            ),
            ("queue.failed_retention_secs", self.failed_retention_secs),
        ] {
            checks.at_least(setting, secs, 1);
            // In ms, subtracted from the clock: bounded so the arithmetic can never wrap.
            checks.require(secs <= MAX_RETENTION_SECS, setting, || {
                format!("{setting} ({secs}) must be at most {MAX_RETENTION_SECS} (a hundred years)")
            });
        }
        checks.require(
            self.claim_block_secs.is_finite() && self.claim_block_secs >= MIN_CLAIM_BLOCK_SECS,
            "queue.claim_block_secs",
            || {
                format!(
                    "queue.claim_block_secs ({}) must be at least {MIN_CLAIM_BLOCK_SECS}",
                    self.claim_block_secs
                )
            },
        );
    }

    pub fn claim_block(&self) -> Duration {
        Duration::from_secs_f64(self.claim_block_secs)
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn heartbeat_ttl(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ttl_ms)
    }

    /// The longest stall a live instance's heartbeat survives: renewed every interval, it lives
    /// a TTL, so only a stall longer than their difference can make a live instance look dead.
    /// (The TTL is checked to exceed the interval.)
    pub fn heartbeat_stall_limit(&self) -> Duration {
        self.heartbeat_ttl()
            .saturating_sub(self.heartbeat_interval())
    }

    pub fn reaper_interval(&self) -> Duration {
        Duration::from_millis(self.reaper_interval_ms)
    }

    pub fn scheduler_interval(&self) -> Duration {
        Duration::from_millis(self.scheduler_interval_ms)
    }
}

/// The worker pool of one process (`[workers]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Worker tasks in this process (each holds one blocking Redis connection): at least `min`;
    /// up to `max` while jobs wait and every worker is busy, an extra one retiring after
    /// `idle_secs` without a job.
    pub min: usize,
    pub max: usize,
    pub idle_secs: u64,
    /// A fixed number of workers: when set, `min` and `max` are both this (the older setting).
    pub concurrency: Option<usize>,
    /// A job running longer than this fails with a transient `timeout` error and is retried.
    pub job_timeout_secs: u64,
    /// On SIGTERM/SIGINT, in-flight jobs (and HTTP requests) get this long to finish before they
    /// are handed back.
    pub shutdown_grace_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            min: 2,
            max: 8,
            idle_secs: 30,
            concurrency: None,
            job_timeout_secs: 120,
            shutdown_grace_secs: 20,
        }
    }
}

impl WorkerSettings {
    pub fn check(&self, checks: &mut Checks) {
        if let Some(concurrency) = self.concurrency {
            checks.at_least("workers.concurrency", concurrency, 1);
        } else {
            checks.at_least("workers.min", self.min, 1);
            checks.require(self.max >= self.min, "workers.max", || {
                format!(
                    "workers.max ({}) must be at least workers.min ({})",
                    self.max, self.min
                )
            });
        }
        checks.at_least("workers.idle_secs", self.idle_secs, 1);
        checks.at_least("workers.job_timeout_secs", self.job_timeout_secs, 1);
        checks.at_least("workers.shutdown_grace_secs", self.shutdown_grace_secs, 1);
    }

    /// The fewest and the most worker tasks, `concurrency` winning when set.
    pub fn bounds(&self) -> (usize, usize) {
        match self.concurrency {
            Some(n) => (n, n),
            None => (self.min, self.max),
        }
    }

    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_secs)
    }

    pub fn job_timeout(&self) -> Duration {
        Duration::from_secs(self.job_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(settings: &QueueSettings) -> Vec<String> {
        let mut checks = Checks::new();
        settings.check(&mut checks);
        match checks.finish() {
            Ok(()) => Vec::new(),
            Err(found) => found.into_iter().map(|p| p.message).collect(),
        }
    }

    #[test]
    fn the_default_queue_settings_pass_their_own_check() {
        assert!(problems(&QueueSettings::default()).is_empty());
        let mut checks = Checks::new();
        WorkerSettings::default().check(&mut checks);
        assert!(checks.finish().is_ok());
    }

    #[test]
    fn a_heartbeat_that_expires_before_its_renewal_is_refused_by_name() {
        // Proves the cross-field rule, in the words an operator reads at start-up.
        let settings = QueueSettings {
            heartbeat_ttl_ms: 1000,
            heartbeat_interval_ms: 2000,
            ..QueueSettings::default()
        };
        let found = problems(&settings);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(
                "queue.heartbeat_ttl_ms (1000) must be greater than queue.heartbeat_interval_ms (2000)"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn backoff_values_that_the_formula_cannot_use_are_refused() {
        // Proves each backoff rule separately: shrinking factor, cap under the base, jitter off 0..=1.
        let settings = QueueSettings {
            backoff_factor: 0.5,
            backoff_base_ms: 10,
            backoff_max_ms: 5,
            backoff_jitter: 1.5,
            claim_block_secs: 0.0,
            max_attempts: 0,
            ..QueueSettings::default()
        };
        let found = problems(&settings).join("\n");
        for setting in [
            "queue.max_attempts (0)",
            "queue.backoff_factor (0.5)",
            "queue.backoff_max_ms (5) must be at least queue.backoff_base_ms (10)",
            "queue.backoff_jitter (1.5)",
            "queue.claim_block_secs (0)",
        ] {
            assert!(found.contains(setting), "{setting} missing from:\n{found}");
        }
    }

    #[test]
    fn retentions_and_the_priority_burst_are_bounded() {
        let settings = QueueSettings {
            completed_retention_secs: u64::MAX / 10,
            failed_retention_secs: 0,
            priority_burst: 0,
            ..QueueSettings::default()
        };
        let found = problems(&settings).join("\n");
        for setting in [
            "queue.completed_retention_secs (1844674407370955161) must be at most",
            "queue.failed_retention_secs (0)",
            "queue.priority_burst (0)",
        ] {
            assert!(found.contains(setting), "{setting} missing from:\n{found}");
        }
    }
}
