//! API key operations. The plaintext of a key exists only in the response
//! to its creation; the database keeps its SHA-256 and public prefix.

use chrono::{DateTime, Utc};
use crosslogic_core::events::ApiKeyEvent;
use crosslogic_core::{keys, Actor, ApiKeyRole, ApiKeyStatus, EnvironmentStatus, Event, ServiceError, TenantStatus};
use crosslogic_db::changes;
use crosslogic_db::repo::api_keys::{self, ApiKey, KeyLimits, NewApiKey};
use crosslogic_db::repo::{environments, tenants};
use crosslogic_db::PgPool;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::validate;

/// Body of "create key"; omitted limits take the defaults (60 requests/min,
/// 5 concurrent, tokens/min from the environment).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub environment_id: Uuid,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<ApiKeyRole>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_requests_per_min: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_tokens_per_min: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub concurrency_limit: Option<i64>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Body of "update key".
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    pub role: Option<ApiKeyRole>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_requests_per_min: Option<i64>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_tokens_per_min: Option<i64>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub concurrency_limit: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created key: the row plus the plaintext, returned exactly once.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The key's stored fields.
    pub key: ApiKey,
    /// The secret key; it cannot be shown again.
    pub key_secret: String,
}

/// The payload of an `apikey.*` event.
fn event(k: &ApiKey) -> ApiKeyEvent {
    ApiKeyEvent {
        tenant_id: k.tenant_id,
        environment_id: k.environment_id,
        key_id: k.id,
        key_prefix: k.key_prefix.clone(),
        name: k.name.clone(),
        role: k.role,
        status: k.status,
    }
}

/// Creates a key in one of the tenant's environments; publishes `apikey.created`.
pub async fn create_key(
    pool: &PgPool,
    actor: &Actor,
    tenant_id: Uuid,
    input: CreateKey,
) -> Result<CreatedKey, ServiceError> {
    if let Some(exp) = input.expires_at {
        if exp <= Utc::now() {
            return Err(ServiceError::invalid("expires_at", "must be in the future"));
        }
    }
    let metadata = match input.metadata {
        None => json!({}),
        Some(Value::Object(m)) => Value::Object(m),
        Some(_) => return Err(ServiceError::invalid("metadata", "must be a JSON object")),
    };
    let generated = keys::generate(&mut rand::rngs::OsRng);
    let new = NewApiKey {
        key_hash: generated.hash,
        key_prefix: generated.prefix,
        tenant_id,
        environment_id: input.environment_id,
        user_id: input.user_id,
        name: match input.name {
            Some(n) => validate::name("name", &n, 200)?,
            None => String::new(),
        },
        role: input.role.unwrap_or(ApiKeyRole::Developer),
        rate_limit_tokens_per_min: validate::positive("rate_limit_tokens_per_min", input.rate_limit_tokens_per_min)?,
        rate_limit_requests_per_min: validate::positive(
            "rate_limit_requests_per_min",
            input.rate_limit_requests_per_min,
        )?,
        concurrency_limit: validate::positive("concurrency_limit", input.concurrency_limit)?,
        expires_at: input.expires_at,
        metadata,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let tenant = tenants::get(&mut *tx, tenant_id).await?;
    if tenant.status == TenantStatus::Deleted {
        return Err(ServiceError::NotFound("tenant"));
    }
    let key = match api_keys::create(&mut *tx, &new).await {
        Err(crosslogic_db::DbError::NotFound { .. }) => {
            return Err(ServiceError::invalid(
                "environment_id",
                "no such environment in this tenant",
            ))
        }
        other => other?,
    };
    changes::record(&mut tx, actor, &Event::ApiKeyCreated(event(&key))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(CreatedKey {
        key,
        key_secret: generated.plaintext,
    })
}

/// One key.
pub async fn get_key(pool: &PgPool, id: Uuid) -> Result<ApiKey, ServiceError> {
    Ok(api_keys::get(pool, id).await?)
}

/// A tenant's keys, optionally of one environment.
pub async fn list_keys(
    pool: &PgPool,
    tenant_id: Uuid,
    environment_id: Option<Uuid>,
) -> Result<Vec<ApiKey>, ServiceError> {
    tenants::get(pool, tenant_id).await?;
    Ok(api_keys::list_for_tenant(pool, tenant_id, environment_id).await?)
}

/// Revokes (final), suspends or reactivates a key; publishes
/// `apikey.revoked`, `apikey.suspended` or `apikey.activated`.
pub async fn set_key_status(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    status: ApiKeyStatus,
) -> Result<ApiKey, ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let current = api_keys::get(&mut *tx, id).await?;
    if current.status == status {
        return Ok(current);
    }
    if current.status == ApiKeyStatus::Revoked {
        return Err(ServiceError::State(
            "the key is revoked; create a new key instead".into(),
        ));
    }
    if status == ApiKeyStatus::Active {
        let env = environments::get(&mut *tx, current.environment_id).await?;
        if env.status != EnvironmentStatus::Active {
            return Err(ServiceError::State(
                "the key's environment is suspended; activate it first".into(),
            ));
        }
    }
    let key = api_keys::set_status(&mut *tx, id, status).await?;
    let change = match status {
        ApiKeyStatus::Active => Event::ApiKeyActivated(event(&key)),
        ApiKeyStatus::Suspended => Event::ApiKeySuspended(event(&key)),
        ApiKeyStatus::Revoked => Event::ApiKeyRevoked(event(&key)),
    };
    changes::record(&mut tx, actor, &change).await?;
    crosslogic_db::commit(tx).await?;
    Ok(key)
}

/// Changes a key's name, role, limits or expiry; publishes `apikey.updated`.
pub async fn update_key(pool: &PgPool, actor: &Actor, id: Uuid, input: UpdateKey) -> Result<ApiKey, ServiceError> {
    if let Some(exp) = input.expires_at {
        if exp <= Utc::now() {
            return Err(ServiceError::invalid("expires_at", "must be in the future"));
        }
    }
    let limits = KeyLimits {
        rate_limit_requests_per_min: validate::positive(
            "rate_limit_requests_per_min",
            input.rate_limit_requests_per_min,
        )?,
        rate_limit_tokens_per_min: validate::positive("rate_limit_tokens_per_min", input.rate_limit_tokens_per_min)?,
        concurrency_limit: validate::positive("concurrency_limit", input.concurrency_limit)?,
        expires_at: input.expires_at,
        role: input.role,
        name: input
            .name
            .as_deref()
            .map(|n| validate::name("name", n, 200))
            .transpose()?,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let key = api_keys::update(&mut *tx, id, &limits).await?;
    changes::record(&mut tx, actor, &Event::ApiKeyUpdated(event(&key))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(key)
}
