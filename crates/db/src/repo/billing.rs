//! `billing_events`, `credits`, `reservations` and `webhook_events`.

use chrono::{DateTime, Utc};
use crosslogic_core::{BillingEventStatus, BillingEventType, CreditType, ReservationStatus};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `billing_events`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BillingEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub event_type: BillingEventType,
    pub amount_microdollars: i64,
    pub currency: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_event_id: Option<String>,
    pub stripe_invoice_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub description: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub status: BillingEventStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, event_type, amount_microdollars, currency, stripe_customer_id, stripe_event_id, \
         stripe_invoice_id, idempotency_key, description, period_start, period_end, status, attempts, last_error, \
         metadata, created_at, processed_at"
    };
}

/// A billing event to record.
#[derive(Debug, Clone)]
pub struct NewBillingEvent {
    pub tenant_id: Uuid,
    pub event_type: BillingEventType,
    pub amount_microdollars: i64,
    pub stripe_customer_id: Option<String>,
    /// Unique: recording the same key twice returns `None` the second time.
    pub idempotency_key: Option<String>,
    pub description: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub metadata: Value,
}

/// Records a billing event; `None` when its idempotency key was already used.
pub async fn create_event(db: impl PgExecutor<'_>, e: &NewBillingEvent) -> DbResult<Option<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO billing_events (tenant_id, event_type, amount_microdollars, stripe_customer_id, idempotency_key,
                                     description, period_start, period_end, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
        columns!()
    ))
    .bind(e.tenant_id)
    .bind(e.event_type.as_str())
    .bind(e.amount_microdollars)
    .bind(&e.stripe_customer_id)
    .bind(&e.idempotency_key)
    .bind(&e.description)
    .bind(e.period_start)
    .bind(e.period_end)
    .bind(&e.metadata)
    .fetch_optional(db)
    .await?)
}

/// Locks up to `limit` pending events (oldest first, skipping locked ones).
pub async fn claim_pending(tx: &mut PgConnection, limit: i64) -> DbResult<Vec<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM billing_events WHERE status = 'pending' ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED"
    ))
    .bind(limit)
    .fetch_all(tx)
    .await?)
}

/// Marks an event processed (with Stripe's id) or failed/retrying.
pub async fn set_event_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: BillingEventStatus,
    stripe_event_id: Option<&str>,
    error: Option<&str>,
) -> DbResult<BillingEvent> {
    sqlx::query_as(concat!(
        "UPDATE billing_events SET status = $2, stripe_event_id = COALESCE($3, stripe_event_id),
                last_error = $4, attempts = attempts + 1,
                processed_at = CASE WHEN $2 = 'processed' THEN now() ELSE processed_at END
          WHERE id = $1 RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(stripe_event_id)
    .bind(error)
    .fetch_optional(db)
    .await
    .or_not_found("billing event")
}

/// A tenant's billing events, newest first.
pub async fn list_events(db: impl PgExecutor<'_>, tenant_id: Uuid, limit: i64) -> DbResult<Vec<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM billing_events WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT $2"
    ))
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A row of `credits`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credit {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub credit_type: CreditType,
    pub amount_microdollars: i64,
    pub remaining_microdollars: i64,
    pub description: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Grants a credit (remaining = amount).
pub async fn grant_credit(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    credit_type: CreditType,
    amount_microdollars: i64,
    description: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> DbResult<Credit> {
    Ok(sqlx::query_as(
        "INSERT INTO credits (tenant_id, credit_type, amount_microdollars, remaining_microdollars, description, expires_at)
         VALUES ($1, $2, $3, $3, $4, $5)
         RETURNING id, tenant_id, credit_type, amount_microdollars, remaining_microdollars, description, expires_at, created_at",
    )
    .bind(tenant_id)
    .bind(credit_type.as_str())
    .bind(amount_microdollars)
    .bind(description)
    .bind(expires_at)
    .fetch_one(db)
    .await?)
}

/// A tenant's credits that are unexpired and not used up, soonest-expiring first.
pub async fn usable_credits(db: impl PgExecutor<'_>, tenant_id: Uuid) -> DbResult<Vec<Credit>> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, credit_type, amount_microdollars, remaining_microdollars, description, expires_at, created_at
           FROM credits
          WHERE tenant_id = $1 AND remaining_microdollars > 0 AND (expires_at IS NULL OR expires_at > now())
          ORDER BY expires_at NULLS LAST, created_at",
    )
    .bind(tenant_id)
    .fetch_all(db)
    .await?)
}

/// Consumes up to `amount` from a tenant's credits (soonest-expiring first),
/// atomically; returns how much was covered by credits.
pub async fn consume_credits(tx: &mut PgConnection, tenant_id: Uuid, amount: i64) -> DbResult<i64> {
    let credits: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT id, remaining_microdollars FROM credits
          WHERE tenant_id = $1 AND remaining_microdollars > 0 AND (expires_at IS NULL OR expires_at > now())
          ORDER BY expires_at NULLS LAST, created_at FOR UPDATE",
    )
    .bind(tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut left = amount.max(0);
    for (id, remaining) in credits {
        if left == 0 {
            break;
        }
        let take = remaining.min(left);
        sqlx::query("UPDATE credits SET remaining_microdollars = remaining_microdollars - $2 WHERE id = $1")
            .bind(id)
            .bind(take)
            .execute(&mut *tx)
            .await?;
        left -= take;
    }
    Ok(amount.max(0) - left)
}

/// A row of `reservations`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Reservation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub model_id: Uuid,
    pub region_id: Option<Uuid>,
    pub tokens_per_second: i32,
    pub price_microdollars_per_hour: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: ReservationStatus,
}

/// Reserves capacity for a tenant.
#[allow(clippy::too_many_arguments)]
pub async fn create_reservation(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    model_id: Uuid,
    region_id: Option<Uuid>,
    tokens_per_second: i32,
    price_microdollars_per_hour: i64,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: ReservationStatus,
) -> DbResult<Reservation> {
    Ok(sqlx::query_as(
        "INSERT INTO reservations (tenant_id, model_id, region_id, tokens_per_second, price_microdollars_per_hour,
                                   starts_at, ends_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, tenant_id, model_id, region_id, tokens_per_second, price_microdollars_per_hour, starts_at, ends_at, status",
    )
    .bind(tenant_id)
    .bind(model_id)
    .bind(region_id)
    .bind(tokens_per_second)
    .bind(price_microdollars_per_hour)
    .bind(starts_at)
    .bind(ends_at)
    .bind(status.as_str())
    .fetch_one(db)
    .await?)
}

/// Records an inbound webhook event; `false` when its id was seen before
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

/// Marks a webhook event handled (or records why handling failed).
pub async fn finish_webhook(db: impl PgExecutor<'_>, event_id: &str, error: Option<&str>) -> DbResult<()> {
    sqlx::query(
        "UPDATE webhook_events SET processed = ($2::text IS NULL), processed_at = now(), error = $2 WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}
