//! Admin handlers for regions, models, the GPU catalog and deployments:
//! extract, call [`crate::fleet`], answer the view.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use crosslogic_core::DeploymentStatus;
use crosslogic_http::{ApiError, Body, Id, List, Query};
use serde::Deserialize;
use uuid::Uuid;

use super::views::{DeploymentView, GpuView, ModelView, RegionView};
use super::{AdminActor, AdminState};
use crate::fleet as ops;

type Result<T> = std::result::Result<T, ApiError>;

#[utoipa::path(
    get,
    path = "/admin/v1/regions",
    tag = "admin: catalog",
    responses((status = 200, description = "OK", body = List<RegionView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_regions(State(s): State<AdminState>) -> Result<Json<List<RegionView>>> {
    Ok(Json(List::of(ops::list_regions(&s.pool).await?)))
}

#[utoipa::path(
    get,
    path = "/admin/v1/regions/{code}",
    tag = "admin: catalog",
    params(("code" = String, Path, description = "The code.")),
    responses((status = 200, description = "OK", body = RegionView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_region(State(s): State<AdminState>, Path(code): Path<String>) -> Result<Json<RegionView>> {
    Ok(Json(ops::get_region(&s.pool, &code).await?.into()))
}

#[utoipa::path(
    put,
    path = "/admin/v1/regions/{code}",
    tag = "admin: catalog",
    params(("code" = String, Path, description = "The code.")),
    request_body = ops::PutRegion,
    responses((status = 200, description = "OK", body = RegionView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn put_region(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(code): Path<String>,
    Body(input): Body<ops::PutRegion>,
) -> Result<Json<RegionView>> {
    Ok(Json(ops::put_region(&s.pool, &actor, &code, input).await?.into()))
}

#[utoipa::path(
    get,
    path = "/admin/v1/models",
    tag = "admin: catalog",
    responses((status = 200, description = "OK", body = List<ModelView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_models(State(s): State<AdminState>) -> Result<Json<List<ModelView>>> {
    Ok(Json(List::of(ops::list_models(&s.pool).await?)))
}

#[utoipa::path(
    get,
    path = "/admin/v1/models/{name}",
    tag = "admin: catalog",
    params(("name" = String, Path, description = "The name.")),
    responses((status = 200, description = "OK", body = ModelView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_model(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Json<ModelView>> {
    Ok(Json(ops::get_model(&s.pool, &name).await?.into()))
}

#[utoipa::path(
    put,
    path = "/admin/v1/models/{name}",
    tag = "admin: catalog",
    params(("name" = String, Path, description = "The name.")),
    request_body = ops::PutModel,
    responses((status = 200, description = "OK", body = ModelView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn put_model(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(name): Path<String>,
    Body(input): Body<ops::PutModel>,
) -> Result<Json<ModelView>> {
    Ok(Json(ops::put_model(&s.pool, &actor, &name, input).await?.into()))
}

#[utoipa::path(
    post,
    path = "/admin/v1/models/{name}/deprecate",
    tag = "admin: catalog",
    params(("name" = String, Path, description = "The name.")),
    responses((status = 200, description = "OK", body = ModelView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn deprecate_model(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(name): Path<String>,
) -> Result<Json<ModelView>> {
    Ok(Json(ops::deprecate_model(&s.pool, &actor, &name).await?.into()))
}

#[utoipa::path(
    get,
    path = "/admin/v1/gpus",
    tag = "admin: catalog",
    responses((status = 200, description = "OK", body = List<GpuView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_gpus(State(s): State<AdminState>) -> Result<Json<List<GpuView>>> {
    Ok(Json(List::of(ops::list_gpus(&s.pool).await?)))
}

#[utoipa::path(
    put,
    path = "/admin/v1/gpus/{name}/{provider}",
    tag = "admin: catalog",
    params(("name" = String, Path, description = "The name."), ("provider" = String, Path, description = "The provider.")),
    request_body = ops::PutGpu,
    responses((status = 200, description = "OK", body = GpuView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn put_gpu(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path((name, provider)): Path<(String, String)>,
    Body(input): Body<ops::PutGpu>,
) -> Result<Json<GpuView>> {
    Ok(Json(
        ops::put_gpu(&s.pool, &actor, &name, &provider, input).await?.into(),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/v1/deployments",
    tag = "admin: deployments",
    request_body = ops::CreateDeployment,
    responses((status = 201, description = "Created", body = DeploymentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn create_deployment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Body(input): Body<ops::CreateDeployment>,
) -> Result<(StatusCode, Json<DeploymentView>)> {
    let d = ops::create_deployment(&s.pool, &actor, input).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListDeployments {
    status: Option<DeploymentStatus>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/deployments",
    tag = "admin: deployments",
    params(ListDeployments),
    responses((status = 200, description = "OK", body = List<DeploymentView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_deployments(
    State(s): State<AdminState>,
    Query(q): Query<ListDeployments>,
) -> Result<Json<List<DeploymentView>>> {
    Ok(Json(List::of(ops::list_deployments(&s.pool, q.status).await?)))
}

#[utoipa::path(
    get,
    path = "/admin/v1/deployments/{id}",
    tag = "admin: deployments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeploymentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_deployment(State(s): State<AdminState>, Id(id): Id) -> Result<Json<DeploymentView>> {
    Ok(Json(ops::get_deployment(&s.pool, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/admin/v1/deployments/{id}",
    tag = "admin: deployments",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = ops::UpdateDeployment,
    responses((status = 200, description = "OK", body = DeploymentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn update_deployment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<ops::UpdateDeployment>,
) -> Result<Json<DeploymentView>> {
    Ok(Json(ops::update_deployment(&s.pool, &actor, id, input).await?.into()))
}

async fn deployment_status(
    s: AdminState,
    a: AdminActor,
    id: Uuid,
    to: DeploymentStatus,
) -> Result<Json<DeploymentView>> {
    Ok(Json(ops::set_deployment_status(&s.pool, &a.0, id, to).await?.into()))
}

#[utoipa::path(
    post,
    path = "/admin/v1/deployments/{id}/pause",
    tag = "admin: deployments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeploymentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn pause_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<DeploymentView>> {
    deployment_status(s.0, a, id, DeploymentStatus::Paused).await
}

#[utoipa::path(
    post,
    path = "/admin/v1/deployments/{id}/resume",
    tag = "admin: deployments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeploymentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn resume_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<DeploymentView>> {
    deployment_status(s.0, a, id, DeploymentStatus::Active).await
}

#[utoipa::path(
    delete,
    path = "/admin/v1/deployments/{id}",
    tag = "admin: deployments",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeploymentView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn delete_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<DeploymentView>> {
    deployment_status(s.0, a, id, DeploymentStatus::Deleted).await
}
