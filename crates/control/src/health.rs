//! The node health monitor: nodes that stop heartbeating become unhealthy
//! (the gateway stops routing to them) and, after a longer silence, dead
//! (the reconciler replaces them). Each pass is one atomic UPDATE per
//! transition, so several control-plane replicas can run it at once without
//! double events; statuses change only when something changed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crosslogic_core::ServiceError;
use crosslogic_db::PgPool;
use tokio_util::sync::CancellationToken;

use crate::fleet::lifecycle::{self, Step};

/// Silence thresholds.
#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    /// No heartbeat for this long → unhealthy (default 20 s: 4 missed beats).
    pub unhealthy_after: Duration,
    /// No heartbeat for this long → dead (default 60 s).
    pub dead_after: Duration,
    /// How often the monitor looks (default 5 s).
    pub interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            unhealthy_after: Duration::from_secs(20),
            dead_after: Duration::from_secs(60),
            interval: Duration::from_secs(5),
        }
    }
}

/// What one pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HealthPass {
    pub unhealthy: usize,
    pub dead: usize,
}

/// One monitoring pass as of `now` (tests pass a future `now` instead of waiting).
pub async fn check_once(pool: &PgPool, cfg: &HealthConfig, now: DateTime<Utc>) -> Result<HealthPass, ServiceError> {
    let since = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let mut tx = crosslogic_db::begin(pool).await?;
    let dead = lifecycle::mark_silent(&mut tx, Step::Silent, since(cfg.dead_after), "no heartbeat").await?;
    let unhealthy = lifecycle::mark_silent(
        &mut tx,
        Step::MissedHeartbeats,
        since(cfg.unhealthy_after),
        "missed heartbeats",
    )
    .await?;
    crosslogic_db::commit(tx).await?;
    if !dead.is_empty() || !unhealthy.is_empty() {
        tracing::warn!(unhealthy = unhealthy.len(), dead = dead.len(), "node health changed");
    }
    Ok(HealthPass {
        unhealthy: unhealthy.len(),
        dead: dead.len(),
    })
}

/// Runs [`check_once`] every `interval` until `shutdown`.
pub async fn run_monitor(pool: PgPool, cfg: HealthConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = check_once(&pool, &cfg, Utc::now()).await {
                    tracing::warn!(error = %e, "node health pass failed");
                }
            }
        }
    }
}
