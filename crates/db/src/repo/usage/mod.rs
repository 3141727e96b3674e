//! `usage_records`: one row per served request, written in batches off the
//! request path (the hourly rollups are in [`super::rollups`]).

use chrono::{DateTime, Utc};
use crosslogic_core::{Femtos, UsageStatus};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::DbResult;

mod ingest;
pub use ingest::insert_batch;

/// One served request to record.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct UsageRecord {
    /// Unique per request: a replayed record with the same id is ignored.
    pub request_id: String,
    pub timestamp: DateTime<Utc>,
    pub tenant_id: Uuid,
    pub environment_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub region_id: Option<Uuid>,
    pub model_id: Option<Uuid>,
    pub model_name: String,
    pub node_id: Option<Uuid>,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub cached_tokens: i32,
    pub latency_ms: i32,
    /// The request's cost rounded to a whole micro-dollar (display only).
    pub cost_microdollars: i64,
    /// The request's exact cost; what every total adds. Spool files written
    /// before it existed lack it: the rounded cost stands in for them.
    #[serde(default)]
    pub cost_exact: Femtos,
    pub status: UsageStatus,
    pub metadata: Value,
}

/// Tokens an environment used since `since` (daily quota checks at start-up).
pub async fn environment_tokens_since(
    db: impl PgExecutor<'_>,
    environment_id: Uuid,
    since: DateTime<Utc>,
) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(sum(total_tokens), 0)::bigint FROM usage_records WHERE environment_id = $1 AND timestamp >= $2",
    )
    .bind(environment_id)
    .bind(since)
    .fetch_one(db)
    .await?)
}

/// Latency statistics of one model over a range of completed requests.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModelLatency {
    pub model_name: String,
    /// Completed requests in the range.
    pub requests: i64,
    pub avg_latency_ms: f64,
    /// Continuous percentiles (linear interpolation, `percentile_cont`).
    pub p50_latency_ms: f64,
    pub p95_latency_ms: f64,
    pub p99_latency_ms: f64,
    pub min_latency_ms: i32,
    pub max_latency_ms: i32,
    pub avg_prompt_tokens: f64,
    pub avg_completion_tokens: f64,
}

/// Per-model latency of a tenant's completed requests in `[from, to)`,
/// optionally of one key and one model, ordered by model name. Failed and
/// cancelled requests are left out: their duration is not a service latency.
pub async fn latency_by_model(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Option<Uuid>,
    model_name: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<ModelLatency>> {
    Ok(sqlx::query_as(
        "SELECT model_name,
                count(*) AS requests,
                avg(latency_ms)::float8 AS avg_latency_ms,
                percentile_cont(0.50) WITHIN GROUP (ORDER BY latency_ms) AS p50_latency_ms,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_latency_ms,
                min(latency_ms) AS min_latency_ms,
                max(latency_ms) AS max_latency_ms,
                avg(prompt_tokens)::float8 AS avg_prompt_tokens,
                avg(completion_tokens)::float8 AS avg_completion_tokens
           FROM usage_records
          WHERE tenant_id = $1 AND ($2::uuid IS NULL OR api_key_id = $2) AND ($3::text IS NULL OR model_name = $3)
            AND timestamp >= $4 AND timestamp < $5 AND status = $6
          GROUP BY model_name ORDER BY model_name",
    )
    .bind(tenant_id)
    .bind(api_key_id)
    .bind(model_name)
    .bind(from)
    .bind(to)
    .bind(UsageStatus::Completed.as_str())
    .fetch_all(db)
    .await?)
}

/// An environment's token use in a range, against its daily quota.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuotaUse {
    pub environment_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub quota_tokens_per_day: i64,
    pub used_tokens: i64,
}

/// Environments with a daily quota that used at least `percent` % of it,
/// counting whole `rolled` hours from `usage_hourly` and the `raw`
/// intervals from `usage_records` (the caller splits the UTC day so far
/// with `crosslogic_core::billing::split_range`).
pub async fn environments_over_quota(
    db: impl PgExecutor<'_>,
    rolled: &[DateTime<Utc>],
    raw: &[(DateTime<Utc>, DateTime<Utc>)],
    percent: i64,
) -> DbResult<Vec<QuotaUse>> {
    let (starts, ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = raw.iter().copied().unzip();
    Ok(sqlx::query_as(
        "SELECT e.id AS environment_id, e.tenant_id, e.name, e.quota_tokens_per_day, u.used_tokens
           FROM (SELECT environment_id, sum(tokens)::bigint AS used_tokens FROM (
                     SELECT environment_id, total_tokens AS tokens FROM usage_hourly
                      WHERE hour = ANY($1::timestamptz[]) AND environment_id IS NOT NULL
                     UNION ALL
                     SELECT r.environment_id, r.total_tokens
                       FROM unnest($2::timestamptz[], $3::timestamptz[]) AS iv(s, e)
                       JOIN usage_records r ON r.\"timestamp\" >= iv.s AND r.\"timestamp\" < iv.e
                      WHERE r.environment_id IS NOT NULL) t
                  GROUP BY environment_id) u
           JOIN environments e ON e.id = u.environment_id
          WHERE e.quota_tokens_per_day > 0 AND u.used_tokens * 100 >= e.quota_tokens_per_day * $4
          ORDER BY e.id",
    )
    .bind(rolled)
    .bind(starts)
    .bind(ends)
    .bind(percent)
    .fetch_all(db)
    .await?)
}

/// One bucket of a traffic series (see [`traffic`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrafficBucket {
    /// The bucket's start.
    pub at: DateTime<Utc>,
    pub requests: i64,
    pub failed_requests: i64,
    pub total_tokens: i64,
    /// Latency of the bucket's completed requests (`None` when it had none).
    pub p50_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
}

/// Requests, failures, tokens and exact latency percentiles of raw usage
/// rows in `[from, to)` per `bucket_secs`, for one tenant (optionally one
/// key) or every tenant. Reads raw rows: meant for recent, short windows
/// (the console's last hour); longer ranges read the hourly rollups.
pub async fn traffic(
    db: impl PgExecutor<'_>,
    tenant_id: Option<Uuid>,
    api_key_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_secs: i64,
) -> DbResult<Vec<TrafficBucket>> {
    Ok(sqlx::query_as(
        "SELECT to_timestamp(floor(extract(epoch FROM timestamp) / $5) * $5) AS at,
                count(*) AS requests,
                count(*) FILTER (WHERE status = 'failed') AS failed_requests,
                COALESCE(sum(total_tokens), 0)::bigint AS total_tokens,
                percentile_cont(0.50) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = $6) AS p50_latency_ms,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = $6) AS p99_latency_ms
           FROM usage_records
          WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR api_key_id = $2)
            AND timestamp >= $3 AND timestamp < $4
          GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant_id)
    .bind(api_key_id)
    .bind(from)
    .bind(to)
    .bind(bucket_secs.max(1) as f64)
    .bind(UsageStatus::Completed.as_str())
    .fetch_all(db)
    .await?)
}
