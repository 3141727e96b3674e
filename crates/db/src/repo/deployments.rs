//! `deployments` and `deployment_nodes`.

use chrono::{DateTime, Utc};
use crosslogic_core::{CapacityPolicy, DeploymentNodeStatus, DeploymentStatus, DeploymentStrategy, Provider};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `deployments`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Deployment {
    pub id: Uuid,
    pub name: String,
    pub model_name: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub current_replicas: i32,
    #[sqlx(try_from = "String")]
    pub strategy: DeploymentStrategy,
    /// `None` = any provider.
    pub provider: Option<String>,
    /// Forced region code; `None` = any allowed region.
    pub region: Option<String>,
    /// A GPU type name or `auto`.
    pub gpu_type: String,
    pub gpu_count: Option<i32>,
    /// `capacity_policy <> on_demand` (the seed's column, kept in step).
    pub use_spot: bool,
    #[sqlx(try_from = "String")]
    pub capacity_policy: CapacityPolicy,
    /// `hedged`: replicas always on-demand.
    pub on_demand_base: i32,
    /// `hedged`: spot replicas kept beyond the target.
    pub spot_overprovision: i32,
    #[sqlx(try_from = "String")]
    pub status: DeploymentStatus,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, name, model_name, min_replicas, max_replicas, current_replicas, strategy, provider, region, gpu_type, \
         gpu_count, use_spot, capacity_policy, on_demand_base, spot_overprovision, status, metadata, created_at, \
         updated_at, deleted_at"
    };
}

/// A deployment to create.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub name: String,
    pub model_name: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub strategy: DeploymentStrategy,
    pub provider: Option<Provider>,
    pub region: Option<String>,
    pub gpu_type: String,
    pub gpu_count: Option<i32>,
    pub capacity_policy: CapacityPolicy,
    pub on_demand_base: i32,
    pub spot_overprovision: i32,
    pub metadata: Value,
}

/// Inserts a deployment. Unknown model/region → `ForeignKey`; min > max →
/// `Invalid { "deployments_replicas_bounds" }`; taken name → `Conflict`.
pub async fn create(db: impl PgExecutor<'_>, d: &NewDeployment) -> DbResult<Deployment> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO deployments (name, model_name, min_replicas, max_replicas, strategy, provider, region, gpu_type,
                                  gpu_count, use_spot, capacity_policy, on_demand_base, spot_overprovision, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10 <> 'on_demand', $10, $11, $12, $13) RETURNING ",
        columns!()
    ))
    .bind(&d.name)
    .bind(&d.model_name)
    .bind(d.min_replicas)
    .bind(d.max_replicas)
    .bind(d.strategy.as_str())
    .bind(d.provider.map(|p| p.as_str()))
    .bind(&d.region)
    .bind(&d.gpu_type)
    .bind(d.gpu_count)
    .bind(d.capacity_policy.as_str())
    .bind(d.on_demand_base)
    .bind(d.spot_overprovision)
    .bind(&d.metadata)
    .fetch_one(db)
    .await?)
}

/// One deployment by id.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Deployment> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM deployments WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("deployment")
}

/// One deployment by name.
pub async fn get_by_name(db: impl PgExecutor<'_>, name: &str) -> DbResult<Deployment> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM deployments WHERE name = $1"))
        .bind(name)
        .fetch_optional(db)
        .await
        .or_not_found("deployment")
}

/// Deployments, optionally of one status (deleted ones only when asked for).
pub async fn list(db: impl PgExecutor<'_>, status: Option<DeploymentStatus>) -> DbResult<Vec<Deployment>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM deployments WHERE ($1::text IS NULL AND status <> 'deleted' OR status = $1) ORDER BY name"
    ))
    .bind(status.map(|s| s.as_str()))
    .fetch_all(db)
    .await?)
}

/// Bounds and placement to change; `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct DeploymentPatch {
    pub min_replicas: Option<i32>,
    pub max_replicas: Option<i32>,
    pub strategy: Option<DeploymentStrategy>,
    pub gpu_type: Option<String>,
    pub capacity_policy: Option<CapacityPolicy>,
    pub on_demand_base: Option<i32>,
    pub spot_overprovision: Option<i32>,
}

/// Applies a patch (the bounds CHECK still holds: min ≤ max).
pub async fn update(db: impl PgExecutor<'_>, id: Uuid, p: &DeploymentPatch) -> DbResult<Deployment> {
    sqlx::query_as(concat!(
        "UPDATE deployments SET min_replicas = COALESCE($2, min_replicas), max_replicas = COALESCE($3, max_replicas),
                strategy = COALESCE($4, strategy), gpu_type = COALESCE($5, gpu_type),
                capacity_policy = COALESCE($6, capacity_policy),
                use_spot = COALESCE($6, capacity_policy) <> 'on_demand',
                on_demand_base = COALESCE($7, on_demand_base),
                spot_overprovision = COALESCE($8, spot_overprovision)
          WHERE id = $1 AND status <> 'deleted' RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(p.min_replicas)
    .bind(p.max_replicas)
    .bind(p.strategy.map(|s| s.as_str()))
    .bind(&p.gpu_type)
    .bind(p.capacity_policy.map(|c| c.as_str()))
    .bind(p.on_demand_base)
    .bind(p.spot_overprovision)
    .fetch_optional(db)
    .await
    .or_not_found("deployment")
}

/// Pauses, resumes or deletes (soft) a deployment.
pub async fn set_status(db: impl PgExecutor<'_>, id: Uuid, status: DeploymentStatus) -> DbResult<Deployment> {
    sqlx::query_as(concat!(
        "UPDATE deployments SET status = $2,
                deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE NULL END
          WHERE id = $1 AND status <> 'deleted' RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(status.as_str())
    .fetch_optional(db)
    .await
    .or_not_found("deployment")
}

/// Records the live replica counts the reconciler counted, for many
/// deployments in one statement (rows already right are not touched);
/// returns how many rows changed.
pub async fn set_current_replicas_many(db: impl PgExecutor<'_>, counts: &[(Uuid, i32)]) -> DbResult<u64> {
    if counts.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = counts.iter().map(|c| c.0).collect();
    let values: Vec<i32> = counts.iter().map(|c| c.1).collect();
    let done = sqlx::query(
        "UPDATE deployments d SET current_replicas = c.n
           FROM unnest($1::uuid[], $2::int4[]) AS c(id, n)
          WHERE d.id = c.id AND d.current_replicas <> c.n",
    )
    .bind(ids)
    .bind(values)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Sets a member node's status within its deployment.
pub async fn set_member_status(
    db: impl PgExecutor<'_>,
    deployment_id: Uuid,
    node_id: Uuid,
    status: DeploymentNodeStatus,
) -> DbResult<()> {
    let done = sqlx::query("UPDATE deployment_nodes SET status = $3 WHERE deployment_id = $1 AND node_id = $2")
        .bind(deployment_id)
        .bind(node_id)
        .bind(status.as_str())
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(crate::DbError::NotFound {
            entity: "deployment node",
        });
    }
    Ok(())
}

/// Advisory-lock key of the deployments reconciler ("CLRECONC").
const RECONCILE_LOCK_KEY: i64 = 0x434C_5245_434F_4E43;

/// Takes the reconciler's transaction-scoped advisory lock without waiting;
/// `false` when another replica holds it. Released at the end of the
/// transaction `db` belongs to (so call it inside one).
pub async fn try_reconcile_lock(db: impl PgExecutor<'_>) -> DbResult<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RECONCILE_LOCK_KEY)
        .fetch_one(db)
        .await?)
}
