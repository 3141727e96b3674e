//! Exact amounts between Rust and PostgreSQL: [`Femtos`] (10⁻¹⁵ USD) are
//! stored as `numeric(38,9)` micro-dollars, which hold them exactly.

use crosslogic_core::Femtos;
use rust_decimal::Decimal;

/// Decimal places of the micro-dollar columns that hold exact amounts.
const SCALE: u32 = 9;

/// `f` as exact micro-dollars (`1.4` µ$ for 1,400,000,000 fµ$). Amounts
/// beyond `Decimal`'s 28 digits (10¹³ USD) saturate.
pub fn to_numeric(f: Femtos) -> Decimal {
    Decimal::try_from_i128_with_scale(f.0, SCALE).unwrap_or(if f.0 < 0 { Decimal::MIN } else { Decimal::MAX })
}

/// Exact micro-dollars read back (digits below 10⁻⁹ µ$ cannot occur in
/// these columns; they would be rounded away).
pub fn from_numeric(d: Decimal) -> Femtos {
    let mut d = d;
    d.rescale(SCALE);
    let m = d.mantissa();
    // rescale keeps the value when it fits at scale 9; otherwise the
    // mantissa is at a smaller scale: scale it up.
    let scale = d.scale();
    if scale == SCALE {
        Femtos(m)
    } else {
        Femtos(m.saturating_mul(10i128.pow(SCALE - scale.min(SCALE))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_amounts_round_trip() {
        for v in [0i128, 1, 1_400_000_000, 999_999_999_999, -5, 123_456_789_012_345_678] {
            assert_eq!(from_numeric(to_numeric(Femtos(v))), Femtos(v), "{v}");
        }
        assert_eq!(to_numeric(Femtos(1_400_000_000)).to_string(), "1.400000000");
        assert_eq!(from_numeric(Decimal::new(14, 1)), Femtos(1_400_000_000));
        assert_eq!(from_numeric(Decimal::new(3, 0)), Femtos(3_000_000_000));
    }
}
