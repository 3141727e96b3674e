//! The `from`/`to` time range of the report routes (usage, costs, revenue,
//! exports): parsed, defaulted and bounded, with a 422 naming the parameter
//! at fault.
//!
//! Each bound is an RFC 3339 timestamp (`2024-05-01T12:00:00Z`) or a UTC date
//! (`2024-05-01`). A date in `from` means the start of that day; a date in
//! `to` means the end of that day, so `from=2024-05-01&to=2024-05-31` is the
//! whole of May. The range is half-open, `[from, to)`. Defaults: `to` = now,
//! `from` = `to` − 7 days. At most [`MAX_DAYS`] days.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};

use crate::ApiError;

/// Default length of a range without `from`.
pub const DEFAULT_DAYS: i64 = 7;
/// Longest range accepted.
pub const MAX_DAYS: i64 = 93;

/// A validated half-open range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Which bound is parsed: a date means the start (`from`) or end (`to`) of its day.
#[derive(Clone, Copy)]
enum Bound {
    From,
    To,
}

impl Bound {
    fn param(self) -> &'static str {
        match self {
            Bound::From => "from",
            Bound::To => "to",
        }
    }
}

fn parse_bound(raw: &str, bound: Bound) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = match bound {
            Bound::From => Some(d),
            Bound::To => d.succ_opt(),
        };
        if let Some(start) = day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok(start.and_utc());
        }
    }
    let param = bound.param();
    Err(ApiError::invalid_value(
        param,
        format!(
            "Invalid `{param}` {raw:?}: expected an RFC 3339 timestamp such as 2024-05-01T00:00:00Z \
             or a date such as 2024-05-01."
        ),
    ))
}

/// `2024-05-01T00:00:00Z` (fractional seconds only when present).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses and checks `from`/`to` against `now` (at most [`MAX_DAYS`]).
pub fn parse(from: Option<&str>, to: Option<&str>, now: DateTime<Utc>) -> Result<Range, ApiError> {
    parse_within(from, to, now, DEFAULT_DAYS, MAX_DAYS)
}

/// [`parse`] with another default length and maximum (reports over
/// rollups may span a year).
pub fn parse_within(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
    default_days: i64,
    max_days: i64,
) -> Result<Range, ApiError> {
    let to = match to {
        Some(raw) => parse_bound(raw, Bound::To)?,
        None => now,
    };
    let from = match from {
        Some(raw) => parse_bound(raw, Bound::From)?,
        None => to - Duration::days(default_days),
    };
    if from >= to {
        return Err(ApiError::invalid_value(
            "to",
            format!("`to` ({}) must be later than `from` ({}).", rfc3339(to), rfc3339(from)),
        ));
    }
    if to - from > Duration::days(max_days) {
        return Err(ApiError::invalid_value(
            "from",
            format!("The range from `from` to `to` spans more than {max_days} days; request a shorter range."),
        ));
    }
    Ok(Range { from, to })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn defaults_to_the_last_seven_days() {
        let now = at("2024-05-10T12:00:00Z");
        assert_eq!(
            parse(None, None, now).unwrap(),
            Range {
                from: at("2024-05-03T12:00:00Z"),
                to: now
            }
        );
    }

    #[test]
    fn dates_cover_whole_days_and_timestamps_keep_their_offset() {
        let now = at("2024-06-10T00:00:00Z");
        let r = parse(Some("2024-05-01"), Some("2024-05-31"), now).unwrap();
        assert_eq!(r.from, at("2024-05-01T00:00:00Z"));
        assert_eq!(r.to, at("2024-06-01T00:00:00Z"));
        let r = parse(Some("2024-05-01T02:00:00+02:00"), Some("2024-05-01"), now).unwrap();
        assert_eq!(r.from, at("2024-05-01T00:00:00Z"));
        assert_eq!(r.to, at("2024-05-02T00:00:00Z"));
        // Only `to`: seven days before it.
        let r = parse(None, Some("2024-05-01T00:00:00Z"), now).unwrap();
        assert_eq!(r.from, at("2024-04-24T00:00:00Z"));
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let now = Utc::now();
        for (from, to, param) in [
            (Some("yesterday"), None, "from"),
            (Some(""), None, "from"),
            (None, Some("2024-13-01"), "to"),
            (None, Some("2024-05-01 00:00:00"), "to"),
            (Some("2024-05-02"), Some("2024-05-01"), "to"),
            (Some("2024-05-01T00:00:00Z"), Some("2024-05-01T00:00:00Z"), "to"),
            (Some("2024-01-01"), Some("2024-06-01"), "from"),
        ] {
            let err = parse(from, to, now).unwrap_err();
            assert_eq!(err.status, 422, "{from:?} {to:?}");
            assert_eq!(err.param.as_deref(), Some(param), "{from:?} {to:?}: {}", err.message);
            assert!(err.message.contains(&format!("`{param}`")), "{}", err.message);
        }
    }

    #[test]
    fn the_longest_range_is_accepted() {
        let now = at("2024-06-10T00:00:00Z");
        let r = parse(Some("2024-01-01T00:00:00Z"), Some("2024-04-03T00:00:00Z"), now).unwrap();
        assert_eq!(r.to - r.from, Duration::days(MAX_DAYS));
    }
}
