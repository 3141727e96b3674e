//! The OpenAI-compatible routes: authenticate, validate, pick nodes, forward.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use crosslogic_core::{ApiKeyRole, ModelType};
use serde_json::{json, Value};

use crate::auth::AuthedKey;
use crate::error::OpenAiError;
use crate::proxy::{forward, Outbound};
use crate::Gateway;

/// The fields of an OpenAI request body the gateway acts on.
#[derive(serde::Deserialize)]
struct RequestHead<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }
}

async fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Result<Arc<AuthedKey>, OpenAiError> {
    gw.keys
        .authenticate(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
        .await
}

pub async fn chat_completions(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    measured(&gw, &headers, body, Endpoint::Chat).await
}

pub async fn completions(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    measured(&gw, &headers, body, Endpoint::Completions).await
}

pub async fn embeddings(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    measured(&gw, &headers, body, Endpoint::Embeddings).await
}

/// Runs an inference request and records its metrics (duration until the
/// response head: for streams, time to first byte).
async fn measured(gw: &Gateway, headers: &HeaderMap, body: Bytes, endpoint: Endpoint) -> Response {
    let started = Instant::now();
    let resp = inference(gw, headers, body, endpoint)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    crate::telemetry::request(endpoint.label(), resp.status().as_u16(), started.elapsed());
    resp
}

async fn inference(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Result<Response, OpenAiError> {
    let started = Instant::now();
    let key = authenticate(gw, headers).await?;
    if key.role == ApiKeyRole::ReadOnly {
        return Err(OpenAiError::forbidden(
            "insufficient_permissions",
            "This key is read-only: it can list models and read usage, not run inference.",
        ));
    }
    // Only the fields the gateway needs are read; everything else is passed
    // through untouched (and not allocated while parsing).
    let head: RequestHead = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::invalid(format!("We could not parse the JSON body of your request: {e}."), None))?;
    let model_name = match head.model.as_deref() {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => {
            return Err(OpenAiError::invalid(
                "You must provide a model parameter.",
                Some("model"),
            ))
        }
    };
    let snapshot = gw.routes.snapshot();
    let model = match snapshot.models.get(&model_name) {
        Some(m) if key.may_use(&model_name) => m.clone(),
        _ => return Err(OpenAiError::model_not_found(&model_name)),
    };
    match (endpoint, model.model_type) {
        (Endpoint::Embeddings, ModelType::Embedding) => {}
        (Endpoint::Embeddings, _) => {
            return Err(OpenAiError::invalid(
                format!("The model `{model_name}` does not produce embeddings."),
                Some("model"),
            ))
        }
        (_, ModelType::Embedding) => {
            return Err(OpenAiError::invalid(
                format!("The model `{model_name}` is an embedding model; use /v1/embeddings."),
                Some("model"),
            ))
        }
        _ => {}
    }
    let stream = !matches!(endpoint, Endpoint::Embeddings) && head.stream == Some(true);
    let mut hide_usage = false;
    // Reservation for token limits: the request's size (about 4 bytes per
    // token) plus its completion budget; settled to the real usage later.
    let prompt_estimate = u32::try_from(body.len().div_ceil(4)).unwrap_or(u32::MAX);
    let completion_reserve = match endpoint {
        Endpoint::Embeddings => 0,
        _ => head
            .max_completion_tokens
            .or(head.max_tokens)
            .unwrap_or(gw.limiter.config().default_max_tokens),
    };
    let body = if stream {
        // Always obtain usage from the engine; hide it if the client did not ask.
        let mut doc: Value = serde_json::from_slice(&body).map_err(|_| OpenAiError::internal())?;
        let Some(obj) = doc.as_object_mut() else {
            return Err(OpenAiError::invalid("The request body must be a JSON object.", None));
        };
        let opts = obj.entry("stream_options").or_insert_with(|| json!({}));
        if !opts.is_object() {
            return Err(OpenAiError::invalid(
                "stream_options must be an object.",
                Some("stream_options"),
            ));
        }
        hide_usage = opts.get("include_usage").and_then(Value::as_bool) != Some(true);
        opts["include_usage"] = Value::Bool(true);
        Bytes::from(serde_json::to_vec(&doc).map_err(|_| OpenAiError::internal())?)
    } else {
        body
    };
    let candidates = snapshot.candidates(&model_name, key.region.as_deref());
    if candidates.is_empty() {
        return Err(OpenAiError::unavailable(format!(
            "No node is serving model `{model_name}` right now; capacity may be starting up. Retry shortly."
        )));
    }
    let request_id = format!("req_{}", uuid::Uuid::new_v4().simple());
    let plan = gw
        .limiter
        .plan(&key, &request_id, u64::from(prompt_estimate) + completion_reserve);
    let rate_headers = gw.limiter.admit(&plan).await?;
    let lease = crate::limits::Lease::new(gw.limiter.clone(), plan, gw.tasks.clone());
    crate::telemetry::overhead(endpoint.label(), started.elapsed());
    forward(
        gw,
        Outbound {
            path: endpoint.path(),
            body,
            stream,
            hide_usage,
            prompt_estimate,
            key,
            model,
            snapshot,
            candidates,
            started,
            request_id,
            lease,
            rate_headers,
        },
    )
    .await
}

fn model_object(name: &str, created: i64) -> Value {
    json!({ "id": name, "object": "model", "created": created, "owned_by": "crosslogic" })
}

/// `GET /v1/models`: models this key may use that some node serves.
pub async fn list_models(State(gw): State<Gateway>, headers: HeaderMap) -> Result<Json<Value>, OpenAiError> {
    let key = authenticate(&gw, &headers).await?;
    let snapshot = gw.routes.snapshot();
    let mut names: Vec<&String> = snapshot
        .models
        .keys()
        .filter(|m| key.may_use(m) && snapshot.is_served(m))
        .collect();
    names.sort();
    let data: Vec<Value> = names
        .into_iter()
        .map(|n| model_object(n, snapshot.models[n].created))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `GET /v1/models/{id}`.
pub async fn get_model(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let key = authenticate(&gw, &headers).await?;
    let snapshot = gw.routes.snapshot();
    match snapshot.models.get(&id) {
        Some(m) if key.may_use(&id) && snapshot.is_served(&id) => Ok(Json(model_object(&m.name, m.created))),
        _ => Err(OpenAiError::model_not_found(&id)),
    }
}

/// Any other path under `/v1`: OpenAI's 404 shape.
pub async fn not_found(uri: axum::http::Uri) -> OpenAiError {
    OpenAiError {
        status: axum::http::StatusCode::NOT_FOUND,
        ..OpenAiError::invalid(format!("Invalid URL ({uri}): no such endpoint."), None)
    }
}
