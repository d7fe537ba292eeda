//! How long to wait before trying Redis again after an error: doubling from 100 ms to 5 s with
//! jitter, so a Redis outage costs each task a handful of attempts a minute, never a busy loop, and
//! many workers do not reconnect in lockstep.

use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

pub(crate) struct ReconnectDelay {
    next: Duration,
}

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

impl ReconnectDelay {
    pub fn new() -> Self {
        Self { next: FIRST }
    }

    /// True once it has waited since the last reset: a success now is a reconnection.
    pub fn has_waited(&self) -> bool {
        self.next > FIRST
    }

    /// Called after a success: the next failure waits briefly again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// Sleeps for the next delay; returns `false` early if `stop` becomes true meanwhile.
    pub async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let jittered = self.next.mul_f64(rand::rng().random_range(0.5..=1.0));
        self.next = (self.next * 2).min(MAX);
        tokio::select! {
            _ = tokio::time::sleep(jittered) => true,
            _ = stop.wait_for(|s| *s) => false,
        }
    }
}
