//! Monthly budgets: each pass computes every budgeted tenant's cost this
//! UTC month (before credits; rollups plus the open hour's raw rows) and
//! publishes `billing.budget_warning` at 80 % and `billing.budget_exceeded`
//! at 100 % — once per tenant, month and budget amount (so raising the
//! budget re-arms them). With a hard stop, reaching the budget sets the
//! tenant's `spend_blocked_month`: every gateway learns it by `NOTIFY`
//! and answers inference with 429 `insufficient_quota` until the budget is
//! raised (the next pass, or at once when changed through the API, lifts
//! it) or the month turns (the gateways compare the month themselves).

use chrono::{DateTime, Utc};
use crosslogic_core::billing::{budget_percent, budget_state, month_day, month_start, BudgetState};
use crosslogic_core::events::BudgetEvent;
use crosslogic_core::{Event, Micros};
use crosslogic_db::repo::tenants::{self, Tenant};
use crosslogic_db::{changes, DbError, PgPool};

use crate::report;

/// What one pass changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BudgetPass {
    pub warnings: usize,
    pub exceeded: usize,
    pub blocked: usize,
    pub unblocked: usize,
}

/// Checks every tenant with a budget (or a stop in place) as of `now`.
pub async fn check_all(pool: &PgPool, now: DateTime<Utc>) -> Result<BudgetPass, DbError> {
    let budgeted = tenants::with_budgets(pool).await?;
    check(pool, &budgeted, now).await
}

/// Checks `tenants` as of `now`.
pub async fn check(pool: &PgPool, tenants: &[Tenant], now: DateTime<Utc>) -> Result<BudgetPass, DbError> {
    let mut pass = BudgetPass::default();
    if tenants.is_empty() {
        return Ok(pass);
    }
    let ids: Vec<_> = tenants.iter().map(|t| t.id).collect();
    let spend = report::spend(pool, &ids, month_start(now), now).await?;
    let month = month_day(now);
    for t in tenants {
        let spent = spend.get(&t.id).copied().unwrap_or_default().round_micros();
        let mut tx = crosslogic_db::begin(pool).await?;
        let mut stop = false;
        if let Some(budget) = t.monthly_budget_microdollars {
            let state = budget_state(spent, Micros(budget));
            let payload = BudgetEvent {
                tenant_id: t.id,
                month,
                budget_microdollars: Some(budget),
                spent_microdollars: spent.0,
                percent: budget_percent(spent, Micros(budget)),
                hard_stop: t.budget_hard_stop,
            };
            if state >= BudgetState::Warning {
                let key = format!("billing.budget_warning:{}:{month}:{budget}", t.id);
                if changes::publish_once(&mut tx, &Event::BudgetWarning(payload.clone()), &key)
                    .await?
                    .is_some()
                {
                    pass.warnings += 1;
                }
            }
            if state == BudgetState::Exceeded {
                let key = format!("billing.budget_exceeded:{}:{month}:{budget}", t.id);
                if changes::publish_once(&mut tx, &Event::BudgetExceeded(payload), &key)
                    .await?
                    .is_some()
                {
                    pass.exceeded += 1;
                }
                stop = t.budget_hard_stop;
            }
        }
        let target = stop.then_some(month);
        if tenants::set_spend_blocked(&mut *tx, t.id, target).await? {
            if stop {
                pass.blocked += 1;
                tracing::warn!(tenant_id = %t.id, spent = %spent, "monthly budget spent: requests stopped");
            } else {
                pass.unblocked += 1;
                tracing::info!(tenant_id = %t.id, "budget stop lifted");
            }
        }
        crosslogic_db::commit(tx).await?;
    }
    Ok(pass)
}
