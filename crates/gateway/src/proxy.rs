//! Sending a request to a node: candidate order, retries before any byte
//! reached the client, and the response (buffered JSON or a metered stream).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use crosslogic_http::ApiError;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;

use crate::routing::NodeState;
use crate::stream::MeteredStream;
use crate::usage::{RequestContext, RequestGuard, Usage};
use crate::Gateway;

/// Attempts on different nodes before giving up.
const MAX_ATTEMPTS: usize = 3;

/// An admitted inference request ready to send.
pub struct Outbound {
    pub ctx: Arc<RequestContext>,
    /// The endpoint (the same path on the node).
    pub endpoint: crate::request::Endpoint,
    pub body: Bytes,
    pub stream: bool,
    /// Hide the usage chunk the gateway asked for (see [`crate::stream`]).
    pub hide_usage: bool,
    /// Nodes to try, best first.
    pub candidates: Vec<Arc<NodeState>>,
    /// The admitted limits; moved into the attempt that gets served.
    pub lease: crate::limits::Lease,
    /// `x-ratelimit-*` headers for the response.
    pub rate_headers: crate::limits::RateHeaders,
    /// The gateway's time until admission (its overhead before forwarding).
    pub admitted: std::time::Duration,
}

/// Sends `req`, retrying another node on connect failures and 502/503.
pub async fn forward(gw: &Gateway, req: Outbound) -> Result<Response, ApiError> {
    let request_id: &str = &req.ctx.request_id;
    // Dropped unused (every attempt failed) it settles with 0 tokens.
    let mut lease = Some(req.lease);
    let mut last_error = String::from("no node accepted the request");
    for node in req.candidates.iter().take(MAX_ATTEMPTS) {
        // Dropped unserved (the attempt failed) it records nothing.
        let mut guard = RequestGuard::new(Arc::clone(&req.ctx), Arc::clone(node), gw.metering.clone());
        guard.gateway_time = req.admitted;
        let Some(url) = node.url(req.endpoint) else {
            node.record_failure();
            crate::telemetry::upstream_error("connect");
            tracing::warn!(request_id, node_id = %node.id, endpoint = %node.endpoint, "node endpoint is not a URL; trying another");
            last_error = "node endpoint is not a URL".to_owned();
            continue;
        };
        let sent = gw
            .http
            .post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", request_id)
            .body(req.body.clone())
            .send()
            .await;
        let resp = match sent {
            Ok(r) if matches!(r.status().as_u16(), 502 | 503) => {
                node.record_failure();
                crate::telemetry::upstream_error("status");
                last_error = format!("node answered {}", r.status());
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                node.record_failure();
                crate::telemetry::upstream_error("connect");
                tracing::warn!(request_id, node_id = %node.id, error = %e, "node unreachable; trying another");
                last_error = "node unreachable".to_owned();
                continue;
            }
        };
        node.record_success();
        guard.lease = lease.take();
        let mut out = respond(resp, req.stream, req.hide_usage, guard, request_id, &gw.tasks).await;
        for (name, value) in &req.rate_headers.0 {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.headers_mut().insert(*name, v);
            }
        }
        return Ok(out);
    }
    let model = &req.ctx.model.name;
    tracing::warn!(request_id, model = %model, last_error, "no node could serve the request");
    Err(ApiError::unavailable(format!(
        "No node could serve model `{model}` right now ({last_error}); retry shortly."
    )))
}

/// Events read ahead of the client at most.
const READ_AHEAD: usize = 64;

/// Reads a stream from the node ahead of the client, in a task of its own
/// (on `tasks`): events that arrive together reach the client in one write
/// instead of one write and two task wake-ups each (hyper hands a node's
/// events over one at a time, on demand). When the client goes away the
/// task stops at once and drops the node's stream, which is metered as
/// cancelled. What already arrived with the node's headers is taken at once
/// (it leaves with the client's headers, in one write).
fn read_ahead(
    mut events: MeteredStream,
    tasks: &tokio_util::task::TaskTracker,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let first = events.next().now_or_never();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD);
    let ended = matches!(first, Some(None));
    let out =
        futures_util::stream::iter(first.flatten()).chain(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    if ended {
        return out; // dropping `tx` ends it after the head
    }
    tasks.spawn(async move {
        loop {
            let item = tokio::select! {
                biased;
                () = tx.closed() => break,
                item = events.next() => item,
            };
            let Some(item) = item else { break };
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    out
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<Usage>,
}

async fn respond(
    resp: reqwest::Response,
    stream: bool,
    hide_usage: bool,
    mut guard: RequestGuard,
    request_id: &str,
    tasks: &tokio_util::task::TaskTracker,
) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let request_id = HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("unknown"));
    if stream && status.is_success() {
        guard.served = true;
        let body = Body::from_stream(read_ahead(
            MeteredStream::new(resp.bytes_stream().boxed(), hide_usage, guard),
            tasks,
        ));
        let mut out = Response::new(body);
        let h = out.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        h.insert("x-request-id", request_id);
        return out;
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "node broke off a response");
            guard.node.record_failure();
            crate::telemetry::upstream_error("body");
            return axum::response::IntoResponse::into_response(ApiError::upstream(
                "The model node failed while answering.",
            ));
        }
    };
    if !status.is_success() {
        let mut out = axum::response::IntoResponse::into_response(engine_error(status, &bytes));
        out.headers_mut().insert("x-request-id", request_id);
        return out;
    }
    let work = std::time::Instant::now();
    guard.served = true;
    guard.usage = serde_json::from_slice::<WithUsage>(&bytes).ok().and_then(|w| w.usage);
    guard.gateway_time += work.elapsed();
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    h.insert("x-request-id", request_id);
    out
}

/// What a node's error says, in OpenAI's envelope: vLLM answers
/// `{"error": {"message", "type": "BadRequestError", "code": 400}}` (older
/// versions put the fields at the top level), which OpenAI's clients and
/// our documented contract do not expect. A refused request stays a 400
/// (or 404) with the engine's message; a failed engine is a 502.
fn engine_error(status: StatusCode, body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct Fields {
        message: Option<String>,
        param: Option<String>,
    }
    #[derive(Deserialize)]
    struct Nested {
        error: Fields,
    }
    let fields = serde_json::from_slice::<Nested>(body)
        .map(|n| n.error)
        .or_else(|_| serde_json::from_slice::<Fields>(body));
    let (message, param) = match fields {
        Ok(f) => (f.message, f.param),
        Err(_) => (None, None),
    };
    let message = message.unwrap_or_else(|| format!("The model node refused the request ({status})."));
    let e = match status.as_u16() {
        404 => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("not_found"),
            message,
        ),
        400..=499 => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", None, message),
        _ => return ApiError::upstream(format!("The model node failed while answering: {message}")),
    };
    match param {
        Some(p) => e.with_param(p),
        None => e,
    }
}
