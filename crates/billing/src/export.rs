//! The Stripe export: pending `usage` billing events (one per tenant-hour
//! settlement or correction) become Billing Meter events.
//!
//! An event is claimed with a lease, so replicas never send one together
//! and a crash mid-call only delays it; a resend carries the same
//! identifier, which Stripe deduplicates (its "already exists" answer
//! counts as delivered). 429, 5xx and network errors retry with backoff
//! (`Retry-After` honoured); any other refusal, and an hour that has left
//! Stripe's 35-day window, is marked `failed` and reported to the
//! operator as `billing.export_failed` — never silently dropped, and
//! retryable from the admin API.

use chrono::{DateTime, Utc};
use crosslogic_core::billing::{export_retry_delay, meter_event_in_window, meter_timestamp};
use crosslogic_core::events::ExportFailed;
use crosslogic_core::{BillingEventStatus, Event};
use crosslogic_db::changes;
use crosslogic_db::repo::billing::events::{self, BillingEvent, ExportAttempt};
use crosslogic_db::repo::tenants;
use crosslogic_db::{DbError, PgPool};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::stripe::{MeterEvent, Stripe, StripeError};
use crate::BillingConfig;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportPass {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
}

/// Sends due exports until `shutdown`.
pub async fn run(pool: PgPool, cfg: BillingConfig, stripe: Stripe, shutdown: CancellationToken) {
    loop {
        let idle = match export_once(&pool, &cfg, &stripe, Utc::now()).await {
            Ok(p) => p.sent + p.retrying + p.failed == 0,
            Err(e) => {
                tracing::warn!(error = %e, "Stripe export pass failed; retrying");
                true
            }
        };
        if idle {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(cfg.settings.interval) => {}
            }
        } else if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Claims and sends one batch of due exports.
pub async fn export_once(
    pool: &PgPool,
    cfg: &BillingConfig,
    stripe: &Stripe,
    now: DateTime<Utc>,
) -> Result<ExportPass, DbError> {
    let mut pass = ExportPass::default();
    // One event per claim: each lease covers one Stripe call, never a
    // batch waiting behind slow calls.
    for _ in 0..cfg.batch {
        let Some(ev) = events::claim_due_exports(pool, cfg.settings.export_lease, 1)
            .await?
            .pop()
        else {
            break;
        };
        match export_one(pool, stripe, &ev, now).await? {
            Some(BillingEventStatus::Processed) => pass.sent += 1,
            Some(BillingEventStatus::Pending) => pass.retrying += 1,
            Some(BillingEventStatus::Failed) => pass.failed += 1,
            None => {}
        }
    }
    Ok(pass)
}

async fn export_one(
    pool: &PgPool,
    stripe: &Stripe,
    ev: &BillingEvent,
    now: DateTime<Utc>,
) -> Result<Option<BillingEventStatus>, DbError> {
    let (Some(hour), Some(identifier)) = (ev.period_start, ev.idempotency_key.as_deref()) else {
        return fail(pool, ev, "the export has no hour or identifier", false).await;
    };
    if !meter_event_in_window(hour, now) {
        return fail(
            pool,
            ev,
            "the hour is older than Stripe's 35-day window for meter events; bill it another way",
            false,
        )
        .await;
    }
    let customer = match customer_of(pool, stripe, ev).await? {
        Ok(c) => c,
        Err(e) => return settle_attempt(pool, ev, Err(e), None).await,
    };
    let sent = stripe
        .send_meter_event(&MeterEvent {
            customer: &customer,
            value: ev.amount_microdollars,
            identifier,
            timestamp: meter_timestamp(hour),
        })
        .await;
    settle_attempt(pool, ev, sent.map(|_| ()), Some(&customer)).await
}

/// The tenant's Stripe customer, created on first use.
async fn customer_of(
    pool: &PgPool,
    stripe: &Stripe,
    ev: &BillingEvent,
) -> Result<Result<String, StripeError>, DbError> {
    let tenant = tenants::get(pool, ev.tenant_id).await?;
    if let Some(c) = tenant.stripe_customer_id {
        return Ok(Ok(c));
    }
    match stripe.create_customer(tenant.id, &tenant.name, &tenant.email).await {
        Ok(id) => {
            // Another replica may have stored one meanwhile: keep the first.
            let kept = tenants::set_stripe_customer(pool, tenant.id, &id).await?;
            tracing::info!(tenant_id = %tenant.id, customer = %kept, "Stripe customer created");
            Ok(Ok(kept))
        }
        Err(e) => Ok(Err(e)),
    }
}

async fn settle_attempt(
    pool: &PgPool,
    ev: &BillingEvent,
    result: Result<(), StripeError>,
    customer: Option<&str>,
) -> Result<Option<BillingEventStatus>, DbError> {
    match result {
        Ok(()) => {
            let done = events::record_attempt(
                pool,
                ev.id,
                ev.next_attempt_at,
                &ExportAttempt {
                    status: BillingEventStatus::Processed,
                    error: None,
                    next_attempt_at: None,
                    stripe_customer_id: customer,
                    attempted: true,
                },
            )
            .await?;
            tracing::debug!(identifier = ?ev.idempotency_key, value = ev.amount_microdollars, "meter event sent");
            Ok(done.map(|_| BillingEventStatus::Processed))
        }
        Err(StripeError::Transient { message, retry_after }) => {
            let jitter = rand::thread_rng().gen_range(0.8..1.2);
            // Stripe's Retry-After when it sent one, else our backoff.
            let delay = retry_after
                .unwrap_or_else(|| export_retry_delay(u32::try_from(ev.attempts + 1).unwrap_or(u32::MAX), jitter));
            let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            tracing::warn!(identifier = ?ev.idempotency_key, error = %message, retry_in = ?delay, "meter event not sent; retrying");
            let done = events::record_attempt(
                pool,
                ev.id,
                ev.next_attempt_at,
                &ExportAttempt {
                    status: BillingEventStatus::Pending,
                    error: Some(&message),
                    next_attempt_at: Some(next),
                    stripe_customer_id: customer,
                    attempted: true,
                },
            )
            .await?;
            Ok(done.map(|_| BillingEventStatus::Pending))
        }
        Err(e @ StripeError::Rejected { .. }) => fail(pool, ev, &e.to_string(), true).await,
    }
}

/// Marks an export failed for good and tells the operator (once per
/// failure of this export).
async fn fail(
    pool: &PgPool,
    ev: &BillingEvent,
    error: &str,
    attempted: bool,
) -> Result<Option<BillingEventStatus>, DbError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let Some(row) = events::record_attempt(
        &mut *tx,
        ev.id,
        ev.next_attempt_at,
        &ExportAttempt {
            status: BillingEventStatus::Failed,
            error: Some(error),
            next_attempt_at: None,
            stripe_customer_id: None,
            attempted,
        },
    )
    .await?
    else {
        // The lease ran out and another sender has the event now.
        crosslogic_db::commit(tx).await?;
        return Ok(None);
    };
    let event = Event::ExportFailed(ExportFailed {
        tenant: ev.tenant_id,
        billing_event_id: ev.id,
        hour: ev.period_start.unwrap_or(ev.created_at),
        amount_microdollars: ev.amount_microdollars,
        identifier: ev.idempotency_key.clone().unwrap_or_default(),
        attempts: row.attempts,
        error: error.to_owned(),
    });
    changes::publish_once(
        &mut tx,
        &event,
        &format!("billing.export_failed:{}:{}", ev.id, row.attempts),
    )
    .await?;
    crosslogic_db::commit(tx).await?;
    tracing::error!(identifier = ?ev.idempotency_key, error, "meter event failed for good; billing.export_failed published");
    Ok(Some(BillingEventStatus::Failed))
}
