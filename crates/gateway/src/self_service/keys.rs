//! `/v1/keys`: an admin key manages its tenant's API keys through the same
//! tenancy functions as the operator's admin API (events and audit included).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use crosslogic_control::tenancy::{self, CreateKey};
use crosslogic_core::{ApiKeyRole, ApiKeyStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{actor, no_such_key, service_error, tenant_key, AdminCaller};
use crate::error::OpenAiError;
use crate::Gateway;

/// Body of `POST /v1/keys`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// One of the tenant's environments; default: the caller's.
    environment_id: Option<Uuid>,
    name: Option<String>,
    /// Default `developer`.
    role: Option<ApiKeyRole>,
    user_id: Option<String>,
    rate_limit_requests_per_min: Option<i64>,
    rate_limit_tokens_per_min: Option<i64>,
    concurrency_limit: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
    metadata: Option<Value>,
}

/// Query of `GET /v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    environment_id: Option<String>,
}

/// A key as answered: its stored fields (never the hash) plus `object`.
fn key_object(key: &impl Serialize) -> Result<Value, OpenAiError> {
    let mut v = serde_json::to_value(key).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise an API key");
        OpenAiError::internal()
    })?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("object".into(), json!("api_key"));
    }
    Ok(v)
}

/// A `{id}` path segment; anything but a UUID is simply not a key.
fn key_id(raw: &str) -> Result<Uuid, OpenAiError> {
    Uuid::parse_str(raw).map_err(|_| no_such_key(raw))
}

/// `GET /v1/keys`: the tenant's keys, newest first.
pub(crate) async fn list_keys(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let Query(q) = q.map_err(|e| OpenAiError::invalid(format!("Invalid query string: {}.", e.body_text()), None))?;
    let environment_id = match q.environment_id.as_deref() {
        None => None,
        Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| {
            OpenAiError::invalid(
                format!("Invalid `environment_id` {raw:?}: expected an environment id (a UUID)."),
                Some("environment_id"),
            )
        })?),
    };
    let keys = tenancy::list_keys(gw.keys.pool(), caller.tenant_id, environment_id)
        .await
        .map_err(service_error)?;
    let data = keys.iter().map(key_object).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `POST /v1/keys`: creates a key; the secret (`key_secret`) is shown once.
pub(crate) async fn create_key(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), OpenAiError> {
    let input: NewKey = if body.iter().all(u8::is_ascii_whitespace) {
        NewKey::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            OpenAiError::invalid(format!("We could not parse the JSON body of your request: {e}."), None)
        })?
    };
    let created = tenancy::create_key(
        gw.keys.pool(),
        &actor(&caller),
        caller.tenant_id,
        CreateKey {
            environment_id: input.environment_id.unwrap_or(caller.environment_id),
            name: input.name,
            role: input.role,
            user_id: input.user_id,
            rate_limit_requests_per_min: input.rate_limit_requests_per_min,
            rate_limit_tokens_per_min: input.rate_limit_tokens_per_min,
            concurrency_limit: input.concurrency_limit,
            expires_at: input.expires_at,
            metadata: input.metadata,
        },
    )
    .await
    .map_err(service_error)?;
    Ok((StatusCode::CREATED, Json(key_object(&created)?)))
}

/// `GET /v1/keys/{id}`: one of the tenant's keys.
pub(crate) async fn get_key(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Path(raw): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let key = tenant_key(&gw, &caller, key_id(&raw)?).await?;
    Ok(Json(key_object(&key)?))
}

/// `POST /v1/keys/{id}/revoke`: revokes one of the tenant's keys (the
/// caller's own included); revoking a revoked key answers it unchanged.
pub(crate) async fn revoke_key(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Path(raw): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    // The tenant check comes first: another tenant's key is never touched.
    let key = tenant_key(&gw, &caller, key_id(&raw)?).await?;
    let revoked = tenancy::set_key_status(gw.keys.pool(), &actor(&caller), key.id, ApiKeyStatus::Revoked)
        .await
        .map_err(service_error)?;
    Ok(Json(key_object(&revoked)?))
}
