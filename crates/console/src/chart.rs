//! Traffic over the last hour, day or week, and charts of it.
//!
//! The last hour reads raw usage rows per minute (exact percentiles); a day
//! or a week reads the hourly rollups (`crosslogic_billing::report`) plus
//! the hours not rolled up yet, so a page costs the same with a year of
//! data. A chart is its data embedded as JSON, drawn by uPlot in the
//! browser (`assets/console.js`), with the same figures in a table for
//! keyboards, screen readers and pages without JavaScript.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use crosslogic_billing::report::{self, Scope, UsageGroup};
use crosslogic_db::repo::{rollups, usage};
use crosslogic_db::{DbError, PgPool};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// `?range=` of pages with charts.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Range {
    #[default]
    Hour,
    Day,
    Week,
}

impl Range {
    fn label(self) -> &'static str {
        match self {
            Range::Hour => "last hour",
            Range::Day => "last 24 hours",
            Range::Week => "last 7 days",
        }
    }
}

/// Query of pages with charts.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RangeQuery {
    #[serde(default)]
    pub range: Range,
}

/// One point of a traffic series.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Point {
    pub requests: i64,
    pub failed: i64,
    pub tokens: i64,
    /// Spend in micro-dollars (day and week ranges).
    pub cost_micros: Option<i64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A traffic series: points at `step_secs` intervals from the first key.
#[derive(Debug, Clone)]
pub(crate) struct Traffic {
    pub range: Range,
    pub step_secs: i64,
    pub points: BTreeMap<DateTime<Utc>, Point>,
}

/// Totals of the last hour (exact, from raw rows).
#[derive(Debug, Clone, Default)]
pub(crate) struct LastHour {
    pub requests: i64,
    pub failed: i64,
    pub tokens: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl LastHour {
    pub fn per_sec(v: i64) -> f64 {
        v as f64 / 3600.0
    }

    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.failed as f64 / self.requests as f64)
    }
}

/// Whose traffic: every tenant, a tenant, or one of its keys.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Whose {
    pub tenant: Option<Uuid>,
    pub key: Option<Uuid>,
}

/// The last hour's totals.
pub(crate) async fn last_hour(pool: &PgPool, whose: Whose) -> Result<LastHour, DbError> {
    let now = Utc::now();
    // One bucket wider than the window: the whole hour in one row.
    let rows = usage::traffic(
        pool,
        whose.tenant,
        whose.key,
        now - TimeDelta::hours(1),
        now,
        1_000_000_000,
    )
    .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|b| LastHour {
            requests: b.requests,
            failed: b.failed_requests,
            tokens: b.total_tokens,
            p50_ms: b.p50_latency_ms,
            p99_ms: b.p99_latency_ms,
        })
        .unwrap_or_default())
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// Traffic over `range`.
pub(crate) async fn traffic(pool: &PgPool, whose: Whose, range: Range) -> Result<Traffic, DbError> {
    let now = Utc::now();
    if range == Range::Hour {
        let from = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now) - TimeDelta::minutes(59);
        let mut points: BTreeMap<_, _> = (0..60)
            .map(|i| (from + TimeDelta::minutes(i), Point::default()))
            .collect();
        for b in usage::traffic(pool, whose.tenant, whose.key, from, now, 60).await? {
            points.insert(
                b.at,
                Point {
                    requests: b.requests,
                    failed: b.failed_requests,
                    tokens: b.total_tokens,
                    cost_micros: None,
                    p50_ms: b.p50_latency_ms,
                    p99_ms: b.p99_latency_ms,
                },
            );
        }
        return Ok(Traffic {
            range,
            step_secs: 60,
            points,
        });
    }
    let hours = if range == Range::Day { 24 } else { 24 * 7 };
    let from = hour_floor(now) - TimeDelta::hours(hours - 1);
    let mut points: BTreeMap<_, _> = (0..hours)
        .map(|i| (from + TimeDelta::hours(i), Point::default()))
        .collect();
    let scope = match whose.tenant {
        Some(tenant_id) => Scope::Tenant {
            tenant_id,
            api_key_id: whose.key,
        },
        None => Scope::Platform,
    };
    for row in report::usage(pool, scope, from, now, UsageGroup::Hour, false).await? {
        let Ok(at) = DateTime::parse_from_rfc3339(&row.group_key) else {
            continue;
        };
        let p = points.entry(at.with_timezone(&Utc)).or_default();
        p.requests = row.requests;
        p.failed = row.failed_requests;
        p.tokens = row.total_tokens;
        p.cost_micros = Some(row.cost.round_micros().0);
    }
    for l in rollups::latency_by_hour(pool, whose.tenant, whose.key, from, now).await? {
        if let Some(p) = points.get_mut(&l.hour) {
            p.p50_ms = l.p50_latency_ms;
            p.p99_ms = l.p99_latency_ms;
        }
    }
    // Hours not rolled up yet (the open one, and any the worker has not
    // reached): exact percentiles from their raw rows.
    let open: Vec<DateTime<Utc>> = points
        .iter()
        .filter(|(_, p)| p.requests > 0 && p.p50_ms.is_none())
        .map(|(t, _)| *t)
        .collect();
    if let (Some(first), Some(_)) = (open.first(), open.last()) {
        for b in usage::traffic(pool, whose.tenant, whose.key, *first, now, 3600).await? {
            if let Some(p) = points.get_mut(&b.at).filter(|p| p.p50_ms.is_none()) {
                p.p50_ms = b.p50_latency_ms;
                p.p99_ms = b.p99_latency_ms;
            }
        }
    }
    Ok(Traffic {
        range,
        step_secs: 3600,
        points,
    })
}

/// Links to the other ranges.
pub(crate) fn range_picker(base: &str, current: Range) -> Markup {
    html! {
        nav.range aria-label="Time range" {
            @for (r, label) in [(Range::Hour, "Hour"), (Range::Day, "Day"), (Range::Week, "Week")] {
                a href={(base) "?range=" (match r { Range::Hour => "hour", Range::Day => "day", Range::Week => "week" })}
                  aria-current=[(r == current).then_some("page")] { (label) }
            }
        }
    }
}

/// One chart: `series` of (label, values) over `x` (unix seconds).
pub(crate) fn chart(id: &str, title: &str, unit: &str, x: &[i64], series: &[(&str, Vec<Option<f64>>)]) -> Markup {
    let data = json!({
        "title": title,
        "unit": unit,
        "x": x,
        "series": series.iter().map(|(label, v)| json!({"label": label, "values": v})).collect::<Vec<_>>(),
    });
    let any = series
        .iter()
        .any(|(_, v)| v.iter().any(|p| p.is_some_and(|p| p != 0.0)));
    html! {
        figure.chart {
            figcaption { (title) }
            div.plot data-chart=(id) role="img" aria-label={(title) " chart"} {}
            (crate::page::json_data(id, &data))
            @if !any { p.empty { "No traffic in this period yet." } }
            details.data {
                summary { "Figures" }
                div.table-wrap {
                    table {
                        thead { tr { th { "Time (UTC)" } @for (label, _) in series { th { (label) " (" (unit) ")" } } } }
                        tbody {
                            @for (i, t) in x.iter().enumerate().rev() {
                                @if series.iter().any(|(_, v)| v.get(i).copied().flatten().is_some_and(|p| p != 0.0)) {
                                    tr {
                                        td { (DateTime::from_timestamp(*t, 0).map(|d| d.format("%m-%d %H:%M").to_string()).unwrap_or_default()) }
                                        @for (_, v) in series {
                                            td.num { (v.get(i).copied().flatten().map(|p| format!("{p:.2}")).unwrap_or_else(|| "–".into())) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The standard charts of a traffic series: requests, tokens, latency, spend.
pub(crate) fn traffic_charts(t: &Traffic) -> Markup {
    let x: Vec<i64> = t.points.keys().map(DateTime::timestamp).collect();
    let per_sec = |f: fn(&Point) -> i64| -> Vec<Option<f64>> {
        t.points
            .values()
            .map(|p| Some(f(p) as f64 / t.step_secs as f64))
            .collect()
    };
    let p50: Vec<Option<f64>> = t.points.values().map(|p| p.p50_ms).collect();
    let p99: Vec<Option<f64>> = t.points.values().map(|p| p.p99_ms).collect();
    let spend: Vec<Option<f64>> = t
        .points
        .values()
        .map(|p| p.cost_micros.map(|c| c as f64 / 1e6))
        .collect();
    let p99_label = if t.range == Range::Hour {
        "p99"
    } else {
        "p99 (highest model)"
    };
    html! {
        p.muted { "Over the " (t.range.label()) ", per " (if t.step_secs == 60 { "minute" } else { "hour" }) " (UTC)." }
        div.charts {
            (chart("chart-requests", "Requests per second", "req/s", &x, &[("requests", per_sec(|p| p.requests)), ("failed", per_sec(|p| p.failed))]))
            (chart("chart-tokens", "Tokens per second", "tok/s", &x, &[("tokens", per_sec(|p| p.tokens))]))
            (chart("chart-latency", "Latency of completed requests", "ms", &x, &[("p50", p50), (p99_label, p99)]))
            @if t.range != Range::Hour {
                (chart("chart-spend", "Spend", "USD", &x, &[("spend", spend)]))
            }
        }
    }
}
