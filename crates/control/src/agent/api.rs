//! HTTP routes of the agent API under `/agent/v1`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use crosslogic_db::PgPool;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{Heartbeat, HeartbeatAnswer, Registered, Registration};
use crate::admin::{ApiError, Body};
use crate::ServiceError;

/// What the agent routes share.
#[derive(Clone)]
pub struct AgentState {
    pool: PgPool,
    /// SHA-256 of `NODE_REGISTRATION_TOKEN`; `None` = on-prem registration off.
    registration_digest: Option<[u8; 32]>,
}

impl AgentState {
    /// State over `pool`; `registration_token` enables on-prem registration.
    pub fn new(pool: PgPool, registration_token: Option<&SecretString>) -> AgentState {
        let registration_digest = registration_token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into());
        AgentState {
            pool,
            registration_digest,
        }
    }
}

/// Every agent route.
pub fn router(state: AgentState) -> Router {
    Router::new()
        .route("/agent/v1/register", post(register))
        .route("/agent/v1/nodes/{id}/heartbeat", post(heartbeat))
        .route("/agent/v1/nodes/{id}/preemption", post(preemption))
        .route("/agent/v1/nodes/{id}/deregister", post(deregister))
        .with_state(state)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid_node_credential",
        message,
    )
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("send the node credential as Authorization: Bearer <token>"))
}

fn node_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "node not found",
        )
    })
}

async fn authenticate(s: &AgentState, headers: &HeaderMap, id: Uuid) -> Result<(), ApiError> {
    let token = bearer(headers)?;
    match super::authenticate_node(&s.pool, id, token).await {
        Ok(()) => Ok(()),
        Err(ServiceError::State(_)) => Err(unauthorized("invalid node credential")),
        Err(e) => Err(e.into()),
    }
}

async fn register(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Body(reg): Body<Registration>,
) -> Result<Json<Registered>, ApiError> {
    let token = bearer(&headers)?;
    let onprem = match reg.node_id {
        Some(id) => {
            authenticate(&s, &headers, id).await?;
            false
        }
        None => {
            let Some(expected) = s.registration_digest else {
                return Err(unauthorized(
                    "on-prem registration is disabled: set NODE_REGISTRATION_TOKEN on the control plane",
                ));
            };
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if !bool::from(digest.ct_eq(&expected)) {
                return Err(unauthorized("invalid registration token"));
            }
            true
        }
    };
    Ok(Json(super::register(&s.pool, reg, onprem).await?))
}

async fn heartbeat(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Body(hb): Body<Heartbeat>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let id = node_id(&raw)?;
    authenticate(&s, &headers, id).await?;
    Ok(Json(super::heartbeat(&s.pool, id, hb).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct Notice {
    provider: String,
    #[serde(default)]
    notice: String,
}

async fn preemption(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Body(n): Body<Notice>,
) -> Result<Json<Value>, ApiError> {
    let id = node_id(&raw)?;
    authenticate(&s, &headers, id).await?;
    let text = format!(
        "{} preemption notice: {}",
        n.provider,
        n.notice.chars().take(500).collect::<String>()
    );
    super::preempted(&s.pool, id, &text).await?;
    Ok(Json(json!({ "status": "draining" })))
}

async fn deregister(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = node_id(&raw)?;
    authenticate(&s, &headers, id).await?;
    super::deregister(&s.pool, id).await?;
    Ok(Json(json!({ "status": "terminated" })))
}
