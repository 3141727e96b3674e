//! The read-only endpoints: `GET /health`, `GET /v1/models`, `GET /metrics`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::engine::unix_now;
use super::SimState;

/// vLLM's `/health`: 200 with an empty body while the engine is up.
pub(crate) async fn health() -> StatusCode {
    StatusCode::OK
}

/// vLLM's model list: the one served model with its context length.
pub(crate) async fn list(State(sim): SimState) -> Json<Value> {
    let name = &sim.cfg.served_model_name;
    let created = unix_now();
    Json(json!({
        "object": "list",
        "data": [{
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": name,
            "parent": null,
            "max_model_len": sim.cfg.max_model_len,
            "permission": [{
                "id": format!("modelperm-{}", uuid::Uuid::new_v4().simple()),
                "object": "model_permission",
                "created": created,
                "allow_create_engine": false,
                "allow_sampling": true,
                "allow_logprobs": true,
                "allow_search_indices": false,
                "allow_view": true,
                "allow_fine_tuning": false,
                "organization": "*",
                "group": null,
                "is_blocking": false,
            }],
        }],
    }))
}

/// Prometheus text exposition of the engine metrics.
pub(crate) async fn metrics(State(sim): SimState) -> Response {
    let body = sim.metrics.render(&sim.cfg.served_model_name, sim.cfg.max_num_seqs);
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(CONTENT_TYPE, content_type)], body).into_response()
}
