//! Billing decisions as pure functions: UTC hours and months, which part of
//! a range reads rollups and which reads raw rows, how credits cover an
//! amount, the Stripe meter event of a tenant-hour (identifier, timestamp,
//! the 35-day window), export retry delays, and budget thresholds.

use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use uuid::Uuid;

use crate::money::Micros;

/// One hour.
pub const HOUR: ChronoDuration = ChronoDuration::hours(1);

/// The start of the UTC hour holding `t`.
pub fn hour_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(3600) * 3600;
    Utc.timestamp_opt(secs, 0).single().unwrap_or(t)
}

/// The first instant of the UTC month holding `t`.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    month_day(t).and_hms_opt(0, 0, 0).map_or(t, |d| d.and_utc())
}

/// The first day of the UTC month holding `t` (how a month is stored).
pub fn month_day(t: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap_or(t.date_naive())
}

/// The first instant of the UTC month after the one holding `t`.
pub fn next_month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(t, |d| d.and_utc())
}

/// How a report over `[from, to)` is read: whole hours that are rolled up
/// from `usage_hourly`, everything else from raw `usage_records`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeSplit {
    /// Starts of whole hours inside the range that are rolled up.
    pub rolled: Vec<DateTime<Utc>>,
    /// Disjoint, ascending `[start, end)` intervals to read raw.
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Splits `[from, to)` given the rolled-up hours (any order; hours not
/// wholly inside the range are ignored). The rolled hours and the raw
/// intervals are disjoint and together cover the range exactly.
pub fn split_range(from: DateTime<Utc>, to: DateTime<Utc>, rolled_hours: &[DateTime<Utc>]) -> RangeSplit {
    let mut out = RangeSplit::default();
    if from >= to {
        return out;
    }
    let mut rolled: Vec<DateTime<Utc>> = rolled_hours
        .iter()
        .copied()
        .filter(|h| *h == hour_start(*h) && *h >= from && *h + HOUR <= to)
        .collect();
    rolled.sort();
    rolled.dedup();
    let mut cursor = from;
    for h in &rolled {
        if *h > cursor {
            out.raw.push((cursor, *h));
        }
        cursor = *h + HOUR;
    }
    if cursor < to {
        out.raw.push((cursor, to));
    }
    out.rolled = rolled;
    out
}

/// A credit that can still cover usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsableCredit {
    pub id: Uuid,
    pub remaining: Micros,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// How much of `amount` each credit covers: soonest-expiring first (credits
/// without expiry last, older grants first among equals), each at most its
/// remainder. Credits expired at `at` cover nothing.
pub fn apply_credits(amount: Micros, credits: &[UsableCredit], at: DateTime<Utc>) -> Vec<(Uuid, Micros)> {
    let mut usable: Vec<&UsableCredit> = credits
        .iter()
        .filter(|c| c.remaining.0 > 0 && c.expires_at.is_none_or(|e| e > at))
        .collect();
    usable.sort_by_key(|c| (c.expires_at.is_none(), c.expires_at, c.created_at, c.id));
    let mut left = amount.0.max(0);
    let mut out = Vec::new();
    for c in usable {
        if left == 0 {
            break;
        }
        let take = c.remaining.0.min(left);
        out.push((c.id, Micros(take)));
        left -= take;
    }
    out
}

/// Stripe keeps meter events for 35 days; older timestamps are refused.
pub const METER_EVENT_WINDOW: ChronoDuration = ChronoDuration::days(35);
/// Hours closer to the window's edge than this are not sent either (a
/// request in flight must still be inside the window when Stripe reads it).
pub const METER_EVENT_MARGIN: ChronoDuration = ChronoDuration::hours(1);

/// The `identifier` of a tenant-hour's meter event: the same for every
/// resend of one settlement (Stripe drops duplicates), a new one for each
/// correction (revision).
pub fn meter_identifier(tenant_id: Uuid, hour: DateTime<Utc>, revision: i32) -> String {
    format!("cl-{}-{}-r{revision}", tenant_id.simple(), hour.timestamp())
}

/// The `timestamp` of a tenant-hour's meter event: the hour's last second,
/// so the usage lands in the billing period that holds the hour.
pub fn meter_timestamp(hour: DateTime<Utc>) -> DateTime<Utc> {
    hour + HOUR - ChronoDuration::seconds(1)
}

/// Whether Stripe still accepts a meter event for `hour` at `now`.
pub fn meter_event_in_window(hour: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - meter_timestamp(hour) < METER_EVENT_WINDOW - METER_EVENT_MARGIN
}

/// Delay before export attempt `attempt + 1` after `attempt` failures:
/// 30 s doubling to at most an hour, scaled by `jitter` (0.8–1.2 keeps
/// replicas from retrying in step).
pub fn export_retry_delay(attempt: u32, jitter: f64) -> Duration {
    let base = 30u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(10))
        .min(3600);
    Duration::from_secs_f64(base as f64 * jitter.clamp(0.5, 1.5))
}

/// Where a tenant stands against its monthly budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BudgetState {
    /// Below 80 %.
    Under,
    /// 80 % or more: `billing.budget_warning`.
    Warning,
    /// 100 % or more: `billing.budget_exceeded` (and the hard stop, if set).
    Exceeded,
}

/// Percent of the budget at which the warning goes out.
pub const BUDGET_WARNING_PERCENT: i64 = 80;

/// `spent` against `budget` (a budget of 0 or less is always exceeded).
pub fn budget_state(spent: Micros, budget: Micros) -> BudgetState {
    let spent = i128::from(spent.0);
    let budget = i128::from(budget.0);
    if spent >= budget {
        BudgetState::Exceeded
    } else if spent * 100 >= budget * i128::from(BUDGET_WARNING_PERCENT) {
        BudgetState::Warning
    } else {
        BudgetState::Under
    }
}

/// `spent` as a whole percentage of `budget` (rounded down).
pub fn budget_percent(spent: Micros, budget: Micros) -> i64 {
    if budget.0 <= 0 {
        return 100;
    }
    i64::try_from(i128::from(spent.0) * 100 / i128::from(budget.0)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn hours_and_months_are_utc() {
        assert_eq!(hour_start(t("2026-03-01T10:59:59.9Z")), t("2026-03-01T10:00:00Z"));
        assert_eq!(month_start(t("2026-12-31T23:00:00Z")), t("2026-12-01T00:00:00Z"));
        assert_eq!(next_month_start(t("2026-12-31T23:00:00Z")), t("2027-01-01T00:00:00Z"));
        assert_eq!(next_month_start(t("2026-02-10T00:00:00Z")), t("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn a_range_reads_rolled_hours_and_raw_edges() {
        let s = split_range(
            t("2026-03-01T09:30:00Z"),
            t("2026-03-01T13:15:00Z"),
            &[
                t("2026-03-01T10:00:00Z"),
                t("2026-03-01T12:00:00Z"),
                t("2026-03-01T13:00:00Z"),
            ],
        );
        assert_eq!(s.rolled, vec![t("2026-03-01T10:00:00Z"), t("2026-03-01T12:00:00Z")]);
        assert_eq!(
            s.raw,
            vec![
                (t("2026-03-01T09:30:00Z"), t("2026-03-01T10:00:00Z")),
                (t("2026-03-01T11:00:00Z"), t("2026-03-01T12:00:00Z")),
                (t("2026-03-01T13:00:00Z"), t("2026-03-01T13:15:00Z")),
            ]
        );
    }

    proptest! {
        #[test]
        fn rolled_and_raw_cover_the_range_exactly(start in 0i64..200_000, len in 0i64..100_000,
                                                 hours in proptest::collection::vec(0i64..90, 0..40)) {
            let base = t("2026-01-01T00:00:00Z");
            let from = base + ChronoDuration::seconds(start);
            let to = from + ChronoDuration::seconds(len);
            let rolled: Vec<_> = hours.iter().map(|h| base + ChronoDuration::hours(*h)).collect();
            let s = split_range(from, to, &rolled);
            let mut pieces: Vec<(DateTime<Utc>, DateTime<Utc>)> = s.raw.clone();
            pieces.extend(s.rolled.iter().map(|h| (*h, *h + HOUR)));
            pieces.sort();
            let mut cursor = from;
            for (a, b) in &pieces {
                prop_assert_eq!(*a, cursor);
                prop_assert!(b > a);
                cursor = *b;
            }
            prop_assert!(cursor == to || from >= to);
        }

        #[test]
        fn credits_never_cover_more_than_the_amount_or_their_remainder(
            amount in 0i64..10_000_000, rem in proptest::collection::vec(0i64..3_000_000, 0..6)) {
            let now = t("2026-03-01T00:00:00Z");
            let credits: Vec<UsableCredit> = rem.iter().enumerate().map(|(i, r)| UsableCredit {
                id: Uuid::from_u128(i as u128 + 1),
                remaining: Micros(*r),
                expires_at: Some(now + ChronoDuration::days(i as i64 + 1)),
                created_at: now,
            }).collect();
            let taken = apply_credits(Micros(amount), &credits, now);
            let total: i64 = taken.iter().map(|(_, m)| m.0).sum();
            prop_assert_eq!(total, amount.min(rem.iter().sum()));
            for (id, m) in &taken {
                let c = credits.iter().find(|c| c.id == *id).unwrap();
                prop_assert!(m.0 <= c.remaining.0 && m.0 > 0);
            }
        }
    }

    #[test]
    fn soonest_expiring_credit_goes_first_and_expired_ones_never() {
        let now = t("2026-03-10T00:00:00Z");
        let c = |n: u128, rem: i64, exp: Option<&str>| UsableCredit {
            id: Uuid::from_u128(n),
            remaining: Micros(rem),
            expires_at: exp.map(t),
            created_at: t("2026-01-01T00:00:00Z"),
        };
        let credits = [
            c(1, 100, None),
            c(2, 50, Some("2026-04-01T00:00:00Z")),
            c(3, 70, Some("2026-03-15T00:00:00Z")),
            c(4, 999, Some("2026-03-09T00:00:00Z")),
        ];
        let taken = apply_credits(Micros(150), &credits, now);
        assert_eq!(
            taken,
            vec![
                (Uuid::from_u128(3), Micros(70)),
                (Uuid::from_u128(2), Micros(50)),
                (Uuid::from_u128(1), Micros(30))
            ]
        );
    }

    #[test]
    fn meter_events_are_named_by_tenant_hour_and_revision() {
        let tenant = Uuid::from_u128(7);
        let hour = t("2026-03-01T10:00:00Z");
        assert_eq!(
            meter_identifier(tenant, hour, 0),
            "cl-00000000000000000000000000000007-1772359200-r0"
        );
        assert!(meter_identifier(tenant, hour, 0).len() <= 100);
        assert_eq!(meter_timestamp(hour), t("2026-03-01T10:59:59Z"));
        assert!(meter_event_in_window(hour, t("2026-04-04T00:00:00Z")));
        assert!(!meter_event_in_window(hour, t("2026-04-05T10:30:00Z")));
    }

    #[test]
    fn export_retries_back_off_to_an_hour() {
        assert_eq!(export_retry_delay(1, 1.0), Duration::from_secs(30));
        assert_eq!(export_retry_delay(2, 1.0), Duration::from_secs(60));
        assert_eq!(export_retry_delay(30, 1.0), Duration::from_secs(3600));
    }

    #[test]
    fn budget_thresholds() {
        assert_eq!(budget_state(Micros(79), Micros(100)), BudgetState::Under);
        assert_eq!(budget_state(Micros(80), Micros(100)), BudgetState::Warning);
        assert_eq!(budget_state(Micros(100), Micros(100)), BudgetState::Exceeded);
        assert_eq!(budget_percent(Micros(250), Micros(1000)), 25);
    }
}
