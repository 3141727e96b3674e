//! The tenant's usage page: traffic, cost and latency, billing, and a
//! quick start with the base URL and an SDK snippet.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use chrono::{TimeDelta, Utc};
use crosslogic_billing::account;
use crosslogic_billing::report::{self, Scope, UsageGroup};
use crosslogic_db::repo::usage as usage_repo;
use maud::html;

use crate::chart::{self, RangeQuery, Whose};
use crate::operator::overview::ms;
use crate::page::{self, PageResult};
use crate::session::{Session, TenantWho};
use crate::{panels, ConsoleState};

pub(crate) async fn page(
    State(s): State<ConsoleState>,
    session: Session,
    t: TenantWho,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> PageResult {
    let pool = s.pool();
    let whose = Whose {
        tenant: Some(t.tenant_id),
        key: (!t.can_manage()).then_some(t.key_id),
    };
    let now = Utc::now();
    let from = now - TimeDelta::days(30);
    let scope = Scope::Tenant {
        tenant_id: t.tenant_id,
        api_key_id: whose.key,
    };
    let manage = t.can_manage();
    // Independent reads, on separate pooled connections at once.
    let (traffic, by_model, by_day, by_key, keys, latency, summary) = futures_util::try_join!(
        page::load(chart::traffic(pool, whose, q.range)),
        page::load(report::usage(pool, scope, from, now, UsageGroup::Model, false)),
        page::load(report::usage(pool, scope, from, now, UsageGroup::Day, false)),
        page::load(async {
            match manage {
                true => report::usage(pool, scope, from, now, UsageGroup::Key, false).await,
                false => Ok(Vec::new()),
            }
        }),
        page::load(async {
            match manage {
                true => crosslogic_tenancy::list_keys(pool, t.tenant_id, None).await,
                false => Ok(Vec::new()),
            }
        }),
        page::load(usage_repo::latency_by_model(
            pool,
            t.tenant_id,
            whose.key,
            None,
            now - TimeDelta::days(1),
            now
        )),
        page::load(async {
            match manage {
                true => account::summary(pool, t.tenant_id, s.admin.billing.grace_period, now)
                    .await
                    .map(Some),
                false => Ok(None),
            }
        }),
    )?;
    let key_label = |id: &str| {
        keys.iter()
            .find(|k| k.id.to_string() == id)
            .map(|k| format!("{}… {}", k.key_prefix, k.name))
            .unwrap_or_else(|| id.to_owned())
    };
    let base = crate::operator::tenants::base_url(&headers);
    let model = by_model
        .first()
        .map(|m| m.group_key.clone())
        .unwrap_or_else(|| "MODEL".into());
    let body = html! {
        h1 { (t.tenant_name) }
        p.muted { @if t.can_manage() { "The whole tenant's usage (your key has the admin role)." } @else { "Your key's usage (key " code { (t.key_prefix) "…" } ", role " (t.role.as_str()) ")." } }
        @if let Some(summary) = &summary { (panels::billing(summary)) }
        div.section-head { h2 { "Traffic" } (chart::range_picker("/console", q.range)) }
        (chart::traffic_charts(&traffic))
        h2 { "By model, last 30 days" }
        @if by_model.is_empty() { (page::empty("No requests in the last 30 days.")) } @else {
            div.table-wrap { table #usage-by-model {
                thead { tr { th { "Model" } th { "Requests" } th { "Failed" } th { "Prompt tokens" } th { "Completion tokens" } th { "Cost" } } }
                tbody { @for r in &by_model {
                    tr { td { (r.group_key) } td.num { (page::count(r.requests)) } td.num { (page::count(r.failed_requests)) }
                         td.num { (page::count(r.prompt_tokens)) } td.num { (page::count(r.completion_tokens)) } td.num { (page::usd(r.cost.round_micros().0)) } }
                } }
            } }
        }
        h2 { "By day, last 30 days (UTC)" }
        @if by_day.is_empty() { (page::empty("No requests in the last 30 days.")) } @else {
            div.table-wrap { table #usage-by-day {
                thead { tr { th { "Day" } th { "Requests" } th { "Failed" } th { "Tokens" } th { "Cost" } } }
                tbody { @for r in by_day.iter().rev() {
                    tr { td { (r.group_key) } td.num { (page::count(r.requests)) } td.num { (page::count(r.failed_requests)) }
                         td.num { (page::count(r.total_tokens)) } td.num { (page::usd(r.cost.round_micros().0)) } }
                } }
            } }
        }
        @if t.can_manage() {
            h2 { "By key, last 30 days" }
            @if by_key.is_empty() { (page::empty("No requests in the last 30 days.")) } @else {
                div.table-wrap { table #usage-by-key {
                    thead { tr { th { "Key" } th { "Requests" } th { "Failed" } th { "Tokens" } th { "Cost" } } }
                    tbody { @for r in &by_key {
                        tr { td { code { (key_label(&r.group_key)) } } td.num { (page::count(r.requests)) } td.num { (page::count(r.failed_requests)) }
                             td.num { (page::count(r.total_tokens)) } td.num { (page::usd(r.cost.round_micros().0)) } }
                    } }
                } }
            }
        }
        h2 { "Latency by model, last 24 hours" }
        @if latency.is_empty() { (page::empty("No completed requests in the last 24 hours.")) } @else {
            div.table-wrap { table #latency {
                thead { tr { th { "Model" } th { "Requests" } th { "p50" } th { "p95" } th { "p99" } th { "Max" } } }
                tbody { @for l in &latency {
                    tr { td { (l.model_name) } td.num { (page::count(l.requests)) } td.num { (ms(Some(l.p50_latency_ms))) }
                         td.num { (ms(Some(l.p95_latency_ms))) } td.num { (ms(Some(l.p99_latency_ms))) } td.num { (l.max_latency_ms) " ms" } }
                } }
            } }
        }
        h2 { "Quick start" }
        section.quickstart {
            p { "Base URL " code #base-url { (base) } " — any OpenAI SDK works unchanged with a key of this tenant." }
            pre.code { "from openai import OpenAI\nclient = OpenAI(base_url=\"" (base) "\", api_key=\"YOUR_KEY\")\n"
                "print(client.chat.completions.create(model=\"" (model) "\",\n    messages=[{\"role\": \"user\", \"content\": \"Hello!\"}]).choices[0].message.content)" }
            p { "Usage as JSON: " code { "GET /v1/usage" } " and " code { "GET /v1/usage/latency" } " — see the " a href="/docs" { "API reference" } "." }
        }
    };
    Ok(page::render(&session, "Usage", "overview", body))
}
