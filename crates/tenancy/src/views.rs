//! Tenants, environments and API keys as the APIs show them (the admin API
//! and the tenant's `/v1/keys`): wire types built from the rows, so a
//! column added to a table never reaches an answer by accident, and the
//! OpenAPI document is generated from these.

use chrono::{DateTime, Utc};
use crosslogic_core::{ApiKeyRole, ApiKeyStatus, BillingPlan, EnvironmentStatus, TenantStatus};
use crosslogic_db::repo::api_keys::ApiKey;
use crosslogic_db::repo::environments::Environment;
use crosslogic_db::repo::tenants::Tenant;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::CreatedKey;

/// A tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    /// Always `tenant`.
    pub object: &'static str,
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub stripe_customer_id: Option<String>,
    pub status: TenantStatus,
    pub billing_plan: BillingPlan,
    pub reserved_capacity_tokens_per_sec: i32,
    /// Preferred region codes, most preferred first.
    pub region_preferences: Vec<String>,
    /// Tenant-wide limits; `null` = the platform default applies.
    pub rate_limit_requests_per_min: Option<i32>,
    pub rate_limit_tokens_per_min: Option<i32>,
    pub concurrency_limit: Option<i32>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        TenantView {
            object: "tenant",
            id: t.id,
            name: t.name,
            email: t.email,
            stripe_customer_id: t.stripe_customer_id,
            status: t.status,
            billing_plan: t.billing_plan,
            reserved_capacity_tokens_per_sec: t.reserved_capacity_tokens_per_sec,
            region_preferences: t.region_preferences,
            rate_limit_requests_per_min: t.rate_limit_requests_per_min,
            rate_limit_tokens_per_min: t.rate_limit_tokens_per_min,
            concurrency_limit: t.concurrency_limit,
            metadata: t.metadata,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
        }
    }
}

/// An environment of a tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnvironmentView {
    /// Always `environment`.
    pub object: &'static str,
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// Preferred region code; `null` = any.
    pub region: Option<String>,
    /// Models its keys may use; empty = all.
    pub model_list: Vec<String>,
    pub quota_tokens_per_day: i64,
    pub quota_tokens_per_minute: i32,
    pub concurrency_limit: i32,
    pub rate_limit_requests_per_min: Option<i32>,
    pub status: EnvironmentStatus,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Environment> for EnvironmentView {
    fn from(e: Environment) -> Self {
        EnvironmentView {
            object: "environment",
            id: e.id,
            tenant_id: e.tenant_id,
            name: e.name,
            region: e.region,
            model_list: e.model_list,
            quota_tokens_per_day: e.quota_tokens_per_day,
            quota_tokens_per_minute: e.quota_tokens_per_minute,
            concurrency_limit: e.concurrency_limit,
            rate_limit_requests_per_min: e.rate_limit_requests_per_min,
            status: e.status,
            metadata: e.metadata,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An API key: never its secret or hash; `key_prefix` identifies it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    /// Always `api_key`.
    pub object: &'static str,
    pub id: Uuid,
    pub key_prefix: String,
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    pub user_id: Option<String>,
    pub name: String,
    pub role: ApiKeyRole,
    /// `null` = the environment's tokens/min apply.
    pub rate_limit_tokens_per_min: Option<i32>,
    pub rate_limit_requests_per_min: i32,
    pub concurrency_limit: i32,
    pub status: ApiKeyStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub metadata: Value,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            object: "api_key",
            id: k.id,
            key_prefix: k.key_prefix,
            tenant_id: k.tenant_id,
            environment_id: k.environment_id,
            user_id: k.user_id,
            name: k.name,
            role: k.role,
            rate_limit_tokens_per_min: k.rate_limit_tokens_per_min,
            rate_limit_requests_per_min: k.rate_limit_requests_per_min,
            concurrency_limit: k.concurrency_limit,
            status: k.status,
            created_at: k.created_at,
            updated_at: k.updated_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            metadata: k.metadata,
        }
    }
}

/// A key just created: its fields and, this once, its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedKeyView {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The secret key; it cannot be shown again.
    pub key_secret: String,
}

impl From<CreatedKey> for CreatedKeyView {
    fn from(c: CreatedKey) -> Self {
        CreatedKeyView {
            key: c.key.into(),
            key_secret: c.key_secret,
        }
    }
}
