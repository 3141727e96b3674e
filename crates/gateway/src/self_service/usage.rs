//! `GET /v1/usage` and `GET /v1/usage/latency`: a tenant's usage and cost
//! (from the hourly rollups for whole rolled-up hours, raw rows for the
//! rest: `crosslogic_billing::report`) and latency (raw rows), scoped by
//! the caller's role (see the parent module).

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use crosslogic_billing::report::{self, GroupBy, Scope};
use crosslogic_billing::views::UsageRowView;
use crosslogic_core::ApiKeyRole;
use crosslogic_db::repo::usage::{self as usage_repo, ModelLatency};
use crosslogic_http::{range, ApiError, Query};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tenant_key;
use crate::auth::{insufficient, AuthedKey, Caller};
use crate::Gateway;

/// Query of `GET /v1/usage`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<GroupBy>,
    key_id: Option<Uuid>,
}

/// Query of `GET /v1/usage/latency`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct LatencyQuery {
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    key_id: Option<Uuid>,
}

/// Whose usage the caller sees: an admin the whole tenant or the key it
/// names (which must be the tenant's); any other role its own key only.
async fn key_scope(gw: &Gateway, caller: &AuthedKey, requested: Option<Uuid>) -> Result<Option<Uuid>, ApiError> {
    if caller.role == ApiKeyRole::Admin {
        if let Some(id) = requested {
            tenant_key(gw, caller, id).await?;
        }
        return Ok(requested);
    }
    match requested {
        Some(id) if id != caller.key_id => Err(insufficient(
            "Reading the usage of other keys requires an API key with the `admin` role \
             (other roles see their own key's usage)",
            caller.role,
        )),
        _ => Ok(Some(caller.key_id)),
    }
}

/// The answer of `GET /v1/usage`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UsageReport {
    /// Always `list`.
    object: &'static str,
    from: String,
    to: String,
    group_by: GroupBy,
    /// The key the report covers; `null` = the whole tenant.
    key_id: Option<Uuid>,
    data: Vec<UsageRowView>,
}

/// `GET /v1/usage`: requests, tokens and cost per day, hour, model or key.
#[utoipa::path(
    get,
    operation_id = "get_usage",
    path = "/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses((status = 200, description = "OK", body = UsageReport), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn usage(
    State(gw): State<Gateway>,
    Caller(caller): Caller,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let range = range::parse(q.from.as_deref(), q.to.as_deref(), Utc::now())?;
    let group_by = q.group_by.unwrap_or_default();
    let key_id = key_scope(&gw, &caller, q.key_id).await?;
    let rows = report::usage(
        gw.keys.pool(),
        Scope::Tenant {
            tenant_id: caller.tenant_id,
            api_key_id: key_id,
        },
        range.from,
        range.to,
        group_by.into(),
        false,
    )
    .await
    .map_err(crosslogic_core::ServiceError::from)?;
    Ok(Json(UsageReport {
        object: "list",
        from: range::rfc3339(range.from),
        to: range::rfc3339(range.to),
        group_by,
        key_id,
        data: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Latency of one model in `GET /v1/usage/latency`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LatencyRow {
    model: String,
    requests: i64,
    avg_latency_ms: f64,
    p50_latency_ms: f64,
    p95_latency_ms: f64,
    p99_latency_ms: f64,
    min_latency_ms: i32,
    max_latency_ms: i32,
    avg_prompt_tokens: f64,
    avg_completion_tokens: f64,
}

impl From<ModelLatency> for LatencyRow {
    fn from(r: ModelLatency) -> Self {
        LatencyRow {
            model: r.model_name,
            requests: r.requests,
            avg_latency_ms: r.avg_latency_ms,
            p50_latency_ms: r.p50_latency_ms,
            p95_latency_ms: r.p95_latency_ms,
            p99_latency_ms: r.p99_latency_ms,
            min_latency_ms: r.min_latency_ms,
            max_latency_ms: r.max_latency_ms,
            avg_prompt_tokens: r.avg_prompt_tokens,
            avg_completion_tokens: r.avg_completion_tokens,
        }
    }
}

/// The answer of `GET /v1/usage/latency`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LatencyReport {
    /// Always `list`.
    object: &'static str,
    from: String,
    to: String,
    key_id: Option<Uuid>,
    data: Vec<LatencyRow>,
}

/// `GET /v1/usage/latency`: latency percentiles and averages per model.
#[utoipa::path(
    get,
    operation_id = "get_usage_latency",
    path = "/v1/usage/latency",
    tag = "usage",
    params(LatencyQuery),
    responses((status = 200, description = "OK", body = LatencyReport), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn latency(
    State(gw): State<Gateway>,
    Caller(caller): Caller,
    Query(q): Query<LatencyQuery>,
) -> Result<Json<LatencyReport>, ApiError> {
    let range = range::parse(q.from.as_deref(), q.to.as_deref(), Utc::now())?;
    if q.model.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::invalid_value("model", "`model` must not be empty."));
    }
    let key_id = key_scope(&gw, &caller, q.key_id).await?;
    let rows = usage_repo::latency_by_model(
        gw.keys.pool(),
        caller.tenant_id,
        key_id,
        q.model.as_deref(),
        range.from,
        range.to,
    )
    .await
    .map_err(crosslogic_core::ServiceError::from)?;
    Ok(Json(LatencyReport {
        object: "list",
        from: range::rfc3339(range.from),
        to: range::rfc3339(range.to),
        key_id,
        data: rows.into_iter().map(Into::into).collect(),
    }))
}
