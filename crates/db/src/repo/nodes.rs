//! `nodes` (one GPU node = one SkyPilot cluster) and `health_checks`.

use chrono::{DateTime, Utc};
use crosslogic_core::{HealthCheckStatus, NodeStatus, Provider};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `nodes` (the agent credential hash is never read out).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Node {
    pub id: Uuid,
    pub node_id_external: Option<String>,
    pub cluster_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub region_id: Option<Uuid>,
    pub region_code: Option<String>,
    pub instance_type: Option<String>,
    pub gpu_type: Option<String>,
    pub gpu_count: i32,
    pub vram_total_gb: Option<i32>,
    pub vram_free_gb: Option<i32>,
    pub model_id: Option<Uuid>,
    pub model_name: Option<String>,
    pub deployment_id: Option<Uuid>,
    /// Where the gateway sends requests (`http://10.0.0.5:8000`).
    pub endpoint_url: Option<String>,
    pub internal_ip: Option<String>,
    pub spot_instance: bool,
    pub throughput_tokens_per_sec: f64,
    pub running_requests: i32,
    pub waiting_requests: i32,
    pub kv_cache_usage: f64,
    #[sqlx(try_from = "String")]
    pub status: NodeStatus,
    pub health_score: f64,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "n.id, n.node_id_external, n.cluster_name, n.provider, n.region_id, r.code AS region_code, n.instance_type, \
         n.gpu_type, n.gpu_count, n.vram_total_gb, n.vram_free_gb, n.model_id, n.model_name, n.deployment_id, \
         n.endpoint_url, n.internal_ip, n.spot_instance, n.throughput_tokens_per_sec, n.running_requests, \
         n.waiting_requests, n.kv_cache_usage, n.status, n.health_score, n.last_heartbeat_at, n.metadata, \
         n.created_at, n.updated_at, n.terminated_at"
    };
}

/// A node being launched.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub cluster_name: String,
    pub provider: Provider,
    pub region_code: Option<String>,
    pub instance_type: Option<String>,
    pub gpu_type: Option<String>,
    pub gpu_count: i32,
    pub vram_total_gb: Option<i32>,
    pub model_name: String,
    pub deployment_id: Option<Uuid>,
    pub spot_instance: bool,
    /// SHA-256 of the node's agent credential.
    pub agent_token_hash: Option<String>,
    pub metadata: Value,
}

/// Inserts a node in status `launching`; its model and region are resolved
/// by name/code. Also links it to its deployment. Duplicate cluster name →
/// `Conflict { "nodes_cluster_name_key" }`.
pub async fn create(db: impl PgExecutor<'_>, n: &NewNode) -> DbResult<Node> {
    Ok(sqlx::query_as(concat!(
        "WITH n AS (
            INSERT INTO nodes (cluster_name, provider, region_id, instance_type, gpu_type, gpu_count, vram_total_gb,
                               model_id, model_name, deployment_id, spot_instance, agent_token_hash, metadata, status)
            VALUES ($1, $2, (SELECT id FROM regions WHERE code = $3), $4, $5, $6, $7,
                    (SELECT id FROM models WHERE name = $8), $8, $9, $10, $11, $12, 'launching')
            RETURNING *
         ), link AS (
            INSERT INTO deployment_nodes (deployment_id, node_id, status)
            SELECT deployment_id, id, 'healthy' FROM n WHERE deployment_id IS NOT NULL
         )
         SELECT ",
        columns!(),
        " FROM n LEFT JOIN regions r ON r.id = n.region_id"
    ))
    .bind(&n.cluster_name)
    .bind(n.provider.as_str())
    .bind(&n.region_code)
    .bind(&n.instance_type)
    .bind(&n.gpu_type)
    .bind(n.gpu_count)
    .bind(n.vram_total_gb)
    .bind(&n.model_name)
    .bind(n.deployment_id)
    .bind(n.spot_instance)
    .bind(&n.agent_token_hash)
    .bind(&n.metadata)
    .fetch_one(db)
    .await?)
}

/// One node by id.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Node> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM nodes n LEFT JOIN regions r ON r.id = n.region_id WHERE n.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .or_not_found("node")
}

/// Filters for [`list`]; `None` = any.
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub status: Option<NodeStatus>,
    pub model_name: Option<String>,
    pub region_code: Option<String>,
    pub deployment_id: Option<Uuid>,
    pub provider: Option<Provider>,
    /// Include terminated nodes.
    pub include_terminated: bool,
}

/// Nodes matching a filter, newest first.
pub async fn list(db: impl PgExecutor<'_>, f: &NodeFilter, limit: i64) -> DbResult<Vec<Node>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM nodes n LEFT JOIN regions r ON r.id = n.region_id
          WHERE ($1::text IS NULL OR n.status = $1)
            AND ($2::text IS NULL OR n.model_name = $2)
            AND ($3::text IS NULL OR r.code = $3)
            AND ($4::uuid IS NULL OR n.deployment_id = $4)
            AND ($5::text IS NULL OR n.provider = $5)
            AND ($6 OR n.status <> 'terminated')
          ORDER BY n.created_at DESC, n.id DESC LIMIT $7"
    ))
    .bind(f.status.map(|s| s.as_str()))
    .bind(&f.model_name)
    .bind(&f.region_code)
    .bind(f.deployment_id)
    .bind(f.provider.map(|p| p.as_str()))
    .bind(f.include_terminated)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Every node not yet terminated, oldest first — the reconciler's whole
/// view of the fleet in one query.
pub async fn list_unterminated(db: impl PgExecutor<'_>) -> DbResult<Vec<Node>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM nodes n LEFT JOIN regions r ON r.id = n.region_id
          WHERE n.status <> 'terminated'
          ORDER BY n.created_at, n.id"
    ))
    .fetch_all(db)
    .await?)
}

/// Nodes the gateway may route to: active, with an endpoint and a model.
pub async fn routable(db: impl PgExecutor<'_>) -> DbResult<Vec<Node>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM nodes n LEFT JOIN regions r ON r.id = n.region_id
          WHERE n.status = 'active' AND n.endpoint_url IS NOT NULL AND n.model_name IS NOT NULL"
    ))
    .fetch_all(db)
    .await?)
}

/// Moves a node to `status` only if it is in one of `from` (or any status
/// when `from` is empty) and not already there. Returns the updated node,
/// or `None` when nothing changed — so callers publish an event only on a
/// real transition.
pub async fn transition(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: NodeStatus,
    from: &[NodeStatus],
) -> DbResult<Option<Node>> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    Ok(sqlx::query_as(concat!(
        "WITH n AS (
            UPDATE nodes SET status = $2,
                   terminated_at = CASE WHEN $2 = 'terminated' THEN now() ELSE terminated_at END
             WHERE id = $1 AND status <> $2 AND (cardinality($3::text[]) = 0 OR status = ANY($3))
            RETURNING *
         )
         SELECT ",
        columns!(),
        " FROM n LEFT JOIN regions r ON r.id = n.region_id"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(from)
    .fetch_optional(db)
    .await?)
}

/// Registration by the node agent: records the reachable endpoint.
pub async fn register(
    db: impl PgExecutor<'_>,
    id: Uuid,
    endpoint_url: &str,
    internal_ip: Option<&str>,
    node_id_external: Option<&str>,
) -> DbResult<Node> {
    sqlx::query_as(concat!(
        "WITH n AS (
            UPDATE nodes SET endpoint_url = $2, internal_ip = COALESCE($3, internal_ip),
                   node_id_external = COALESCE($4, node_id_external), last_heartbeat_at = now(),
                   status = CASE WHEN status IN ('launching', 'initializing') THEN 'initializing' ELSE status END
             WHERE id = $1 AND status NOT IN ('dead', 'terminated')
            RETURNING *
         )
         SELECT ",
        columns!(),
        " FROM n LEFT JOIN regions r ON r.id = n.region_id"
    ))
    .bind(id)
    .bind(endpoint_url)
    .bind(internal_ip)
    .bind(node_id_external)
    .fetch_optional(db)
    .await
    .or_not_found("node")
}

/// Load reported by a heartbeat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub running_requests: i32,
    pub waiting_requests: i32,
    pub throughput_tokens_per_sec: f64,
    pub kv_cache_usage: f64,
    pub vram_free_gb: Option<i32>,
}

/// Stores a heartbeat's load and time. Returns the node's status.
pub async fn heartbeat(db: impl PgExecutor<'_>, id: Uuid, load: &Load) -> DbResult<NodeStatus> {
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE nodes SET last_heartbeat_at = now(), running_requests = $2, waiting_requests = $3,
                throughput_tokens_per_sec = $4, kv_cache_usage = $5, vram_free_gb = COALESCE($6, vram_free_gb)
          WHERE id = $1 AND status NOT IN ('dead', 'terminated')
          RETURNING status",
    )
    .bind(id)
    .bind(load.running_requests)
    .bind(load.waiting_requests)
    .bind(load.throughput_tokens_per_sec)
    .bind(load.kv_cache_usage)
    .bind(load.vram_free_gb)
    .fetch_optional(db)
    .await?;
    let status = status.ok_or(crate::DbError::NotFound { entity: "node" })?;
    status
        .parse()
        .map_err(|e: crosslogic_core::ParseEnumError| crate::DbError::Invalid {
            constraint: e.to_string(),
        })
}

/// The stored hash of a node's agent credential.
pub async fn agent_token_hash(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Option<String>> {
    sqlx::query_scalar::<_, Option<String>>("SELECT agent_token_hash FROM nodes WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("node")
}

/// Records one health observation of a node.
pub async fn record_health_check(
    db: impl PgExecutor<'_>,
    node_id: Uuid,
    status: HealthCheckStatus,
    latency_ms: Option<i32>,
    error: Option<&str>,
    details: &Value,
) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO health_checks (node_id, status, latency_ms, error, details) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(node_id)
    .bind(status.as_str())
    .bind(latency_ms)
    .bind(error)
    .bind(details)
    .fetch_one(db)
    .await?)
}

/// A row of `health_checks`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HealthCheck {
    pub id: i64,
    pub node_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: HealthCheckStatus,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    pub details: Value,
    pub checked_at: DateTime<Utc>,
}

/// A node's most recent health checks.
pub async fn recent_health_checks(db: impl PgExecutor<'_>, node_id: Uuid, limit: i64) -> DbResult<Vec<HealthCheck>> {
    Ok(sqlx::query_as(
        "SELECT id, node_id, status, latency_ms, error, details, checked_at FROM health_checks
          WHERE node_id = $1 ORDER BY checked_at DESC, id DESC LIMIT $2",
    )
    .bind(node_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Moves nodes whose last heartbeat is older than `cutoff` from one of
/// `from` to `to`, atomically (a second monitor running at the same time
/// finds nothing left to move). Returns the moved nodes.
pub async fn mark_stale(
    db: impl PgExecutor<'_>,
    from: &[NodeStatus],
    to: NodeStatus,
    cutoff: DateTime<Utc>,
) -> DbResult<Vec<Node>> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    Ok(sqlx::query_as(concat!(
        "WITH n AS (
            UPDATE nodes SET status = $2,
                   health_score = CASE WHEN $2 = 'dead' THEN 0 ELSE LEAST(health_score, 50) END
             WHERE status = ANY($1) AND COALESCE(last_heartbeat_at, updated_at) < $3
            RETURNING *
         )
         SELECT ",
        columns!(),
        " FROM n LEFT JOIN regions r ON r.id = n.region_id"
    ))
    .bind(from)
    .bind(to.as_str())
    .bind(cutoff)
    .fetch_all(db)
    .await?)
}
