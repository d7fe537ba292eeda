//! A token bucket: at most `per_second` actions a second on average, in bursts of up to as many.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Full at first.
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second);
        Self {
            per_second,
            tokens: per_second,
            last: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token.
    pub fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.per_second).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_empties_the_bucket_and_time_refills_it() {
        let mut bucket = TokenBucket::new(5);
        assert_eq!((0..8).filter(|_| bucket.take()).count(), 5);
        assert!(bucket.wait() > Duration::ZERO);
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!((0..8).filter(|_| bucket.take()).count(), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            (0..8).filter(|_| bucket.take()).count(),
            5,
            "never more than a burst"
        );
    }
}
