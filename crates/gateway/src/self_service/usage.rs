//! `GET /v1/usage` and `GET /v1/usage/latency`: a tenant's usage, cost and
//! latency from `usage_records`, scoped by the caller's role (see the parent
//! module).

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use crosslogic_core::ApiKeyRole;
use crosslogic_db::repo::usage::{self as usage_repo, ModelLatency, UsageGroup, UsageTotals};
use crosslogic_http::{ApiError, Query};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{range, tenant_key};
use crate::auth::{insufficient, AuthedKey, Caller};
use crate::Gateway;

/// Query of `GET /v1/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<GroupBy>,
    key_id: Option<Uuid>,
}

/// Query of `GET /v1/usage/latency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LatencyQuery {
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    key_id: Option<Uuid>,
}

/// `group_by` of `GET /v1/usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum GroupBy {
    /// UTC calendar day (the default).
    #[default]
    Day,
    Hour,
    Model,
    Key,
}

impl GroupBy {
    fn repo(self) -> UsageGroup {
        match self {
            GroupBy::Day => UsageGroup::Day,
            GroupBy::Hour => UsageGroup::Hour,
            GroupBy::Model => UsageGroup::Model,
            GroupBy::Key => UsageGroup::Key,
        }
    }
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

fn micros_to_usd(micros: i64) -> f64 {
    // Display only: the integer micro-dollars are the exact amount.
    micros as f64 / 1_000_000.0
}

/// The totals of one group of `GET /v1/usage`.
#[derive(Debug, Serialize)]
pub(crate) struct UsageRow {
    /// The date (`2024-05-01`), hour, model name or key id.
    group: String,
    requests: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    cost_microdollars: i64,
    cost_usd: f64,
}

impl From<UsageTotals> for UsageRow {
    fn from(r: UsageTotals) -> Self {
        UsageRow {
            cost_usd: micros_to_usd(r.cost_microdollars),
            group: r.group_key,
            requests: r.requests,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            cost_microdollars: r.cost_microdollars,
        }
    }
}

/// The answer of `GET /v1/usage`.
#[derive(Debug, Serialize)]
pub(crate) struct UsageReport {
    /// Always `list`.
    object: &'static str,
    from: String,
    to: String,
    group_by: GroupBy,
    /// The key the report covers; `null` = the whole tenant.
    key_id: Option<Uuid>,
    data: Vec<UsageRow>,
}

/// `GET /v1/usage`: requests, tokens and cost per day, hour, model or key.
pub(crate) async fn usage(
    State(gw): State<Gateway>,
    Caller(caller): Caller,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let range = range::parse(q.from.as_deref(), q.to.as_deref(), Utc::now())?;
    let group_by = q.group_by.unwrap_or_default();
    let key_id = key_scope(&gw, &caller, q.key_id).await?;
    let rows = usage_repo::totals(
        gw.keys.pool(),
        caller.tenant_id,
        key_id,
        range.from,
        range.to,
        group_by.repo(),
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
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub(crate) struct LatencyReport {
    /// Always `list`.
    object: &'static str,
    from: String,
    to: String,
    key_id: Option<Uuid>,
    data: Vec<LatencyRow>,
}

/// `GET /v1/usage/latency`: latency percentiles and averages per model.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_dollars_convert_to_dollars() {
        assert_eq!(micros_to_usd(1_500_000), 1.5);
        assert_eq!(micros_to_usd(150), 0.00015);
    }
}
