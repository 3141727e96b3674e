//! Tenancy: tenants, their environments and API keys.
//!
//! Each operation runs in one transaction that makes the change, publishes
//! its domain event to the `events` outbox and writes an `audit_logs` entry,
//! so an event is published exactly when its change commits.

mod environments;
mod keys;
mod tenants;
mod validate;

pub use environments::*;
pub use keys::*;
pub use tenants::*;

use crosslogic_db::repo::{audit, events};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ServiceError;

/// Who performs an operation, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `admin`, `key:cl_xxxxxxxx`, `system`…
    pub name: String,
    /// Client address, when known.
    pub ip: Option<String>,
}

impl Actor {
    /// The operator using the admin token.
    pub fn admin(ip: Option<String>) -> Actor {
        Actor {
            name: "admin".to_owned(),
            ip,
        }
    }
}

/// What one change reports: its event and audit entry.
struct Change<'a> {
    tenant_id: Option<Uuid>,
    event_type: &'a str,
    resource_type: &'a str,
    resource_id: String,
    payload: Value,
}

/// Writes the event and the audit entry of a change inside its transaction.
async fn record(tx: &mut PgConnection, actor: &Actor, change: Change<'_>) -> Result<(), ServiceError> {
    events::publish(
        &mut *tx,
        &events::NewEvent::info(change.event_type, change.tenant_id, change.payload.clone()),
    )
    .await?;
    audit::record(
        &mut *tx,
        &audit::NewAuditEntry {
            tenant_id: change.tenant_id,
            actor: &actor.name,
            action: change.event_type,
            resource_type: change.resource_type,
            resource_id: Some(change.resource_id),
            details: change.payload,
            ip_address: actor.ip.clone(),
        },
    )
    .await?;
    Ok(())
}
