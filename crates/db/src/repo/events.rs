//! `events`: the durable outbox of domain events. Publish in the same
//! transaction as the change; delivery workers claim unprocessed events with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same one.
//! An insert trigger sends `NOTIFY crosslogic_events, '<id>'` to wake them.

use chrono::{DateTime, Utc};
use crosslogic_core::{Event, EventSeverity};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::DbResult;

/// The channel the insert trigger notifies.
pub const NOTIFY_CHANNEL: &str = "crosslogic_events";

/// A row of `events`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub tenant_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub severity: EventSeverity,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub fanned_out_at: Option<DateTime<Utc>>,
    pub fanout_attempts: i32,
    pub last_error: Option<String>,
}

macro_rules! columns {
    () => {
        "id, event_id, event_type, tenant_id, severity, payload, created_at, fanned_out_at, fanout_attempts, last_error"
    };
}

/// Appends an event; returns it with its id. Changes publish through
/// [`crate::changes`], which also writes their audit entry.
pub(crate) async fn publish(db: impl PgExecutor<'_>, event: &Event) -> DbResult<StoredEvent> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO events (event_type, tenant_id, severity, payload) VALUES ($1, $2, $3, $4) RETURNING ",
        columns!()
    ))
    .bind(event.kind().as_str())
    .bind(event.tenant_id())
    .bind(event.severity().as_str())
    .bind(event.payload())
    .fetch_one(db)
    .await?)
}

/// Appends an event unless one with `dedup_key` exists; `None` then.
pub(crate) async fn publish_once(
    db: impl PgExecutor<'_>,
    event: &Event,
    dedup_key: &str,
) -> DbResult<Option<StoredEvent>> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO events (event_type, tenant_id, severity, payload, dedup_key) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING ",
        columns!()
    ))
    .bind(event.kind().as_str())
    .bind(event.tenant_id())
    .bind(event.severity().as_str())
    .bind(event.payload())
    .bind(dedup_key)
    .fetch_optional(db)
    .await?)
}

/// Locks up to `limit` events not yet fanned out, oldest first, skipping
/// those another worker holds. Call inside a transaction; mark each with
/// [`mark_fanned_out`] or [`mark_fanout_failed`] before committing.
pub async fn claim_pending(tx: &mut PgConnection, limit: i64) -> DbResult<Vec<StoredEvent>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM events WHERE fanned_out_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
    ))
    .bind(limit)
    .fetch_all(tx)
    .await?)
}

/// Marks events as handed to the delivery tables.
pub async fn mark_all_fanned_out(db: impl PgExecutor<'_>, ids: &[i64]) -> DbResult<()> {
    sqlx::query("UPDATE events SET fanned_out_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks an event as handed to the delivery tables.
pub async fn mark_fanned_out(db: impl PgExecutor<'_>, id: i64) -> DbResult<()> {
    sqlx::query("UPDATE events SET fanned_out_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Records a failed fan-out attempt (the event stays pending).
pub async fn mark_fanout_failed(db: impl PgExecutor<'_>, id: i64, error: &str) -> DbResult<()> {
    sqlx::query("UPDATE events SET fanout_attempts = fanout_attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// Which events [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub tenant_id: Option<Uuid>,
    /// A type or a prefix (`node.` matches every node event).
    pub type_prefix: Option<String>,
    pub severity: Option<EventSeverity>,
    /// Older than this event (paging back).
    pub before_id: Option<i64>,
    /// Newer than this event (following the feed): answered oldest first.
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// Events matching `q`: newest first, or — with `after_id` — the ones
/// after it, oldest first (so a follower can append them in order).
pub async fn list(db: impl PgExecutor<'_>, q: &EventQuery) -> DbResult<Vec<StoredEvent>> {
    let order = if q.after_id.is_some() { "ASC" } else { "DESC" };
    let sql = format!(
        concat!(
            "SELECT ",
            columns!(),
            " FROM events
              WHERE ($1::uuid IS NULL OR tenant_id = $1)
                AND ($2::text IS NULL OR starts_with(event_type, $2))
                AND ($3::text IS NULL OR severity = $3)
                AND ($4::bigint IS NULL OR id < $4)
                AND ($5::bigint IS NULL OR id > $5)
              ORDER BY id {} LIMIT $6"
        ),
        order
    );
    Ok(sqlx::query_as(&sql)
        .bind(q.tenant_id)
        .bind(q.type_prefix.as_deref())
        .bind(q.severity.map(|s| s.as_str()))
        .bind(q.before_id)
        .bind(q.after_id)
        .bind(q.limit)
        .fetch_all(db)
        .await?)
}
