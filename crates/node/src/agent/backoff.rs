//! Exponential backoff with jitter between retries of a call to the control
//! plane, so a fleet of agents does not retry in lockstep after an outage.

use std::time::Duration;

use rand::Rng;

/// The first delay.
const INITIAL: Duration = Duration::from_millis(500);
/// The longest delay.
const MAX: Duration = Duration::from_secs(30);

/// Successive delays: 0.5 s, 1 s, 2 s, … up to 30 s, each drawn uniformly
/// from its upper half ("equal jitter").
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: INITIAL }
    }
}

impl Backoff {
    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (ceiling * 2).min(MAX);
        let half = ceiling / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds_and_stop_growing_at_the_cap() {
        let mut backoff = Backoff::default();
        let mut ceiling = INITIAL;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} outside {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(MAX);
        }
        assert_eq!(ceiling, MAX);
    }
}
