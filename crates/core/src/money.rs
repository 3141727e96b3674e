//! Money in integer micro-dollars and token pricing.
//!
//! Floating point never touches an amount: prices are integer micro-dollars
//! per million tokens, region multipliers are integer thousandths, and the
//! product is computed in `i128` and rounded half-up once.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of US dollars in millionths (1 USD = 1,000,000 micros).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    /// Zero dollars.
    pub const ZERO: Micros = Micros(0);

    /// Saturating addition, for running totals that must never wrap.
    pub fn saturating_add(self, other: Micros) -> Micros {
        Micros(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Micros {
    /// Formats as dollars with six decimals: `$0.000150`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

/// A token price: micro-dollars per million tokens (USD 0.05 / 1M = 50_000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PricePerMillion(pub i64);

/// Cost of one request in micro-dollars:
/// `(prompt × input price + completion × output price) × multiplier`, where
/// `multiplier_milli` is the region's cost multiplier in thousandths
/// (0.7 → 700). Rounded half-up to a whole micro-dollar; never negative.
pub fn cost_microdollars(
    prompt_tokens: u64,
    completion_tokens: u64,
    input: PricePerMillion,
    output: PricePerMillion,
    multiplier_milli: u32,
) -> Micros {
    let raw = i128::from(prompt_tokens) * i128::from(input.0.max(0))
        + i128::from(completion_tokens) * i128::from(output.0.max(0));
    // raw is micro-dollars × 1e6 (per-million price); scale by multiplier/1000.
    let scaled = raw * i128::from(multiplier_milli);
    let divisor: i128 = 1_000_000 * 1_000;
    let rounded = (scaled + divisor / 2) / divisor;
    Micros(i64::try_from(rounded).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn llama_8b_in_mumbai_costs_what_the_price_list_says() {
        // 1M prompt + 1M completion tokens at $0.05/M each, × 0.7 = $0.07.
        let c = cost_microdollars(
            1_000_000,
            1_000_000,
            PricePerMillion(50_000),
            PricePerMillion(50_000),
            700,
        );
        assert_eq!(c, Micros(70_000));
        assert_eq!(c.to_string(), "$0.070000");
    }

    #[test]
    fn small_requests_round_half_up() {
        // 10 tokens × $0.05/M = 0.5 micro-dollars → rounds to 1.
        assert_eq!(
            cost_microdollars(10, 0, PricePerMillion(50_000), PricePerMillion(0), 1000),
            Micros(1)
        );
        // 9 tokens → 0.45 → 0.
        assert_eq!(
            cost_microdollars(9, 0, PricePerMillion(50_000), PricePerMillion(0), 1000),
            Micros(0)
        );
    }

    proptest! {
        #[test]
        fn cost_is_monotonic_in_tokens(p in 0u64..10_000_000, c in 0u64..10_000_000, extra in 0u64..1_000_000,
                                       pin in 0i64..100_000_000, pout in 0i64..100_000_000, m in 1u32..5_000) {
            let a = cost_microdollars(p, c, PricePerMillion(pin), PricePerMillion(pout), m);
            let b = cost_microdollars(p + extra, c, PricePerMillion(pin), PricePerMillion(pout), m);
            prop_assert!(b >= a);
            prop_assert!(a.0 >= 0);
        }
    }
}
