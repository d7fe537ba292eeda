//! Whether Redis has been steadily reachable. An expired heartbeat proves its instance dead only
//! if that instance could have renewed it: after an outage or a stall longer than the heartbeat
//! TTL every heartbeat has expired, live instances' too, and reaping then would run their jobs
//! twice. Each upkeep call (heartbeat, promotion, reaping) reports how it went; a failure, or an
//! answer slow enough for a heartbeat to lapse under it (`heartbeat_stall_limit`), restarts the
//! clock, and the reaper waits until Redis has answered promptly for longer than the heartbeat TTL.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub(super) struct Reachability {
    steady_since: Mutex<Instant>,
    /// An answer slower than this may have let live heartbeats lapse.
    slow: Duration,
}

impl Reachability {
    /// Counting from now: a starting instance also waits a TTL before it reaps.
    pub fn new(slow: Duration) -> Self {
        Self {
            steady_since: Mutex::new(Instant::now()),
            slow,
        }
    }

    /// Reports a call to Redis that began at `started` and succeeded or not.
    pub fn observe(&self, started: Instant, ok: bool) {
        if !ok || started.elapsed() > self.slow {
            *self.lock() = Instant::now();
        }
    }

    /// How long Redis has answered every call, promptly.
    pub fn steady_for(&self) -> Duration {
        self.lock().elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        // No await while held; a poisoned lock still holds a valid instant.
        self.steady_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_slow_call_restarts_the_clock_and_prompt_ones_do_not() {
        let reach = Reachability::new(Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(5)).await;
        let started = Instant::now();
        tokio::time::advance(Duration::from_millis(100)).await;
        reach.observe(started, true);
        assert!(reach.steady_for() >= Duration::from_secs(5));

        let started = Instant::now();
        tokio::time::advance(Duration::from_secs(30)).await; // Redis frozen under the call
        reach.observe(started, true);
        assert_eq!(reach.steady_for(), Duration::ZERO);

        tokio::time::advance(Duration::from_secs(3)).await;
        reach.observe(Instant::now(), false);
        assert_eq!(reach.steady_for(), Duration::ZERO);
    }
}
