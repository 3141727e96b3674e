//! The event log as the operator reads it (the admin API's
//! `GET /admin/v1/events` and the console's live feed): the `events`
//! outbox, filtered by tenant, type family and severity, paged back or
//! followed forward.

use chrono::{DateTime, Utc};
use crosslogic_core::{EventSeverity, ServiceError};
use crosslogic_db::repo::events::{self, EventQuery, StoredEvent};
use crosslogic_db::PgPool;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Most events one call returns.
pub const MAX_EVENTS: i64 = 200;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub tenant_id: Option<Uuid>,
    /// An event type (`node.dead`) or a family (`node.*` or `node.`).
    pub event_type: Option<String>,
    pub severity: Option<EventSeverity>,
    /// Older than this event id (the previous page's last).
    pub before: Option<i64>,
    /// Newer than this event id (following the feed; oldest first).
    pub after: Option<i64>,
    /// 1 to [`MAX_EVENTS`], default 50.
    pub limit: Option<i64>,
}

/// An event of the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// Always `event`.
    pub object: &'static str,
    /// Its position in the log (increasing): the `before` / `after` cursor.
    pub seq: i64,
    /// Its id, as notifications carry it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `null` for platform events.
    pub tenant_id: Option<Uuid>,
    pub severity: EventSeverity,
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: DateTime<Utc>,
    /// When it was handed to the notification channels (`null`: not yet).
    pub fanned_out_at: Option<DateTime<Utc>>,
}

impl From<StoredEvent> for EventView {
    fn from(e: StoredEvent) -> Self {
        EventView {
            object: "event",
            seq: e.id,
            id: e.event_id,
            event_type: e.event_type,
            tenant_id: e.tenant_id,
            severity: e.severity,
            data: e.payload,
            created_at: e.created_at,
            fanned_out_at: e.fanned_out_at,
        }
    }
}

/// Events matching `f`: newest first, or after `f.after` oldest first.
pub async fn list(pool: &PgPool, f: EventFilter) -> Result<Vec<EventView>, ServiceError> {
    let type_prefix = match f.event_type.as_deref().map(str::trim) {
        None | Some("") | Some("*") => None,
        Some(t) => {
            if t.len() > 100
                || !t
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._*".contains(c))
            {
                return Err(ServiceError::invalid(
                    "type",
                    "an event type (`node.dead`) or a family (`node.*`): lowercase letters, digits, `.` and `_`",
                ));
            }
            Some(t.trim_end_matches('*').to_owned())
        }
    };
    if f.before.is_some() && f.after.is_some() {
        return Err(ServiceError::invalid("after", "give `before` or `after`, not both"));
    }
    let limit = match f.limit {
        None => 50,
        Some(n) if (1..=MAX_EVENTS).contains(&n) => n,
        Some(_) => return Err(ServiceError::invalid("limit", format!("must be 1 to {MAX_EVENTS}"))),
    };
    let rows = events::list(
        pool,
        &EventQuery {
            tenant_id: f.tenant_id,
            type_prefix,
            severity: f.severity,
            before_id: f.before,
            after_id: f.after,
            limit,
        },
    )
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
