//! Inbound Stripe webhooks (`webhook_events`, deduplicated by event id) and
//! the invoices they tell about (`billing_invoices`): a tenant is in arrears
//! while an invoice has failed and not been paid, whatever order the two
//! events arrived in.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::DbResult;

/// Stores an inbound webhook event; `false` when its id was seen before
/// (duplicates and retries are then acknowledged without acting twice).
pub async fn record_webhook(
    db: impl PgExecutor<'_>,
    provider: &str,
    event_id: &str,
    event_type: &str,
    payload: &Value,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type, payload) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .bind(payload)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A stored webhook event waiting to be acted on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredWebhook {
    pub event_id: String,
    pub event_type: String,
    pub payload: Value,
    pub received_at: DateTime<Utc>,
}

/// Locks up to `limit` unprocessed webhook events, oldest first (replicas
/// skip each other's).
pub async fn claim_unprocessed(tx: &mut PgConnection, limit: i64) -> DbResult<Vec<StoredWebhook>> {
    Ok(sqlx::query_as(
        "SELECT event_id, event_type, payload, received_at FROM webhook_events
          WHERE NOT processed ORDER BY received_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(tx)
    .await?)
}

/// Marks a webhook event handled, with why handling could not act (an
/// unknown customer…) if so.
pub async fn finish_webhook(db: impl PgExecutor<'_>, event_id: &str, error: Option<&str>) -> DbResult<()> {
    sqlx::query("UPDATE webhook_events SET processed = true, processed_at = now(), error = $2 WHERE event_id = $1")
        .bind(event_id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// A row of `webhook_events` for the operator's log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookLog {
    pub event_id: String,
    pub event_type: String,
    pub processed: bool,
    pub processed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// The newest webhook events.
pub async fn list_webhooks(db: impl PgExecutor<'_>, limit: i64) -> DbResult<Vec<WebhookLog>> {
    Ok(sqlx::query_as(
        "SELECT event_id, event_type, processed, processed_at, error, received_at FROM webhook_events
          ORDER BY received_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// An invoice event: `failed` or `paid` at `at`.
#[derive(Debug, Clone)]
pub struct InvoiceEvent<'a> {
    pub invoice_id: &'a str,
    pub tenant_id: Uuid,
    pub at: DateTime<Utc>,
    pub amount_due: Option<i64>,
    pub currency: Option<&'a str>,
}

/// Records a failed payment of an invoice (the first failure is kept).
pub async fn invoice_failed(tx: &mut PgConnection, e: &InvoiceEvent<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO billing_invoices (invoice_id, tenant_id, failed_at, amount_due, currency)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (invoice_id) DO UPDATE
            SET failed_at = LEAST(billing_invoices.failed_at, EXCLUDED.failed_at),
                amount_due = COALESCE(EXCLUDED.amount_due, billing_invoices.amount_due),
                currency = COALESCE(EXCLUDED.currency, billing_invoices.currency)",
    )
    .bind(e.invoice_id)
    .bind(e.tenant_id)
    .bind(e.at)
    .bind(e.amount_due)
    .bind(e.currency)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records an invoice paid.
pub async fn invoice_paid(tx: &mut PgConnection, e: &InvoiceEvent<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO billing_invoices (invoice_id, tenant_id, paid_at, amount_due, currency)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (invoice_id) DO UPDATE
            SET paid_at = COALESCE(billing_invoices.paid_at, EXCLUDED.paid_at),
                amount_due = COALESCE(EXCLUDED.amount_due, billing_invoices.amount_due),
                currency = COALESCE(EXCLUDED.currency, billing_invoices.currency)",
    )
    .bind(e.invoice_id)
    .bind(e.tenant_id)
    .bind(e.at)
    .bind(e.amount_due)
    .bind(e.currency)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records an invoice voided or marked uncollectible: nothing is owed on it.
pub async fn invoice_voided(tx: &mut PgConnection, e: &InvoiceEvent<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO billing_invoices (invoice_id, tenant_id, voided_at, amount_due, currency)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (invoice_id) DO UPDATE
            SET voided_at = COALESCE(billing_invoices.voided_at, EXCLUDED.voided_at)",
    )
    .bind(e.invoice_id)
    .bind(e.tenant_id)
    .bind(e.at)
    .bind(e.amount_due)
    .bind(e.currency)
    .execute(tx)
    .await?;
    Ok(())
}

/// A tenant's unpaid failed invoices: how many, and the oldest failure.
pub async fn arrears(db: impl PgExecutor<'_>, tenant_id: Uuid) -> DbResult<(i64, Option<DateTime<Utc>>)> {
    Ok(sqlx::query_as(
        "SELECT count(*), min(failed_at) FROM billing_invoices
          WHERE tenant_id = $1 AND paid_at IS NULL AND voided_at IS NULL AND failed_at IS NOT NULL",
    )
    .bind(tenant_id)
    .fetch_one(db)
    .await?)
}

/// Active tenants with an invoice that failed before `failed_before` and is
/// still unpaid: those the grace period has run out for.
pub async fn past_grace(db: impl PgExecutor<'_>, failed_before: DateTime<Utc>) -> DbResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT i.tenant_id FROM billing_invoices i JOIN tenants t ON t.id = i.tenant_id
          WHERE i.paid_at IS NULL AND i.voided_at IS NULL AND i.failed_at IS NOT NULL AND i.failed_at < $1
            AND t.status = 'active'
          ORDER BY 1",
    )
    .bind(failed_before)
    .fetch_all(db)
    .await?)
}

/// Restarts the grace period of a tenant's unpaid invoices (an operator
/// lifted a suspension for non-payment).
pub async fn restart_grace(db: impl PgExecutor<'_>, tenant_id: Uuid) -> DbResult<()> {
    sqlx::query(
        "UPDATE billing_invoices SET failed_at = now()
          WHERE tenant_id = $1 AND paid_at IS NULL AND voided_at IS NULL AND failed_at IS NOT NULL",
    )
    .bind(tenant_id)
    .execute(db)
    .await?;
    Ok(())
}
