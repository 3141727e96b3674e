//! Notifications: every event of the `events` outbox delivered to the
//! channels that want it — Discord and Slack incoming webhooks, email over
//! SMTP, and webhooks signed per the Standard Webhooks spec — with retries,
//! and nothing lost or sent twice.
//!
//! * [`fanout`] reads new events (woken by `NOTIFY crosslogic_events`,
//!   polling as a fallback), matches each against the enabled channels
//!   whose filter it passes — the tenant's own channels for its events, the
//!   operator's channels (`tenant_id` NULL, mirrored from `NOTIFY_*` by
//!   [`operator::sync`]) for every event of at least `NOTIFY_MIN_SEVERITY` —
//!   and queues one `notification_deliveries` row per event × channel,
//!   marking the event fanned out in the same transaction. Idempotent: the
//!   unique (event, channel, destination) key absorbs a repeat.
//! * [`deliver`] claims due deliveries with a lease (`FOR UPDATE SKIP
//!   LOCKED`; two replicas never hold one row, a crashed sender's claim
//!   expires), sends them ([`send`], formats in [`render`]), records every
//!   attempt, and retries failures on the Standard Webhooks schedule with
//!   jitter, honouring `Retry-After`; a receiver that is gone (410, a deleted
//!   Discord or Slack webhook) disables its channel with an operator event.
//! * [`channels`] is the configuration API both the admin API and tenant
//!   self-service call (views in [`views`]); tenant URLs pass [`guard`]'s
//!   SSRF rules when saved and when sent.
//! * [`watch`] publishes `quota.warning`, `quota.exhausted` and
//!   `key.expiring`, each once per occurrence.
//!
//! Invariant: no HTTP server types and no SQL (that is `crosslogic-db`);
//! destination URLs carry secrets and are masked in every view and log.

pub mod channels;
pub mod deliver;
pub mod events;
pub mod fanout;
pub mod guard;
pub mod operator;
pub mod render;
pub mod send;
pub mod views;
mod wakeup;
pub mod watch;

use std::time::Duration;

use crosslogic_config::NotifySettings;
use crosslogic_core::delivery::RetrySchedule;
use crosslogic_db::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use send::{Transport, TransportError};

/// How the workers behave.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The operator's channels, minimum severity, SMTP and timeouts.
    pub settings: NotifySettings,
    /// The retry schedule (from `NOTIFY_RETRY_SCHEDULE`).
    pub schedule: RetrySchedule,
    /// How long a claimed delivery is held (longer than an attempt).
    pub lease: Duration,
    /// Polling fallback when no NOTIFY arrives.
    pub poll_interval: Duration,
    /// Events and deliveries taken per pass.
    pub batch: i64,
    /// Attempts in flight at once per process.
    pub concurrency: usize,
    /// Events older than this when first seen are not delivered (a
    /// platform upgraded onto an old outbox does not replay history).
    pub max_event_age: Duration,
    /// How often the watchers look.
    pub watch_interval: Duration,
}

impl NotifyConfig {
    /// The defaults around `settings`.
    pub fn new(settings: NotifySettings) -> NotifyConfig {
        // Longer than any attempt, so a live sender never loses its claim.
        let lease = settings.timeout * 4;
        NotifyConfig {
            schedule: RetrySchedule(settings.retry_schedule.clone()),
            settings,
            lease,
            poll_interval: Duration::from_secs(2),
            batch: 100,
            concurrency: 32,
            max_event_age: Duration::from_secs(86_400),
            watch_interval: Duration::from_secs(60),
        }
    }
}

/// Mirrors the operator's channels, then starts the fan-out, delivery and
/// watcher loops on `tasks`; each stops at `shutdown` (delivery after the
/// attempts in flight are recorded).
pub async fn start(
    pool: PgPool,
    cfg: NotifyConfig,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let transport = Transport::new(
        cfg.settings.timeout,
        cfg.settings.allow_private_targets,
        cfg.settings.smtp.as_ref(),
    )
    .map_err(|e| StartError(e.to_string()))?;
    operator::sync(&pool, &cfg.settings)
        .await
        .map_err(|e| StartError(format!("cannot record the operator's channels: {e}")))?;
    let wake = deliver::Wake::default();
    tasks.spawn(fanout::run(pool.clone(), cfg.clone(), wake.clone(), shutdown.clone()));
    tasks.spawn(deliver::run(
        pool.clone(),
        cfg.clone(),
        transport,
        wake,
        shutdown.clone(),
    ));
    tasks.spawn(watch::run(pool, cfg, shutdown));
    Ok(())
}

/// What the configuration API needs: the transport test sends go through
/// and the rules saved destinations must follow.
#[derive(Clone)]
pub struct NotifyApi {
    pub transport: Transport,
    pub policy: channels::Policy,
}

impl NotifyApi {
    /// From the process settings.
    pub fn new(settings: &NotifySettings) -> Result<NotifyApi, TransportError> {
        Ok(NotifyApi {
            transport: Transport::new(settings.timeout, settings.allow_private_targets, settings.smtp.as_ref())?,
            policy: channels::Policy {
                allow_private: settings.allow_private_targets,
            },
        })
    }

    /// Public targets only, no SMTP, 15 s per attempt.
    pub fn strict() -> Result<NotifyApi, TransportError> {
        Ok(NotifyApi {
            transport: Transport::new(Duration::from_secs(15), false, None)?,
            policy: channels::Policy { allow_private: false },
        })
    }
}

impl std::fmt::Debug for NotifyApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyApi").field("policy", &self.policy).finish()
    }
}

/// The notification workers could not start.
#[derive(Debug, thiserror::Error)]
#[error("notifications: {0}")]
pub struct StartError(String);
