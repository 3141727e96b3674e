//! A tenant's money as the APIs show and change it: the billing summary
//! (this month's cost, what is settled, credits, budget, arrears), cost
//! series for charts, credit grants, budgets, the export log and platform
//! revenue. Plain functions over the pool, answering views; the admin API
//! and self-service call the same ones.

use chrono::{DateTime, Utc};
use crosslogic_core::billing::{budget_percent, budget_state, month_start, next_month_start, BudgetState};
use crosslogic_core::decimal::Decimal;
use crosslogic_core::events::{BudgetEvent, CreditGranted};
use crosslogic_core::{Actor, BillingEventType, CreditType, Event, Femtos, Micros, ServiceError};
use crosslogic_db::repo::billing::events::{self, EventFilter};
use crosslogic_db::repo::billing::{credits, settlement, stripe as stripe_repo};
use crosslogic_db::repo::tenants;
use crosslogic_db::{changes, PgPool};
use serde::Deserialize;
use uuid::Uuid;

use crate::report::{self, Scope, UsageGroup};
use crate::views::{
    ArrearsView, BudgetView, CostSeriesView, CreditBalanceView, CreditView, ExportView, Money, PeriodView,
    RevenueDayView, RevenueModelView, SummaryView,
};

/// Largest credit or budget: a million dollars.
const MAX_MICROS: i64 = 1_000_000_000_000;

/// Dollars from a decimal the client sent (`12.5`, `"0.000001"`), exactly.
pub fn dollars(field: &'static str, d: &Decimal, min: i64) -> Result<i64, ServiceError> {
    d.units(field, 6, min, MAX_MICROS)
}

/// The billing summary of a tenant as of `now`.
pub async fn summary(
    pool: &PgPool,
    tenant_id: Uuid,
    grace: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<SummaryView, ServiceError> {
    let tenant = tenants::get(pool, tenant_id).await?;
    let start = month_start(now);
    let spent = report::spend(pool, &[tenant_id], start, now)
        .await?
        .get(&tenant_id)
        .copied()
        .unwrap_or(Femtos::ZERO);
    let settled = settlement::tenant_totals(pool, tenant_id, start, now).await?;
    let cost = spent.round_micros();
    let (balance, next_expiry) = credits::balance(pool, tenant_id, now).await?;
    let (unpaid, since) = stripe_repo::arrears(pool, tenant_id).await?;
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let budget = tenant.monthly_budget_microdollars.map(|b| BudgetView {
        amount: Money::micros(b),
        hard_stop: tenant.budget_hard_stop,
        spent: Money::micros(cost.0),
        percent: budget_percent(cost, Micros(b)),
        state: match budget_state(cost, Micros(b)) {
            BudgetState::Under => "under",
            BudgetState::Warning => "warning",
            BudgetState::Exceeded => "exceeded",
        },
        blocked: tenant.spend_blocked_month == Some(crosslogic_core::billing::month_day(now)),
    });
    Ok(SummaryView {
        object: "billing.summary",
        tenant_id,
        as_of: now,
        period: PeriodView {
            start,
            end: next_month_start(now),
            cost: Money::micros(cost.0),
            billed: Money::micros(settled.billed_microdollars),
            credits_applied: Money::micros(settled.credit_microdollars),
            payable: Money::micros(settled.payable_microdollars),
            unsettled: Money::micros((cost.0 - settled.billed_microdollars).max(0)),
        },
        credits: CreditBalanceView {
            balance: Money::micros(balance),
            next_expiry,
        },
        budget,
        arrears: ArrearsView {
            unpaid_invoices: unpaid,
            since,
            suspend_after: since.map(|s| s + grace),
        },
        stripe_customer_id: tenant.stripe_customer_id,
    })
}

/// `interval` of a cost series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    #[default]
    Day,
    Hour,
}

/// Cost per period and model over `[from, to)` (a tenant, or the platform).
pub async fn cost_series(
    pool: &PgPool,
    scope: Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: Interval,
) -> Result<CostSeriesView, ServiceError> {
    let group = match interval {
        Interval::Day => UsageGroup::Day,
        Interval::Hour => UsageGroup::Hour,
    };
    let rows = report::usage(pool, scope, from, to, group, true).await?;
    let total: Femtos = rows.iter().map(|r| r.cost).sum();
    Ok(CostSeriesView {
        object: "list",
        from,
        to,
        interval: match interval {
            Interval::Day => "day",
            Interval::Hour => "hour",
        },
        total: Money::exact(total),
        data: rows.into_iter().map(Into::into).collect(),
    })
}

/// Body of "grant a credit".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantCredit {
    /// `signup_bonus`, `referral`, `promotional` or `monthly_free`.
    pub credit_type: CreditType,
    /// Dollars, e.g. `25` or `"2.50"` (at most 6 decimals).
    pub amount: Decimal,
    /// When it expires (RFC 3339); absent = never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Grants a credit; publishes `billing.credit_granted` (audited).
pub async fn grant_credit(
    pool: &PgPool,
    actor: &Actor,
    tenant_id: Uuid,
    input: GrantCredit,
    now: DateTime<Utc>,
) -> Result<CreditView, ServiceError> {
    let amount = dollars("amount", &input.amount, 1)?;
    if input.expires_at.is_some_and(|e| e <= now) {
        return Err(ServiceError::invalid("expires_at", "must be in the future"));
    }
    let description = match input.description.as_deref().map(str::trim) {
        Some(d) if d.chars().count() > 500 => {
            return Err(ServiceError::invalid("description", "must be at most 500 characters"))
        }
        Some("") | None => None,
        Some(d) => Some(d.to_owned()),
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let tenant = tenants::get(&mut *tx, tenant_id).await?;
    if tenant.status == crosslogic_core::TenantStatus::Deleted {
        return Err(ServiceError::State("the tenant is deleted".into()));
    }
    let credit = credits::grant(
        &mut *tx,
        tenant_id,
        input.credit_type,
        amount,
        description.as_deref(),
        input.expires_at,
    )
    .await?;
    changes::record(
        &mut tx,
        actor,
        &Event::CreditGranted(CreditGranted {
            tenant_id,
            credit_id: credit.id,
            credit_type: credit.credit_type,
            amount_microdollars: amount,
            expires_at: credit.expires_at,
            description,
        }),
    )
    .await?;
    crosslogic_db::commit(tx).await?;
    Ok(CreditView::of(credit, now))
}

/// A tenant's credits, newest grant first.
pub async fn list_credits(pool: &PgPool, tenant_id: Uuid, now: DateTime<Utc>) -> Result<Vec<CreditView>, ServiceError> {
    tenants::get(pool, tenant_id).await?;
    Ok(credits::list(pool, tenant_id)
        .await?
        .into_iter()
        .map(|c| CreditView::of(c, now))
        .collect())
}

/// Body of "set the budget".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// Dollars per UTC month, e.g. `100` or `"49.99"`.
    pub amount: Decimal,
    /// Refuse requests (429 `insufficient_quota`) once it is spent.
    #[serde(default)]
    pub hard_stop: bool,
}

/// Sets (`Some`) or removes (`None`) a tenant's monthly budget; publishes
/// `billing.budget_updated` (audited) and applies it at once: a raised or
/// removed budget lifts a stop now, a lowered one may stop requests now.
pub async fn set_budget(
    pool: &PgPool,
    actor: &Actor,
    tenant_id: Uuid,
    input: Option<SetBudget>,
    now: DateTime<Utc>,
) -> Result<SummaryView, ServiceError> {
    let (amount, hard_stop) = match &input {
        Some(b) => (Some(dollars("amount", &b.amount, 1)?), b.hard_stop),
        None => (None, false),
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let current = tenants::get(&mut *tx, tenant_id).await?;
    if current.status == crosslogic_core::TenantStatus::Deleted {
        return Err(ServiceError::State("the tenant is deleted".into()));
    }
    let tenant = tenants::set_budget(&mut *tx, tenant_id, amount, hard_stop).await?;
    changes::record(
        &mut tx,
        actor,
        &Event::BudgetUpdated(BudgetEvent {
            tenant_id,
            month: crosslogic_core::billing::month_day(now),
            budget_microdollars: amount,
            spent_microdollars: 0,
            percent: 0,
            hard_stop,
        }),
    )
    .await?;
    crosslogic_db::commit(tx).await?;
    crate::budget::check(pool, std::slice::from_ref(&tenant), now).await?;
    summary(pool, tenant_id, std::time::Duration::ZERO, now).await
}

/// The Stripe export log, newest first; `after` pages.
pub async fn exports(
    pool: &PgPool,
    filter: EventFilter,
    limit: i64,
) -> Result<(Vec<ExportView>, Option<Uuid>), ServiceError> {
    let filter = EventFilter {
        event_type: Some(BillingEventType::Usage),
        ..filter
    };
    let rows = events::list(pool, &filter, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    Ok((rows.into_iter().map(Into::into).collect(), next))
}

/// One export.
pub async fn export(pool: &PgPool, id: Uuid) -> Result<ExportView, ServiceError> {
    let e = events::get(pool, id).await?;
    if e.event_type != BillingEventType::Usage {
        return Err(ServiceError::NotFound("export"));
    }
    Ok(e.into())
}

/// Queues a failed export again (the operator fixed its cause).
pub async fn retry_export(pool: &PgPool, id: Uuid) -> Result<ExportView, ServiceError> {
    match events::retry(pool, id).await? {
        Some(e) => Ok(e.into()),
        None => {
            let e = export(pool, id).await?;
            Err(ServiceError::State(format!(
                "only a failed export can be retried; this one is {}",
                e.status
            )))
        }
    }
}

/// Settled revenue per day over `[from, to)`.
pub async fn revenue_by_day(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RevenueDayView>, ServiceError> {
    Ok(settlement::revenue_by_day(pool, from, to)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Usage cost per model over `[from, to)`, all tenants.
pub async fn revenue_by_model(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RevenueModelView>, ServiceError> {
    Ok(report::usage(pool, Scope::Platform, from, to, UsageGroup::Model, false)
        .await?
        .into_iter()
        .map(|r| RevenueModelView {
            model: r.group_key,
            requests: r.requests,
            total_tokens: r.total_tokens,
            cost: Money::exact(r.cost),
        })
        .collect())
}
