//! HTTP routes of the agent API under `/agent/v1`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use crosslogic_core::keys::TokenDigest;
use crosslogic_db::PgPool;
use crosslogic_http::{bearer, ApiError, Body, Id};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Heartbeat, HeartbeatAnswer, Registered, Registration};

/// What the agent routes share.
#[derive(Clone)]
pub struct AgentState {
    pool: PgPool,
    /// `NODE_REGISTRATION_TOKEN`; `None` = on-prem registration off.
    registration: Option<TokenDigest>,
}

impl AgentState {
    /// State over `pool`; `registration_token` enables on-prem registration.
    pub fn new(pool: PgPool, registration_token: Option<&SecretString>) -> AgentState {
        AgentState {
            pool,
            registration: registration_token.map(|t| TokenDigest::of(t.expose_secret())),
        }
    }
}

/// Every agent route.
pub fn router(state: AgentState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(heartbeat))
        .routes(routes!(preemption))
        .routes(routes!(deregister))
        .with_state(state)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::unauthorized("invalid_node_credential", message)
}

fn token(headers: &HeaderMap) -> Result<&str, ApiError> {
    bearer(headers).ok_or_else(|| unauthorized("send the node credential as Authorization: Bearer <token>"))
}

/// Checks the per-node credential of node `id`.
async fn authenticate(s: &AgentState, headers: &HeaderMap, id: Uuid) -> Result<(), ApiError> {
    let token = token(headers)?;
    super::authenticate_node(&s.pool, id, token).await.map_err(|e| match e {
        crosslogic_core::ServiceError::Unauthorized(m) => unauthorized(m),
        other => other.into(),
    })
}

#[utoipa::path(
    post,
    path = "/agent/v1/register",
    tag = "agent",
    request_body = Registration,
    responses((status = 200, description = "OK", body = Registered), crosslogic_http::docs::Errors),
    security(("node_credential" = []))
)]
async fn register(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Body(reg): Body<Registration>,
) -> Result<Json<Registered>, ApiError> {
    let onprem = match reg.node_id {
        Some(id) => {
            authenticate(&s, &headers, id).await?;
            false
        }
        None => {
            let presented = token(&headers)?;
            let Some(expected) = &s.registration else {
                return Err(unauthorized(
                    "on-prem registration is disabled: set NODE_REGISTRATION_TOKEN on the control plane",
                ));
            };
            if !expected.matches(presented) {
                return Err(unauthorized("invalid registration token"));
            }
            true
        }
    };
    Ok(Json(super::register(&s.pool, reg, onprem).await?))
}

#[utoipa::path(
    post,
    path = "/agent/v1/nodes/{id}/heartbeat",
    tag = "agent",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = Heartbeat,
    responses((status = 200, description = "OK", body = HeartbeatAnswer), crosslogic_http::docs::Errors),
    security(("node_credential" = []))
)]
async fn heartbeat(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Id(id): Id,
    Body(hb): Body<Heartbeat>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    authenticate(&s, &headers, id).await?;
    Ok(Json(super::heartbeat(&s.pool, id, hb).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct Notice {
    provider: String,
    #[serde(default)]
    notice: String,
}

/// What preemption and deregistration answer: the node's new status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct StatusAnswer {
    status: &'static str,
}

#[utoipa::path(
    post,
    path = "/agent/v1/nodes/{id}/preemption",
    tag = "agent",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = Notice,
    responses((status = 200, description = "OK", body = StatusAnswer), crosslogic_http::docs::Errors),
    security(("node_credential" = []))
)]
async fn preemption(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Id(id): Id,
    Body(n): Body<Notice>,
) -> Result<Json<StatusAnswer>, ApiError> {
    authenticate(&s, &headers, id).await?;
    let text = format!(
        "{} preemption notice: {}",
        n.provider,
        n.notice.chars().take(500).collect::<String>()
    );
    super::preempted(&s.pool, id, &text).await?;
    Ok(Json(StatusAnswer { status: "draining" }))
}

#[utoipa::path(
    post,
    path = "/agent/v1/nodes/{id}/deregister",
    tag = "agent",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = StatusAnswer), crosslogic_http::docs::Errors),
    security(("node_credential" = []))
)]
async fn deregister(
    State(s): State<AgentState>,
    headers: HeaderMap,
    Id(id): Id,
) -> Result<Json<StatusAnswer>, ApiError> {
    authenticate(&s, &headers, id).await?;
    super::deregister(&s.pool, id).await?;
    Ok(Json(StatusAnswer { status: "terminated" }))
}
