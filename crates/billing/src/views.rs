//! The API views of billing (wire types), shared by the admin API and
//! self-service. Money is shown in dollars with its currency; the exact
//! integer is in `microdollars` (whole micro-dollars, rounded once from
//! the exact sum — documented as the one raw field).

use chrono::{DateTime, Utc};
use crosslogic_core::{BillingEventStatus, CreditType, Femtos, Micros};
use crosslogic_db::repo::billing::credits::Credit;
use crosslogic_db::repo::billing::events::BillingEvent;
use crosslogic_db::repo::billing::settlement::DailyRevenue;
use crosslogic_db::repo::rollups::UsageTotals;
use serde::Serialize;
use uuid::Uuid;

/// An amount of money: `{"amount": "12.50", "currency": "usd", "microdollars": 12500000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Money {
    /// Dollars as a decimal string (at least two decimals, at most six).
    #[serde(serialize_with = "dollars")]
    #[schema(value_type = String, example = "12.50")]
    pub amount: Micros,
    /// Always `usd`.
    pub currency: &'static str,
    /// The same amount in whole micro-dollars.
    pub microdollars: i64,
}

impl Money {
    /// `m` micro-dollars.
    pub fn micros(m: i64) -> Money {
        Money {
            amount: Micros(m),
            currency: "usd",
            microdollars: m,
        }
    }

    /// An exact amount, rounded once for display.
    pub fn exact(f: Femtos) -> Money {
        Money::micros(f.round_micros().0)
    }
}

/// Dollars with two to six decimals (`5.00`, `0.000150`, `12.5` → `12.50`).
pub fn format_dollars(m: Micros) -> String {
    let sign = if m.0 < 0 { "-" } else { "" };
    let abs = m.0.unsigned_abs();
    let frac = format!("{:06}", abs % 1_000_000);
    let trimmed = frac.trim_end_matches('0');
    let frac = if trimmed.len() < 2 { &frac[..2] } else { trimmed };
    format!("{sign}{}.{frac}", abs / 1_000_000)
}

fn dollars<S: serde::Serializer>(m: &Micros, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_dollars(*m))
}

/// One group of a usage report (`/v1/usage`, `/admin/v1/…/usage`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageRowView {
    /// The date (`2024-05-01`), hour (`2024-05-01T13:00:00Z`), model name or key id.
    pub group: String,
    pub requests: i64,
    /// Requests that failed upstream (included in `requests`).
    pub failed_requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// The group's exact cost rounded once, in whole micro-dollars.
    pub cost_microdollars: i64,
    pub cost: Money,
}

impl From<UsageTotals> for UsageRowView {
    fn from(r: UsageTotals) -> Self {
        let cost = Money::exact(r.cost);
        UsageRowView {
            group: r.group_key,
            requests: r.requests,
            failed_requests: r.failed_requests,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            cost_microdollars: cost.microdollars,
            cost,
        }
    }
}

/// One point of a cost series: a period (day or hour) × model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostPointView {
    /// `2024-05-01` or `2024-05-01T13:00:00Z`.
    pub period: String,
    pub model: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost: Money,
}

impl From<UsageTotals> for CostPointView {
    fn from(r: UsageTotals) -> Self {
        CostPointView {
            period: r.group_key,
            model: r.model,
            requests: r.requests,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            cost: Money::exact(r.cost),
        }
    }
}

/// A cost series (for charts): `GET …/billing/costs`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostSeriesView {
    /// Always `list`.
    pub object: &'static str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `day` or `hour`.
    pub interval: &'static str,
    /// The whole range's cost, rounded once.
    pub total: Money,
    pub data: Vec<CostPointView>,
}

/// A credit grant and what is left of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreditView {
    /// Always `credit`.
    pub object: &'static str,
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub credit_type: CreditType,
    pub amount: Money,
    pub remaining: Money,
    pub description: Option<String>,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// `active`, `used` (nothing left) or `expired`.
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
}

impl CreditView {
    /// The view of `c` as of `now`.
    pub fn of(c: Credit, now: DateTime<Utc>) -> CreditView {
        let status = if c.remaining_microdollars == 0 {
            "used"
        } else if c.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        CreditView {
            object: "credit",
            id: c.id,
            tenant_id: c.tenant_id,
            credit_type: c.credit_type,
            amount: Money::micros(c.amount_microdollars),
            remaining: Money::micros(c.remaining_microdollars),
            description: c.description,
            expires_at: c.expires_at,
            status,
            created_at: c.created_at,
        }
    }
}

/// A tenant's budget and where the month stands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub amount: Money,
    /// Requests are refused (429 `insufficient_quota`) once it is spent.
    pub hard_stop: bool,
    pub spent: Money,
    /// Whole percent of the budget spent this month.
    pub percent: i64,
    /// `under`, `warning` (≥ 80 %) or `exceeded`.
    pub state: &'static str,
    /// Requests are being refused now.
    pub blocked: bool,
}

/// The billing period (the UTC month) so far.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeriodView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Cost of all usage so far this month (before credits), exact sum
    /// rounded once.
    pub cost: Money,
    /// Of that, settled hours: billed, covered by credits, payable.
    pub billed: Money,
    pub credits_applied: Money,
    pub payable: Money,
    /// Usage not settled yet (the last hour or so): billed at the next
    /// settlement, credits first.
    pub unsettled: Money,
}

/// Credit balance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreditBalanceView {
    /// Remaining credit, unexpired.
    pub balance: Money,
    /// When the soonest-expiring credit with something left expires.
    pub next_expiry: Option<DateTime<Utc>>,
}

/// Invoices Stripe reported as failed and not yet paid.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArrearsView {
    pub unpaid_invoices: i64,
    /// The oldest unpaid failure.
    pub since: Option<DateTime<Utc>>,
    /// When the tenant is suspended if still unpaid.
    pub suspend_after: Option<DateTime<Utc>>,
}

/// `GET /v1/billing`, `GET /admin/v1/tenants/{id}/billing`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SummaryView {
    /// Always `billing.summary`.
    pub object: &'static str,
    pub tenant_id: Uuid,
    pub as_of: DateTime<Utc>,
    pub period: PeriodView,
    pub credits: CreditBalanceView,
    /// `None`: no monthly budget.
    pub budget: Option<BudgetView>,
    pub arrears: ArrearsView,
    /// The tenant's Stripe customer (created at its first export).
    pub stripe_customer_id: Option<String>,
}

/// An entry of the Stripe export log (a `usage` billing event).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportView {
    /// Always `billing.export`.
    pub object: &'static str,
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The UTC hour the usage is of.
    pub hour: Option<DateTime<Utc>>,
    /// 0 for the hour's settlement, then one per correction.
    pub revision: Option<i32>,
    /// What is (or was) sent as the meter event's value.
    pub amount: Money,
    /// `pending` (queued or retrying), `processed` (delivered, or nothing to
    /// send) or `failed` (never sent; see `last_error`).
    pub status: BillingEventStatus,
    /// Whether the amount goes to Stripe (false: nothing payable, or Stripe
    /// not configured when it was settled).
    pub exported: bool,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The meter event identifier.
    pub identifier: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

impl From<BillingEvent> for ExportView {
    fn from(e: BillingEvent) -> Self {
        let exported = e
            .metadata
            .get("exported")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        ExportView {
            object: "billing.export",
            id: e.id,
            tenant_id: e.tenant_id,
            hour: e.period_start,
            revision: e.revision,
            amount: Money::micros(e.amount_microdollars),
            status: e.status,
            exported,
            attempts: e.attempts,
            last_error: e.last_error,
            next_attempt_at: if e.status == BillingEventStatus::Pending {
                e.next_attempt_at
            } else {
                None
            },
            identifier: e.idempotency_key,
            stripe_customer_id: e.stripe_customer_id,
            description: e.description,
            created_at: e.created_at,
            processed_at: e.processed_at,
        }
    }
}

/// Platform revenue of a day.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevenueDayView {
    pub day: String,
    pub tenants: i64,
    pub billed: Money,
    pub credits_applied: Money,
    pub payable: Money,
}

impl From<DailyRevenue> for RevenueDayView {
    fn from(r: DailyRevenue) -> Self {
        RevenueDayView {
            day: r.day,
            tenants: r.tenants,
            billed: Money::micros(r.billed_microdollars),
            credits_applied: Money::micros(r.credit_microdollars),
            payable: Money::micros(r.payable_microdollars),
        }
    }
}

/// Platform revenue of a model (usage cost before credits).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevenueModelView {
    pub model: String,
    pub requests: i64,
    pub total_tokens: i64,
    pub cost: Money,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_show_two_to_six_decimals() {
        assert_eq!(format_dollars(Micros(5_000_000)), "5.00");
        assert_eq!(format_dollars(Micros(12_500_000)), "12.50");
        assert_eq!(format_dollars(Micros(150)), "0.00015");
        assert_eq!(format_dollars(Micros(1)), "0.000001");
        assert_eq!(format_dollars(Micros(-1_230_000)), "-1.23");
        let m = serde_json::to_value(Money::micros(1_400_000)).unwrap_or_default();
        assert_eq!(
            m,
            serde_json::json!({"amount": "1.40", "currency": "usd", "microdollars": 1_400_000})
        );
    }
}
