//! `GET /v1/usage` and `GET /v1/usage/latency`: a tenant's usage, cost and
//! latency from `usage_records`, scoped by the caller's role (see the parent
//! module).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::Utc;
use crosslogic_core::ApiKeyRole;
use crosslogic_db::repo::usage::{self as usage_repo, UsageGroup};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{db_error, insufficient, range, tenant_key, Caller};
use crate::auth::AuthedKey;
use crate::error::OpenAiError;
use crate::Gateway;

/// Query of `GET /v1/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    key_id: Option<String>,
}

/// Query of `GET /v1/usage/latency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LatencyQuery {
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    key_id: Option<String>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, OpenAiError> {
    q.map(|Query(v)| v)
        .map_err(|e| OpenAiError::invalid(format!("Invalid query string: {}.", e.body_text()), None))
}

fn parse_group(raw: Option<&str>) -> Result<(UsageGroup, &'static str), OpenAiError> {
    match raw.unwrap_or("day") {
        "day" => Ok((UsageGroup::Day, "day")),
        "hour" => Ok((UsageGroup::Hour, "hour")),
        "model" => Ok((UsageGroup::Model, "model")),
        "key" => Ok((UsageGroup::Key, "key")),
        other => Err(OpenAiError::invalid(
            format!("Invalid `group_by` {other:?}: expected one of day, hour, model, key."),
            Some("group_by"),
        )),
    }
}

/// Whose usage the caller sees: an admin the whole tenant or the key it
/// names (which must be the tenant's); any other role its own key only.
async fn key_scope(gw: &Gateway, caller: &AuthedKey, raw: Option<&str>) -> Result<Option<Uuid>, OpenAiError> {
    let requested = match raw {
        None => None,
        Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| {
            OpenAiError::invalid(
                format!("Invalid `key_id` {raw:?}: expected the id (a UUID) of one of your API keys."),
                Some("key_id"),
            )
        })?),
    };
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

/// `GET /v1/usage`: requests, tokens and cost per day, hour, model or key.
pub(crate) async fn usage(
    State(gw): State<Gateway>,
    Caller(caller): Caller,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let q = query(q)?;
    let range = range::parse(q.from.as_deref(), q.to.as_deref(), Utc::now())?;
    let (group, group_name) = parse_group(q.group_by.as_deref())?;
    let key_id = key_scope(&gw, &caller, q.key_id.as_deref()).await?;
    let rows = usage_repo::totals(gw.keys.pool(), caller.tenant_id, key_id, range.from, range.to, group)
        .await
        .map_err(db_error)?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "group": r.group_key,
                "requests": r.requests,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "total_tokens": r.total_tokens,
                "cost_microdollars": r.cost_microdollars,
                "cost_usd": micros_to_usd(r.cost_microdollars),
            })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "from": range::rfc3339(range.from),
        "to": range::rfc3339(range.to),
        "group_by": group_name,
        "key_id": key_id,
        "data": data,
    })))
}

/// `GET /v1/usage/latency`: latency percentiles and averages per model.
pub(crate) async fn latency(
    State(gw): State<Gateway>,
    Caller(caller): Caller,
    q: Result<Query<LatencyQuery>, QueryRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let q = query(q)?;
    let range = range::parse(q.from.as_deref(), q.to.as_deref(), Utc::now())?;
    if q.model.as_deref().is_some_and(str::is_empty) {
        return Err(OpenAiError::invalid("`model` must not be empty.", Some("model")));
    }
    let key_id = key_scope(&gw, &caller, q.key_id.as_deref()).await?;
    let rows = usage_repo::latency_by_model(
        gw.keys.pool(),
        caller.tenant_id,
        key_id,
        q.model.as_deref(),
        range.from,
        range.to,
    )
    .await
    .map_err(db_error)?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "model": r.model_name,
                "requests": r.requests,
                "avg_latency_ms": r.avg_latency_ms,
                "p50_latency_ms": r.p50_latency_ms,
                "p95_latency_ms": r.p95_latency_ms,
                "p99_latency_ms": r.p99_latency_ms,
                "min_latency_ms": r.min_latency_ms,
                "max_latency_ms": r.max_latency_ms,
                "avg_prompt_tokens": r.avg_prompt_tokens,
                "avg_completion_tokens": r.avg_completion_tokens,
            })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "from": range::rfc3339(range.from),
        "to": range::rfc3339(range.to),
        "key_id": key_id,
        "data": data,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_defaults_to_day_and_rejects_unknown_values() {
        assert_eq!(parse_group(None).unwrap().1, "day");
        assert_eq!(parse_group(Some("key")).unwrap().1, "key");
        let err = parse_group(Some("week")).unwrap_err();
        assert_eq!(err.param, Some("group_by"));
        assert_eq!(err.status, 400);
    }

    #[test]
    fn micro_dollars_convert_to_dollars() {
        assert_eq!(micros_to_usd(1_500_000), 1.5);
        assert_eq!(micros_to_usd(150), 0.00015);
    }
}
