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

pub(super) async fn list_regions(State(s): State<AdminState>) -> Result<Json<List<RegionView>>> {
    Ok(Json(List::of(ops::list_regions(&s.pool).await?)))
}

pub(super) async fn get_region(State(s): State<AdminState>, Path(code): Path<String>) -> Result<Json<RegionView>> {
    Ok(Json(ops::get_region(&s.pool, &code).await?.into()))
}

pub(super) async fn put_region(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(code): Path<String>,
    Body(input): Body<ops::PutRegion>,
) -> Result<Json<RegionView>> {
    Ok(Json(ops::put_region(&s.pool, &actor, &code, input).await?.into()))
}

pub(super) async fn list_models(State(s): State<AdminState>) -> Result<Json<List<ModelView>>> {
    Ok(Json(List::of(ops::list_models(&s.pool).await?)))
}

pub(super) async fn get_model(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Json<ModelView>> {
    Ok(Json(ops::get_model(&s.pool, &name).await?.into()))
}

pub(super) async fn put_model(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(name): Path<String>,
    Body(input): Body<ops::PutModel>,
) -> Result<Json<ModelView>> {
    Ok(Json(ops::put_model(&s.pool, &actor, &name, input).await?.into()))
}

pub(super) async fn deprecate_model(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(name): Path<String>,
) -> Result<Json<ModelView>> {
    Ok(Json(ops::deprecate_model(&s.pool, &actor, &name).await?.into()))
}

pub(super) async fn list_gpus(State(s): State<AdminState>) -> Result<Json<List<GpuView>>> {
    Ok(Json(List::of(ops::list_gpus(&s.pool).await?)))
}

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

pub(super) async fn create_deployment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Body(input): Body<ops::CreateDeployment>,
) -> Result<(StatusCode, Json<DeploymentView>)> {
    let d = ops::create_deployment(&s.pool, &actor, input).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListDeployments {
    status: Option<DeploymentStatus>,
}

pub(super) async fn list_deployments(
    State(s): State<AdminState>,
    Query(q): Query<ListDeployments>,
) -> Result<Json<List<DeploymentView>>> {
    Ok(Json(List::of(ops::list_deployments(&s.pool, q.status).await?)))
}

pub(super) async fn get_deployment(State(s): State<AdminState>, Id(id): Id) -> Result<Json<DeploymentView>> {
    Ok(Json(ops::get_deployment(&s.pool, id).await?.into()))
}

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

pub(super) async fn pause_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<DeploymentView>> {
    deployment_status(s.0, a, id, DeploymentStatus::Paused).await
}

pub(super) async fn resume_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<DeploymentView>> {
    deployment_status(s.0, a, id, DeploymentStatus::Active).await
}

pub(super) async fn delete_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<DeploymentView>> {
    deployment_status(s.0, a, id, DeploymentStatus::Deleted).await
}
