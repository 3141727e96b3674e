//! `notification_config` (per-tenant channels) and `notification_deliveries`
//! (one row per event × destination, retried with backoff).

use chrono::{DateTime, Utc};
use crosslogic_core::{DeliveryStatus, NotificationChannel};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `notification_config`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelConfig {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub channel: NotificationChannel,
    pub enabled: bool,
    pub destination: String,
    /// `None` = every event type.
    pub event_types: Option<Vec<String>>,
    pub settings: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! config_columns {
    () => {
        "id, tenant_id, channel, enabled, destination, event_types, settings, created_at, updated_at"
    };
}

/// Creates or replaces a tenant's configuration of one channel.
pub async fn upsert_config(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    channel: NotificationChannel,
    enabled: bool,
    destination: &str,
    event_types: Option<&[String]>,
    settings: &Value,
) -> DbResult<ChannelConfig> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO notification_config (tenant_id, channel, enabled, destination, event_types, settings)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, channel) DO UPDATE
            SET enabled = EXCLUDED.enabled, destination = EXCLUDED.destination,
                event_types = EXCLUDED.event_types, settings = EXCLUDED.settings
         RETURNING ",
        config_columns!()
    ))
    .bind(tenant_id)
    .bind(channel.as_str())
    .bind(enabled)
    .bind(destination)
    .bind(event_types)
    .bind(settings)
    .fetch_one(db)
    .await?)
}

/// A tenant's channel configurations.
pub async fn list_config(db: impl PgExecutor<'_>, tenant_id: Uuid) -> DbResult<Vec<ChannelConfig>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        config_columns!(),
        " FROM notification_config WHERE tenant_id = $1 ORDER BY channel"
    ))
    .bind(tenant_id)
    .fetch_all(db)
    .await?)
}

/// Enabled channels of a tenant that want `event_type`.
pub async fn subscribers(db: impl PgExecutor<'_>, tenant_id: Uuid, event_type: &str) -> DbResult<Vec<ChannelConfig>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        config_columns!(),
        " FROM notification_config
          WHERE tenant_id = $1 AND enabled AND (event_types IS NULL OR $2 = ANY(event_types))"
    ))
    .bind(tenant_id)
    .bind(event_type)
    .fetch_all(db)
    .await?)
}

/// Removes a tenant's configuration of one channel.
pub async fn delete_config(db: impl PgExecutor<'_>, tenant_id: Uuid, channel: NotificationChannel) -> DbResult<()> {
    let done = sqlx::query("DELETE FROM notification_config WHERE tenant_id = $1 AND channel = $2")
        .bind(tenant_id)
        .bind(channel.as_str())
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(crate::DbError::NotFound {
            entity: "notification channel",
        });
    }
    Ok(())
}

/// A row of `notification_deliveries`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Option<i64>,
    pub event_type: String,
    pub tenant_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub channel: NotificationChannel,
    pub destination: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub retry_count: i32,
    pub max_retries: i32,
    pub request_body: Option<Value>,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
}

macro_rules! delivery_columns {
    () => {
        "id, event_id, event_type, tenant_id, channel, destination, status, retry_count, max_retries, request_body, \
         response_status, response_body, error, created_at, sent_at, failed_at, next_retry_at"
    };
}

/// Queues a delivery of an event to one destination; `None` if that event
/// was already queued for it (concurrent fan-out never duplicates).
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    event_id: i64,
    event_type: &str,
    tenant_id: Option<Uuid>,
    channel: NotificationChannel,
    destination: &str,
    max_retries: i32,
) -> DbResult<Option<Delivery>> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO notification_deliveries (event_id, event_type, tenant_id, channel, destination, max_retries, next_retry_at)
         VALUES ($1, $2, $3, $4, $5, $6, now())
         ON CONFLICT (event_id, channel, destination) DO NOTHING RETURNING ",
        delivery_columns!()
    ))
    .bind(event_id)
    .bind(event_type)
    .bind(tenant_id)
    .bind(channel.as_str())
    .bind(destination)
    .bind(max_retries)
    .fetch_optional(db)
    .await?)
}

/// Locks up to `limit` deliveries that are due, skipping ones another worker holds.
pub async fn claim_due(tx: &mut PgConnection, limit: i64) -> DbResult<Vec<Delivery>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM notification_deliveries
          WHERE status IN ('pending', 'retry') AND (next_retry_at IS NULL OR next_retry_at <= now())
          ORDER BY next_retry_at NULLS FIRST LIMIT $1 FOR UPDATE SKIP LOCKED"
    ))
    .bind(limit)
    .fetch_all(tx)
    .await?)
}

/// Outcome of one delivery attempt.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub status: DeliveryStatus,
    pub request_body: Option<&'a Value>,
    pub response_status: Option<i32>,
    pub response_body: Option<&'a str>,
    pub error: Option<&'a str>,
    /// When to try again (status `retry`).
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// Records an attempt: `sent`, `retry` (retry_count + 1) or `failed`.
pub async fn record_attempt(db: impl PgExecutor<'_>, id: Uuid, a: &Attempt<'_>) -> DbResult<Delivery> {
    sqlx::query_as(concat!(
        "UPDATE notification_deliveries SET
            status = $2, request_body = COALESCE($3, request_body), response_status = $4, response_body = $5,
            error = $6, next_retry_at = $7,
            retry_count = retry_count + CASE WHEN $2 = 'retry' THEN 1 ELSE 0 END,
            sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END,
            failed_at = CASE WHEN $2 = 'failed' THEN now() ELSE failed_at END
          WHERE id = $1 RETURNING ",
        delivery_columns!()
    ))
    .bind(id)
    .bind(a.status.as_str())
    .bind(a.request_body)
    .bind(a.response_status)
    .bind(a.response_body)
    .bind(a.error)
    .bind(a.next_retry_at)
    .fetch_optional(db)
    .await
    .or_not_found("notification delivery")
}

/// The delivery log, newest first, optionally for one tenant.
pub async fn list_deliveries(db: impl PgExecutor<'_>, tenant_id: Option<Uuid>, limit: i64) -> DbResult<Vec<Delivery>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM notification_deliveries WHERE ($1::uuid IS NULL OR tenant_id = $1) ORDER BY created_at DESC LIMIT $2"
    ))
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
