//! `audit_logs`: who did what to which resource.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::DbResult;

/// A row of `audit_logs`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub tenant_id: Option<Uuid>,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub details: Value,
    pub ip_address: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An entry to record. `actor` is e.g. `admin`, `key:cl_ab12cd34`, `system`.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: &'a str,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<String>,
    pub details: Value,
    pub ip_address: Option<String>,
}

/// Appends an entry (changes are audited through [`crate::changes::record`]).
pub(crate) async fn record(db: impl PgExecutor<'_>, entry: &NewAuditEntry<'_>) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO audit_logs (tenant_id, actor, action, resource_type, resource_id, details, ip_address)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(entry.tenant_id)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.resource_type)
    .bind(&entry.resource_id)
    .bind(&entry.details)
    .bind(&entry.ip_address)
    .fetch_one(db)
    .await?)
}

/// Recent entries, newest first, optionally for one tenant.
pub async fn list(db: impl PgExecutor<'_>, tenant_id: Option<Uuid>, limit: i64) -> DbResult<Vec<AuditEntry>> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, actor, action, resource_type, resource_id, details, ip_address, created_at
           FROM audit_logs WHERE ($1::uuid IS NULL OR tenant_id = $1)
          ORDER BY id DESC LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
