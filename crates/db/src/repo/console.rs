//! `console_sessions`: web console sessions. Only the SHA-256 of the cookie
//! token is stored; a session is live while it is within both its idle and
//! its absolute expiry, and — for a tenant session — while its key is.

use chrono::{DateTime, Utc};
use crosslogic_core::{ApiKeyRole, ApiKeyStatus, EnvironmentStatus, ParseEnumError, TenantStatus};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::DbResult;

/// Who a new session belongs to.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator, with the fingerprint of the token they signed in with.
    Operator { credential_fingerprint: String },
    /// A tenant's API key.
    Tenant { api_key_id: Uuid, tenant_id: Uuid },
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub principal: Principal,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A live session and what its principal is now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveSession {
    pub id: Uuid,
    /// Operator sessions: the fingerprint of the token they signed in with.
    pub credential_hash: Option<String>,
    pub api_key_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub key_prefix: Option<String>,
    pub key_name: Option<String>,
    pub tenant_name: Option<String>,
    // Tenant sessions: the key, its environment and its tenant as they are now.
    #[sqlx(try_from = "Option<String>")]
    role: Nullable<ApiKeyRole>,
    #[sqlx(try_from = "Option<String>")]
    key_status: Nullable<ApiKeyStatus>,
    key_expires_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "Option<String>")]
    environment_status: Nullable<EnvironmentStatus>,
    #[sqlx(try_from = "Option<String>")]
    tenant_status: Nullable<TenantStatus>,
}

impl LiveSession {
    /// A tenant session's key as it is now (`None` for the operator's).
    pub fn key(&self) -> Option<SessionKey> {
        Some(SessionKey {
            role: self.role.0?,
            key_status: self.key_status.0?,
            expires_at: self.key_expires_at,
            environment_status: self.environment_status.0?,
            tenant_status: self.tenant_status.0?,
        })
    }
}

/// A status read from a column a LEFT JOIN may leave NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Nullable<T>(Option<T>);

impl<T: std::str::FromStr<Err = ParseEnumError>> TryFrom<Option<String>> for Nullable<T> {
    type Error = ParseEnumError;

    fn try_from(v: Option<String>) -> Result<Self, Self::Error> {
        v.map(|s| s.parse()).transpose().map(Nullable)
    }
}

/// The state of a tenant session's key now.
#[derive(Debug, Clone, Copy)]
pub struct SessionKey {
    pub role: ApiKeyRole,
    pub key_status: ApiKeyStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub environment_status: EnvironmentStatus,
    pub tenant_status: TenantStatus,
}

impl SessionKey {
    /// Whether the key may be used at `now` (`crosslogic_core::keys::refusal`).
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        crosslogic_core::keys::refusal(
            self.key_status,
            self.expires_at,
            self.environment_status,
            self.tenant_status,
            now,
        )
        .is_none()
    }
}

/// Stores a new session; deletes sessions past their expiry on the way, so
/// the table holds only live ones and whatever idled out since the last login.
pub async fn create(db: &crate::PgPool, new: &NewSession, idle_secs: i64) -> DbResult<Uuid> {
    purge(db, idle_secs).await?;
    let (credential, key, tenant) = match &new.principal {
        Principal::Operator { credential_fingerprint } => (Some(credential_fingerprint.as_str()), None, None),
        Principal::Tenant { api_key_id, tenant_id } => (None, Some(*api_key_id), Some(*tenant_id)),
    };
    Ok(sqlx::query_scalar(
        "INSERT INTO console_sessions (token_hash, credential_hash, api_key_id, tenant_id, client_ip, user_agent, expires_at)
         VALUES ($1, $2, $3, $4, $5, left($6, 512), $7) RETURNING id",
    )
    .bind(&new.token_hash)
    .bind(credential)
    .bind(key)
    .bind(tenant)
    .bind(&new.client_ip)
    .bind(&new.user_agent)
    .bind(new.expires_at)
    .fetch_one(db)
    .await?)
}

/// The live session whose token hashes to `token_hash`: not past its
/// absolute expiry nor idle for `idle_secs` or more.
pub async fn find(db: impl PgExecutor<'_>, token_hash: &str, idle_secs: i64) -> DbResult<Option<LiveSession>> {
    Ok(sqlx::query_as(
        "SELECT s.id, s.credential_hash, s.api_key_id, s.tenant_id, s.last_seen_at, s.expires_at,
                k.key_prefix, k.name AS key_name, t.name AS tenant_name,
                k.role, k.status AS key_status, k.expires_at AS key_expires_at, e.status AS environment_status,
                t.status AS tenant_status
           FROM console_sessions s
           LEFT JOIN api_keys k ON k.id = s.api_key_id
           LEFT JOIN environments e ON e.id = k.environment_id
           LEFT JOIN tenants t ON t.id = s.tenant_id
          WHERE s.token_hash = $1 AND s.expires_at > now()
            AND s.last_seen_at > now() - make_interval(secs => $2)",
    )
    .bind(token_hash)
    .bind(idle_secs as f64)
    .fetch_optional(db)
    .await?)
}

/// Records activity on a session (its idle expiry starts again).
pub async fn touch(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<()> {
    sqlx::query("UPDATE console_sessions SET last_seen_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Ends a session (logout); `false` when there was none.
pub async fn delete(db: impl PgExecutor<'_>, token_hash: &str) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes sessions past their absolute expiry or idle for `idle_secs`.
pub async fn purge(db: impl PgExecutor<'_>, idle_secs: i64) -> DbResult<u64> {
    let done = sqlx::query(
        "DELETE FROM console_sessions
          WHERE expires_at <= now() OR last_seen_at <= now() - make_interval(secs => $1)",
    )
    .bind(idle_secs as f64)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
