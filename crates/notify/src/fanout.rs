//! Fan-out: each new event becomes one queued delivery per channel that
//! wants it, in the transaction that marks the event fanned out.
//!
//! Several replicas may run this: events are claimed `FOR UPDATE SKIP
//! LOCKED`, and the unique (event, channel, destination) key of deliveries
//! absorbs any repeat, so an event is fanned out exactly once.

use std::collections::HashSet;

use chrono::Utc;
use crosslogic_core::delivery::{passes, rank};
use crosslogic_core::{EventKind, EventSeverity};
use crosslogic_db::repo::events::{self, StoredEvent};
use crosslogic_db::repo::notifications::{self, ChannelConfig, NewDelivery};
use crosslogic_db::{DbError, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::deliver::Wake;
use crate::wakeup::Listener;
use crate::NotifyConfig;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanoutPass {
    /// Events marked fanned out.
    pub events: usize,
    /// Deliveries queued.
    pub deliveries: u64,
}

/// Whether `channel` receives `event`.
pub fn wants(channel: &ChannelConfig, event: &StoredEvent, kind: Option<EventKind>) -> bool {
    match channel.tenant_id {
        // A tenant's channel: only that tenant's events.
        Some(t) if event.tenant_id != Some(t) => return false,
        Some(_) => {}
        // The operator's: every event of at least its minimum severity.
        None => {
            let min = channel.settings.min_severity.unwrap_or(EventSeverity::Info);
            if rank(event.severity) < rank(min) {
                return false;
            }
        }
    }
    match kind {
        Some(k) => passes(channel.event_types.as_deref(), k),
        // A type this version does not know (written by a newer one):
        // only channels that take everything get it.
        None => channel.event_types.as_ref().is_none_or(|f| f.iter().any(|e| e == "*")),
    }
}

/// Fans out up to one batch of pending events.
pub async fn fanout_once(pool: &PgPool, cfg: &NotifyConfig) -> Result<FanoutPass, DbError> {
    let mut tx = pool.begin().await?;
    let pending = events::claim_pending(&mut tx, cfg.batch).await?;
    if pending.is_empty() {
        tx.commit().await?;
        return Ok(FanoutPass::default());
    }
    let tenants: Vec<Uuid> = pending
        .iter()
        .filter_map(|e| e.tenant_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let channels = notifications::enabled_channels_for(&mut *tx, &tenants).await?;
    let oldest = Utc::now() - chrono::Duration::from_std(cfg.max_event_age).unwrap_or(chrono::Duration::MAX);
    let max_retries = i32::try_from(cfg.schedule.attempts()).unwrap_or(i32::MAX);
    let mut rows = Vec::new();
    for e in pending.iter().filter(|e| e.created_at >= oldest) {
        let kind = e.event_type.parse::<EventKind>().ok();
        for c in channels.iter().filter(|c| wants(c, e, kind)) {
            rows.push(NewDelivery {
                event_id: e.id,
                event_type: e.event_type.clone(),
                // The log belongs to the channel's owner (NULL: the operator).
                tenant_id: c.tenant_id,
                channel: c.channel,
                config_id: c.id,
                max_retries,
            });
        }
    }
    let queued = notifications::enqueue(&mut *tx, &rows).await?;
    let ids: Vec<i64> = pending.iter().map(|e| e.id).collect();
    events::mark_all_fanned_out(&mut *tx, &ids).await?;
    tx.commit().await?;
    Ok(FanoutPass {
        events: pending.len(),
        deliveries: queued,
    })
}

/// Fans out until nothing is pending.
pub async fn drain(pool: &PgPool, cfg: &NotifyConfig) -> Result<FanoutPass, DbError> {
    let mut total = FanoutPass::default();
    loop {
        let pass = fanout_once(pool, cfg).await?;
        total.events += pass.events;
        total.deliveries += pass.deliveries;
        if pass.events < usize::try_from(cfg.batch).unwrap_or(usize::MAX) {
            return Ok(total);
        }
    }
}

/// Fans out as events arrive until `shutdown`.
pub async fn run(pool: PgPool, cfg: NotifyConfig, wake: Wake, shutdown: CancellationToken) {
    let mut listener = Listener::new(&pool, events::NOTIFY_CHANNEL);
    loop {
        match drain(&pool, &cfg).await {
            Ok(p) if p.deliveries > 0 => wake.notify(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "notification fan-out failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = listener.wait(cfg.poll_interval) => {}
        }
    }
}
