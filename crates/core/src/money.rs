//! Money in integer micro-dollars and token pricing.
//!
//! Floating point never touches an amount: prices are integer micro-dollars
//! per million tokens, region multipliers are integer thousandths, so the
//! cost of any request is a whole number of femto-dollars (10⁻¹⁵ USD) —
//! [`Femtos`], exact. Amounts are kept exact per request and summed exactly;
//! they are rounded to whole micro-dollars ([`Micros`]) once, where an amount
//! leaves the system (an invoice line, a meter event, a balance shown), never
//! per request: rounding 28 tokens at $0.05/M (1.4 µ$) to 1 µ$ per request
//! would under-bill small requests by 30 % and more.

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

/// Femto-dollars in one micro-dollar.
pub const FEMTOS_PER_MICRO: i128 = 1_000_000_000;

/// An exact amount in femto-dollars (10⁻¹⁵ USD): the product of a token
/// count, a price in micro-dollars per million tokens and a multiplier in
/// thousandths is always a whole number of them. `i128` holds any sum of
/// them the platform can meet (±1.7 × 10²³ USD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Femtos(pub i128);

impl Femtos {
    /// Zero dollars.
    pub const ZERO: Femtos = Femtos(0);

    /// A whole number of micro-dollars, exactly.
    pub fn from_micros(m: Micros) -> Femtos {
        Femtos(i128::from(m.0) * FEMTOS_PER_MICRO)
    }

    /// Rounded to the nearest whole micro-dollar, halves away from zero —
    /// the one rounding an amount gets, when it leaves the system.
    pub fn round_micros(self) -> Micros {
        let half = FEMTOS_PER_MICRO / 2;
        let q = if self.0 >= 0 {
            (self.0 + half) / FEMTOS_PER_MICRO
        } else {
            (self.0 - half) / FEMTOS_PER_MICRO
        };
        Micros(i64::try_from(q).unwrap_or(if q > 0 { i64::MAX } else { i64::MIN }))
    }

    /// Saturating addition (sums never wrap).
    pub fn saturating_add(self, other: Femtos) -> Femtos {
        Femtos(self.0.saturating_add(other.0))
    }
}

impl std::iter::Sum for Femtos {
    fn sum<I: Iterator<Item = Femtos>>(iter: I) -> Femtos {
        iter.fold(Femtos::ZERO, Femtos::saturating_add)
    }
}

/// A token price: micro-dollars per million tokens (USD 0.05 / 1M = 50_000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PricePerMillion(pub i64);

/// The exact cost of one request:
/// `(prompt × input price + completion × output price) × multiplier`, where
/// `multiplier_milli` is the region's cost multiplier in thousandths
/// (0.7 → 700). Never negative.
pub fn request_cost(
    prompt_tokens: u64,
    completion_tokens: u64,
    input: PricePerMillion,
    output: PricePerMillion,
    multiplier_milli: u32,
) -> Femtos {
    // tokens × µ$/M = 10⁻⁶ µ$ = 10⁻¹² $; × milli = 10⁻¹⁵ $: femto-dollars.
    let raw = i128::from(prompt_tokens) * i128::from(input.0.max(0))
        + i128::from(completion_tokens) * i128::from(output.0.max(0));
    Femtos(raw.saturating_mul(i128::from(multiplier_milli)))
}

/// [`request_cost`] rounded to a whole micro-dollar: what one request shows
/// on its own (`usage_records.cost_microdollars`). Totals never add these:
/// they add the exact costs and round the sum.
pub fn cost_microdollars(
    prompt_tokens: u64,
    completion_tokens: u64,
    input: PricePerMillion,
    output: PricePerMillion,
    multiplier_milli: u32,
) -> Micros {
    request_cost(prompt_tokens, completion_tokens, input, output, multiplier_milli).round_micros()
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

    #[test]
    fn exact_cost_keeps_what_rounding_per_request_would_drop() {
        // 28 tokens at $0.05/M = 1.4 µ$ exactly; 10 tokens at $0.03/M = 0.3 µ$.
        let a = request_cost(28, 0, PricePerMillion(50_000), PricePerMillion(0), 1000);
        assert_eq!(a, Femtos(1_400_000_000));
        let b = request_cost(10, 0, PricePerMillion(30_000), PricePerMillion(0), 1000);
        assert_eq!(b, Femtos(300_000_000));
        assert_eq!(b.round_micros(), Micros(0));
        // A thousand such requests are 300 µ$, not 0.
        let total: Femtos = std::iter::repeat_n(b, 1000).sum();
        assert_eq!(total.round_micros(), Micros(300));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(Femtos(499_999_999).round_micros(), Micros(0));
        assert_eq!(Femtos(500_000_000).round_micros(), Micros(1));
        assert_eq!(Femtos(-500_000_000).round_micros(), Micros(-1));
        assert_eq!(Femtos(-499_999_999).round_micros(), Micros(0));
        assert_eq!(Femtos::from_micros(Micros(7)).round_micros(), Micros(7));
    }

    proptest! {
        #[test]
        fn rounding_a_sum_is_within_half_a_micro_of_the_exact_sum(costs in proptest::collection::vec(0i128..10_000_000_000_000, 0..200)) {
            let exact: i128 = costs.iter().sum();
            let billed = Femtos(exact).round_micros();
            let diff = i128::from(billed.0) * FEMTOS_PER_MICRO - exact;
            prop_assert!(diff.abs() <= FEMTOS_PER_MICRO / 2);
        }

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
