//! Tenants: list and search, create, and one tenant's page (environments,
//! keys, usage, billing; suspend and activate).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::Utc;
use crosslogic_billing::account;
use crosslogic_core::{ApiKeyRole, ApiKeyStatus, BillingPlan, TenantStatus};
use crosslogic_tenancy::{self as tenancy, CreateEnvironment, CreateKey, CreateTenant};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::Op;
use crate::chart::{self, RangeQuery};
use crate::form::{self, CsrfForm};
use crate::page::{self, after, when, PageResult};
use crate::{panels, ConsoleState};

/// Query of the tenants list.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    after: Option<Uuid>,
}

pub(crate) async fn list(State(s): State<ConsoleState>, Op(session): Op, Query(q): Query<ListQuery>) -> PageResult {
    let status = form::text(&q.status)
        .map(|v| v.parse::<TenantStatus>())
        .transpose()
        .map_err(|e| crosslogic_core::ServiceError::invalid("status", e.to_string()))?;
    let search = form::text(&q.q);
    let (tenants, next) = tenancy::list_tenants(s.pool(), status, search.as_deref(), q.after, Some(50)).await?;
    let body = html! {
        h1 { "Tenants" }
        form.filters method="get" action="/console/tenants" role="search" {
            label { "Search" input type="search" name="q" value=[search.as_deref()] placeholder="name or email"; }
            label { "Status" select name="status" {
                option value="" { "active and suspended" }
                @for st in ["active", "suspended", "deleted"] {
                    option value=(st) selected[q.status.as_deref() == Some(st)] { (st) }
                }
            } }
            button type="submit" { "Filter" }
        }
        @if tenants.is_empty() {
            (page::empty(if search.is_some() || status.is_some() { "No tenant matches." } else { "No tenants yet: create the first one below." }))
        } @else {
            div.table-wrap { table #tenants {
                thead { tr { th { "Name" } th { "Email" } th { "Plan" } th { "Status" } th { "Created" } } }
                tbody { @for t in &tenants {
                    tr { td { a href={"/console/tenants/" (t.id)} { (t.name) } } td { (t.email) } td { (t.billing_plan.as_str()) }
                         td { (page::badge(t.status.as_str())) } td { (when(t.created_at)) } }
                } }
            } }
            @if let Some(n) = next {
                p { a href={"/console/tenants?after=" (n) @if let Some(q) = &search { "&q=" (q) }} { "Next page →" } }
            }
        }
        h2 { "New tenant" }
        form.grid method="post" action="/console/tenants" {
            (page::csrf(&session))
            label { "Name" input name="name" required maxlength="255"; }
            label { "Email" input type="email" name="email" required maxlength="255"; }
            label { "Billing plan" select name="billing_plan" {
                option value="serverless" selected { "serverless" } option value="reserved" { "reserved" } option value="enterprise" { "enterprise" }
            } }
            button type="submit" { "Create tenant" }
        }
    };
    Ok(page::render(&session, "Tenants", "tenants", body))
}

/// The new-tenant form.
#[derive(Debug, Deserialize)]
pub(crate) struct NewTenant {
    name: String,
    email: String,
    billing_plan: Option<String>,
}

pub(crate) async fn create(State(s): State<ConsoleState>, CsrfForm(session, f): CsrfForm<NewTenant>) -> PageResult {
    let plan = form::text(&f.billing_plan)
        .map(|p| p.parse::<BillingPlan>())
        .transpose()
        .map_err(|e| crosslogic_core::ServiceError::invalid("billing_plan", e.to_string()));
    let result = match plan {
        Ok(billing_plan) => {
            tenancy::create_tenant(
                s.pool(),
                &session.actor(),
                CreateTenant {
                    name: f.name,
                    email: f.email,
                    billing_plan,
                    stripe_customer_id: None,
                    region_preferences: None,
                    metadata: None,
                },
                s.admin.billing.signup_credit(Utc::now()),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => Ok(
            page::Flash::ok(format!("Tenant {} created: add an environment, then a key.", t.name))
                .redirect(&format!("/console/tenants/{}", t.id)),
        ),
        Err(e) => after::<()>("/console/tenants", Err(e), |_| String::new()),
    }
}

pub(crate) async fn detail(
    State(s): State<ConsoleState>,
    Op(session): Op,
    Path(id): Path<Uuid>,
    Query(q): Query<RangeQuery>,
) -> PageResult {
    let pool = s.pool();
    let now = Utc::now();
    // Independent reads, on separate pooled connections at once.
    let (t, envs, keys, summary, credits, traffic) = futures_util::try_join!(
        page::load(tenancy::get_tenant(pool, id)),
        page::load(tenancy::list_environments(pool, id)),
        page::load(tenancy::list_keys(pool, id, None)),
        page::load(account::summary(pool, id, s.admin.billing.grace_period, now)),
        page::load(account::list_credits(pool, id, now)),
        page::load(chart::traffic(
            pool,
            chart::Whose {
                tenant: Some(id),
                key: None
            },
            q.range
        )),
    )?;
    let base = format!("/console/tenants/{id}");
    let revoke = |k: &crosslogic_db::repo::api_keys::ApiKey| format!("{base}/keys/{}/revoke", k.id);
    let body = html! {
        p.crumbs { a href="/console/tenants" { "Tenants" } " / " }
        h1 { (t.name) " " (page::badge(t.status.as_str())) }
        p.muted { (t.email) " · plan " (t.billing_plan.as_str()) " · created " (when(t.created_at)) " · id " code { (t.id) } }
        p.muted { "Tenant limits: "
            (t.rate_limit_requests_per_min.map(|v| format!("{v} requests/min")).unwrap_or_else(|| "requests/min unlimited".into())) ", "
            (t.rate_limit_tokens_per_min.map(|v| format!("{v} tokens/min")).unwrap_or_else(|| "tokens/min unlimited".into())) ", "
            (t.concurrency_limit.map(|v| format!("{v} concurrent")).unwrap_or_else(|| "concurrency unlimited".into()))
            " (environments and keys have their own; change with " code { "crosslogic tenants update" } ")." }
        div.actions {
            @match t.status {
                TenantStatus::Active => (page::action_button(&session, &format!("{base}/suspend"), "Suspend tenant", Some("Suspend this tenant? Its keys stop working at once."), true)),
                TenantStatus::Suspended => (page::action_button(&session, &format!("{base}/activate"), "Activate tenant", None, false)),
                TenantStatus::Deleted => {},
            }
        }
        (panels::billing(&summary))
        details.manage {
            summary { "Credits and budget" }
            @if credits.is_empty() { (page::empty("No credits granted.")) } @else {
                div.table-wrap { table #credits {
                    thead { tr { th { "Type" } th { "Amount" } th { "Remaining" } th { "Expires" } th { "Status" } th { "Note" } } }
                    tbody { @for c in &credits {
                        tr { td { (c.credit_type.as_str()) } td.num { (page::usd(c.amount.microdollars)) } td.num { (page::usd(c.remaining.microdollars)) }
                             td { (c.expires_at.map(when).unwrap_or_else(|| "never".into())) } td { (page::badge(c.status)) } td { (c.description.as_deref().unwrap_or("")) } }
                    } }
                } }
            }
            form.grid method="post" action={(base) "/credits"} {
                (page::csrf(&session))
                label { "Credit (USD)" input name="amount" required inputmode="decimal" placeholder="25.00"; }
                label { "Type" select name="credit_type" {
                    option value="promotional" selected { "promotional" } option value="referral" { "referral" }
                    option value="signup_bonus" { "signup bonus" } option value="monthly_free" { "monthly free" }
                } }
                label { "Expires (optional)" input type="date" name="expires_on"; }
                label { "Note" input name="description" maxlength="500"; }
                button type="submit" { "Grant credit" }
            }
            form.grid method="post" action={(base) "/budget"} {
                (page::csrf(&session))
                label { "Monthly budget (USD; empty = none)" input name="amount" inputmode="decimal"
                    value=[summary.budget.as_ref().map(|b| format!("{:.2}", b.amount.microdollars as f64 / 1e6))]; }
                label.check { input type="checkbox" name="hard_stop" checked[summary.budget.as_ref().is_some_and(|b| b.hard_stop)]; " Stop requests at 100 %" }
                button type="submit" { "Save budget" }
            }
        }
        div.section-head { h2 { "Usage" } (chart::range_picker(&base, q.range)) }
        (chart::traffic_charts(&traffic))
        h2 { "Environments" }
        @if envs.is_empty() { (page::empty("No environments yet.")) } @else {
            div.table-wrap { table #environments {
                thead { tr { th { "Name" } th { "Region" } th { "Models" } th { "Tokens/day" } th { "Status" } } }
                tbody { @for e in &envs {
                    tr { td { (e.name) } td { (e.region.as_deref().unwrap_or("any")) }
                         td { @if e.model_list.is_empty() { "all" } @else { (e.model_list.join(", ")) } }
                         td.num { (page::count(e.quota_tokens_per_day)) } td { (page::badge(e.status.as_str())) } }
                } }
            } }
        }
        form.grid method="post" action={(base) "/environments"} {
            (page::csrf(&session))
            label { "New environment" input name="name" required placeholder="e.g. prod" maxlength="100"; }
            label { "Region (optional)" input name="region" placeholder="e.g. us-east-1"; }
            button type="submit" { "Create environment" }
        }
        h2 { "API keys" }
        (panels::keys(&session, &keys, &envs, Some(&revoke)))
        h3 { "New key" }
        (panels::new_key_form(&session, &format!("{base}/keys"), &envs))
    };
    Ok(page::render(&session, &t.name, "tenants", body))
}

pub(crate) async fn suspend(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let r = tenancy::set_tenant_status(s.pool(), &session.actor(), id, TenantStatus::Suspended).await;
    after(&format!("/console/tenants/{id}"), r, |t| {
        format!("{} is suspended: its keys are refused on every gateway.", t.name)
    })
}

pub(crate) async fn activate(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let r = tenancy::set_tenant_status(s.pool(), &session.actor(), id, TenantStatus::Active).await;
    after(&format!("/console/tenants/{id}"), r, |t| {
        format!("{} is active again.", t.name)
    })
}

/// The new-environment form.
#[derive(Debug, Deserialize)]
pub(crate) struct NewEnvironment {
    name: String,
    region: Option<String>,
}

pub(crate) async fn create_environment(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, f): CsrfForm<NewEnvironment>,
) -> PageResult {
    let r = tenancy::create_environment(
        s.pool(),
        &session.actor(),
        id,
        CreateEnvironment {
            name: f.name,
            region: form::text(&f.region),
            model_list: None,
            quota_tokens_per_day: None,
            quota_tokens_per_minute: None,
            concurrency_limit: None,
            rate_limit_requests_per_min: None,
        },
    )
    .await;
    after(&format!("/console/tenants/{id}"), r, |e| {
        format!("Environment {} created.", e.name)
    })
}

/// The new-key form.
#[derive(Debug, Deserialize)]
pub(crate) struct NewKey {
    pub environment_id: Uuid,
    pub name: Option<String>,
    pub role: Option<String>,
}

impl NewKey {
    /// The service input, or the field at fault.
    pub fn input(&self) -> Result<CreateKey, crosslogic_core::ServiceError> {
        let role = form::text(&self.role)
            .map(|r| r.parse::<ApiKeyRole>())
            .transpose()
            .map_err(|e| crosslogic_core::ServiceError::invalid("role", e.to_string()))?;
        Ok(CreateKey {
            environment_id: self.environment_id,
            name: form::text(&self.name),
            role,
            user_id: None,
            rate_limit_requests_per_min: None,
            rate_limit_tokens_per_min: None,
            concurrency_limit: None,
            expires_at: None,
            metadata: None,
        })
    }
}

/// The base URL a client of this server would use.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if crate::session::over_tls(headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/v1")
}

pub(crate) async fn create_key(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    CsrfForm(session, f): CsrfForm<NewKey>,
) -> PageResult {
    let back = format!("/console/tenants/{id}");
    let created = match f.input() {
        Ok(input) => tenancy::create_key(s.pool(), &session.actor(), id, input).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(k) => Ok(panels::created_key(&session, &k, &back, &base_url(&headers))),
        Err(e) => after::<()>(&back, Err(e), |_| String::new()),
    }
}

pub(crate) async fn revoke_key(
    State(s): State<ConsoleState>,
    Path((id, key)): Path<(Uuid, Uuid)>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let back = format!("/console/tenants/{id}");
    let k = tenancy::get_key(s.pool(), key).await?;
    if k.tenant_id != id {
        return Err(crosslogic_core::ServiceError::NotFound("api key").into());
    }
    let r = tenancy::set_key_status(s.pool(), &session.actor(), key, ApiKeyStatus::Revoked).await;
    after(&back, r, |k| format!("Key {}… revoked.", k.key_prefix))
}

/// The grant-credit form.
#[derive(Debug, Deserialize)]
pub(crate) struct NewCredit {
    amount: String,
    credit_type: Option<String>,
    expires_on: Option<String>,
    description: Option<String>,
}

pub(crate) async fn grant_credit(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, f): CsrfForm<NewCredit>,
) -> PageResult {
    let back = format!("/console/tenants/{id}");
    let input = (|| -> Result<account::GrantCredit, crosslogic_core::ServiceError> {
        let credit_type = form::text(&f.credit_type)
            .unwrap_or_else(|| "promotional".into())
            .parse()
            .map_err(|e: crosslogic_core::ParseEnumError| {
                crosslogic_core::ServiceError::invalid("credit_type", e.to_string())
            })?;
        let expires_at = form::text(&f.expires_on)
            .map(|d| {
                chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                    .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                    .map_err(|_| crosslogic_core::ServiceError::invalid("expires_at", "a date like 2027-01-31"))
            })
            .transpose()?;
        Ok(account::GrantCredit {
            credit_type,
            amount: crosslogic_core::decimal::Decimal::new(f.amount.clone()),
            expires_at,
            description: form::text(&f.description),
        })
    })();
    let r = match input {
        Ok(i) => account::grant_credit(s.pool(), &session.actor(), id, i, Utc::now()).await,
        Err(e) => Err(e),
    };
    after(&back, r, |c| {
        format!(
            "Credit of {} granted: it pays for usage before anything is billed.",
            page::usd(c.amount.microdollars)
        )
    })
}

/// The budget form.
#[derive(Debug, Deserialize)]
pub(crate) struct Budget {
    amount: Option<String>,
    hard_stop: Option<String>,
}

pub(crate) async fn set_budget(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, f): CsrfForm<Budget>,
) -> PageResult {
    let input = form::text(&f.amount).map(|a| account::SetBudget {
        amount: crosslogic_core::decimal::Decimal::new(a),
        hard_stop: form::checked(&f.hard_stop),
    });
    let clearing = input.is_none();
    let r = account::set_budget(s.pool(), &session.actor(), id, input, Utc::now()).await;
    after(&format!("/console/tenants/{id}"), r, |_| {
        if clearing {
            "Budget removed.".into()
        } else {
            "Budget saved.".into()
        }
    })
}
