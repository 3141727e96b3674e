//! Decimal amounts (prices, multipliers) read from JSON without losing
//! precision, converted to integer units (micro-dollars, thousandths).
//!
//! A client may send a JSON string (`"0.05"`), parsed digit by digit, or a
//! JSON number (`0.05`). Without serde_json's `arbitrary_precision` a number
//! arrives as an `f64`; it is converted through its shortest round-trip
//! decimal form (Rust's `Display` for `f64`, which never uses an exponent),
//! which is exactly the text the client wrote for every value of up to 15
//! significant digits. Either way the digits are then scaled exactly, and a
//! value with more decimal places than the unit allows is refused rather
//! than rounded.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::ServiceError;

/// A decimal number as a client sent it, kept as text until it is scaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(String);

impl Decimal {
    /// A decimal from its text, e.g. `"0.05"`.
    pub fn new(text: impl Into<String>) -> Decimal {
        Decimal(text.into().trim().to_owned())
    }

    /// The value × 10^`scale` as an integer; `None` when the text is not a
    /// plain decimal (digits, one optional point, optional leading sign),
    /// has more than `scale` decimal places, or is absurdly large.
    pub fn scaled(&self, scale: u32) -> Option<i128> {
        let (negative, body) = match self.0.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, self.0.strip_prefix('+').unwrap_or(&self.0)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits_only(int) || !digits_only(frac) || int.len() > 30 {
            return None;
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > scale as usize {
            return None;
        }
        let mut value: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let value = value.checked_mul(10i128.checked_pow(scale - frac.len() as u32)?)?;
        Some(if negative { -value } else { value })
    }

    /// Integer units (`scale` decimal places) within `min..=max` units, or an
    /// error naming `field` and what it accepts.
    pub fn units(&self, field: &'static str, scale: u32, min: i64, max: i64) -> Result<i64, ServiceError> {
        let accepted = || {
            format!(
                "must be a decimal number from {} to {} with at most {scale} decimal places, got {}",
                render(min, scale),
                render(max, scale),
                self.0
            )
        };
        match self.scaled(scale) {
            Some(v) if (i128::from(min)..=i128::from(max)).contains(&v) => Ok(v as i64),
            _ => Err(ServiceError::invalid(field, accepted())),
        }
    }
}

/// `units` / 10^`scale` as exact decimal text (`50000`, 6 → `0.05`).
pub fn render(units: i64, scale: u32) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let div = 10u64.pow(scale);
    let frac = format!("{:0width$}", abs % div, width = scale as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{}", abs / div)
    } else {
        format!("{sign}{}.{frac}", abs / div)
    }
}

/// `units` / 10^`scale` as a JSON number (the nearest `f64`, which prints
/// as the exact decimal for every value the catalog can hold).
pub fn to_f64(units: i64, scale: u32) -> f64 {
    units as f64 / 10f64.powi(scale as i32)
}

/// In the OpenAPI document: a JSON string (exact) or a JSON number.
impl utoipa::PartialSchema for Decimal {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[-+]?[0-9]*\.?[0-9]+$")),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some(
                "A decimal number: a JSON string (exact, e.g. \"0.05\") or a JSON number",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Decimal {}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number such as 0.05 or \"0.05\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
                Ok(Decimal(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
                Ok(Decimal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
                if v.is_finite() {
                    Ok(Decimal(v.to_string()))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                Ok(Decimal::new(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(json: &str) -> Decimal {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_and_strings_scale_exactly() {
        assert_eq!(parse("0.05").scaled(6), Some(50_000));
        assert_eq!(parse("\"0.05\"").scaled(6), Some(50_000));
        assert_eq!(parse("0.7").scaled(3), Some(700));
        assert_eq!(parse("1.1").scaled(3), Some(1_100));
        assert_eq!(parse("0.1").scaled(6), Some(100_000));
        assert_eq!(parse("5").scaled(4), Some(50_000));
        assert_eq!(parse("999999.999999").scaled(6), Some(999_999_999_999));
        assert_eq!(parse("0.000001").scaled(6), Some(1));
        assert_eq!(parse("1e-6").scaled(6), Some(1), "exponent form of a JSON number");
        assert_eq!(parse("\"2.50\"").scaled(1), Some(25), "trailing zeros are not places");
        assert_eq!(parse("-0.5").scaled(1), Some(-5));
    }

    #[test]
    fn too_many_places_or_garbage_are_refused() {
        assert_eq!(parse("0.0000001").scaled(6), None);
        assert_eq!(parse("0.7005").scaled(3), None);
        for bad in [
            "\"\"",
            "\".\"",
            "\"1.2.3\"",
            "\"abc\"",
            "\"1e3\"",
            "\"0x10\"",
            "\" 1 2\"",
        ] {
            assert_eq!(parse(bad).scaled(6), None, "{bad}");
        }
        assert!(serde_json::from_str::<Decimal>("true").is_err());
    }

    #[test]
    fn units_name_the_field_and_the_range() {
        let err = Decimal::new("0").units("cost_multiplier", 3, 1, 100_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cost_multiplier: must be a decimal number from 0.001 to 100 with at most 3 decimal places, got 0"
        );
        assert_eq!(Decimal::new("100").units("m", 3, 1, 100_000).unwrap(), 100_000);
        assert!(Decimal::new("100.001").units("m", 3, 1, 100_000).is_err());
    }

    #[test]
    fn rendering_is_exact() {
        assert_eq!(render(50_000, 6), "0.05");
        assert_eq!(render(1_200_000, 6), "1.2");
        assert_eq!(render(0, 6), "0");
        assert_eq!(render(700, 3), "0.7");
        assert_eq!(to_f64(50_000, 6).to_string(), "0.05");
        assert_eq!(to_f64(1_650_000, 6).to_string(), "1.65");
    }
}
