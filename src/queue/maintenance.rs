//! The upkeep every worker instance runs beside its workers: its heartbeat (which tells the others
//! it is alive), the scheduler that promotes due retries, and the reaper that recovers the jobs of
//! instances whose heartbeat expired. All three survive Redis errors by waiting and trying again.

use std::time::Duration;

use tokio::sync::watch;

use super::client::{Queue, QueueResult};
use super::reconnect::ReconnectDelay;

impl Queue {
    /// Renews the instance's heartbeat and registers its workers, atomically.
    pub async fn beat(&self, instance: &str, workers: &[String]) -> QueueResult<()> {
        let keys = self.keys();
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(keys.heartbeat(instance))
            .arg(self.now())
            .arg("PX")
            .arg(self.settings().heartbeat_ttl_ms.max(1))
            .ignore();
        if !workers.is_empty() {
            pipe.sadd(keys.workers(), workers).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
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

/// Keeps the heartbeat alive until `stop` turns true.
pub(crate) async fn heartbeat(
    queue: Queue,
    instance: String,
    workers: Vec<String>,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(queue.settings().heartbeat_interval_ms.max(10));
    let mut delay = ReconnectDelay::new();
    loop {
        match queue.beat(&instance, &workers).await {
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

/// Promotes due retries and reaps dead instances until `stop` turns true.
pub(crate) async fn upkeep(queue: Queue, mut stop: watch::Receiver<bool>) {
    let settings = queue.settings();
    let mut promote = tokio::time::interval(Duration::from_millis(
        settings.scheduler_interval_ms.max(10),
    ));
    let mut reap =
        tokio::time::interval(Duration::from_millis(settings.reaper_interval_ms.max(10)));
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
        let result = match chore {
            Chore::Promote => queue.promote_due().await.map(|n| {
                if n > 0 {
                    tracing::debug!(promoted = n, "due retries queued again");
                }
            }),
            Chore::Reap => queue.reap_dead().await.map(|n| {
                if n > 0 {
                    tracing::warn!(recovered = n, "recovered jobs of dead instances");
                }
            }),
        };
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
