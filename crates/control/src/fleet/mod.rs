//! The fleet: the catalog (regions, models, GPU offers), deployments and the
//! read side of nodes.
//!
//! Like [`crate::tenancy`], every change runs in one transaction that makes
//! the change, publishes its domain event to the `events` outbox and writes
//! an `audit_logs` entry. Fleet resources are platform-level, so their
//! events and audit entries carry no tenant.

mod catalog;
mod decimal;
mod deployments;
mod models;
mod nodes;
mod placement;
mod validate;

pub use catalog::*;
pub use decimal::Decimal;
pub use deployments::*;
pub use models::*;
pub use nodes::*;

use crosslogic_db::repo::{audit, events};
use serde_json::Value;
use sqlx::PgConnection;

use crate::tenancy::Actor;
use crate::ServiceError;

/// What one change reports: its event and audit entry.
struct Change<'a> {
    event_type: &'a str,
    resource_type: &'a str,
    resource_id: String,
    payload: Value,
}

/// Writes the event and the audit entry of a change inside its transaction.
async fn record(tx: &mut PgConnection, actor: &Actor, change: Change<'_>) -> Result<(), ServiceError> {
    events::publish(
        &mut *tx,
        &events::NewEvent::info(change.event_type, None, change.payload.clone()),
    )
    .await?;
    audit::record(
        &mut *tx,
        &audit::NewAuditEntry {
            tenant_id: None,
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
