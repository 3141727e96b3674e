//! Admin handlers for tenants, environments and keys: extract, call
//! [`crate::tenancy`], map the result.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use crosslogic_core::{ApiKeyStatus, EnvironmentStatus, TenantStatus};
use crosslogic_db::repo::api_keys::ApiKey;
use crosslogic_db::repo::environments::Environment;
use crosslogic_db::repo::tenants::Tenant;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{AdminActor, AdminState, ApiError, Body, Id};
use crate::tenancy::{self as ops, CreatedKey};

type Result<T> = std::result::Result<T, ApiError>;

pub(super) async fn create_tenant(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Body(input): Body<ops::CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>)> {
    Ok((
        StatusCode::CREATED,
        Json(ops::create_tenant(&s.pool, &actor, input).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListTenants {
    status: Option<TenantStatus>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

pub(super) async fn list_tenants(
    State(s): State<AdminState>,
    q: std::result::Result<Query<ListTenants>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (data, next) = ops::list_tenants(&s.pool, q.status, q.after, q.limit).await?;
    Ok(Json(
        json!({ "object": "list", "data": data, "has_more": next.is_some(), "next_after": next }),
    ))
}

pub(super) async fn get_tenant(State(s): State<AdminState>, Id(id): Id) -> Result<Json<Tenant>> {
    Ok(Json(ops::get_tenant(&s.pool, id).await?))
}

pub(super) async fn update_tenant(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<ops::UpdateTenant>,
) -> Result<Json<Tenant>> {
    Ok(Json(ops::update_tenant(&s.pool, &actor, id, input).await?))
}

async fn tenant_status(s: AdminState, actor: AdminActor, id: Uuid, status: TenantStatus) -> Result<Json<Tenant>> {
    Ok(Json(ops::set_tenant_status(&s.pool, &actor.0, id, status).await?))
}

pub(super) async fn suspend_tenant(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<Tenant>> {
    tenant_status(s, a, id, TenantStatus::Suspended).await
}

pub(super) async fn activate_tenant(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<Tenant>> {
    tenant_status(s, a, id, TenantStatus::Active).await
}

pub(super) async fn delete_tenant(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<Tenant>> {
    tenant_status(s, a, id, TenantStatus::Deleted).await
}

pub(super) async fn create_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(tenant_id): Id,
    Body(input): Body<ops::CreateEnvironment>,
) -> Result<(StatusCode, Json<Environment>)> {
    Ok((
        StatusCode::CREATED,
        Json(ops::create_environment(&s.pool, &actor, tenant_id, input).await?),
    ))
}

pub(super) async fn list_environments(State(s): State<AdminState>, Id(tenant_id): Id) -> Result<Json<Value>> {
    let data = ops::list_environments(&s.pool, tenant_id).await?;
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub(super) async fn get_environment(State(s): State<AdminState>, Id(id): Id) -> Result<Json<Environment>> {
    Ok(Json(ops::get_environment(&s.pool, id).await?))
}

pub(super) async fn update_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<ops::UpdateEnvironment>,
) -> Result<Json<Environment>> {
    Ok(Json(ops::update_environment(&s.pool, &actor, id, input).await?))
}

pub(super) async fn suspend_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<Json<Environment>> {
    Ok(Json(
        ops::set_environment_status(&s.pool, &actor, id, EnvironmentStatus::Suspended).await?,
    ))
}

pub(super) async fn activate_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<Json<Environment>> {
    Ok(Json(
        ops::set_environment_status(&s.pool, &actor, id, EnvironmentStatus::Active).await?,
    ))
}

pub(super) async fn delete_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<StatusCode> {
    ops::delete_environment(&s.pool, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn create_key(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(tenant_id): Id,
    Body(input): Body<ops::CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>)> {
    Ok((
        StatusCode::CREATED,
        Json(ops::create_key(&s.pool, &actor, tenant_id, input).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListKeys {
    environment_id: Option<Uuid>,
}

pub(super) async fn list_keys(
    State(s): State<AdminState>,
    Id(tenant_id): Id,
    q: std::result::Result<Query<ListKeys>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let data = ops::list_keys(&s.pool, tenant_id, q.environment_id).await?;
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub(super) async fn get_key(State(s): State<AdminState>, Id(id): Id) -> Result<Json<ApiKey>> {
    Ok(Json(ops::get_key(&s.pool, id).await?))
}

pub(super) async fn update_key(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<ops::UpdateKey>,
) -> Result<Json<ApiKey>> {
    Ok(Json(ops::update_key(&s.pool, &actor, id, input).await?))
}

async fn key_status(s: AdminState, actor: AdminActor, id: Uuid, status: ApiKeyStatus) -> Result<Json<ApiKey>> {
    Ok(Json(ops::set_key_status(&s.pool, &actor.0, id, status).await?))
}

pub(super) async fn revoke_key(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<ApiKey>> {
    key_status(s, a, id, ApiKeyStatus::Revoked).await
}

pub(super) async fn suspend_key(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<ApiKey>> {
    key_status(s, a, id, ApiKeyStatus::Suspended).await
}

pub(super) async fn activate_key(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<ApiKey>> {
    key_status(s, a, id, ApiKeyStatus::Active).await
}
