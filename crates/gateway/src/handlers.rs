//! The OpenAI-compatible routes. An inference request goes through these
//! steps, each in its own module (see the crate documentation for the
//! whole path): authenticate ([`InferenceCaller`]), read the request
//! ([`InferenceRequest`]), find the model, pick candidate nodes, reserve
//! the limits, forward.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use crosslogic_http::{ApiError, List};
use serde::Serialize;

use crate::auth::{Caller, InferenceCaller};
use crate::limits::Lease;
use crate::proxy::{forward, Outbound};
use crate::request::{Endpoint, InferenceRequest};
use crate::usage::RequestContext;
use crate::Gateway;

type Authed = Result<InferenceCaller, ApiError>;

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "inference",
    request_body = crate::openapi::ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion; with `\"stream\": true`, server-sent events of `chat.completion.chunk` objects ending with `data: [DONE]`",
            content((crate::openapi::Completion = "application/json"), (crate::openapi::StreamEvent = "text/event-stream"))),
        crosslogic_http::docs::InferenceErrors
    ),
    security(("tenant_key" = []))
)]
pub async fn chat_completions(State(gw): State<Gateway>, caller: Authed, body: Bytes) -> Response {
    measured(&gw, caller, body, Endpoint::Chat).await
}

#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "inference",
    request_body = crate::openapi::CompletionRequest,
    responses(
        (status = 200, description = "The completion; with `\"stream\": true`, server-sent events of `chat.completion.chunk` objects ending with `data: [DONE]`",
            content((crate::openapi::Completion = "application/json"), (crate::openapi::StreamEvent = "text/event-stream"))),
        crosslogic_http::docs::InferenceErrors
    ),
    security(("tenant_key" = []))
)]
pub async fn completions(State(gw): State<Gateway>, caller: Authed, body: Bytes) -> Response {
    measured(&gw, caller, body, Endpoint::Completions).await
}

#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "inference",
    request_body = crate::openapi::EmbeddingRequest,
    responses((status = 200, description = "OK", body = crate::openapi::Embeddings), crosslogic_http::docs::InferenceErrors),
    security(("tenant_key" = []))
)]
pub async fn embeddings(State(gw): State<Gateway>, caller: Authed, body: Bytes) -> Response {
    measured(&gw, caller, body, Endpoint::Embeddings).await
}

/// Runs an inference request and records its metrics (refusals included;
/// duration until the response head: for streams, time to first byte).
async fn measured(gw: &Gateway, caller: Authed, body: Bytes, endpoint: Endpoint) -> Response {
    let started = Instant::now();
    let resp = match caller {
        Ok(InferenceCaller(key)) => inference(gw, key, body, endpoint, started).await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(IntoResponse::into_response);
    crate::telemetry::request(endpoint.label(), resp.status().as_u16(), started.elapsed());
    resp
}

async fn inference(
    gw: &Gateway,
    key: Arc<crate::auth::AuthedKey>,
    body: Bytes,
    endpoint: Endpoint,
    started: Instant,
) -> Result<Response, ApiError> {
    // 1. Read the request (streams ask the engine for usage).
    let req = InferenceRequest::parse(endpoint, body)?;
    // 2. The model: known, allowed for this key, right for the endpoint.
    let snapshot = gw.routes.snapshot();
    let model = req.model_in(&snapshot, |m| key.may_use(m))?;
    // 3. Where it can go.
    let candidates = snapshot.candidates(&req.model, key.region.as_deref());
    if candidates.is_empty() {
        return Err(ApiError::unavailable(format!(
            "No node is serving model `{}` right now; capacity may be starting up. Retry shortly.",
            req.model
        )));
    }
    // 4. Admission: every limit layer, with the token estimate reserved.
    let estimate = gw.limiter.estimate(&req);
    let ctx = Arc::new(RequestContext {
        // Time-ordered (UUIDv7): the usage table's request_id index then
        // grows at its right edge instead of at random pages.
        request_id: Arc::from(format!("req_{}", uuid::Uuid::now_v7().simple())),
        key,
        model,
        snapshot,
        started,
        endpoint: endpoint.label(),
        prompt_estimate: estimate.prompt,
    });
    let plan = gw.limiter.plan(&ctx.key, Arc::clone(&ctx.request_id), estimate.total());
    let rate_headers = gw.limiter.admit(&plan).await?;
    let lease = Lease::new(gw.limiter.clone(), plan, gw.tasks.clone());
    // The gateway's own time so far; the served attempt adds its work on
    // the answer and reports the sum (`crosslogic_gateway_overhead_seconds`).
    let admitted = started.elapsed();
    // 5. Forward, retrying other nodes; the served attempt meters itself.
    forward(
        gw,
        Outbound {
            ctx,
            endpoint,
            body: req.body,
            stream: req.stream,
            hide_usage: req.hide_usage,
            candidates,
            lease,
            rate_headers,
            admitted,
        },
    )
    .await
}

/// A model as `/v1/models` answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelObject {
    id: String,
    /// Always `model`.
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

fn model_object(name: &str, created: i64) -> ModelObject {
    ModelObject {
        id: name.to_owned(),
        object: "model",
        created,
        owned_by: "crosslogic",
    }
}

/// `GET /v1/models`: models this key may use that some node serves.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    responses((status = 200, description = "OK", body = List<ModelObject>), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub async fn list_models(State(gw): State<Gateway>, Caller(key): Caller) -> Json<List<ModelObject>> {
    let snapshot = gw.routes.snapshot();
    let mut names: Vec<&String> = snapshot
        .models
        .keys()
        .filter(|m| key.may_use(m) && snapshot.is_served(m))
        .collect();
    names.sort();
    let data: Vec<ModelObject> = names
        .into_iter()
        .map(|n| model_object(n, snapshot.models[n].created))
        .collect();
    Json(List::of(data))
}

/// `GET /v1/models/{id}`.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "models",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ModelObject), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub async fn get_model(
    State(gw): State<Gateway>,
    Caller(key): Caller,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let snapshot = gw.routes.snapshot();
    match snapshot.models.get(&id) {
        Some(m) if key.may_use(&id) && snapshot.is_served(&id) => Ok(Json(model_object(&m.name, m.created))),
        _ => Err(ApiError::model_not_found(&id)),
    }
}

/// Any other path under `/v1`: OpenAI's 404 shape.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError {
        code: None,
        ..ApiError::not_found(format!("Invalid URL ({uri}): no such endpoint."))
    }
}
