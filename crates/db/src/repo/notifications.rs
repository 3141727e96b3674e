//! `notification_config` (channels: a tenant's, or the operator's with
//! `tenant_id` NULL), `notification_deliveries` (one row per event ×
//! channel, claimed with a lease, retried with backoff) and
//! `notification_attempts` (every attempt).

use chrono::{DateTime, Utc};
use crosslogic_core::{AttemptOutcome, DeliveryStatus, EventSeverity, NotificationChannel};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// The channel the insert trigger of deliveries notifies.
pub const NOTIFY_CHANNEL: &str = "crosslogic_deliveries";

/// A signing secret of a webhook channel (`whsec_…`). Several are valid
/// during a rotation; each signs every delivery until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub secret: String,
    pub created_at: DateTime<Utc>,
    /// `None`: the current secret.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `notification_config.settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSettings {
    /// Webhook channels: the secrets deliveries are signed with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SigningSecret>,
    /// Only events of this severity or above (the operator's channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<EventSeverity>,
}

/// A row of `notification_config`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelConfig {
    pub id: Uuid,
    /// `None`: an operator channel, receiving every event.
    pub tenant_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub channel: NotificationChannel,
    pub enabled: bool,
    /// The webhook URL or email address (holds secrets: never shown whole).
    pub destination: String,
    /// `None` = every event type; entries are names, `family.*` or `*`.
    pub event_types: Option<Vec<String>>,
    #[sqlx(json)]
    pub settings: ChannelSettings,
    /// Why it was disabled by the platform (a receiver that is gone).
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! config_columns {
    () => {
        "id, tenant_id, channel, enabled, destination, event_types, settings, disabled_reason, created_at, updated_at"
    };
}

macro_rules! delivery_columns {
    () => {
        "id, event_id, event_type, tenant_id, channel, config_id, status, retry_count, max_retries, \
         response_status, response_body, error, created_at, updated_at, sent_at, failed_at, next_retry_at"
    };
}

/// A channel to create.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub tenant_id: Option<Uuid>,
    pub channel: NotificationChannel,
    pub enabled: bool,
    pub destination: String,
    pub event_types: Option<Vec<String>>,
    pub settings: ChannelSettings,
}

/// Creates a channel; a tenant has at most one per kind
/// (`Conflict { notification_config_tenant_channel_key }`).
pub async fn create_channel(db: impl PgExecutor<'_>, c: &NewChannel) -> DbResult<ChannelConfig> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO notification_config (tenant_id, channel, enabled, destination, event_types, settings)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        config_columns!()
    ))
    .bind(c.tenant_id)
    .bind(c.channel.as_str())
    .bind(c.enabled)
    .bind(&c.destination)
    .bind(&c.event_types)
    .bind(Json(&c.settings))
    .fetch_one(db)
    .await?)
}

/// One channel.
pub async fn get_channel(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<ChannelConfig> {
    sqlx::query_as(concat!(
        "SELECT ",
        config_columns!(),
        " FROM notification_config WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .or_not_found("notification channel")
}

/// A tenant's channels (`None`: the operator's), by kind.
pub async fn list_channels(db: impl PgExecutor<'_>, tenant_id: Option<Uuid>) -> DbResult<Vec<ChannelConfig>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        config_columns!(),
        " FROM notification_config WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY channel"
    ))
    .bind(tenant_id)
    .fetch_all(db)
    .await?)
}

/// Enabled channels that may receive events of these tenants: theirs and
/// every operator channel.
pub async fn enabled_channels_for(db: impl PgExecutor<'_>, tenants: &[Uuid]) -> DbResult<Vec<ChannelConfig>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        config_columns!(),
        " FROM notification_config WHERE enabled AND (tenant_id IS NULL OR tenant_id = ANY($1))"
    ))
    .bind(tenants)
    .fetch_all(db)
    .await?)
}

/// Fields of a channel to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub destination: Option<String>,
    pub enabled: Option<bool>,
    /// `Some(None)` clears the filter (every event).
    pub event_types: Option<Option<Vec<String>>>,
    pub settings: Option<ChannelSettings>,
}

/// Changes a channel. Enabling it clears the reason it was disabled for.
pub async fn update_channel(db: impl PgExecutor<'_>, id: Uuid, p: &ChannelPatch) -> DbResult<ChannelConfig> {
    sqlx::query_as(concat!(
        "UPDATE notification_config SET
            destination = COALESCE($2, destination),
            enabled = COALESCE($3, enabled),
            disabled_reason = CASE WHEN $3 THEN NULL ELSE disabled_reason END,
            event_types = CASE WHEN $4 THEN $5 ELSE event_types END,
            settings = COALESCE($6, settings)
          WHERE id = $1 RETURNING ",
        config_columns!()
    ))
    .bind(id)
    .bind(&p.destination)
    .bind(p.enabled)
    .bind(p.event_types.is_some())
    .bind(p.event_types.clone().flatten())
    .bind(p.settings.as_ref().map(Json))
    .fetch_optional(db)
    .await
    .or_not_found("notification channel")
}

/// Disables a channel the platform found gone; `None` when it already was
/// (so the caller reports it once).
pub async fn disable_channel(db: impl PgExecutor<'_>, id: Uuid, reason: &str) -> DbResult<Option<ChannelConfig>> {
    Ok(sqlx::query_as(concat!(
        "UPDATE notification_config SET enabled = false, disabled_reason = $2
          WHERE id = $1 AND enabled RETURNING ",
        config_columns!()
    ))
    .bind(id)
    .bind(reason)
    .fetch_optional(db)
    .await?)
}

/// Deletes a channel (its deliveries stay in the log, unlinked).
pub async fn delete_channel(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<()> {
    let done = sqlx::query("DELETE FROM notification_config WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(crate::DbError::NotFound {
            entity: "notification channel",
        });
    }
    Ok(())
}

/// Mirrors one operator channel from the configuration: created if
/// missing; a changed destination replaces it and re-enables it; an
/// unchanged one keeps its enabled state (a channel disabled because it is
/// gone stays disabled until its URL changes or it is re-enabled).
pub async fn upsert_operator_channel(
    db: impl PgExecutor<'_>,
    channel: NotificationChannel,
    destination: &str,
    settings: &ChannelSettings,
) -> DbResult<ChannelConfig> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO notification_config (tenant_id, channel, enabled, destination, settings)
         VALUES (NULL, $1, true, $2, $3)
         ON CONFLICT (channel) WHERE tenant_id IS NULL DO UPDATE SET
            enabled = CASE WHEN notification_config.destination <> EXCLUDED.destination
                             OR notification_config.disabled_reason = 'not configured'
                           THEN true ELSE notification_config.enabled END,
            disabled_reason = CASE WHEN notification_config.destination <> EXCLUDED.destination
                                     OR notification_config.disabled_reason = 'not configured'
                                   THEN NULL ELSE notification_config.disabled_reason END,
            destination = EXCLUDED.destination,
            settings = EXCLUDED.settings
         RETURNING ",
        config_columns!()
    ))
    .bind(channel.as_str())
    .bind(destination)
    .bind(Json(settings))
    .fetch_one(db)
    .await?)
}

/// Disables operator channels whose kind is no longer configured.
pub async fn disable_unconfigured_operator_channels(
    db: impl PgExecutor<'_>,
    configured: &[NotificationChannel],
) -> DbResult<u64> {
    let kinds: Vec<&str> = configured.iter().map(|c| c.as_str()).collect();
    let done = sqlx::query(
        "UPDATE notification_config SET enabled = false, disabled_reason = 'not configured'
          WHERE tenant_id IS NULL AND enabled AND NOT (channel = ANY($1))",
    )
    .bind(kinds)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub event_id: i64,
    pub event_type: String,
    /// The channel's owner (`None`: the operator), whose log it is in.
    pub tenant_id: Option<Uuid>,
    pub channel: NotificationChannel,
    pub config_id: Uuid,
    pub max_retries: i32,
}

/// The stable destination key of a channel's deliveries (unique per event
/// with the channel kind; it names the row, never the secret URL).
pub fn destination_key(config_id: Uuid) -> String {
    format!("channel:{config_id}")
}

/// Queues deliveries in one statement; a delivery already queued for its
/// event and channel is skipped, so fan-out can be repeated safely.
/// Returns how many were new.
pub async fn enqueue(db: impl PgExecutor<'_>, rows: &[NewDelivery]) -> DbResult<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let event_ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    let tenants: Vec<Option<Uuid>> = rows.iter().map(|r| r.tenant_id).collect();
    let channels: Vec<&str> = rows.iter().map(|r| r.channel.as_str()).collect();
    let configs: Vec<Uuid> = rows.iter().map(|r| r.config_id).collect();
    let destinations: Vec<String> = rows.iter().map(|r| destination_key(r.config_id)).collect();
    let max: Vec<i32> = rows.iter().map(|r| r.max_retries).collect();
    let done = sqlx::query(
        "INSERT INTO notification_deliveries
                (event_id, event_type, tenant_id, channel, config_id, destination, max_retries, next_retry_at)
         SELECT e, t, tn, c, cf, d, m, now()
           FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::text[], $5::uuid[], $6::text[], $7::int[])
                AS x(e, t, tn, c, cf, d, m)
         ON CONFLICT (event_id, channel, destination) DO NOTHING",
    )
    .bind(event_ids)
    .bind(types)
    .bind(tenants)
    .bind(channels)
    .bind(configs)
    .bind(destinations)
    .bind(max)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A claimed delivery with everything its sender needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub event_type: String,
    /// The channel's owner (`None`: the operator's channel).
    pub tenant_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub channel: NotificationChannel,
    pub config_id: Option<Uuid>,
    pub retry_count: i32,
    pub max_retries: i32,
    /// The claim: the row is this sender's until then.
    pub lease_until: DateTime<Utc>,
    /// The event's public id (`webhook-id`), payload and time.
    pub event_uuid: Option<Uuid>,
    pub payload: Option<Value>,
    pub event_created_at: Option<DateTime<Utc>>,
    pub severity: Option<String>,
    /// The channel now (`None` once deleted).
    pub destination: Option<String>,
    pub enabled: Option<bool>,
    pub settings: Option<Json<ChannelSettings>>,
    /// The name of the tenant the event concerns.
    pub tenant_name: Option<String>,
}

/// Claims up to `limit` due deliveries for `lease`: rows another sender
/// holds (an unexpired lease) are skipped, so two senders never send the
/// same row, and a crashed sender's claim expires.
pub async fn claim_due(db: &mut PgConnection, limit: i64, lease: std::time::Duration) -> DbResult<Vec<Claimed>> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    Ok(sqlx::query_as(
        "WITH due AS (
            SELECT id FROM notification_deliveries
             WHERE status IN ('pending', 'retry') AND next_retry_at <= now()
               AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_retry_at LIMIT $1 FOR UPDATE SKIP LOCKED
         ), claimed AS (
            UPDATE notification_deliveries d SET lease_until = now() + make_interval(secs => $2::float8 / 1000)
              FROM due WHERE d.id = due.id
            RETURNING d.*
         )
         SELECT c.id, c.event_type, c.tenant_id, c.channel, c.config_id, c.retry_count, c.max_retries, c.lease_until,
                e.event_id AS event_uuid, e.payload, e.created_at AS event_created_at, e.severity,
                n.destination, n.enabled, n.settings, t.name AS tenant_name
           FROM claimed c
           LEFT JOIN events e ON e.id = c.event_id
           LEFT JOIN notification_config n ON n.id = c.config_id
           LEFT JOIN tenants t ON t.id = e.tenant_id",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(db)
    .await?)
}

/// When the next delivery becomes due (`None`: nothing is waiting).
pub async fn next_due(db: impl PgExecutor<'_>) -> DbResult<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT min(GREATEST(next_retry_at, COALESCE(lease_until, next_retry_at)))
           FROM notification_deliveries WHERE status IN ('pending', 'retry')",
    )
    .fetch_one(db)
    .await?)
}

/// The result of one attempt, to record.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: AttemptOutcome,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub request_body: Option<Value>,
    pub response_status: Option<i32>,
    /// At most a few KB of what the receiver answered.
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// The next attempt (`retry` only).
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// Records an attempt on a delivery this sender still holds (`lease` is
/// the `lease_until` it claimed with), row and attempt log in one
/// statement; `false` when the claim was lost (the lease expired and
/// another sender took the row), in which case nothing is written.
pub async fn record_attempt(db: impl PgExecutor<'_>, id: Uuid, lease: DateTime<Utc>, a: &Attempt) -> DbResult<bool> {
    let status = match a.outcome {
        AttemptOutcome::Sent => DeliveryStatus::Sent,
        AttemptOutcome::Retry => DeliveryStatus::Retry,
        AttemptOutcome::Failed => DeliveryStatus::Failed,
    };
    let recorded: Option<i64> = sqlx::query_scalar(
        "WITH d AS (
            UPDATE notification_deliveries SET
                status = $3, request_body = COALESCE($4, request_body), response_status = $5, response_body = $6,
                error = $7, next_retry_at = COALESCE($8, next_retry_at), lease_until = NULL,
                retry_count = retry_count + 1,
                sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END,
                failed_at = CASE WHEN $3 = 'failed' THEN now() ELSE failed_at END
              WHERE id = $1 AND lease_until = $2
              RETURNING id, retry_count
         )
         INSERT INTO notification_attempts
                (delivery_id, attempt, started_at, duration_ms, outcome, response_status, response_body, error)
         SELECT d.id, d.retry_count, $9, $10, $11, $5, $6, $7 FROM d
         RETURNING id",
    )
    .bind(id)
    .bind(lease)
    .bind(status.as_str())
    .bind(&a.request_body)
    .bind(a.response_status)
    .bind(&a.response_body)
    .bind(&a.error)
    .bind(a.next_retry_at)
    .bind(a.started_at)
    .bind(a.duration_ms)
    .bind(a.outcome.as_str())
    .fetch_optional(db)
    .await?;
    Ok(recorded.is_some())
}

async fn insert_attempt(db: impl PgExecutor<'_>, delivery: Uuid, attempt: i32, a: &Attempt) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO notification_attempts
                (delivery_id, attempt, started_at, duration_ms, outcome, response_status, response_body, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(delivery)
    .bind(attempt)
    .bind(a.started_at)
    .bind(a.duration_ms)
    .bind(a.outcome.as_str())
    .bind(a.response_status)
    .bind(&a.response_body)
    .bind(&a.error)
    .execute(db)
    .await?;
    Ok(())
}

/// Gives a claimed delivery back without counting an attempt, due again at
/// `at` (the destination's rate limit said wait).
pub async fn release(db: impl PgExecutor<'_>, id: Uuid, lease: DateTime<Utc>, at: DateTime<Utc>) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE notification_deliveries SET lease_until = NULL, next_retry_at = $3 WHERE id = $1 AND lease_until = $2",
    )
    .bind(id)
    .bind(lease)
    .bind(at)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a delivery that was sent at once, outside the queue (a test
/// send): its row, already final, and its one attempt.
pub async fn record_direct(
    tx: &mut PgConnection,
    config: &ChannelConfig,
    event_type: &str,
    a: &Attempt,
) -> DbResult<Delivery> {
    let status = if a.outcome == AttemptOutcome::Sent {
        DeliveryStatus::Sent
    } else {
        DeliveryStatus::Failed
    };
    let d: Delivery = sqlx::query_as(concat!(
        "WITH d AS (
            INSERT INTO notification_deliveries
                (event_type, tenant_id, channel, config_id, destination, status, retry_count, max_retries,
                 request_body, response_status, response_body, error, sent_at, failed_at)
            VALUES ($1, $2, $3, $4, $5, $6, 1, 1, $7, $8, $9, $10,
                    CASE WHEN $6 = 'sent' THEN now() END, CASE WHEN $6 = 'failed' THEN now() END)
            RETURNING *
         ) SELECT ",
        delivery_columns!(),
        " FROM d"
    ))
    .bind(event_type)
    .bind(config.tenant_id)
    .bind(config.channel.as_str())
    .bind(config.id)
    .bind(format!("test:{}", Uuid::new_v4()))
    .bind(status.as_str())
    .bind(&a.request_body)
    .bind(a.response_status)
    .bind(&a.response_body)
    .bind(&a.error)
    .fetch_one(&mut *tx)
    .await?;
    insert_attempt(&mut *tx, d.id, 1, a).await?;
    Ok(d)
}

/// A row of `notification_deliveries` for the delivery log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Option<i64>,
    pub event_type: String,
    pub tenant_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub channel: NotificationChannel,
    pub config_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub retry_count: i32,
    /// Attempts it may take.
    pub max_retries: i32,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// `Some(None)`: the operator's channels only; `None`: every delivery.
    pub tenant_id: Option<Option<Uuid>>,
    pub config_id: Option<Uuid>,
    pub status: Option<DeliveryStatus>,
    pub channel: Option<NotificationChannel>,
    /// An event type, or a family prefix ending in `.` (`node.`).
    pub event_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only deliveries created before this one (the cursor of the next page).
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// The delivery log, newest first.
pub async fn list_deliveries(db: impl PgExecutor<'_>, f: &DeliveryFilter, limit: i64) -> DbResult<Vec<Delivery>> {
    let (before_at, before_id) = f.before.unzip();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM notification_deliveries
          WHERE ($1::bool IS FALSE OR tenant_id IS NOT DISTINCT FROM $2)
            AND ($3::uuid IS NULL OR config_id = $3)
            AND ($4::text IS NULL OR status = $4)
            AND ($5::text IS NULL OR channel = $5)
            AND ($6::text IS NULL OR event_type = $6 OR (right($6, 1) = '.' AND starts_with(event_type, $6)))
            AND ($7::timestamptz IS NULL OR created_at >= $7)
            AND ($8::timestamptz IS NULL OR created_at < $8)
            AND ($9::timestamptz IS NULL OR (created_at, id) < ($9, $10))
          ORDER BY created_at DESC, id DESC LIMIT $11"
    ))
    .bind(f.tenant_id.is_some())
    .bind(f.tenant_id.flatten())
    .bind(f.config_id)
    .bind(f.status.map(|s| s.as_str()))
    .bind(f.channel.map(|c| c.as_str()))
    .bind(&f.event_type)
    .bind(f.from)
    .bind(f.to)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// One delivery.
pub async fn get_delivery(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Delivery> {
    sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM notification_deliveries WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .or_not_found("notification delivery")
}

/// A row of `notification_attempts`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    #[sqlx(try_from = "String")]
    pub outcome: AttemptOutcome,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// A delivery's attempts, first first.
pub async fn attempts(db: impl PgExecutor<'_>, delivery_id: Uuid) -> DbResult<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "SELECT attempt, started_at, duration_ms, outcome, response_status, response_body, error
           FROM notification_attempts WHERE delivery_id = $1 ORDER BY attempt, id",
    )
    .bind(delivery_id)
    .fetch_all(db)
    .await?)
}

/// Queues a delivery again now, for one more attempt (whatever its
/// status); wakes the senders.
pub async fn redeliver(db: &mut PgConnection, id: Uuid) -> DbResult<Delivery> {
    let d: Delivery = sqlx::query_as(concat!(
        "WITH d AS (
            UPDATE notification_deliveries SET status = 'pending', next_retry_at = now(), lease_until = NULL,
                   max_retries = GREATEST(max_retries, retry_count + 1)
             WHERE id = $1 AND event_id IS NOT NULL RETURNING *
         ) SELECT ",
        delivery_columns!(),
        " FROM d"
    ))
    .bind(id)
    .fetch_optional(&mut *db)
    .await
    .or_not_found("notification delivery")?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(id.to_string())
        .execute(&mut *db)
        .await?;
    Ok(d)
}
