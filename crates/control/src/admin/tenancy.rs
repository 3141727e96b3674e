//! Admin handlers for tenants, environments and keys: extract, call
//! [`crosslogic_tenancy`], answer the view.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use crosslogic_core::{ApiKeyStatus, EnvironmentStatus, TenantStatus};
use crosslogic_http::{ApiError, Body, Id, List, Query};
use crosslogic_tenancy::views::{ApiKeyView, CreatedKeyView, EnvironmentView, TenantView};
use crosslogic_tenancy::{self as ops};
use serde::Deserialize;
use uuid::Uuid;

use super::{AdminActor, AdminState};

type Result<T> = std::result::Result<T, ApiError>;

#[utoipa::path(
    post,
    path = "/admin/v1/tenants",
    tag = "admin: tenants",
    request_body = ops::CreateTenant,
    responses((status = 201, description = "Created", body = TenantView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn create_tenant(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Body(input): Body<ops::CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>)> {
    let t = ops::create_tenant(&s.pool, &actor, input, s.billing.signup_credit(chrono::Utc::now())).await?;
    Ok((StatusCode::CREATED, Json(t.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListTenants {
    status: Option<TenantStatus>,
    /// Case-insensitive text the name or the email contains.
    #[param(min_length = 1, max_length = 255)]
    q: Option<String>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/tenants",
    tag = "admin: tenants",
    params(ListTenants),
    responses((status = 200, description = "OK", body = List<TenantView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_tenants(
    State(s): State<AdminState>,
    Query(q): Query<ListTenants>,
) -> Result<Json<List<TenantView>>> {
    let (data, next) = ops::list_tenants(&s.pool, q.status, q.q.as_deref(), q.after, q.limit).await?;
    Ok(Json(List::page(data, next)))
}

#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}",
    tag = "admin: tenants",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = TenantView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_tenant(State(s): State<AdminState>, Id(id): Id) -> Result<Json<TenantView>> {
    Ok(Json(ops::get_tenant(&s.pool, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/admin/v1/tenants/{id}",
    tag = "admin: tenants",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = ops::UpdateTenant,
    responses((status = 200, description = "OK", body = TenantView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn update_tenant(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<ops::UpdateTenant>,
) -> Result<Json<TenantView>> {
    Ok(Json(ops::update_tenant(&s.pool, &actor, id, input).await?.into()))
}

async fn tenant_status(s: AdminState, actor: AdminActor, id: Uuid, status: TenantStatus) -> Result<Json<TenantView>> {
    Ok(Json(
        ops::set_tenant_status(&s.pool, &actor.0, id, status).await?.into(),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/suspend",
    tag = "admin: tenants",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = TenantView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn suspend_tenant(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<TenantView>> {
    tenant_status(s, a, id, TenantStatus::Suspended).await
}

#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/activate",
    tag = "admin: tenants",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = TenantView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn activate_tenant(
    State(s): State<AdminState>,
    a: AdminActor,
    Id(id): Id,
) -> Result<Json<TenantView>> {
    tenant_status(s, a, id, TenantStatus::Active).await
}

#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{id}",
    tag = "admin: tenants",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = TenantView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn delete_tenant(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<TenantView>> {
    tenant_status(s, a, id, TenantStatus::Deleted).await
}

#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/environments",
    tag = "admin: environments",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = ops::CreateEnvironment,
    responses((status = 201, description = "Created", body = EnvironmentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn create_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(tenant_id): Id,
    Body(input): Body<ops::CreateEnvironment>,
) -> Result<(StatusCode, Json<EnvironmentView>)> {
    let e = ops::create_environment(&s.pool, &actor, tenant_id, input).await?;
    Ok((StatusCode::CREATED, Json(e.into())))
}

#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/environments",
    tag = "admin: environments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = List<EnvironmentView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_environments(
    State(s): State<AdminState>,
    Id(tenant_id): Id,
) -> Result<Json<List<EnvironmentView>>> {
    Ok(Json(List::of(ops::list_environments(&s.pool, tenant_id).await?)))
}

#[utoipa::path(
    get,
    path = "/admin/v1/environments/{id}",
    tag = "admin: environments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = EnvironmentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_environment(State(s): State<AdminState>, Id(id): Id) -> Result<Json<EnvironmentView>> {
    Ok(Json(ops::get_environment(&s.pool, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/admin/v1/environments/{id}",
    tag = "admin: environments",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = ops::UpdateEnvironment,
    responses((status = 200, description = "OK", body = EnvironmentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn update_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<ops::UpdateEnvironment>,
) -> Result<Json<EnvironmentView>> {
    Ok(Json(ops::update_environment(&s.pool, &actor, id, input).await?.into()))
}

async fn environment_status(
    s: AdminState,
    actor: AdminActor,
    id: Uuid,
    status: EnvironmentStatus,
) -> Result<Json<EnvironmentView>> {
    Ok(Json(
        ops::set_environment_status(&s.pool, &actor.0, id, status).await?.into(),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/v1/environments/{id}/suspend",
    tag = "admin: environments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = EnvironmentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn suspend_environment(
    State(s): State<AdminState>,
    a: AdminActor,
    Id(id): Id,
) -> Result<Json<EnvironmentView>> {
    environment_status(s, a, id, EnvironmentStatus::Suspended).await
}

#[utoipa::path(
    post,
    path = "/admin/v1/environments/{id}/activate",
    tag = "admin: environments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = EnvironmentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn activate_environment(
    State(s): State<AdminState>,
    a: AdminActor,
    Id(id): Id,
) -> Result<Json<EnvironmentView>> {
    environment_status(s, a, id, EnvironmentStatus::Active).await
}

#[utoipa::path(
    delete,
    path = "/admin/v1/environments/{id}",
    tag = "admin: environments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 204, description = "Done; no body"), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn delete_environment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<StatusCode> {
    ops::delete_environment(&s.pool, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/keys",
    tag = "admin: keys",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = ops::CreateKey,
    responses((status = 201, description = "Created", body = CreatedKeyView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn create_key(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(tenant_id): Id,
    Body(input): Body<ops::CreateKey>,
) -> Result<(StatusCode, Json<CreatedKeyView>)> {
    let created = ops::create_key(&s.pool, &actor, tenant_id, input).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListKeys {
    environment_id: Option<Uuid>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/keys",
    tag = "admin: keys",
    params(("id" = Uuid, Path, description = "The id."), ListKeys),
    responses((status = 200, description = "OK", body = List<ApiKeyView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_keys(
    State(s): State<AdminState>,
    Id(tenant_id): Id,
    Query(q): Query<ListKeys>,
) -> Result<Json<List<ApiKeyView>>> {
    Ok(Json(List::of(
        ops::list_keys(&s.pool, tenant_id, q.environment_id).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/admin/v1/keys/{id}",
    tag = "admin: keys",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ApiKeyView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_key(State(s): State<AdminState>, Id(id): Id) -> Result<Json<ApiKeyView>> {
    Ok(Json(ops::get_key(&s.pool, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/admin/v1/keys/{id}",
    tag = "admin: keys",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = ops::UpdateKey,
    responses((status = 200, description = "OK", body = ApiKeyView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn update_key(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<ops::UpdateKey>,
) -> Result<Json<ApiKeyView>> {
    Ok(Json(ops::update_key(&s.pool, &actor, id, input).await?.into()))
}

async fn key_status(s: AdminState, actor: AdminActor, id: Uuid, status: ApiKeyStatus) -> Result<Json<ApiKeyView>> {
    Ok(Json(ops::set_key_status(&s.pool, &actor.0, id, status).await?.into()))
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/revoke",
    tag = "admin: keys",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ApiKeyView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn revoke_key(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<ApiKeyView>> {
    key_status(s, a, id, ApiKeyStatus::Revoked).await
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/suspend",
    tag = "admin: keys",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ApiKeyView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn suspend_key(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<ApiKeyView>> {
    key_status(s, a, id, ApiKeyStatus::Suspended).await
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/activate",
    tag = "admin: keys",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ApiKeyView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn activate_key(State(s): State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<ApiKeyView>> {
    key_status(s, a, id, ApiKeyStatus::Active).await
}
