//! Admin handlers for nodes: list, inspect, drain, terminate, and the
//! launch/terminate logs (a page as JSON, or followed as plain text).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crosslogic_core::{NodeStatus, Provider};
use crosslogic_db::repo::nodes::NodeFilter;
use crosslogic_http::{ApiError, Id, List, Query};
use serde::Deserialize;
use uuid::Uuid;

use super::views::{NodeDetailView, NodeLogsView, NodeView, TerminationView};
use super::{AdminActor, AdminState};
use crate::fleet::{self as ops, NodeLogs};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListNodes {
    status: Option<NodeStatus>,
    model: Option<String>,
    region: Option<String>,
    deployment_id: Option<Uuid>,
    provider: Option<Provider>,
    include_terminated: Option<bool>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/nodes",
    tag = "admin: nodes",
    params(ListNodes),
    responses((status = 200, description = "OK", body = List<NodeView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_nodes(
    State(s): State<AdminState>,
    Query(q): Query<ListNodes>,
) -> Result<Json<List<NodeView>>, ApiError> {
    let filter = NodeFilter {
        status: q.status,
        model_name: q.model,
        region_code: q.region,
        deployment_id: q.deployment_id,
        provider: q.provider,
        include_terminated: q.include_terminated.unwrap_or(false),
    };
    Ok(Json(List::of(ops::list_nodes(&s.pool, filter, q.limit).await?)))
}

#[utoipa::path(
    get,
    path = "/admin/v1/nodes/{id}",
    tag = "admin: nodes",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = NodeDetailView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_node(State(s): State<AdminState>, Id(id): Id) -> Result<Json<NodeDetailView>, ApiError> {
    Ok(Json(ops::get_node(&s.pool, id).await?.into()))
}

#[utoipa::path(
    post,
    path = "/admin/v1/nodes/{id}/drain",
    tag = "admin: nodes",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = NodeView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn drain_node(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<Json<NodeView>, ApiError> {
    Ok(Json(ops::drain_node(&s.pool, &actor, id).await?.into()))
}

/// How often a follower polls for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// A follower is closed after this long even if a job still runs.
const FOLLOW_MAX: Duration = Duration::from_secs(3600);

#[utoipa::path(
    post,
    path = "/admin/v1/nodes/{id}/terminate",
    tag = "admin: nodes",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = TerminationView), (status = 202, description = "Accepted", body = TerminationView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn terminate_node(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<(StatusCode, Json<TerminationView>), ApiError> {
    let t = ops::terminate_node(&s.pool, s.jobs.as_ref(), &actor, id).await?;
    let status = if t.job_id.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(t.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsQuery {
    /// Cursor: only lines after it.
    after: Option<i64>,
    limit: Option<i64>,
    /// Stream lines as plain text until the node's jobs are done.
    follow: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/nodes/{id}/logs",
    tag = "admin: nodes",
    params(("id" = Uuid, Path, description = "The id."), LogsQuery),
    responses((status = 200, description = "The log page (JSON), or with `follow=true` the lines as they come (plain text)", content((NodeLogsView = "application/json"), (String = "text/plain"))), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn node_logs(
    State(s): State<AdminState>,
    Id(id): Id,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let after = q.after.unwrap_or(0);
    let first = ops::node_logs(&s.pool, id, after, q.limit).await?;
    if !q.follow.unwrap_or(false) {
        return Ok(Json(NodeLogsView::from(first)).into_response());
    }
    // Follow: `[job kind] line` per line, polling until no job runs.
    let pool = s.pool.clone();
    let deadline = tokio::time::Instant::now() + FOLLOW_MAX;
    let stream = futures_util::stream::unfold(Some(first), move |page: Option<NodeLogs>| {
        let pool = pool.clone();
        async move {
            let page = page?;
            let text = render(&page);
            let next = if page.running || !page.lines.is_empty() {
                if page.lines.is_empty() {
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                if tokio::time::Instant::now() >= deadline {
                    None
                } else {
                    match ops::node_logs(&pool, id, page.next_cursor, None).await {
                        Ok(p) => Some(p),
                        Err(e) => {
                            tracing::warn!(error = %e, "log follower stopped");
                            None
                        }
                    }
                }
            } else {
                None
            };
            Some((Ok::<_, std::convert::Infallible>(text), next))
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

fn render(page: &NodeLogs) -> String {
    let mut out = String::new();
    for l in &page.lines {
        let kind = page
            .jobs
            .iter()
            .find(|j| j.id == l.job_id)
            .map_or("job", |j| j.kind.as_str());
        out.push_str(&format!(
            "{} [{kind}] {}\n",
            l.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            l.line
        ));
    }
    out
}
