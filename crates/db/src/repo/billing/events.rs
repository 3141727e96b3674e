//! `billing_events`: the ledger of what was billed. `usage` rows are the
//! Stripe export outbox (one per tenant-hour settlement or correction,
//! `pending` → `processed` | `failed`, claimed with a lease through
//! `next_attempt_at`); `credit` rows record what each credit covered.

use chrono::{DateTime, Utc};
use crosslogic_core::{BillingEventStatus, BillingEventType};
use serde_json::Value;
use sqlx::PgExecutor;
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
    pub revision: Option<i32>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, event_type, amount_microdollars, currency, stripe_customer_id, stripe_event_id, \
         stripe_invoice_id, idempotency_key, description, period_start, period_end, status, attempts, last_error, \
         metadata, revision, next_attempt_at, created_at, updated_at, processed_at"
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
    pub status: BillingEventStatus,
    pub revision: Option<i32>,
    /// When a pending export is first due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub metadata: Value,
}

/// Records a billing event; `None` when its idempotency key was already used.
pub async fn create(db: impl PgExecutor<'_>, e: &NewBillingEvent) -> DbResult<Option<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO billing_events (tenant_id, event_type, amount_microdollars, stripe_customer_id, idempotency_key,
                                     description, period_start, period_end, metadata, status, revision,
                                     next_attempt_at, processed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $10 = 'processed' THEN now() END)
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
    .bind(e.status.as_str())
    .bind(e.revision)
    .bind(e.next_attempt_at)
    .fetch_optional(db)
    .await?)
}

/// Claims up to `limit` pending usage exports that are due, holding each
/// for `lease` (its `next_attempt_at` moves past the lease, so another
/// replica — or this one after a crash — takes it only when the lease ends).
pub async fn claim_due_exports(
    db: impl PgExecutor<'_>,
    lease: std::time::Duration,
    limit: i64,
) -> DbResult<Vec<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "UPDATE billing_events SET next_attempt_at = now() + make_interval(secs => $1)
          WHERE id IN (SELECT id FROM billing_events
                        WHERE status = 'pending' AND event_type = 'usage' AND next_attempt_at <= now()
                        ORDER BY next_attempt_at, period_start LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING ",
        columns!()
    ))
    .bind(lease.as_secs_f64())
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// How an export attempt ended.
#[derive(Debug, Clone)]
pub struct ExportAttempt<'a> {
    /// `processed` (delivered), `failed` (never to be sent) or `pending`
    /// (retry at `next_attempt_at`).
    pub status: BillingEventStatus,
    pub error: Option<&'a str>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub stripe_customer_id: Option<&'a str>,
    /// Counts as an attempt (false when nothing was sent, e.g. too old).
    pub attempted: bool,
}

/// Records an export attempt's outcome — only while the claim `lease`
/// (the `next_attempt_at` the claim set) still holds: `None` when the
/// lease ran out and another sender took the event meanwhile (its outcome
/// is the one that counts; a delivered event is never moved back).
pub async fn record_attempt(
    db: impl PgExecutor<'_>,
    id: Uuid,
    lease: Option<DateTime<Utc>>,
    a: &ExportAttempt<'_>,
) -> DbResult<Option<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "UPDATE billing_events
            SET status = $2, last_error = $3, next_attempt_at = $4,
                stripe_customer_id = COALESCE($5, stripe_customer_id),
                attempts = attempts + CASE WHEN $6 THEN 1 ELSE 0 END,
                processed_at = CASE WHEN $2 = 'processed' THEN now() ELSE processed_at END
          WHERE id = $1 AND status = 'pending' AND next_attempt_at IS NOT DISTINCT FROM $7 RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(a.status.as_str())
    .bind(a.error)
    .bind(a.next_attempt_at)
    .bind(a.stripe_customer_id)
    .bind(a.attempted)
    .bind(lease)
    .fetch_optional(db)
    .await?)
}

/// One billing event.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<BillingEvent> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM billing_events WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("billing event")
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub tenant_id: Option<Uuid>,
    pub event_type: Option<BillingEventType>,
    pub status: Option<BillingEventStatus>,
    /// Periods starting at or after.
    pub from: Option<DateTime<Utc>>,
    /// Periods starting before.
    pub to: Option<DateTime<Utc>>,
    /// Keyset cursor: events older than this one.
    pub after: Option<Uuid>,
}

/// Billing events, newest period first.
pub async fn list(db: impl PgExecutor<'_>, f: &EventFilter, limit: i64) -> DbResult<Vec<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM billing_events
          WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR event_type = $2)
            AND ($3::text IS NULL OR status = $3)
            AND ($4::timestamptz IS NULL OR period_start >= $4) AND ($5::timestamptz IS NULL OR period_start < $5)
            AND ($6::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM billing_events WHERE id = $6))
          ORDER BY created_at DESC, id DESC LIMIT $7"
    ))
    .bind(f.tenant_id)
    .bind(f.event_type.map(|t| t.as_str()))
    .bind(f.status.map(|s| s.as_str()))
    .bind(f.from)
    .bind(f.to)
    .bind(f.after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Puts a failed usage export back in the queue, due now; `None` when the
/// event is not a failed usage export.
pub async fn retry(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Option<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "UPDATE billing_events SET status = 'pending', next_attempt_at = now()
          WHERE id = $1 AND event_type = 'usage' AND status = 'failed' RETURNING ",
        columns!()
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// Usage exports of a tenant-hour, by revision.
pub async fn exports_of(db: impl PgExecutor<'_>, tenant_id: Uuid, hour: DateTime<Utc>) -> DbResult<Vec<BillingEvent>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM billing_events WHERE tenant_id = $1 AND period_start = $2 AND event_type = 'usage' ORDER BY revision"
    ))
    .bind(tenant_id)
    .bind(hour)
    .fetch_all(db)
    .await?)
}
