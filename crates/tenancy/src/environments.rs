//! Environment operations (dev/staging/prod of a tenant).

use crosslogic_core::events::EnvironmentEvent;
use crosslogic_core::{Actor, EnvironmentStatus, Event, ServiceError, TenantStatus};
use crosslogic_db::changes;
use crosslogic_db::repo::environments::{self, Environment, EnvironmentPatch, NewEnvironment};
use crosslogic_db::repo::tenants;
use crosslogic_db::PgPool;
use serde::Deserialize;
use uuid::Uuid;

use crate::validate;

/// Body of "create environment"; omitted limits take the platform defaults
/// (1,000,000 tokens/day, 10,000 tokens/min, 10 concurrent requests).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    pub region: Option<String>,
    /// Allowed model names; empty or absent = all models.
    pub model_list: Option<Vec<String>>,
    #[schema(minimum = 0)]
    pub quota_tokens_per_day: Option<i64>,
    #[schema(minimum = 0, maximum = 2147483647)]
    pub quota_tokens_per_minute: Option<i64>,
    #[schema(minimum = 0, maximum = 2147483647)]
    pub concurrency_limit: Option<i64>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_requests_per_min: Option<i64>,
}

/// Body of "update environment".
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    pub region: Option<String>,
    pub model_list: Option<Vec<String>>,
    #[schema(minimum = 0)]
    pub quota_tokens_per_day: Option<i64>,
    #[schema(minimum = 0, maximum = 2147483647)]
    pub quota_tokens_per_minute: Option<i64>,
    #[schema(minimum = 0, maximum = 2147483647)]
    pub concurrency_limit: Option<i64>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_requests_per_min: Option<i64>,
}

fn quota_per_day(v: Option<i64>) -> Result<Option<i64>, ServiceError> {
    match v {
        Some(n) if n < 0 => Err(ServiceError::invalid("quota_tokens_per_day", "must be 0 or more")),
        other => Ok(other),
    }
}

fn models(v: Option<Vec<String>>) -> Result<Option<Vec<String>>, ServiceError> {
    match v {
        Some(list) if list.iter().any(|m| m.trim().is_empty()) => {
            Err(ServiceError::invalid("model_list", "model names must not be empty"))
        }
        other => Ok(other),
    }
}

/// The payload of an `environment.*` event.
fn event(e: &Environment) -> EnvironmentEvent {
    EnvironmentEvent {
        tenant_id: e.tenant_id,
        environment_id: e.id,
        name: e.name.clone(),
        status: e.status,
    }
}

/// Creates an environment in an active tenant; publishes `environment.created`.
pub async fn create_environment(
    pool: &PgPool,
    actor: &Actor,
    tenant_id: Uuid,
    input: CreateEnvironment,
) -> Result<Environment, ServiceError> {
    let new = NewEnvironment {
        tenant_id,
        name: validate::name("name", &input.name, 100)?,
        region: input.region,
        model_list: models(input.model_list)?,
        quota_tokens_per_day: quota_per_day(input.quota_tokens_per_day)?,
        quota_tokens_per_minute: validate::non_negative("quota_tokens_per_minute", input.quota_tokens_per_minute)?,
        concurrency_limit: validate::non_negative("concurrency_limit", input.concurrency_limit)?,
        rate_limit_requests_per_min: validate::positive(
            "rate_limit_requests_per_min",
            input.rate_limit_requests_per_min,
        )?,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let tenant = tenants::get(&mut *tx, tenant_id).await?;
    if tenant.status == TenantStatus::Deleted {
        return Err(ServiceError::NotFound("tenant"));
    }
    let env = environments::create(&mut *tx, &new).await?;
    changes::record(&mut tx, actor, &Event::EnvironmentCreated(event(&env))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(env)
}

/// One environment.
pub async fn get_environment(pool: &PgPool, id: Uuid) -> Result<Environment, ServiceError> {
    Ok(environments::get(pool, id).await?)
}

/// A tenant's environments.
pub async fn list_environments(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<Environment>, ServiceError> {
    tenants::get(pool, tenant_id).await?;
    Ok(environments::list_for_tenant(pool, tenant_id).await?)
}

/// Changes an environment; publishes `environment.updated`.
pub async fn update_environment(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    input: UpdateEnvironment,
) -> Result<Environment, ServiceError> {
    let patch = EnvironmentPatch {
        name: input
            .name
            .as_deref()
            .map(|n| validate::name("name", n, 100))
            .transpose()?,
        region: input.region,
        model_list: models(input.model_list)?,
        quota_tokens_per_day: quota_per_day(input.quota_tokens_per_day)?,
        quota_tokens_per_minute: validate::non_negative("quota_tokens_per_minute", input.quota_tokens_per_minute)?,
        concurrency_limit: validate::non_negative("concurrency_limit", input.concurrency_limit)?,
        rate_limit_requests_per_min: validate::positive(
            "rate_limit_requests_per_min",
            input.rate_limit_requests_per_min,
        )?,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let env = environments::update(&mut *tx, id, &patch).await?;
    changes::record(&mut tx, actor, &Event::EnvironmentUpdated(event(&env))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(env)
}

/// Suspends or reactivates an environment (all its keys stop or resume).
pub async fn set_environment_status(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    status: EnvironmentStatus,
) -> Result<Environment, ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let current = environments::get(&mut *tx, id).await?;
    if current.status == status {
        return Ok(current);
    }
    let env = environments::set_status(&mut *tx, id, status).await?;
    let change = match status {
        EnvironmentStatus::Active => Event::EnvironmentActivated(event(&env)),
        EnvironmentStatus::Suspended => Event::EnvironmentSuspended(event(&env)),
    };
    changes::record(&mut tx, actor, &change).await?;
    crosslogic_db::commit(tx).await?;
    Ok(env)
}

/// Deletes an environment and its keys; publishes `environment.deleted`.
pub async fn delete_environment(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<(), ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let env = environments::get(&mut *tx, id).await?;
    environments::delete(&mut *tx, id).await?;
    changes::record(&mut tx, actor, &Event::EnvironmentDeleted(event(&env))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(())
}
