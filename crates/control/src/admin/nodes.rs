//! Admin handlers that act on one node's lifecycle: terminate, and its
//! launch/terminate logs (a page as JSON, or followed as plain text).

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{AdminActor, AdminState, ApiError, Id};
use crate::fleet::{self as ops, NodeLogs, Termination};

/// How often a follower polls for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// A follower is closed after this long even if a job still runs.
const FOLLOW_MAX: Duration = Duration::from_secs(3600);

pub(super) async fn terminate_node(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<(StatusCode, Json<Termination>), ApiError> {
    let t = ops::terminate_node(&s.pool, s.jobs.as_ref(), &actor, id).await?;
    let status = if t.job_id.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(t)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsQuery {
    /// Cursor: only lines after it.
    after: Option<i64>,
    limit: Option<i64>,
    /// Stream lines as plain text until the node's jobs are done.
    follow: Option<bool>,
}

pub(super) async fn node_logs(
    State(s): State<AdminState>,
    Id(id): Id,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = q.after.unwrap_or(0);
    let first = ops::node_logs(&s.pool, id, after, q.limit).await?;
    if !q.follow.unwrap_or(false) {
        return Ok(Json(first).into_response());
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
        Body::from_stream(stream),
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
