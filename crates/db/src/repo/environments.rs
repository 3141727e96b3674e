//! `environments`: a tenant's dev/staging/prod, each with its region, model
//! allow-list, daily token quota and concurrency.

use chrono::{DateTime, Utc};
use crosslogic_core::EnvironmentStatus;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `environments`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Environment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// Preferred region code; `None` = any.
    pub region: Option<String>,
    /// Allowed model names; empty = all.
    #[sqlx(json)]
    pub model_list: Vec<String>,
    pub quota_tokens_per_day: i64,
    pub quota_tokens_per_minute: i32,
    pub concurrency_limit: i32,
    pub rate_limit_requests_per_min: Option<i32>,
    #[sqlx(try_from = "String")]
    pub status: EnvironmentStatus,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, name, region, model_list, quota_tokens_per_day, quota_tokens_per_minute, concurrency_limit, \
         rate_limit_requests_per_min, status, metadata, created_at, updated_at"
    };
}

/// Fields of a new environment; `None` takes the column default
/// (1,000,000 tokens/day, 10,000 tokens/min, 10 concurrent).
#[derive(Debug, Clone, Default)]
pub struct NewEnvironment {
    pub tenant_id: Uuid,
    pub name: String,
    pub region: Option<String>,
    pub model_list: Option<Vec<String>>,
    pub quota_tokens_per_day: Option<i64>,
    pub quota_tokens_per_minute: Option<i32>,
    pub concurrency_limit: Option<i32>,
    pub rate_limit_requests_per_min: Option<i32>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentPatch {
    pub name: Option<String>,
    pub region: Option<String>,
    pub model_list: Option<Vec<String>>,
    pub quota_tokens_per_day: Option<i64>,
    pub quota_tokens_per_minute: Option<i32>,
    pub concurrency_limit: Option<i32>,
    pub rate_limit_requests_per_min: Option<i32>,
}

/// Inserts an environment. Same name twice in a tenant →
/// `Conflict { "environments_tenant_id_name_key" }`; unknown region → `ForeignKey`.
pub async fn create(db: impl PgExecutor<'_>, new: &NewEnvironment) -> DbResult<Environment> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO environments (tenant_id, name, region, model_list, quota_tokens_per_day, quota_tokens_per_minute,
                                   concurrency_limit, rate_limit_requests_per_min)
         VALUES ($1, $2, $3, COALESCE($4, '[]'::jsonb), COALESCE($5, 1000000), COALESCE($6, 10000), COALESCE($7, 10), $8)
         RETURNING ",
        columns!()
    ))
    .bind(new.tenant_id)
    .bind(&new.name)
    .bind(&new.region)
    .bind(new.model_list.as_ref().map(Json))
    .bind(new.quota_tokens_per_day)
    .bind(new.quota_tokens_per_minute)
    .bind(new.concurrency_limit)
    .bind(new.rate_limit_requests_per_min)
    .fetch_one(db)
    .await?)
}

/// One environment by id.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Environment> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM environments WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("environment")
}

/// A tenant's environments by name.
pub async fn list_for_tenant(db: impl PgExecutor<'_>, tenant_id: Uuid) -> DbResult<Vec<Environment>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM environments WHERE tenant_id = $1 ORDER BY name"
    ))
    .bind(tenant_id)
    .fetch_all(db)
    .await?)
}

/// Applies a patch and returns the new row.
pub async fn update(db: impl PgExecutor<'_>, id: Uuid, patch: &EnvironmentPatch) -> DbResult<Environment> {
    sqlx::query_as(concat!(
        "UPDATE environments SET
            name = COALESCE($2, name),
            region = COALESCE($3, region),
            model_list = COALESCE($4, model_list),
            quota_tokens_per_day = COALESCE($5, quota_tokens_per_day),
            quota_tokens_per_minute = COALESCE($6, quota_tokens_per_minute),
            concurrency_limit = COALESCE($7, concurrency_limit),
            rate_limit_requests_per_min = COALESCE($8, rate_limit_requests_per_min)
          WHERE id = $1 RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.region)
    .bind(patch.model_list.as_ref().map(Json))
    .bind(patch.quota_tokens_per_day)
    .bind(patch.quota_tokens_per_minute)
    .bind(patch.concurrency_limit)
    .bind(patch.rate_limit_requests_per_min)
    .fetch_optional(db)
    .await
    .or_not_found("environment")
}

/// Suspends or reactivates an environment.
pub async fn set_status(db: impl PgExecutor<'_>, id: Uuid, status: EnvironmentStatus) -> DbResult<Environment> {
    sqlx::query_as(concat!(
        "UPDATE environments SET status = $2 WHERE id = $1 RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(status.as_str())
    .fetch_optional(db)
    .await
    .or_not_found("environment")
}

/// Deletes an environment and (cascade) its keys.
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<()> {
    let done = sqlx::query("DELETE FROM environments WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(crate::DbError::NotFound { entity: "environment" });
    }
    Ok(())
}
