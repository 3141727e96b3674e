//! The operator's overview: traffic, errors, latency and spend of the
//! whole platform, and the fleet at a glance.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use chrono::{DurationRound, TimeDelta, Utc};
use crosslogic_billing::report::{self, Scope, UsageGroup};
use crosslogic_control::fleet;
use crosslogic_db::repo::nodes::NodeFilter;
use maud::html;

use crate::chart::{self, LastHour, RangeQuery};
use crate::page::{self, PageResult};
use crate::session::Session;
use crate::ConsoleState;

pub(crate) async fn page(State(s): State<ConsoleState>, session: Session, Query(q): Query<RangeQuery>) -> PageResult {
    let pool = s.pool();
    let now = Utc::now();
    let day = now.duration_trunc(TimeDelta::days(1)).unwrap_or(now);
    // Independent reads, on separate pooled connections at once.
    let (last, traffic, today, nodes, deployments) = futures_util::try_join!(
        page::load(chart::last_hour(pool, chart::Whose::default())),
        page::load(chart::traffic(pool, chart::Whose::default(), q.range)),
        page::load(report::usage(pool, Scope::Platform, day, now, UsageGroup::Day, false)),
        page::load(fleet::list_nodes(pool, NodeFilter::default(), Some(500))),
        page::load(fleet::list_deployments(pool, None)),
    )?;
    let spend_today: i64 = today.iter().map(|r| r.cost.round_micros().0).sum();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &nodes {
        *by_status.entry(n.status.as_str()).or_default() += 1;
    }
    let body = html! {
        h1 { "Platform overview" }
        section.cards aria-label="Last hour" {
            div.card { span.label { "Requests/s (last hour)" } span.value #stat-rps { (page::rate(LastHour::per_sec(last.requests))) } span.sub #stat-requests { (page::count(last.requests)) " requests" } }
            div.card { span.label { "Tokens/s" } span.value { (page::rate(LastHour::per_sec(last.tokens))) } span.sub { (page::count(last.tokens)) " tokens" } }
            div.card { span.label { "Error rate" } span.value { (last.error_rate().map(|r| format!("{:.2} %", r * 100.0)).unwrap_or_else(|| "–".into())) } span.sub { (page::count(last.failed)) " failed" } }
            div.card { span.label { "Latency p50 / p99" } span.value { (ms(last.p50_ms)) " / " (ms(last.p99_ms)) } span.sub { "completed requests" } }
            div.card { span.label { "Spend today (UTC)" } span.value #stat-spend { (page::usd(spend_today)) } span.sub { "all tenants" } }
            div.card {
                span.label { "Nodes" }
                span.value { (nodes.len()) }
                span.sub { @for (st, n) in &by_status { (page::badge(st)) " " (n) " " } @if nodes.is_empty() { "none yet" } }
            }
        }
        div.section-head { h2 { "Traffic" } (chart::range_picker("/console", q.range)) }
        (chart::traffic_charts(&traffic))
        h2 { "Deployments" }
        @if deployments.is_empty() {
            (page::empty("No deployments yet. Create one on the Deployments page; the reconciler launches its nodes."))
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Model" } th { "Replicas (current / min–max)" } th { "Status" } } }
                tbody { @for d in &deployments {
                    tr { td { a href={"/console/deployments#d-" (d.id)} { (d.name) } } td { (d.model_name) }
                         td.num { (d.current_replicas) " / " (d.min_replicas) "–" (d.max_replicas) } td { (page::badge(d.status.as_str())) } }
                } }
            } }
        }
    };
    Ok(page::render(&session, "Overview", "overview", body))
}

/// Milliseconds for a card.
pub(crate) fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "–".into())
}
