//! Tenant self-service under `/v1`: usage, latency and API keys, authenticated
//! by the tenant's own key (`Authorization: Bearer <key>`) and checked
//! against the key's role.
//!
//! | route | roles | answers |
//! |---|---|---|
//! | `GET /v1/usage?from=&to=&group_by=day\|hour\|model\|key[&key_id=]` | all | requests, tokens and cost per group |
//! | `GET /v1/usage/latency?from=&to=[&model=][&key_id=]` | all | p50/p95/p99, min/max and averages per model |
//! | `GET /v1/billing` | admin | this month's cost, settled/credited/payable amounts, credit balance, budget, arrears |
//! | `GET /v1/billing/costs?from=&to=&interval=day\|hour` | admin | cost per period and model (charts) |
//! | `GET /v1/billing/credits` | admin | the account's credits, remaining and expiry |
//! | `GET /v1/keys[?environment_id=]` | admin | the tenant's keys (never secrets or hashes) |
//! | `POST /v1/keys` | admin | a new key; its secret is in this response only |
//! | `GET /v1/keys/{id}` | admin | one of the tenant's keys |
//! | `POST /v1/keys/{id}/revoke` | admin | the revoked key (idempotent; revocation is final) |
//! | `GET, POST /v1/notifications/channels` | admin | the tenant's notification channels; a new one (a webhook's signing secret shown once) |
//! | `GET, PATCH, DELETE /v1/notifications/channels/{id}` | admin | one channel |
//! | `POST /v1/notifications/channels/{id}/test`, `/rotate-secret` | admin | a test send's delivery; a new signing secret |
//! | `GET /v1/notifications/deliveries[?status=&channel=&event_type=&from=&to=&after=&limit=]`, `/{id}`, `POST /{id}/redeliver` | admin | the delivery log |
//!
//! **Roles.** `admin` manages the tenant's keys and sees the usage and
//! latency of the whole tenant (or of one of its keys with `key_id`).
//! `developer` and `read-only` keys see the usage and latency of **their own
//! key only**: without `key_id` the answer covers the calling key, and naming
//! any other key answers 403. (Inference is refused to `read-only` keys by
//! [`crate::auth::InferenceCaller`]; `GET /v1/models` is open to every
//! role.) A refused role answers 403 `permission_error` with code
//! `insufficient_permissions` and a message naming the role needed.
//!
//! **Errors.** The envelope and status rule of `crosslogic-http`: 422
//! naming the parameter for a bad value (`from`, `group_by`, a body field),
//! 400 for a body that is not JSON.
//!
//! **Tenancy.** Every lookup is scoped to the caller's tenant: the key id of
//! another tenant answers the same 404 as an id that does not exist, so ids
//! cannot be probed across tenants.
//!
//! **Self-revocation** is allowed: an admin key may revoke itself (e.g. when
//! it leaked); the call succeeds and every later request with that key gets
//! 401 once the revocation reached the key cache (within a second).
//!
//! **Audit.** Changes go through `crosslogic_tenancy` with the actor
//! `key:<prefix>`, so each one commits with its `events` outbox row and its
//! `audit_logs` entry.
//!
//! Unlike inference, these routes read PostgreSQL on every request (they
//! report or change the system of record); the caller's key itself still
//! comes from the key cache.

pub(crate) mod billing;
pub(crate) mod keys;
pub(crate) mod notifications;
pub(crate) mod usage;

use crosslogic_core::{Actor, ServiceError};
use crosslogic_db::repo::api_keys::ApiKey;
use crosslogic_http::ApiError;
use uuid::Uuid;

use crate::auth::AuthedKey;
use crate::Gateway;

/// The audit actor of a change made with `key`.
fn actor(key: &AuthedKey) -> Actor {
    Actor::key(&key.key_prefix, None)
}

/// 404 for a key id that does not exist or belongs to another tenant.
fn no_such_key(id: Uuid) -> ApiError {
    ApiError::not_found(format!("No API key with id `{id}` in your account."))
}

/// One of the caller's tenant's keys; another tenant's key looks absent.
async fn tenant_key(gw: &Gateway, caller: &AuthedKey, id: Uuid) -> Result<ApiKey, ApiError> {
    match crosslogic_tenancy::get_key(gw.keys.pool(), id).await {
        Ok(k) if k.tenant_id == caller.tenant_id => Ok(k),
        Ok(_) | Err(ServiceError::NotFound(_)) => Err(no_such_key(id)),
        Err(e) => Err(e.into()),
    }
}
