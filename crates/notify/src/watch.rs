//! Watchers that publish the events worth sending which no single request
//! or change produces: `quota.warning` (80 %) and `quota.exhausted` for an
//! environment's daily token quota, once per environment and UTC day, and
//! `key.expiring` once per key and expiry date, `KEY_EXPIRY_WARNING` ahead.
//!
//! "Once" is the outbox's `dedup_key`: every replica may look, only the
//! first publishes.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use crosslogic_core::events::{KeyExpiring, QuotaEvent};
use crosslogic_core::Event;
use crosslogic_db::repo::{api_keys, rollups, usage};
use crosslogic_db::{changes, DbError, PgPool};
use tokio_util::sync::CancellationToken;

use crate::NotifyConfig;

/// Percent of the daily quota that warns.
pub const WARN_PERCENT: i64 = 80;

/// What one pass published.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WatchPass {
    pub quota_warnings: usize,
    pub quota_exhausted: usize,
    pub keys_expiring: usize,
}

/// One pass as of `now`.
pub async fn watch_once(pool: &PgPool, cfg: &NotifyConfig, now: DateTime<Utc>) -> Result<WatchPass, DbError> {
    let mut pass = WatchPass::default();
    let day = now.date_naive();
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    // Closed hours from the rollups, the rest of the day from raw rows.
    let rolled = rollups::rolled_hours(pool, start, now).await?;
    let split = crosslogic_core::billing::split_range(start, now, &rolled);
    let over = usage::environments_over_quota(pool, &split.rolled, &split.raw, WARN_PERCENT).await?;
    let mut tx = pool.begin().await?;
    for u in over {
        let percent = u.used_tokens.saturating_mul(100) / u.quota_tokens_per_day.max(1);
        let payload = QuotaEvent {
            tenant_id: u.tenant_id,
            environment_id: u.environment_id,
            environment: u.name.clone(),
            day,
            used_tokens: u.used_tokens,
            quota_tokens: u.quota_tokens_per_day,
            percent,
        };
        let warn_key = format!("quota.warning:{}:{day}", u.environment_id);
        if changes::publish_once(&mut tx, &Event::QuotaWarning(payload.clone()), &warn_key)
            .await?
            .is_some()
        {
            pass.quota_warnings += 1;
        }
        if percent >= 100 {
            let key = format!("quota.exhausted:{}:{day}", u.environment_id);
            if changes::publish_once(&mut tx, &Event::QuotaExhausted(payload), &key)
                .await?
                .is_some()
            {
                pass.quota_exhausted += 1;
            }
        }
    }
    let horizon = now + ChronoDuration::from_std(cfg.settings.key_expiry_warning).unwrap_or(ChronoDuration::MAX);
    for k in api_keys::expiring(&mut *tx, horizon).await? {
        let Some(expires_at) = k.expires_at else { continue };
        let key = format!("key.expiring:{}:{}", k.id, expires_at.timestamp());
        let event = Event::KeyExpiring(KeyExpiring {
            tenant_id: k.tenant_id,
            environment_id: k.environment_id,
            key_id: k.id,
            key_prefix: k.key_prefix,
            name: k.name,
            expires_at,
        });
        if changes::publish_once(&mut tx, &event, &key).await?.is_some() {
            pass.keys_expiring += 1;
        }
    }
    tx.commit().await?;
    Ok(pass)
}

/// Runs [`watch_once`] every `watch_interval` until `shutdown`.
pub async fn run(pool: PgPool, cfg: NotifyConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(cfg.watch_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                match watch_once(&pool, &cfg, Utc::now()).await {
                    Ok(p) if p != WatchPass::default() => tracing::info!(?p, "published quota and key-expiry events"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "quota and key-expiry watch failed"),
                }
            }
        }
    }
}
