//! Tenant self-service under `/v1`: usage, latency and API keys, authenticated
//! by the tenant's own key (`Authorization: Bearer <key>`) and checked
//! against the key's role.
//!
//! | route | roles | answers |
//! |---|---|---|
//! | `GET /v1/usage?from=&to=&group_by=day\|hour\|model\|key[&key_id=]` | all | requests, tokens and cost per group |
//! | `GET /v1/usage/latency?from=&to=[&model=][&key_id=]` | all | p50/p95/p99, min/max and averages per model |
//! | `GET /v1/keys[?environment_id=]` | admin | the tenant's keys (never secrets or hashes) |
//! | `POST /v1/keys` | admin | a new key; its secret is in this response only |
//! | `GET /v1/keys/{id}` | admin | one of the tenant's keys |
//! | `POST /v1/keys/{id}/revoke` | admin | the revoked key (idempotent; revocation is final) |
//!
//! **Roles.** `admin` manages the tenant's keys and sees the usage and
//! latency of the whole tenant (or of one of its keys with `key_id`).
//! `developer` and `read-only` keys see the usage and latency of **their own
//! key only**: without `key_id` the answer covers the calling key, and naming
//! any other key answers 403. (Inference is refused to `read-only` keys in
//! [`crate::handlers`]; `GET /v1/models` is open to every role.) A refused
//! role answers 403 `permission_error` with code `insufficient_permissions`
//! and a message naming the role needed.
//!
//! **Tenancy.** Every lookup is scoped to the caller's tenant: the key id of
//! another tenant answers the same 404 as an id that does not exist, so ids
//! cannot be probed across tenants.
//!
//! **Self-revocation** is allowed: an admin key may revoke itself (e.g. when
//! it leaked); the call succeeds and every later request with that key gets
//! 401 once the revocation reached the key cache (within a second).
//!
//! **Audit.** Changes go through `crosslogic_control::tenancy` with the actor
//! `key:<prefix>`, so each one commits with its `events` outbox row and its
//! `audit_logs` entry.
//!
//! Unlike inference, these routes read PostgreSQL on every request (they
//! report or change the system of record); the caller's key itself still
//! comes from the key cache.

mod keys;
mod range;
mod usage;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use crosslogic_control::tenancy::{self, Actor};
use crosslogic_control::ServiceError;
use crosslogic_core::ApiKeyRole;
use crosslogic_db::repo::api_keys::ApiKey;
use uuid::Uuid;

use crate::auth::AuthedKey;
use crate::error::OpenAiError;
use crate::Gateway;

pub(crate) use keys::{create_key, get_key, list_keys, revoke_key};
pub(crate) use usage::{latency, usage};

/// Any authenticated key, whatever its role.
pub(crate) struct Caller(pub Arc<AuthedKey>);

impl FromRequestParts<Gateway> for Caller {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        gw.keys.authenticate(header).await.map(Caller)
    }
}

/// An authenticated key with the `admin` role (403 for any other role), so
/// a handler taking it cannot forget the role check.
pub(crate) struct AdminCaller(pub Arc<AuthedKey>);

impl FromRequestParts<Gateway> for AdminCaller {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, Self::Rejection> {
        let Caller(key) = Caller::from_request_parts(parts, gw).await?;
        if key.role != ApiKeyRole::Admin {
            return Err(insufficient(
                "Managing API keys requires an API key with the `admin` role",
                key.role,
            ));
        }
        Ok(AdminCaller(key))
    }
}

/// 403 `insufficient_permissions`: `what` needs the admin role, `has` is the caller's.
fn insufficient(what: &str, has: ApiKeyRole) -> OpenAiError {
    OpenAiError::forbidden(
        "insufficient_permissions",
        format!("{what}; this key has the `{has}` role."),
    )
}

/// The audit actor of a change made with `key`.
fn actor(key: &AuthedKey) -> Actor {
    Actor {
        name: format!("key:{}", key.key_prefix),
        ip: None,
    }
}

/// 404 for a key id that does not exist or belongs to another tenant.
fn no_such_key(raw: &str) -> OpenAiError {
    OpenAiError {
        status: StatusCode::NOT_FOUND,
        code: Some("not_found"),
        ..OpenAiError::invalid(format!("No API key with id `{raw}` in your account."), None)
    }
}

/// One of the caller's tenant's keys; another tenant's key looks absent.
async fn tenant_key(gw: &Gateway, caller: &AuthedKey, id: Uuid) -> Result<ApiKey, OpenAiError> {
    match tenancy::get_key(gw.keys.pool(), id).await {
        Ok(k) if k.tenant_id == caller.tenant_id => Ok(k),
        Ok(_) | Err(ServiceError::NotFound(_)) => Err(no_such_key(&id.to_string())),
        Err(e) => Err(service_error(e)),
    }
}

/// Maps a control-plane error onto OpenAI's envelope.
fn service_error(err: ServiceError) -> OpenAiError {
    match err {
        ServiceError::NotFound(what) => OpenAiError {
            status: StatusCode::NOT_FOUND,
            code: Some("not_found"),
            ..OpenAiError::invalid(format!("{what} not found."), None)
        },
        ServiceError::Invalid { field, message } => OpenAiError {
            code: Some("invalid_value"),
            ..OpenAiError::invalid(format!("`{field}` {message}."), Some(field))
        },
        ServiceError::Conflict { field, message } => OpenAiError {
            status: StatusCode::CONFLICT,
            code: Some("conflict"),
            ..OpenAiError::invalid(message, field)
        },
        ServiceError::State(message) => OpenAiError {
            status: StatusCode::CONFLICT,
            code: Some("invalid_state"),
            ..OpenAiError::invalid(message, None)
        },
        ServiceError::Internal(e) => {
            tracing::error!(error = %e, "self-service request failed");
            OpenAiError::internal()
        }
    }
}

/// Logs a database failure once and answers a 500 without internals.
fn db_error(err: crosslogic_db::DbError) -> OpenAiError {
    tracing::error!(error = %err, "self-service query failed");
    OpenAiError::internal()
}
