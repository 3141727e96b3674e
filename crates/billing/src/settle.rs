//! Settlement: each tenant-hour, `BILLING_SETTLE_DELAY` after it ends, is
//! billed its exact cost rounded once; credits cover what they can
//! (soonest-expiring first; each use is a `credit` billing event, so the
//! balance history is auditable) and the rest is payable — a `usage`
//! billing event that the exporter sends to Stripe.
//!
//! An hour whose rollups change afterwards (late rows) is settled again:
//! only the difference is billed, as a new revision with its own meter
//! identifier, so the sum over revisions is always the hour's exact cost
//! rounded once.

use chrono::{DateTime, Utc};
use crosslogic_config::BillingSettings;
use crosslogic_core::billing::{apply_credits, meter_identifier, UsableCredit, HOUR};
use crosslogic_core::{BillingEventStatus, BillingEventType, Micros};
use crosslogic_db::repo::billing::credits;
use crosslogic_db::repo::billing::events::{self, NewBillingEvent};
use crosslogic_db::repo::billing::settlement::{self, TenantHour};
use crosslogic_db::repo::rollups;
use crosslogic_db::{DbError, PgConnection, PgPool};
use serde_json::json;
use uuid::Uuid;

/// What one pass settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SettlePass {
    /// Hours settled.
    pub hours: usize,
    /// Tenant-hours billed (first settlements and corrections).
    pub tenant_hours: usize,
    /// Of those, corrections.
    pub corrections: usize,
}

/// Settles every hour that is due as of `now` (ended at least
/// `settle_delay` ago and changed since it was last settled).
pub async fn settle_due(pool: &PgPool, settings: &BillingSettings, now: DateTime<Utc>) -> Result<SettlePass, DbError> {
    let delay = chrono::Duration::from_std(settings.settle_delay).unwrap_or(chrono::Duration::MAX);
    let due_before = now - delay - HOUR;
    let mut pass = SettlePass::default();
    loop {
        let mut tx = crosslogic_db::begin(pool).await?;
        let Some((hour, not_billed)) = settlement::claim_hour(&mut tx, due_before).await? else {
            return Ok(pass);
        };
        // An hour from before billing existed is only reported, never billed.
        let (billed, corrections) = if not_billed {
            (0, 0)
        } else {
            settle_hour(&mut tx, hour, settings.stripe.is_some()).await?
        };
        settlement::finish_hour(&mut tx, hour).await?;
        crosslogic_db::commit(tx).await?;
        pass.hours += 1;
        pass.tenant_hours += billed;
        pass.corrections += corrections;
        tracing::debug!(hour = %hour, tenants = billed, corrections, "usage hour settled");
    }
}

/// Settles one claimed hour on `tx`; returns (tenant-hours billed, of
/// which corrections).
async fn settle_hour(tx: &mut PgConnection, hour: DateTime<Utc>, export: bool) -> Result<(usize, usize), DbError> {
    let costs = rollups::tenant_costs_of_hour(&mut *tx, hour).await?;
    let settled: std::collections::HashMap<Uuid, TenantHour> = settlement::tenant_hours(&mut *tx, hour)
        .await?
        .into_iter()
        .map(|h| (h.tenant_id, h))
        .collect();
    let (mut billed, mut corrections) = (0, 0);
    for (tenant_id, cost) in costs {
        let total = cost.round_micros().0;
        let prev = settled.get(&tenant_id);
        let prev_billed = prev.map_or(0, |p| p.billed_microdollars);
        if prev.is_some() && total == prev_billed {
            continue;
        }
        let delta = total - prev_billed;
        if delta < 0 {
            // Rollups only grow (usage rows are never changed); a smaller
            // total means rows were deleted with their tenant or key.
            tracing::warn!(tenant_id = %tenant_id, hour = %hour, billed = prev_billed, now = total,
                           "a settled tenant-hour shrank; nothing is refunded automatically");
            continue;
        }
        let revision = prev.map_or(0, |p| p.revision + 1);
        let covered = cover_with_credits(tx, tenant_id, hour, revision, Micros(delta)).await?;
        let payable = delta - covered;
        settlement::save_tenant_hour(
            tx,
            &TenantHour {
                tenant_id,
                hour,
                cost_exact: cost,
                billed_microdollars: total,
                credit_microdollars: prev.map_or(0, |p| p.credit_microdollars) + covered,
                payable_microdollars: prev.map_or(0, |p| p.payable_microdollars) + payable,
                revision,
            },
        )
        .await?;
        let send = export && payable > 0;
        events::create(
            &mut *tx,
            &NewBillingEvent {
                tenant_id,
                event_type: BillingEventType::Usage,
                amount_microdollars: payable,
                stripe_customer_id: None,
                idempotency_key: Some(meter_identifier(tenant_id, hour, revision)),
                description: Some(if revision == 0 {
                    format!("usage {}", hour.format("%Y-%m-%dT%H:00Z"))
                } else {
                    format!("usage {} (correction {revision})", hour.format("%Y-%m-%dT%H:00Z"))
                }),
                period_start: Some(hour),
                period_end: Some(hour + HOUR),
                status: if send {
                    BillingEventStatus::Pending
                } else {
                    BillingEventStatus::Processed
                },
                revision: Some(revision),
                next_attempt_at: send.then(Utc::now),
                metadata: json!({
                    "billed_microdollars": delta,
                    "credit_microdollars": covered,
                    "exported": send,
                    "reason": if send { None } else if payable == 0 { Some("nothing payable") } else { Some("Stripe is not configured") },
                }),
            },
        )
        .await?;
        billed += 1;
        if revision > 0 {
            corrections += 1;
        }
    }
    Ok((billed, corrections))
}

/// Covers up to `amount` with the tenant's credits usable at the hour's
/// end; returns the micro-dollars covered.
async fn cover_with_credits(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    hour: DateTime<Utc>,
    revision: i32,
    amount: Micros,
) -> Result<i64, DbError> {
    if amount.0 <= 0 {
        return Ok(0);
    }
    let at = hour + HOUR;
    let usable: Vec<UsableCredit> = credits::usable_for_update(&mut *tx, tenant_id, at)
        .await?
        .into_iter()
        .map(|c| UsableCredit {
            id: c.id,
            remaining: Micros(c.remaining_microdollars),
            expires_at: c.expires_at,
            created_at: c.created_at,
        })
        .collect();
    let mut covered = 0;
    for (credit_id, take) in apply_credits(amount, &usable, at) {
        credits::take(&mut *tx, credit_id, take.0).await?;
        events::create(
            &mut *tx,
            &NewBillingEvent {
                tenant_id,
                event_type: BillingEventType::Credit,
                amount_microdollars: take.0,
                stripe_customer_id: None,
                idempotency_key: Some(format!(
                    "credit-{}-{}-r{revision}-{}",
                    tenant_id.simple(),
                    hour.timestamp(),
                    credit_id.simple()
                )),
                description: Some(format!("credit applied to usage {}", hour.format("%Y-%m-%dT%H:00Z"))),
                period_start: Some(hour),
                period_end: Some(hour + HOUR),
                status: BillingEventStatus::Processed,
                revision: Some(revision),
                next_attempt_at: None,
                metadata: json!({ "credit_id": credit_id }),
            },
        )
        .await?;
        covered += take.0;
    }
    Ok(covered)
}
