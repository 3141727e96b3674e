//! `api_keys`: only the hash of a key is stored; the prefix identifies it.

use chrono::{DateTime, Utc};
use crosslogic_core::{ApiKeyRole, ApiKeyStatus};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `api_keys` (never the secret; `key_hash` is not exposed either).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub key_prefix: String,
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    pub user_id: Option<String>,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: ApiKeyRole,
    pub rate_limit_tokens_per_min: Option<i32>,
    pub rate_limit_requests_per_min: i32,
    pub concurrency_limit: i32,
    #[sqlx(try_from = "String")]
    pub status: ApiKeyStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub metadata: Value,
}

macro_rules! columns {
    () => {
        "id, key_prefix, tenant_id, environment_id, user_id, name, role, rate_limit_tokens_per_min, \
         rate_limit_requests_per_min, concurrency_limit, status, created_at, updated_at, last_used_at, expires_at, \
         revoked_at, metadata"
    };
}

/// A key to insert; the caller generated the secret and hashed it.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key_hash: String,
    pub key_prefix: String,
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    pub user_id: Option<String>,
    pub name: String,
    pub role: ApiKeyRole,
    pub rate_limit_tokens_per_min: Option<i32>,
    pub rate_limit_requests_per_min: Option<i32>,
    pub concurrency_limit: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub metadata: Value,
}

/// Inserts a key. The environment must belong to the tenant (checked in SQL:
/// a mismatch inserts nothing and returns `NotFound { "environment" }`).
pub async fn create(db: impl PgExecutor<'_>, new: &NewApiKey) -> DbResult<ApiKey> {
    sqlx::query_as(concat!(
        "INSERT INTO api_keys (key_hash, key_prefix, tenant_id, environment_id, user_id, name, role,
                               rate_limit_tokens_per_min, rate_limit_requests_per_min, concurrency_limit, expires_at, metadata)
         SELECT $1, $2, e.tenant_id, e.id, $5, $6, $7, $8, COALESCE($9, 60), COALESCE($10, 5), $11, $12
           FROM environments e WHERE e.id = $4 AND e.tenant_id = $3
         RETURNING ",
        columns!()
    ))
    .bind(&new.key_hash)
    .bind(&new.key_prefix)
    .bind(new.tenant_id)
    .bind(new.environment_id)
    .bind(&new.user_id)
    .bind(&new.name)
    .bind(new.role.as_str())
    .bind(new.rate_limit_tokens_per_min)
    .bind(new.rate_limit_requests_per_min)
    .bind(new.concurrency_limit)
    .bind(new.expires_at)
    .bind(&new.metadata)
    .fetch_optional(db)
    .await
    .or_not_found("environment")
}

/// One key by id.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<ApiKey> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM api_keys WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("api key")
}

/// Everything authentication needs about a key, its environment and tenant,
/// in one round trip.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyAuth {
    pub key_id: Uuid,
    pub key_prefix: String,
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    #[sqlx(try_from = "String")]
    pub role: ApiKeyRole,
    #[sqlx(try_from = "String")]
    pub key_status: ApiKeyStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub key_requests_per_min: i32,
    pub key_tokens_per_min: Option<i32>,
    pub key_concurrency: i32,
    #[sqlx(try_from = "String")]
    pub tenant_status: crosslogic_core::TenantStatus,
    pub tenant_requests_per_min: Option<i32>,
    pub tenant_tokens_per_min: Option<i32>,
    pub tenant_concurrency: Option<i32>,
    #[sqlx(try_from = "String")]
    pub environment_status: crosslogic_core::EnvironmentStatus,
    pub environment_region: Option<String>,
    #[sqlx(json)]
    pub environment_models: Vec<String>,
    pub environment_tokens_per_day: i64,
    pub environment_tokens_per_min: i32,
    pub environment_concurrency: i32,
    pub environment_requests_per_min: Option<i32>,
    /// The month (its first day) whose budget stopped the tenant's requests.
    pub tenant_spend_blocked_month: Option<chrono::NaiveDate>,
    /// The tenant's monthly budget, for the refusal's message.
    pub tenant_budget_microdollars: Option<i64>,
}

/// Looks a key up by the hash of its secret.
pub async fn auth_by_hash(db: impl PgExecutor<'_>, key_hash: &str) -> DbResult<KeyAuth> {
    sqlx::query_as(
        "SELECT k.id AS key_id, k.key_prefix, k.tenant_id, k.environment_id, k.role, k.status AS key_status,
                k.expires_at, k.rate_limit_requests_per_min AS key_requests_per_min,
                k.rate_limit_tokens_per_min AS key_tokens_per_min, k.concurrency_limit AS key_concurrency,
                t.status AS tenant_status, t.rate_limit_requests_per_min AS tenant_requests_per_min,
                t.rate_limit_tokens_per_min AS tenant_tokens_per_min, t.concurrency_limit AS tenant_concurrency,
                e.status AS environment_status, e.region AS environment_region, e.model_list AS environment_models,
                e.quota_tokens_per_day AS environment_tokens_per_day,
                e.quota_tokens_per_minute AS environment_tokens_per_min,
                e.concurrency_limit AS environment_concurrency,
                e.rate_limit_requests_per_min AS environment_requests_per_min,
                t.spend_blocked_month AS tenant_spend_blocked_month,
                t.monthly_budget_microdollars AS tenant_budget_microdollars
           FROM api_keys k
           JOIN tenants t ON t.id = k.tenant_id
           JOIN environments e ON e.id = k.environment_id
          WHERE k.key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(db)
    .await
    .or_not_found("api key")
}

/// A tenant's keys (optionally one environment's), newest first.
pub async fn list_for_tenant(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    environment_id: Option<Uuid>,
) -> DbResult<Vec<ApiKey>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE tenant_id = $1 AND ($2::uuid IS NULL OR environment_id = $2)
          ORDER BY created_at DESC, id DESC"
    ))
    .bind(tenant_id)
    .bind(environment_id)
    .fetch_all(db)
    .await?)
}

/// Active keys expiring in `(now, before]`, soonest first.
pub async fn expiring(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> DbResult<Vec<ApiKey>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE status = 'active' AND expires_at > now() AND expires_at <= $1
          ORDER BY expires_at, id"
    ))
    .bind(before)
    .fetch_all(db)
    .await?)
}

/// Sets the status; revocation stamps `revoked_at` and is final (a revoked
/// key cannot be reactivated: `NotFound`).
pub async fn set_status(db: impl PgExecutor<'_>, id: Uuid, status: ApiKeyStatus) -> DbResult<ApiKey> {
    sqlx::query_as(concat!(
        "UPDATE api_keys SET status = $2,
                revoked_at = CASE WHEN $2 = 'revoked' THEN now() ELSE revoked_at END
          WHERE id = $1 AND (status <> 'revoked' OR $2 = 'revoked')
          RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(status.as_str())
    .fetch_optional(db)
    .await
    .or_not_found("api key")
}

/// Per-key limits and expiry; `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyLimits {
    pub rate_limit_requests_per_min: Option<i32>,
    pub rate_limit_tokens_per_min: Option<i32>,
    pub concurrency_limit: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub role: Option<ApiKeyRole>,
    pub name: Option<String>,
}

/// Changes limits, role, name or expiry.
pub async fn update(db: impl PgExecutor<'_>, id: Uuid, limits: &KeyLimits) -> DbResult<ApiKey> {
    sqlx::query_as(concat!(
        "UPDATE api_keys SET
            rate_limit_requests_per_min = COALESCE($2, rate_limit_requests_per_min),
            rate_limit_tokens_per_min = COALESCE($3, rate_limit_tokens_per_min),
            concurrency_limit = COALESCE($4, concurrency_limit),
            expires_at = COALESCE($5, expires_at),
            role = COALESCE($6, role),
            name = COALESCE($7, name)
          WHERE id = $1 RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(limits.rate_limit_requests_per_min)
    .bind(limits.rate_limit_tokens_per_min)
    .bind(limits.concurrency_limit)
    .bind(limits.expires_at)
    .bind(limits.role.map(|r| r.as_str()))
    .bind(&limits.name)
    .fetch_optional(db)
    .await
    .or_not_found("api key")
}

/// Records `last_used_at` for many keys in one statement (batched off the
/// request path); never moves a timestamp backwards.
pub async fn touch_last_used(db: impl PgExecutor<'_>, ids: &[Uuid], at: &[DateTime<Utc>]) -> DbResult<u64> {
    let done = sqlx::query(
        "UPDATE api_keys k SET last_used_at = v.at
           FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, at)
          WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.at)",
    )
    .bind(ids)
    .bind(at)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
