//! Retry delays: exponential growth from a base, capped, with part of each delay randomised so that
//! jobs failing together (a storage hiccup) do not all come back in the same millisecond.

use rand::Rng;

use super::settings::QueueSettings;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base_ms: u64,
    pub factor: f64,
    pub max_ms: u64,
    /// Share of the delay that is random: the delay is `d * (1 - jitter) + uniform(0, d * jitter)`,
    /// so it never drops below `d * (1 - jitter)` ("equal jitter" when 0.5).
    pub jitter: f64,
}

impl Backoff {
    /// From checked settings (factor at least 1, cap at least the base, jitter within 0..=1).
    pub fn from_settings(s: &QueueSettings) -> Self {
        Self {
            base_ms: s.backoff_base_ms,
            factor: s.backoff_factor,
            max_ms: s.backoff_max_ms,
            jitter: s.backoff_jitter,
        }
    }

    /// The capped delay before retry number `attempt` (1 = after the first failure), without jitter.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.base_ms as f64 * self.factor.powi(exponent);
        if raw.is_finite() && raw < self.max_ms as f64 {
            raw as u64
        } else {
            self.max_ms
        }
    }

    /// The delay to wait before retry number `attempt`, jittered with `rng`.
    pub fn delay_ms(&self, attempt: u32, rng: &mut impl Rng) -> u64 {
        let ceiling = self.ceiling_ms(attempt) as f64;
        let random_part = ceiling * self.jitter;
        let fixed = ceiling - random_part;
        let jitter = if random_part > 0.0 {
            rng.random_range(0.0..=random_part)
        } else {
            0.0
        };
        (fixed + jitter).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn backoff() -> Backoff {
        Backoff {
            base_ms: 1_000,
            factor: 2.0,
            max_ms: 30_000,
            jitter: 0.5,
        }
    }

    #[test]
    fn delays_double_from_the_base_until_the_cap() {
        // The un-jittered ceiling is base * factor^(n-1), capped.
        let b = backoff();
        let ceilings: Vec<u64> = (1..=7).map(|n| b.ceiling_ms(n)).collect();
        assert_eq!(
            ceilings,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        assert_eq!(
            b.ceiling_ms(10_000),
            30_000,
            "huge attempt numbers do not overflow"
        );
    }

    #[test]
    fn jittered_delays_stay_between_half_and_all_of_the_ceiling() {
        // Equal jitter: never below half the ceiling (no instant retry storms), never above it.
        let b = backoff();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=8 {
            let ceiling = b.ceiling_ms(attempt);
            let delays: Vec<u64> = (0..200).map(|_| b.delay_ms(attempt, &mut rng)).collect();
            assert!(delays.iter().all(|&d| d >= ceiling / 2 && d <= ceiling));
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(distinct.len() > 50, "the delays are actually spread out");
        }
    }

    #[test]
    fn zero_jitter_gives_exact_delays() {
        // With jitter off the delay is the ceiling, so operators can reason about exact timings.
        let b = Backoff {
            jitter: 0.0,
            ..backoff()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(b.delay_ms(3, &mut rng), 4_000);
    }
}
