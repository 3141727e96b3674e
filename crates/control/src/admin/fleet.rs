//! Admin handlers for regions, models, the GPU catalog, deployments and
//! nodes: extract, call [`crate::fleet`], map the result.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::Json;
use crosslogic_core::{DeploymentStatus, NodeStatus, Provider};
use crosslogic_db::repo::deployments::Deployment;
use crosslogic_db::repo::nodes::{Node, NodeFilter};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{AdminActor, AdminState, ApiError, Id};
use crate::fleet::{self as ops, GpuView, ModelView, NodeDetail, RegionView};
use crate::ServiceError;

type Result<T> = std::result::Result<T, ApiError>;

/// Every field of the fleet bodies, so a JSON type error can name its field.
const FIELDS: &[&str] = &[
    "name",
    "country",
    "city",
    "cloud_providers",
    "provider_regions",
    "cost_multiplier",
    "status",
    "family",
    "size",
    "type",
    "model_type",
    "context_length",
    "vram_required_gb",
    "price_input_per_million",
    "price_output_per_million",
    "tokens_per_second_capacity",
    "metadata",
    "vram_gb",
    "on_demand_usd_per_hour",
    "spot_usd_per_hour",
    "available",
    "model_name",
    "min_replicas",
    "max_replicas",
    "strategy",
    "provider",
    "region",
    "gpu_type",
    "gpu_count",
    "use_spot",
];

/// A JSON body whose errors name the field at fault: 400 for malformed
/// JSON, 422 with `param` for a missing field or a value of the wrong type.
pub(super) struct Input<T>(T);

/// Maps serde's "path: message at line L column C" onto a field error.
fn data_error(text: &str) -> ApiError {
    let text = text.trim_start_matches("Failed to deserialize the JSON body into the target type: ");
    let text = text.rsplit_once(" at line ").map_or(text, |(m, _)| m);
    let quoted = |prefix: &str| text.strip_prefix(prefix).and_then(|r| r.split('`').next());
    let path_field = text
        .split_once(": ")
        .filter(|(p, _)| !p.contains(' '))
        .map(|(p, rest)| (p.split(['.', '[']).next().unwrap_or(p), rest));
    let (field, message) = match (quoted("missing field `"), path_field) {
        (Some(f), _) => (f, "is required"),
        (None, Some((f, rest))) => (f, rest),
        (None, None) => ("", text),
    };
    match FIELDS.iter().find(|k| **k == field) {
        Some(k) => ServiceError::invalid(k, message).into(),
        None => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "invalid_value",
            text,
        ),
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Input<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Input(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(data_error(&e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::bad_request(
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {}", e.body_text()))),
        }
    }
}

fn list<T: Serialize>(data: Vec<T>) -> Json<Value> {
    Json(json!({ "object": "list", "data": data }))
}

fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request(e.body_text()))
}

pub(super) async fn list_regions(State(s): State<AdminState>) -> Result<Json<Value>> {
    let data = ops::list_regions(&s.pool).await?;
    Ok(list(data.into_iter().map(RegionView::from).collect()))
}

pub(super) async fn get_region(State(s): State<AdminState>, Path(code): Path<String>) -> Result<Json<RegionView>> {
    Ok(Json(ops::get_region(&s.pool, &code).await?.into()))
}

pub(super) async fn put_region(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(code): Path<String>,
    Input(input): Input<ops::PutRegion>,
) -> Result<Json<RegionView>> {
    Ok(Json(ops::put_region(&s.pool, &actor, &code, input).await?.into()))
}

pub(super) async fn list_models(State(s): State<AdminState>) -> Result<Json<Value>> {
    let data = ops::list_models(&s.pool).await?;
    Ok(list(data.into_iter().map(ModelView::from).collect()))
}

pub(super) async fn get_model(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Json<ModelView>> {
    Ok(Json(ops::get_model(&s.pool, &name).await?.into()))
}

pub(super) async fn put_model(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path(name): Path<String>,
    Input(input): Input<ops::PutModel>,
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

pub(super) async fn list_gpus(State(s): State<AdminState>) -> Result<Json<Value>> {
    let data = ops::list_gpus(&s.pool).await?;
    Ok(list(data.into_iter().map(GpuView::from).collect()))
}

pub(super) async fn put_gpu(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Path((name, provider)): Path<(String, String)>,
    Input(input): Input<ops::PutGpu>,
) -> Result<Json<GpuView>> {
    Ok(Json(
        ops::put_gpu(&s.pool, &actor, &name, &provider, input).await?.into(),
    ))
}

pub(super) async fn create_deployment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Input(input): Input<ops::CreateDeployment>,
) -> Result<(StatusCode, Json<Deployment>)> {
    let d = ops::create_deployment(&s.pool, &actor, input).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListDeployments {
    status: Option<DeploymentStatus>,
}

pub(super) async fn list_deployments(
    State(s): State<AdminState>,
    q: std::result::Result<Query<ListDeployments>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    Ok(list(ops::list_deployments(&s.pool, q.status).await?))
}

pub(super) async fn get_deployment(State(s): State<AdminState>, Id(id): Id) -> Result<Json<Deployment>> {
    Ok(Json(ops::get_deployment(&s.pool, id).await?))
}

pub(super) async fn update_deployment(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Input(input): Input<ops::UpdateDeployment>,
) -> Result<Json<Deployment>> {
    Ok(Json(ops::update_deployment(&s.pool, &actor, id, input).await?))
}

async fn deployment_status(s: AdminState, a: AdminActor, id: Uuid, to: DeploymentStatus) -> Result<Json<Deployment>> {
    Ok(Json(ops::set_deployment_status(&s.pool, &a.0, id, to).await?))
}

pub(super) async fn pause_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<Deployment>> {
    deployment_status(s.0, a, id, DeploymentStatus::Paused).await
}

pub(super) async fn resume_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<Deployment>> {
    deployment_status(s.0, a, id, DeploymentStatus::Active).await
}

pub(super) async fn delete_deployment(s: State<AdminState>, a: AdminActor, Id(id): Id) -> Result<Json<Deployment>> {
    deployment_status(s.0, a, id, DeploymentStatus::Deleted).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListNodes {
    status: Option<NodeStatus>,
    model: Option<String>,
    region: Option<String>,
    deployment_id: Option<Uuid>,
    provider: Option<Provider>,
    include_terminated: Option<bool>,
    limit: Option<i64>,
}

pub(super) async fn list_nodes(
    State(s): State<AdminState>,
    q: std::result::Result<Query<ListNodes>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let filter = NodeFilter {
        status: q.status,
        model_name: q.model,
        region_code: q.region,
        deployment_id: q.deployment_id,
        provider: q.provider,
        include_terminated: q.include_terminated.unwrap_or(false),
    };
    let data: Vec<Node> = ops::list_nodes(&s.pool, filter, q.limit).await?;
    Ok(list(data))
}

pub(super) async fn get_node(State(s): State<AdminState>, Id(id): Id) -> Result<Json<NodeDetail>> {
    Ok(Json(ops::get_node(&s.pool, id).await?))
}

pub(super) async fn drain_node(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<Json<Node>> {
    Ok(Json(ops::drain_node(&s.pool, &actor, id).await?))
}
