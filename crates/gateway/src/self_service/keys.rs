//! `/v1/keys`: an admin key manages its tenant's API keys through the same
//! tenancy functions as the operator's admin API (events and audit included).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use crosslogic_core::{ApiKeyRole, ApiKeyStatus};
use crosslogic_http::{ApiError, BodyOrDefault, Id, List, Query};
use crosslogic_tenancy::views::{ApiKeyView, CreatedKeyView};
use crosslogic_tenancy::{self as tenancy, CreateKey};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{actor, tenant_key};
use crate::auth::AdminCaller;
use crate::Gateway;

/// Body of `POST /v1/keys`; every field is optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    environment_id: Option<Uuid>,
}

/// `GET /v1/keys`: the tenant's keys, newest first.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "keys",
    params(ListQuery),
    responses((status = 200, description = "OK", body = List<ApiKeyView>), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn list_keys(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<List<ApiKeyView>>, ApiError> {
    let keys = tenancy::list_keys(gw.keys.pool(), caller.tenant_id, q.environment_id).await?;
    Ok(Json(List::of(keys)))
}

/// `POST /v1/keys`: creates a key; the secret (`key_secret`) is shown once.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "keys",
    request_body = NewKey,
    responses((status = 201, description = "Created", body = CreatedKeyView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn create_key(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    BodyOrDefault(input): BodyOrDefault<NewKey>,
) -> Result<(StatusCode, Json<CreatedKeyView>), ApiError> {
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
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// `GET /v1/keys/{id}`: one of the tenant's keys.
#[utoipa::path(
    get,
    path = "/v1/keys/{id}",
    tag = "keys",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ApiKeyView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn get_key(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json(tenant_key(&gw, &caller, id).await?.into()))
}

/// `POST /v1/keys/{id}/revoke`: revokes one of the tenant's keys (the
/// caller's own included); revoking a revoked key answers it unchanged.
#[utoipa::path(
    post,
    path = "/v1/keys/{id}/revoke",
    tag = "keys",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ApiKeyView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn revoke_key(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<Json<ApiKeyView>, ApiError> {
    // The tenant check comes first: another tenant's key is never touched.
    let key = tenant_key(&gw, &caller, id).await?;
    let revoked = tenancy::set_key_status(gw.keys.pool(), &actor(&caller), key.id, ApiKeyStatus::Revoked).await?;
    Ok(Json(revoked.into()))
}
