//! Rate-limit arithmetic: token buckets per minute and the plan of layers a
//! request is checked against. Pure functions; the gateway's in-process and
//! Redis backends (whose Lua script mirrors [`Bucket::take`]) apply them.
//!
//! A bucket of capacity `C` per minute holds at most `C` units and refills
//! continuously at `C / 60 000` units per millisecond, so a client may burst
//! up to its whole minute and then continue at the sustained rate. Token
//! limits reserve an estimate at admission and settle to the actual usage
//! afterwards; settling may leave a bucket below zero (the next request
//! then waits), which keeps the long-run rate exact.

use serde::{Deserialize, Serialize};

/// Milliseconds in the refill window.
pub const WINDOW_MS: f64 = 60_000.0;

/// State of one token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Units available (may be negative after settling).
    pub level: f64,
    /// When `level` was computed, in milliseconds.
    pub at_ms: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn full(capacity: u64, now_ms: u64) -> Bucket {
        Bucket {
            level: capacity as f64,
            at_ms: now_ms,
        }
    }

    /// The level at `now_ms` after refilling (never above capacity).
    pub fn refilled(self, capacity: u64, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        (self.level + elapsed * capacity as f64 / WINDOW_MS).min(capacity as f64)
    }

    /// Takes `cost` units at `now_ms`: the new state (its `level` is what
    /// remains), or, when refused, milliseconds until `cost` would fit
    /// (`None`: never, the cost exceeds the capacity).
    pub fn take(self, capacity: u64, cost: u64, now_ms: u64) -> Result<Bucket, Option<u64>> {
        let level = self.refilled(capacity, now_ms);
        if cost > capacity {
            return Err(None);
        }
        if level >= cost as f64 {
            Ok(Bucket {
                level: level - cost as f64,
                at_ms: now_ms,
            })
        } else {
            let missing = cost as f64 - level;
            Err(Some((missing * WINDOW_MS / capacity.max(1) as f64).ceil() as u64))
        }
    }

    /// Returns `refund` units (negative: charges more), capped at capacity.
    pub fn settle(self, capacity: u64, refund: i64, now_ms: u64) -> Bucket {
        let level = (self.refilled(capacity, now_ms) + refund as f64).min(capacity as f64);
        Bucket { level, at_ms: now_ms }
    }

    /// Milliseconds until the bucket is full again.
    pub fn reset_ms(remaining: f64, capacity: u64) -> u64 {
        ((capacity as f64 - remaining).max(0.0) * WINDOW_MS / capacity.max(1) as f64).ceil() as u64
    }
}

/// The layers limits apply at, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Global,
    Tenant,
    Environment,
    Key,
}

impl Layer {
    /// Lowercase name for messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Global => "global",
            Layer::Tenant => "tenant",
            Layer::Environment => "environment",
            Layer::Key => "key",
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    Concurrency,
    TokensPerDay,
}

impl LimitKind {
    /// Lowercase name for messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute => "requests_per_min",
            LimitKind::TokensPerMinute => "tokens_per_min",
            LimitKind::Concurrency => "concurrency",
            LimitKind::TokensPerDay => "tokens_per_day",
        }
    }
}

/// Formats milliseconds the way OpenAI's `x-ratelimit-reset-*` headers do
/// (`1s`, `6m0s`, `250ms`).
pub fn format_reset(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{}h{}m{}s", secs / 3600, (secs % 3600) / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_bucket_allows_a_burst_then_refills_at_the_sustained_rate() {
        let mut b = Bucket::full(60, 0);
        for _ in 0..60 {
            b = b.take(60, 1, 0).unwrap();
        }
        assert_eq!(b.take(60, 1, 0), Err(Some(1000)));
        // One unit per second comes back.
        assert!(b.take(60, 1, 1000).is_ok());
    }

    #[test]
    fn a_cost_above_capacity_can_never_fit() {
        assert_eq!(Bucket::full(100, 0).take(100, 101, 0), Err(None));
    }

    #[test]
    fn settling_refunds_unused_reservations_and_charges_overruns() {
        let b = Bucket::full(1000, 0).take(1000, 500, 0).unwrap();
        assert_eq!(b.settle(1000, 300, 0).level, 800.0); // used 200 of 500
        assert_eq!(b.settle(1000, -700, 0).level, -200.0); // used 1200 of 500
        assert_eq!(b.settle(1000, 10_000, 0).level, 1000.0); // capped
    }

    #[test]
    fn reset_durations_use_openai_formatting() {
        assert_eq!(format_reset(250), "250ms");
        assert_eq!(format_reset(1000), "1s");
        assert_eq!(format_reset(360_000), "6m0s");
        assert_eq!(format_reset(3_725_000), "1h2m5s");
    }

    proptest! {
        /// Over any sequence of takes, no more than capacity + elapsed refill is granted.
        #[test]
        fn grants_never_exceed_capacity_plus_refill(cap in 1u64..10_000, steps in proptest::collection::vec((0u64..5_000, 1u64..500), 1..200)) {
            let mut b = Bucket::full(cap, 0);
            let mut now = 0u64;
            let mut granted = 0u64;
            for (dt, cost) in steps {
                now += dt;
                if let Ok(next) = b.take(cap, cost, now) {
                    granted += cost;
                    b = next;
                }
            }
            let bound = cap as f64 + now as f64 * cap as f64 / WINDOW_MS;
            prop_assert!(granted as f64 <= bound + 1e-6);
        }
    }
}
