//! `GET /admin/v1/events`: the event log (the `events` outbox) over
//! [`crosslogic_notify::events`], for dashboards and the console's feed.

use axum::extract::State;
use axum::Json;
use crosslogic_core::EventSeverity;
use crosslogic_http::{ApiError, List, Query};
use crosslogic_notify::events::{self, EventFilter, EventView};
use serde::Deserialize;
use uuid::Uuid;

use super::AdminState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// One tenant's events.
    tenant_id: Option<Uuid>,
    /// An event type (`node.dead`) or a family (`node.*`).
    #[serde(rename = "type")]
    #[param(rename = "type", max_length = 100)]
    event_type: Option<String>,
    severity: Option<EventSeverity>,
    /// Events older than this `seq` (the previous page's last).
    #[param(minimum = 0)]
    before: Option<i64>,
    /// Events newer than this `seq`, oldest first (to follow the log).
    #[param(minimum = 0)]
    after: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/events",
    tag = "admin: events",
    params(EventsQuery),
    responses((status = 200, description = "Newest first; with `after`, the events after it oldest first", body = List<EventView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_events(
    State(s): State<AdminState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<List<EventView>>, ApiError> {
    let data = events::list(
        &s.pool,
        EventFilter {
            tenant_id: q.tenant_id,
            event_type: q.event_type,
            severity: q.severity,
            before: q.before,
            after: q.after,
            limit: q.limit,
        },
    )
    .await?;
    Ok(Json(List::of(data)))
}
