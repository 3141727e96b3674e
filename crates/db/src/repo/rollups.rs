//! Hourly rollups of `usage_records` into `usage_hourly`, the state of each
//! UTC hour (`usage_hours`), and usage reports that read rollups for whole
//! rolled-up hours and raw rows only for the rest.
//!
//! Which hours changed comes from `usage_rollup_queue`: a statement trigger
//! on `usage_records` adds one row per INSERT statement and UTC hour it
//! wrote (migration 07). [`rollup_hour`] reads the queue rows of an hour,
//! recomputes the hour from the raw rows in a later statement (so it sees
//! every row those queue rows stand for: they committed together), and
//! deletes exactly the queue rows it read. A row that commits later leaves
//! its own queue row, so its hour is rolled up again — replayed spools and
//! late batches are never missed, and writers share no row lock.

use chrono::{DateTime, Utc};
use crosslogic_core::Femtos;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::DbResult;
use crate::money::from_numeric;

/// UTC hours (their start) that have queued usage and began before
/// `before`, oldest first.
pub async fn queued_hours(db: impl PgExecutor<'_>, before: DateTime<Utc>, limit: i64) -> DbResult<Vec<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT hour FROM (SELECT DISTINCT hour FROM usage_rollup_queue WHERE hour < $1) h ORDER BY hour LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// What [`rollup_hour`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolledUp {
    /// `usage_hourly` rows written.
    pub rows: u64,
    /// Queue entries consumed.
    pub queued: u64,
    /// The hour's raw rows had been purged: late rows were added to the
    /// rollup and deleted instead of recomputing it.
    pub folded: bool,
}

// Statements are assembled from literals with `concat!` (never `format!`).
macro_rules! group_columns {
    () => {
        "tenant_id, environment_id, model_id, region_id, api_key_id, model_name"
    };
}

/// `INSERT INTO usage_hourly … SELECT` the groups of `$source` (a table
/// or CTE with usage rows, and its WHERE) for the hour `$1`.
macro_rules! rollup_insert {
    ($source:literal) => {
        concat!(
            "INSERT INTO usage_hourly (hour, ",
            group_columns!(),
            ", prompt_tokens, completion_tokens, total_tokens, cached_tokens, total_requests, failed_requests,
               total_cost_exact_microdollars, total_cost_microdollars, avg_latency_ms, p50_latency_ms,
               p95_latency_ms, p99_latency_ms)
             SELECT $1, ",
            group_columns!(),
            ", sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens),
                count(*), count(*) FILTER (WHERE status = 'failed'),
                sum(cost_exact_microdollars), round(sum(cost_exact_microdollars))::bigint,
                avg(latency_ms) FILTER (WHERE status = 'completed'),
                percentile_cont(0.50) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = 'completed'),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = 'completed'),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = 'completed')
               FROM ",
            $source,
            " GROUP BY ",
            group_columns!()
        )
    };
}

/// Rolls up the UTC hour starting at `hour`, on `tx` (the caller commits):
/// locks the hour's `usage_hours` row (so replicas and the settlement take
/// turns on it), reads its queue entries, recomputes its `usage_hourly`
/// rows from `usage_records` (idempotent: the same rows give the same
/// result), deletes the entries it read, and marks the hour rolled up and
/// due for settlement.
pub async fn rollup_hour(tx: &mut PgConnection, hour: DateTime<Utc>) -> DbResult<RolledUp> {
    let purge_max_id: Option<Option<i64>> = sqlx::query_scalar(
        "INSERT INTO usage_hours (hour, settle_pending) VALUES ($1, true)
         ON CONFLICT (hour) DO UPDATE SET settle_pending = true
         RETURNING CASE WHEN purged_at IS NULL THEN NULL ELSE COALESCE(purge_max_id, 0) END",
    )
    .bind(hour)
    .fetch_optional(&mut *tx)
    .await?;
    let purge_max_id = purge_max_id.flatten();
    let queued: Vec<i64> = sqlx::query_scalar("SELECT id FROM usage_rollup_queue WHERE hour = $1")
        .bind(hour)
        .fetch_all(&mut *tx)
        .await?;
    let rows = match purge_max_id {
        None => recompute(tx, hour).await?,
        Some(max_id) => fold_late(tx, hour, max_id).await?,
    };
    sqlx::query("DELETE FROM usage_rollup_queue WHERE id = ANY($1)")
        .bind(&queued)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE usage_hours SET rolled_up_at = now() WHERE hour = $1")
        .bind(hour)
        .execute(&mut *tx)
        .await?;
    Ok(RolledUp {
        rows,
        queued: queued.len() as u64,
        folded: purge_max_id.is_some(),
    })
}

/// Recomputes every group of the hour from its raw rows (groups whose
/// rows moved away go too).
async fn recompute(tx: &mut PgConnection, hour: DateTime<Utc>) -> DbResult<u64> {
    sqlx::query("DELETE FROM usage_hourly WHERE hour = $1")
        .bind(hour)
        .execute(&mut *tx)
        .await?;
    let sql = rollup_insert!("usage_records WHERE \"timestamp\" >= $1 AND \"timestamp\" < $1 + interval '1 hour'");
    Ok(sqlx::query(sql).bind(hour).execute(&mut *tx).await?.rows_affected())
}

/// An hour whose raw rows were purged only holds rows that arrived since
/// (ids above the purge's high-water mark): add them to the rollup and
/// delete them, remembering their request ids (`usage_folded`) so a
/// replayed copy of one is deleted without being added again. Sums stay
/// exact; latency percentiles keep the values the hour had (weighted
/// averages for the mean).
async fn fold_late(tx: &mut PgConnection, hour: DateTime<Utc>, max_id: i64) -> DbResult<u64> {
    const SQL: &str = concat!(
        "WITH gone AS (
             DELETE FROM usage_records
              WHERE \"timestamp\" >= $1 AND \"timestamp\" < $1 + interval '1 hour' AND id > $2
              RETURNING *),
              fresh AS (
             INSERT INTO usage_folded (request_id) SELECT request_id FROM gone
             ON CONFLICT (request_id) DO NOTHING RETURNING request_id),
              late AS (
             SELECT gone.* FROM gone JOIN fresh USING (request_id)) ",
        rollup_insert!("late"),
        " ON CONFLICT (hour, tenant_id,
             COALESCE(environment_id, '00000000-0000-0000-0000-000000000000'::uuid),
             COALESCE(model_id, '00000000-0000-0000-0000-000000000000'::uuid),
             COALESCE(region_id, '00000000-0000-0000-0000-000000000000'::uuid),
             COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid),
             model_name)
         DO UPDATE SET prompt_tokens = usage_hourly.prompt_tokens + EXCLUDED.prompt_tokens,
                       completion_tokens = usage_hourly.completion_tokens + EXCLUDED.completion_tokens,
                       total_tokens = usage_hourly.total_tokens + EXCLUDED.total_tokens,
                       cached_tokens = usage_hourly.cached_tokens + EXCLUDED.cached_tokens,
                       avg_latency_ms = COALESCE(
                           (usage_hourly.avg_latency_ms * usage_hourly.total_requests
                            + EXCLUDED.avg_latency_ms * EXCLUDED.total_requests)
                           / NULLIF(usage_hourly.total_requests + EXCLUDED.total_requests, 0),
                           usage_hourly.avg_latency_ms, EXCLUDED.avg_latency_ms),
                       total_requests = usage_hourly.total_requests + EXCLUDED.total_requests,
                       failed_requests = usage_hourly.failed_requests + EXCLUDED.failed_requests,
                       total_cost_exact_microdollars = usage_hourly.total_cost_exact_microdollars
                                                       + EXCLUDED.total_cost_exact_microdollars,
                       total_cost_microdollars = round(usage_hourly.total_cost_exact_microdollars
                                                       + EXCLUDED.total_cost_exact_microdollars)::bigint,
                       p50_latency_ms = COALESCE(usage_hourly.p50_latency_ms, EXCLUDED.p50_latency_ms),
                       p95_latency_ms = COALESCE(usage_hourly.p95_latency_ms, EXCLUDED.p95_latency_ms),
                       p99_latency_ms = COALESCE(usage_hourly.p99_latency_ms, EXCLUDED.p99_latency_ms)"
    );
    Ok(sqlx::query(SQL)
        .bind(hour)
        .bind(max_id)
        .execute(&mut *tx)
        .await?
        .rows_affected())
}

/// The UTC hours in `[from, to)` whose rollups are current (rolled up at
/// least once; later rows re-roll them within a pass), ascending.
pub async fn rolled_hours(
    db: impl PgExecutor<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT hour FROM usage_hours
          WHERE hour >= $1 AND hour + interval '1 hour' <= $2 AND rolled_up_at IS NOT NULL
          ORDER BY hour",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// Group-by dimension of a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    /// UTC calendar day (`2024-05-01`).
    Day,
    /// UTC hour (`2024-05-01T13:00:00Z`).
    Hour,
    /// Model name.
    Model,
    /// API key id.
    Key,
}

impl UsageGroup {
    fn as_str(self) -> &'static str {
        match self {
            UsageGroup::Day => "day",
            UsageGroup::Hour => "hour",
            UsageGroup::Model => "model",
            UsageGroup::Key => "key",
        }
    }
}

/// The totals of one group (a day, an hour, a model, a key…).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageTotals {
    /// The group's label (date, hour, model name or key id).
    pub group_key: String,
    /// Second dimension when the report is split by model too (else empty).
    pub model: String,
    pub requests: i64,
    pub failed_requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// Exact: round it once for display.
    pub cost: Femtos,
}

#[derive(sqlx::FromRow)]
struct TotalsRow {
    group_key: String,
    model: String,
    requests: i64,
    failed_requests: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    cost: Decimal,
}

/// Whose usage a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One tenant, optionally one of its keys.
    Tenant { tenant_id: Uuid, api_key_id: Option<Uuid> },
    /// Every tenant (platform revenue).
    Platform,
}

/// A report over `rolled` (whole hours read from `usage_hourly`) and
/// `raw` (`[start, end)` intervals read from `usage_records`), which the
/// caller makes disjoint; grouped by `group`, and by model as well when
/// `by_model` (for cost series per model). Ordered by group, then model.
pub async fn totals(
    db: impl PgExecutor<'_>,
    scope: Scope,
    rolled: &[DateTime<Utc>],
    raw: &[(DateTime<Utc>, DateTime<Utc>)],
    group: UsageGroup,
    by_model: bool,
) -> DbResult<Vec<UsageTotals>> {
    let (tenant_id, key_id) = match scope {
        Scope::Tenant { tenant_id, api_key_id } => (Some(tenant_id), api_key_id),
        Scope::Platform => (None, None),
    };
    let (starts, ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = raw.iter().copied().unzip();
    let rows: Vec<TotalsRow> = sqlx::query_as(
        "SELECT g AS group_key, CASE WHEN $7 THEN model ELSE '' END AS model,
                sum(requests)::bigint AS requests, sum(failed)::bigint AS failed_requests,
                sum(prompt)::bigint AS prompt_tokens, sum(completion)::bigint AS completion_tokens,
                sum(total)::bigint AS total_tokens, COALESCE(sum(cost), 0) AS cost
           FROM (
             SELECT CASE $6
                      WHEN 'day' THEN to_char(h.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                      WHEN 'hour' THEN to_char(h.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')
                      WHEN 'model' THEN h.model_name
                      ELSE COALESCE(h.api_key_id::text, '')
                    END AS g,
                    h.model_name AS model,
                    h.total_requests AS requests, h.failed_requests AS failed, h.prompt_tokens AS prompt,
                    h.completion_tokens AS completion, h.total_tokens AS total,
                    h.total_cost_exact_microdollars AS cost
               FROM usage_hourly h
              WHERE h.hour = ANY($3::timestamptz[])
                AND ($1::uuid IS NULL OR h.tenant_id = $1) AND ($2::uuid IS NULL OR h.api_key_id = $2)
             UNION ALL
             SELECT CASE $6
                      WHEN 'day' THEN to_char(r.\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                      WHEN 'hour' THEN to_char(date_trunc('hour', r.\"timestamp\", 'UTC') AT TIME ZONE 'UTC',
                                               'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')
                      WHEN 'model' THEN r.model_name
                      ELSE COALESCE(r.api_key_id::text, '')
                    END,
                    r.model_name,
                    1, CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END, r.prompt_tokens,
                    r.completion_tokens, r.total_tokens, r.cost_exact_microdollars
               FROM unnest($4::timestamptz[], $5::timestamptz[]) AS iv(s, e)
               JOIN usage_records r ON r.\"timestamp\" >= iv.s AND r.\"timestamp\" < iv.e
              WHERE ($1::uuid IS NULL OR r.tenant_id = $1) AND ($2::uuid IS NULL OR r.api_key_id = $2)
           ) u
          GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(tenant_id)
    .bind(key_id)
    .bind(rolled)
    .bind(starts)
    .bind(ends)
    .bind(group.as_str())
    .bind(by_model)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| UsageTotals {
            group_key: r.group_key,
            model: r.model,
            requests: r.requests,
            failed_requests: r.failed_requests,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            cost: from_numeric(r.cost),
        })
        .collect())
}

/// Exact spend per tenant over rolled hours and raw intervals (as in
/// [`totals`]), for the tenants in `tenants`.
pub async fn spend_by_tenant(
    db: impl PgExecutor<'_>,
    tenants: &[Uuid],
    rolled: &[DateTime<Utc>],
    raw: &[(DateTime<Utc>, DateTime<Utc>)],
) -> DbResult<Vec<(Uuid, Femtos)>> {
    let (starts, ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = raw.iter().copied().unzip();
    let rows: Vec<(Uuid, Decimal)> = sqlx::query_as(
        "SELECT tenant_id, COALESCE(sum(cost), 0) FROM (
             SELECT h.tenant_id, h.total_cost_exact_microdollars AS cost
               FROM usage_hourly h
              WHERE h.tenant_id = ANY($1) AND h.hour = ANY($2::timestamptz[])
             UNION ALL
             SELECT r.tenant_id, r.cost_exact_microdollars
               FROM unnest($3::timestamptz[], $4::timestamptz[]) AS iv(s, e)
               JOIN usage_records r ON r.\"timestamp\" >= iv.s AND r.\"timestamp\" < iv.e
              WHERE r.tenant_id = ANY($1)
         ) u GROUP BY tenant_id",
    )
    .bind(tenants)
    .bind(rolled)
    .bind(starts)
    .bind(ends)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(t, c)| (t, from_numeric(c))).collect())
}

/// A rollup row as stored (tests, the bench, the admin's raw view).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HourlyUsage {
    pub hour: DateTime<Utc>,
    pub tenant_id: Uuid,
    pub environment_id: Option<Uuid>,
    pub model_id: Option<Uuid>,
    pub region_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub model_name: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub total_requests: i64,
    pub failed_requests: i64,
    pub total_cost_microdollars: i64,
    pub total_cost_exact_microdollars: Decimal,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
}

/// A tenant's rollup rows in `[from, to)`, by hour.
pub async fn hourly(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<HourlyUsage>> {
    Ok(sqlx::query_as(
        "SELECT hour, tenant_id, environment_id, model_id, region_id, api_key_id, model_name, prompt_tokens, completion_tokens,
                total_tokens, total_requests, failed_requests, total_cost_microdollars, total_cost_exact_microdollars,
                avg_latency_ms, p50_latency_ms, p95_latency_ms, p99_latency_ms
           FROM usage_hourly WHERE tenant_id = $1 AND hour >= $2 AND hour < $3
          ORDER BY hour, model_id, api_key_id",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// Exact cost per tenant of one UTC hour, from its rollups.
pub async fn tenant_costs_of_hour(db: impl PgExecutor<'_>, hour: DateTime<Utc>) -> DbResult<Vec<(Uuid, Femtos)>> {
    let rows: Vec<(Uuid, Decimal)> = sqlx::query_as(
        "SELECT tenant_id, sum(total_cost_exact_microdollars) FROM usage_hourly
          WHERE hour = $1 GROUP BY tenant_id ORDER BY tenant_id",
    )
    .bind(hour)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(t, c)| (t, from_numeric(c))).collect())
}

/// How far behind the rollups are: queued hours and the oldest of them.
pub async fn backlog(db: impl PgExecutor<'_>) -> DbResult<(i64, Option<DateTime<Utc>>)> {
    Ok(
        sqlx::query_as("SELECT count(DISTINCT hour), min(hour) FROM usage_rollup_queue")
            .fetch_one(db)
            .await?,
    )
}

/// Latency of one rolled-up hour across its groups (see [`latency_by_hour`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HourLatency {
    pub hour: DateTime<Utc>,
    /// Completed requests' p50, weighted by each group's requests.
    pub p50_latency_ms: Option<f64>,
    /// The highest p99 of the hour's groups (an upper bound of the hour's p99:
    /// percentiles of separate groups cannot be merged exactly).
    pub p99_latency_ms: Option<f64>,
}

/// Per-hour latency over the rolled-up hours in `[from, to)` for one tenant
/// (optionally one key) or every tenant (hours not rolled up yet are absent).
pub async fn latency_by_hour(
    db: impl PgExecutor<'_>,
    tenant_id: Option<Uuid>,
    api_key_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<HourLatency>> {
    // One statement per scope, so a tenant's reads its (tenant_id, hour)
    // index instead of filtering every tenant's rows of the range.
    let scope = match (tenant_id, api_key_id) {
        (_, Some(_)) => "api_key_id = $4 AND ($1::uuid IS NULL OR tenant_id = $1)",
        (Some(_), None) => "tenant_id = $1 AND $4::uuid IS NULL",
        (None, None) => "$1::uuid IS NULL AND $4::uuid IS NULL",
    };
    let sql = format!(
        "SELECT hour,
                (sum(p50_latency_ms * total_requests) FILTER (WHERE p50_latency_ms IS NOT NULL)
                  / NULLIF(sum(total_requests) FILTER (WHERE p50_latency_ms IS NOT NULL), 0))::float8 AS p50_latency_ms,
                max(p99_latency_ms)::float8 AS p99_latency_ms
           FROM usage_hourly
          WHERE hour >= $2 AND hour < $3 AND {scope}
          GROUP BY hour ORDER BY hour"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant_id)
        .bind(from)
        .bind(to)
        .bind(api_key_id)
        .fetch_all(db)
        .await?)
}
