//! The upkeep every worker instance runs beside its workers: its heartbeat (which tells the others
//! it is alive), the scheduler that promotes due retries, and the reaper (`reaper.rs`) that
//! recovers the jobs of instances whose heartbeat expired. All three survive Redis errors by
//! waiting and trying again.

use std::sync::Arc;

use redis::AsyncCommands;
use tokio::sync::watch;
use tokio::time::Instant;

use super::client::{Queue, QueueResult};
use super::job::JobId;
use super::reachability::Reachability;
use super::reconnect::ReconnectDelay;

impl Queue {
    /// Renews the instance's heartbeat and registers its workers, atomically.
    pub async fn beat(&self, instance: &str, workers: &[String]) -> QueueResult<()> {
        self.beat_running(instance, workers, None).await
    }

    /// Renews the heartbeat as `beat` does, with how many of its workers run now (an autoscaled
    /// pool runs between its minimum and its slots): the heartbeat's value is `<ms>:<running>`.
    pub async fn beat_running(
        &self,
        instance: &str,
        workers: &[String],
        running: Option<usize>,
    ) -> QueueResult<()> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let value = match running {
            Some(running) => format!("{}:{running}", self.now()),
            None => self.now().to_string(),
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(keys.heartbeat(instance))
            .arg(value)
            .arg("PX")
            .arg(self.settings().heartbeat_ttl_ms)
            .ignore();
        if !workers.is_empty() {
            pipe.sadd(keys.workers(), workers).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Moves every retry whose backoff is over back to the waiting list; returns how many moved.
    /// Safe to run from many instances at once (see `lua/promote.lua`).
    pub async fn promote_due(&self) -> QueueResult<usize> {
        const BATCH: isize = 200;
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let mut promoted = 0;
        loop {
            let now = self.now();
            let due: Vec<String> = conn
                .zrangebyscore_limit(keys.retrying(), "-inf", now, 0, BATCH)
                .await?;
            if due.is_empty() {
                return Ok(promoted);
            }
            let mut invocation = self.inner.scripts.promote.prepare_invoke();
            invocation.key(keys.retrying()).key(keys.waiting());
            invocation.arg(now).arg(keys.events());
            for raw in &due {
                match raw.parse::<JobId>() {
                    Ok(id) => invocation.key(keys.job(&id)),
                    // Not ours to run; the script drops it from the schedule like any stale entry.
                    Err(_) => invocation.key(keys.void()),
                };
                invocation.arg(raw);
            }
            let moved: usize = invocation.invoke_async(&mut conn).await?;
            promoted += moved;
            if due.len() < BATCH as usize {
                return Ok(promoted);
            }
        }
    }

    /// Ends the instance's heartbeat and forgets its workers whose lists are empty. Anything still
    /// in a list is now the reaper's to recover.
    pub async fn retire(&self, instance: &str, workers: &[String]) -> QueueResult<()> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let heartbeat = keys.heartbeat(instance);
        let _: i64 = redis::cmd("DEL")
            .arg(&heartbeat)
            .query_async(&mut conn)
            .await?;
        for worker in workers {
            let _: i64 = self
                .inner
                .scripts
                .forget_worker
                .key(&heartbeat)
                .key(keys.processing(worker))
                .key(keys.workers())
                .arg(worker)
                .invoke_async(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// Registers the instance and its workers with a first heartbeat, retrying through Redis errors;
/// `false` if `stop` turned true first. Workers claim only after this, so no processing list
/// exists that the reaper does not know of.
pub(super) async fn register(
    queue: &Queue,
    instance: &str,
    workers: &[String],
    reach: &Reachability,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut delay = ReconnectDelay::new();
    loop {
        let started = Instant::now();
        let beat = queue.beat(instance, workers).await;
        reach.observe(started, beat.is_ok());
        match beat {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot register with redis; retrying");
                if !delay.wait(stop).await {
                    return false;
                }
            }
        }
    }
}

/// Keeps the heartbeat alive until `stop` turns true.
pub(super) async fn heartbeat(
    queue: Queue,
    instance: String,
    workers: Vec<String>,
    size: Arc<super::pool::PoolSize>,
    reach: Arc<Reachability>,
    mut stop: watch::Receiver<bool>,
) {
    let every = queue.settings().heartbeat_interval();
    let mut delay = ReconnectDelay::new();
    loop {
        let started = Instant::now();
        let running = size.running.load(std::sync::atomic::Ordering::SeqCst);
        let beat = queue.beat_running(&instance, &workers, Some(running)).await;
        reach.observe(started, beat.is_ok());
        match beat {
            Ok(()) => delay.reset(),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; retrying");
                if !delay.wait(&mut stop).await {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Every this many reaper runs, the reaper also adopts processing lists of unregistered workers.
const ADOPT_EVERY: u32 = 12;

/// Promotes due retries and reaps dead instances until `stop` turns true. Reaping waits until
/// Redis has been steadily reachable for longer than the heartbeat TTL (see `reachability.rs`).
pub(super) async fn upkeep(
    queue: Queue,
    reach: Arc<Reachability>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = queue.settings();
    let mut reaps = 0u32;
    let mut promote = tokio::time::interval(settings.scheduler_interval());
    let mut reap = tokio::time::interval(settings.reaper_interval());
    promote.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut delay = ReconnectDelay::new();
    loop {
        enum Chore {
            Promote,
            Reap,
        }
        let chore = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = promote.tick() => Chore::Promote,
            _ = reap.tick() => Chore::Reap,
        };
        let started = Instant::now();
        let result = match chore {
            Chore::Promote => queue.promote_due().await.map(|n| {
                if n > 0 {
                    tracing::debug!(promoted = n, "due retries queued again");
                }
            }),
            Chore::Reap if reach.steady_for() <= settings.heartbeat_ttl() => {
                tracing::debug!(
                    "redis was not steadily reachable for a heartbeat TTL; not reaping yet"
                );
                Ok(())
            }
            Chore::Reap => {
                reaps = reaps.wrapping_add(1);
                let adopted = if reaps.is_multiple_of(ADOPT_EVERY) {
                    queue.adopt_unregistered_lists().await.map(drop)
                } else {
                    Ok(())
                };
                match adopted {
                    Ok(()) => queue.reap_dead().await.map(|n| {
                        if n > 0 {
                            tracing::warn!(recovered = n, "recovered jobs of dead instances");
                        }
                    }),
                    Err(e) => Err(e),
                }
            }
        };
        reach.observe(started, result.is_ok());
        match result {
            Ok(()) => delay.reset(),
            Err(e) => {
                tracing::warn!(error = %e, "queue upkeep failed; retrying");
                if !delay.wait(&mut stop).await {
                    return;
                }
            }
        }
    }
}
