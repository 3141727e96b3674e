//! `usage_records` and `usage_hourly`: one row per served request, written
//! in batches off the request path; hourly rollups with latency percentiles.

use chrono::{DateTime, Utc};
use crosslogic_core::UsageStatus;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::DbResult;

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
    pub cost_microdollars: i64,
    pub status: UsageStatus,
    pub metadata: Value,
}

/// Inserts a batch in one statement (`unnest` of column arrays). Rows whose
/// `request_id` already exists are skipped, so replaying a batch after a
/// failure never duplicates. Returns how many rows were new.
pub async fn insert_batch(db: impl PgExecutor<'_>, records: &[UsageRecord]) -> DbResult<u64> {
    if records.is_empty() {
        return Ok(0);
    }
    macro_rules! col {
        ($f:ident) => {
            records.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    let total: Vec<i32> = records
        .iter()
        .map(|r| r.prompt_tokens.saturating_add(r.completion_tokens))
        .collect();
    let status: Vec<&str> = records.iter().map(|r| r.status.as_str()).collect();
    let done = sqlx::query(
        "INSERT INTO usage_records (request_id, timestamp, tenant_id, environment_id, api_key_id, region_id, model_id,
                                    model_name, node_id, prompt_tokens, completion_tokens, total_tokens, cached_tokens,
                                    latency_ms, cost_microdollars, status, metadata)
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::uuid[],
                              $8::text[], $9::uuid[], $10::int[], $11::int[], $12::int[], $13::int[], $14::int[],
                              $15::bigint[], $16::text[], $17::jsonb[])
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(col!(request_id))
    .bind(col!(timestamp))
    .bind(col!(tenant_id))
    .bind(col!(environment_id))
    .bind(col!(api_key_id))
    .bind(col!(region_id))
    .bind(col!(model_id))
    .bind(col!(model_name))
    .bind(col!(node_id))
    .bind(col!(prompt_tokens))
    .bind(col!(completion_tokens))
    .bind(total)
    .bind(col!(cached_tokens))
    .bind(col!(latency_ms))
    .bind(col!(cost_microdollars))
    .bind(status)
    .bind(col!(metadata))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Usage totals of one group (a day, a model, a key…).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsageTotals {
    /// The group's label (date, model name or key id, per the query).
    pub group_key: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_microdollars: i64,
}

/// Group-by dimension for [`totals`].
#[derive(Debug, Clone, Copy)]
pub enum UsageGroup {
    /// UTC calendar day.
    Day,
    /// UTC hour.
    Hour,
    /// Model name.
    Model,
    /// API key id.
    Key,
}

/// A tenant's usage in `[from, to)`, grouped; optionally one key.
pub async fn totals(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: UsageGroup,
) -> DbResult<Vec<UsageTotals>> {
    let group_by = match group {
        UsageGroup::Day => "day",
        UsageGroup::Hour => "hour",
        UsageGroup::Model => "model",
        UsageGroup::Key => "key",
    };
    Ok(sqlx::query_as(
        "SELECT CASE $5
                  WHEN 'day' THEN to_char(date_trunc('day', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD')
                  WHEN 'hour' THEN to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')
                  WHEN 'model' THEN model_name
                  ELSE COALESCE(api_key_id::text, '')
                END AS group_key,
                count(*) AS requests,
                COALESCE(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
                COALESCE(sum(completion_tokens), 0)::bigint AS completion_tokens,
                COALESCE(sum(total_tokens), 0)::bigint AS total_tokens,
                COALESCE(sum(cost_microdollars), 0)::bigint AS cost_microdollars
           FROM usage_records
          WHERE tenant_id = $1 AND ($2::uuid IS NULL OR api_key_id = $2) AND timestamp >= $3 AND timestamp < $4
          GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant_id)
    .bind(api_key_id)
    .bind(from)
    .bind(to)
    .bind(group_by)
    .fetch_all(db)
    .await?)
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

/// Recomputes the `usage_hourly` rows of the hour starting at `hour` from
/// `usage_records` (idempotent: re-running replaces the same rows). Returns
/// the number of rows written.
pub async fn rollup_hour(db: impl PgExecutor<'_>, hour: DateTime<Utc>) -> DbResult<u64> {
    let done = sqlx::query(
        "INSERT INTO usage_hourly (hour, tenant_id, environment_id, model_id, region_id, prompt_tokens, completion_tokens,
                                   total_tokens, total_requests, total_cost_microdollars, avg_latency_ms,
                                   p50_latency_ms, p95_latency_ms, p99_latency_ms)
         SELECT date_trunc('hour', $1::timestamptz), tenant_id, environment_id, model_id, region_id,
                sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), count(*), sum(cost_microdollars),
                avg(latency_ms),
                percentile_cont(0.50) WITHIN GROUP (ORDER BY latency_ms),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
           FROM usage_records
          WHERE timestamp >= date_trunc('hour', $1::timestamptz)
            AND timestamp < date_trunc('hour', $1::timestamptz) + interval '1 hour'
          GROUP BY tenant_id, environment_id, model_id, region_id
         ON CONFLICT (hour, tenant_id,
                      COALESCE(environment_id, '00000000-0000-0000-0000-000000000000'::uuid),
                      COALESCE(model_id, '00000000-0000-0000-0000-000000000000'::uuid),
                      COALESCE(region_id, '00000000-0000-0000-0000-000000000000'::uuid))
         DO UPDATE SET prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,
                       total_tokens = EXCLUDED.total_tokens, total_requests = EXCLUDED.total_requests,
                       total_cost_microdollars = EXCLUDED.total_cost_microdollars,
                       avg_latency_ms = EXCLUDED.avg_latency_ms, p50_latency_ms = EXCLUDED.p50_latency_ms,
                       p95_latency_ms = EXCLUDED.p95_latency_ms, p99_latency_ms = EXCLUDED.p99_latency_ms",
    )
    .bind(hour)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A row of `usage_hourly`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HourlyUsage {
    pub hour: DateTime<Utc>,
    pub tenant_id: Uuid,
    pub environment_id: Option<Uuid>,
    pub model_id: Option<Uuid>,
    pub region_id: Option<Uuid>,
    pub total_tokens: i64,
    pub total_requests: i64,
    pub total_cost_microdollars: i64,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
}

/// A tenant's hourly rows in `[from, to)`.
pub async fn hourly(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<HourlyUsage>> {
    Ok(sqlx::query_as(
        "SELECT hour, tenant_id, environment_id, model_id, region_id, total_tokens, total_requests,
                total_cost_microdollars, avg_latency_ms, p50_latency_ms, p95_latency_ms, p99_latency_ms
           FROM usage_hourly WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour, model_id",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
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

/// Environments with a daily quota that used at least `percent` % of it in
/// `[from, to)` (the UTC day so far).
pub async fn environments_over_quota(
    db: impl PgExecutor<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    percent: i64,
) -> DbResult<Vec<QuotaUse>> {
    Ok(sqlx::query_as(
        "SELECT e.id AS environment_id, e.tenant_id, e.name, e.quota_tokens_per_day, u.used_tokens
           FROM (SELECT environment_id, sum(total_tokens)::bigint AS used_tokens
                   FROM usage_records
                  WHERE \"timestamp\" >= $1 AND \"timestamp\" < $2 AND environment_id IS NOT NULL
                  GROUP BY environment_id) u
           JOIN environments e ON e.id = u.environment_id
          WHERE e.quota_tokens_per_day > 0 AND u.used_tokens * 100 >= e.quota_tokens_per_day * $3
          ORDER BY e.id",
    )
    .bind(from)
    .bind(to)
    .bind(percent)
    .fetch_all(db)
    .await?)
}
