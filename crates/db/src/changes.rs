//! The one writer of "a change, its outbox event and its audit entry in
//! one transaction".
//!
//! Every part of the platform makes its change with the repositories on a
//! transaction, then calls [`record`] (a change somebody made: the event
//! and an `audit_logs` entry naming the actor) or [`publish`] (a change the
//! platform made on its own — a node went silent, the reconciler scaled —
//! which is evented but not audited) on the same transaction, and commits.
//! So an event exists exactly when its change committed, its name and
//! payload come from the typed catalogue in `crosslogic_core::events`, and
//! the audit entry describes the same resource as the event.

use crosslogic_core::{Actor, Event};
use sqlx::PgConnection;

use crate::error::DbResult;
use crate::repo::{audit, events};

/// Publishes `event` (a change the platform made on its own).
pub async fn publish(tx: &mut PgConnection, event: &Event) -> DbResult<events::StoredEvent> {
    events::publish(&mut *tx, event).await
}

/// Publishes `event` (a change the platform made) unless an event with
/// `dedup_key` was published before — for events that must go out once per
/// occurrence (`quota.warning:<environment>:<day>`). `None` when it was.
pub async fn publish_once(
    tx: &mut PgConnection,
    event: &Event,
    dedup_key: &str,
) -> DbResult<Option<events::StoredEvent>> {
    events::publish_once(&mut *tx, event, dedup_key).await
}

/// Publishes `event` and writes the audit entry of `actor` making it.
pub async fn record(tx: &mut PgConnection, actor: &Actor, event: &Event) -> DbResult<events::StoredEvent> {
    let stored = events::publish(&mut *tx, event).await?;
    let (resource_type, resource_id) = event.resource();
    audit::record(
        &mut *tx,
        &audit::NewAuditEntry {
            tenant_id: event.tenant_id(),
            actor: &actor.name,
            action: event.kind().as_str(),
            resource_type,
            resource_id: Some(resource_id),
            details: stored.payload.clone(),
            ip_address: actor.ip.clone(),
        },
    )
    .await?;
    Ok(stored)
}
