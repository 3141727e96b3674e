//! Deployments: a model served by `min..=max` replicas, placed by strategy,
//! provider, region and GPU. The reconciler
//! (`crate::reconcile`) turns them into nodes.

use crosslogic_core::events::{DeploymentEvent, DeploymentUpdated};
use crosslogic_core::{Actor, CapacityPolicy, DeploymentStatus, DeploymentStrategy, Event, Provider, ServiceError};
use crosslogic_db::changes;
use crosslogic_db::repo::catalog;
use crosslogic_db::repo::deployments::{self, Deployment, DeploymentPatch, NewDeployment};
use crosslogic_db::{DbError, PgPool};
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::placement::{check_gpu, check_region, servable_model, MAX_GPUS};
use super::validate;

/// Upper bound of `min_replicas` and `max_replicas`.
pub const MAX_REPLICAS: i32 = 1000;

/// Body of "create deployment".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// 1 to 63 of `a-z`, `0-9`, `-`; unique (also against deleted ones).
    pub name: String,
    /// A catalog model that is not deprecated.
    pub model_name: String,
    /// Absent = 2 (or `max_replicas` if that is smaller).
    #[serde(default)]
    pub min_replicas: Option<i64>,
    /// Absent = 10 (or `min_replicas` if that is larger).
    #[serde(default)]
    pub max_replicas: Option<i64>,
    /// Absent = `spread`.
    #[serde(default)]
    pub strategy: Option<DeploymentStrategy>,
    /// Absent = any provider.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// A region code; absent = any region.
    #[serde(default)]
    pub region: Option<String>,
    /// `auto` (absent) or a GPU type of the catalog.
    #[serde(default)]
    pub gpu_type: Option<String>,
    /// GPUs per node, 1 to 8; absent = the fewest that fit the model.
    #[serde(default)]
    pub gpu_count: Option<i64>,
    /// Absent = `true` (spot first, on-demand fallback). The seed's switch:
    /// `false` is `capacity_policy: on_demand`, `true` is `spot` (or
    /// `hedged` when that is asked for).
    #[serde(default)]
    pub use_spot: Option<bool>,
    /// How replicas buy capacity: `on_demand`, `spot` (spot first,
    /// on-demand after failed spot launches) or `hedged` (spot spread over
    /// regions with over-provision, an on-demand base, and on-demand
    /// fallback while spot is short). Absent = from `use_spot`.
    #[serde(default)]
    pub capacity_policy: Option<CapacityPolicy>,
    /// `hedged` only: replicas always on-demand, 0 (absent) to
    /// `max_replicas`.
    #[serde(default)]
    pub on_demand_base: Option<i64>,
    /// `hedged` only: spot replicas kept beyond the target, 0 to 100;
    /// absent = 1.
    #[serde(default)]
    pub spot_overprovision: Option<i64>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// Body of "update deployment": only the given fields change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDeployment {
    pub min_replicas: Option<i64>,
    pub max_replicas: Option<i64>,
    pub strategy: Option<DeploymentStrategy>,
    pub gpu_type: Option<String>,
    /// `false` = `capacity_policy: on_demand`; `true` = `spot` (a hedged
    /// deployment stays hedged).
    pub use_spot: Option<bool>,
    pub capacity_policy: Option<CapacityPolicy>,
    /// `hedged` only.
    pub on_demand_base: Option<i64>,
    /// `hedged` only.
    pub spot_overprovision: Option<i64>,
}

/// Upper bound of `spot_overprovision`.
pub const MAX_SPOT_OVERPROVISION: i32 = 100;

/// The capacity settings a deployment ends up with, from what was asked
/// (`use_spot`, `capacity_policy`, the hedged knobs) and what it had.
struct Capacity {
    policy: CapacityPolicy,
    on_demand_base: Option<i32>,
    spot_overprovision: Option<i32>,
}

fn capacity(
    use_spot: Option<bool>,
    policy: Option<CapacityPolicy>,
    base: Option<i64>,
    extra: Option<i64>,
    current: CapacityPolicy,
    max_replicas: i32,
) -> Result<Capacity, ServiceError> {
    let policy = match (policy, use_spot) {
        (Some(p), Some(spot)) if (p != CapacityPolicy::OnDemand) != spot => {
            return Err(ServiceError::invalid(
                "use_spot",
                format!("{spot} contradicts capacity_policy {p}; give one of them"),
            ))
        }
        (Some(p), _) => p,
        (None, Some(false)) => CapacityPolicy::OnDemand,
        (None, Some(true)) if current == CapacityPolicy::OnDemand => CapacityPolicy::Spot,
        (None, _) => current,
    };
    let on_demand_base = base
        .map(|v| validate::int("on_demand_base", v, 0, MAX_REPLICAS))
        .transpose()?;
    let spot_overprovision = extra
        .map(|v| validate::int("spot_overprovision", v, 0, MAX_SPOT_OVERPROVISION))
        .transpose()?;
    if policy != CapacityPolicy::Hedged {
        for (field, given) in [
            ("on_demand_base", on_demand_base.is_some()),
            ("spot_overprovision", spot_overprovision.is_some()),
        ] {
            if given {
                return Err(ServiceError::invalid(
                    field,
                    format!("only applies to capacity_policy hedged (this deployment is {policy})"),
                ));
            }
        }
    }
    if let Some(b) = on_demand_base.filter(|b| *b > max_replicas) {
        return Err(ServiceError::invalid(
            "on_demand_base",
            format!("must not exceed max_replicas ({max_replicas}), got {b}"),
        ));
    }
    Ok(Capacity {
        policy,
        on_demand_base,
        spot_overprovision,
    })
}

fn replicas(min: Option<i64>, max: Option<i64>) -> Result<(Option<i32>, Option<i32>), ServiceError> {
    Ok((
        min.map(|v| validate::int("min_replicas", v, 0, MAX_REPLICAS))
            .transpose()?,
        max.map(|v| validate::int("max_replicas", v, 1, MAX_REPLICAS))
            .transpose()?,
    ))
}

/// Refuses `min > max`, naming the field the caller changed.
fn ordered(min: i32, max: i32, min_given: bool) -> Result<(), ServiceError> {
    if min <= max {
        Ok(())
    } else if min_given {
        Err(ServiceError::invalid(
            "min_replicas",
            format!("must not exceed max_replicas ({max}), got {min}"),
        ))
    } else {
        Err(ServiceError::invalid(
            "max_replicas",
            format!("must be at least min_replicas ({min}), got {max}"),
        ))
    }
}

/// The payload of a `deployment.*` event.
pub(crate) fn event(d: &Deployment) -> DeploymentEvent {
    DeploymentEvent {
        deployment_id: d.id,
        name: d.name.clone(),
        model_name: d.model_name.clone(),
        status: d.status,
        min_replicas: d.min_replicas,
        max_replicas: d.max_replicas,
        strategy: d.strategy,
        provider: d.provider.clone(),
        region: d.region.clone(),
        gpu_type: d.gpu_type.clone(),
        gpu_count: d.gpu_count,
        use_spot: d.use_spot,
        capacity_policy: d.capacity_policy,
    }
}

/// Creates a deployment; publishes `deployment.created`.
pub async fn create_deployment(
    pool: &PgPool,
    actor: &Actor,
    input: CreateDeployment,
) -> Result<Deployment, ServiceError> {
    let name = validate::slug("name", input.name.trim())?;
    let model_name = validate::text("model_name", &input.model_name, 200)?;
    let (min, max) = replicas(input.min_replicas, input.max_replicas)?;
    let (min_replicas, max_replicas) = match (min, max) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (a, a.max(10)),
        (None, Some(b)) => (b.min(2), b),
        (None, None) => (2, 10),
    };
    ordered(min_replicas, max_replicas, true)?;
    let gpu_count = input
        .gpu_count
        .map(|c| validate::int("gpu_count", c, 1, MAX_GPUS))
        .transpose()?;
    let metadata = validate::object("metadata", input.metadata)?;
    let cap = capacity(
        input.use_spot,
        input.capacity_policy,
        input.on_demand_base,
        input.spot_overprovision,
        CapacityPolicy::Spot,
        max_replicas,
    )?;
    let region = input.region.map(|r| r.trim().to_owned());

    let mut tx = crosslogic_db::begin(pool).await?;
    let model = servable_model(&mut tx, &model_name).await?;
    if let Some(code) = &region {
        check_region(&mut tx, code, input.provider).await?;
    }
    let offers = catalog::gpu_catalog(&mut *tx).await?;
    let gpu_type = check_gpu(
        &model,
        input.provider,
        input.gpu_type.as_deref().unwrap_or("auto"),
        gpu_count,
        &offers,
    )?;
    match deployments::get_by_name(&mut *tx, &name).await {
        Ok(existing) => {
            let what = if existing.status == DeploymentStatus::Deleted {
                "a deleted deployment still holds the name"
            } else {
                "a deployment with this name exists"
            };
            return Err(ServiceError::Conflict {
                field: Some("name"),
                message: format!("{name}: {what}; choose another name"),
            });
        }
        Err(DbError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let new = NewDeployment {
        name,
        model_name: model.name,
        min_replicas,
        max_replicas,
        strategy: input.strategy.unwrap_or(DeploymentStrategy::Spread),
        provider: input.provider,
        region,
        gpu_type,
        gpu_count,
        capacity_policy: cap.policy,
        on_demand_base: cap.on_demand_base.unwrap_or(0),
        spot_overprovision: cap.spot_overprovision.unwrap_or(1),
        metadata,
    };
    let d = deployments::create(&mut *tx, &new).await?;
    changes::record(&mut tx, actor, &Event::DeploymentCreated(event(&d))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(d)
}

/// One deployment (deleted ones too, with status `deleted`).
pub async fn get_deployment(pool: &PgPool, id: Uuid) -> Result<Deployment, ServiceError> {
    Ok(deployments::get(pool, id).await?)
}

/// Deployments by name; deleted ones only when `status` asks for them.
pub async fn list_deployments(
    pool: &PgPool,
    status: Option<DeploymentStatus>,
) -> Result<Vec<Deployment>, ServiceError> {
    Ok(deployments::list(pool, status).await?)
}

/// Reads a deployment that may still change.
async fn live(tx: &mut PgConnection, id: Uuid) -> Result<Deployment, ServiceError> {
    let d = deployments::get(&mut *tx, id).await?;
    if d.status == DeploymentStatus::Deleted {
        return Err(ServiceError::State(
            "the deployment is deleted; create a new one".into(),
        ));
    }
    Ok(d)
}

/// Changes bounds, strategy, GPU or spot use; publishes `deployment.updated`.
/// An empty change returns the deployment as it is.
pub async fn update_deployment(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    input: UpdateDeployment,
) -> Result<Deployment, ServiceError> {
    let (min, max) = replicas(input.min_replicas, input.max_replicas)?;
    let mut tx = crosslogic_db::begin(pool).await?;
    let current = live(&mut tx, id).await?;
    ordered(
        min.unwrap_or(current.min_replicas),
        max.unwrap_or(current.max_replicas),
        min.is_some(),
    )?;
    let cap = capacity(
        input.use_spot,
        input.capacity_policy,
        input.on_demand_base,
        input.spot_overprovision,
        current.capacity_policy,
        max.unwrap_or(current.max_replicas),
    )?;
    if cap.on_demand_base.is_none() && cap.policy == CapacityPolicy::Hedged {
        let max = max.unwrap_or(current.max_replicas);
        if current.on_demand_base > max {
            return Err(ServiceError::invalid(
                "max_replicas",
                format!(
                    "must be at least on_demand_base ({}), got {max}",
                    current.on_demand_base
                ),
            ));
        }
    }
    let gpu_type = match &input.gpu_type {
        None => None,
        Some(g) => {
            let model = catalog::get_model(&mut *tx, &current.model_name).await?;
            let provider = current.provider.as_deref().and_then(|p| p.parse().ok());
            let offers = catalog::gpu_catalog(&mut *tx).await?;
            Some(check_gpu(&model, provider, g, current.gpu_count, &offers)?)
        }
    };
    let patch = DeploymentPatch {
        min_replicas: min,
        max_replicas: max,
        strategy: input.strategy,
        gpu_type,
        capacity_policy: Some(cap.policy).filter(|p| *p != current.capacity_policy),
        on_demand_base: cap.on_demand_base,
        spot_overprovision: cap.spot_overprovision,
    };
    let mut changed = Map::new();
    let mut note = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            changed.insert(k.to_owned(), v);
        }
    };
    note("min_replicas", patch.min_replicas.map(Value::from));
    note("max_replicas", patch.max_replicas.map(Value::from));
    note("strategy", patch.strategy.map(|s| Value::from(s.as_str())));
    note("gpu_type", patch.gpu_type.clone().map(Value::from));
    if let Some(p) = patch.capacity_policy {
        note("capacity_policy", Some(Value::from(p.as_str())));
        note("use_spot", Some(Value::from(p != CapacityPolicy::OnDemand)));
    }
    note("on_demand_base", patch.on_demand_base.map(Value::from));
    note("spot_overprovision", patch.spot_overprovision.map(Value::from));
    if changed.is_empty() {
        return Ok(current);
    }
    let d = deployments::update(&mut *tx, id, &patch).await?;
    let change = Event::DeploymentUpdated(DeploymentUpdated {
        deployment: event(&d),
        changes: changed,
    });
    changes::record(&mut tx, actor, &change).await?;
    crosslogic_db::commit(tx).await?;
    Ok(d)
}

/// Pauses (`paused`), resumes (`active`) or soft-deletes (`deleted`) a
/// deployment; publishes `deployment.paused`, `.resumed` or `.deleted`.
/// Asking for the current status changes nothing; a deleted deployment
/// cannot come back.
pub async fn set_deployment_status(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    status: DeploymentStatus,
) -> Result<Deployment, ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let current = deployments::get(&mut *tx, id).await?;
    if current.status == status {
        return Ok(current);
    }
    if current.status == DeploymentStatus::Deleted {
        return Err(ServiceError::State(
            "the deployment is deleted; create a new one".into(),
        ));
    }
    let d = deployments::set_status(&mut *tx, id, status).await?;
    let change = match status {
        DeploymentStatus::Active => Event::DeploymentResumed(event(&d)),
        DeploymentStatus::Paused => Event::DeploymentPaused(event(&d)),
        DeploymentStatus::Deleted => Event::DeploymentDeleted(event(&d)),
    };
    changes::record(&mut tx, actor, &change).await?;
    crosslogic_db::commit(tx).await?;
    Ok(d)
}
