//! Billing: what every served request costs, exactly, and getting it paid.
//!
//! * [`rollup`] turns `usage_records` into hourly rollups (`usage_hourly`):
//!   the hours that received rows — the queue a statement trigger fills —
//!   are recomputed once they have ended, idempotently; rows that arrive
//!   late re-roll their hour.
//! * [`settle`] settles each tenant-hour `BILLING_SETTLE_DELAY` after it
//!   ends: its exact cost rounded once, covered by credits (soonest-expiring
//!   first, each use a `credit` billing event), the rest payable and queued
//!   for export. Usage that arrives later is settled again as a correction
//!   (a new revision), never lost and never counted twice.
//! * [`export`] sends each payable tenant-hour to Stripe Billing Meters
//!   (`POST /v1/billing/meter_events`, identifier per tenant-hour and
//!   revision) with retries, creating the tenant's Stripe customer on
//!   demand ([`stripe`] is the client).
//! * [`webhooks`] verifies and stores Stripe's webhooks, then acts on them
//!   (payment failed → suspended after the grace period; paid →
//!   reactivated).
//! * [`budget`] publishes budget warnings and stops a tenant's requests when
//!   its monthly budget runs out with a hard stop; [`retention`] deletes raw
//!   usage rows of hours that are rolled up, settled and exported.
//! * [`report`] and [`account`] answer the usage, cost, credit and budget
//!   questions of the admin API and self-service (views in [`views`]).
//!
//! Every worker is safe with several replicas: hours are claimed with row
//! locks (`FOR UPDATE SKIP LOCKED`), exports with leases, and identifiers
//! make every resend harmless.
//!
//! Invariant: money is exact until it leaves the system ([`crosslogic_core::Femtos`]
//! summed, rounded once per tenant-hour); no SQL here (`crosslogic-db`).

pub mod account;
pub mod budget;
pub mod export;
pub mod report;
pub mod retention;
pub mod rollup;
pub mod settle;
pub mod stripe;
pub mod views;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use crosslogic_config::BillingSettings;
use crosslogic_db::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the billing workers behave.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// Stripe, grace period, signup credit, retention, pace.
    pub settings: BillingSettings,
    /// Exports and webhooks taken per pass.
    pub batch: i64,
    /// Raw rows deleted per statement when purging an hour.
    pub purge_batch: i64,
}

impl BillingConfig {
    /// The defaults around `settings`.
    pub fn new(settings: BillingSettings) -> BillingConfig {
        BillingConfig {
            settings,
            batch: 100,
            purge_batch: 5_000,
        }
    }
}

/// What the APIs need of the billing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingApi {
    /// `BILLING_GRACE_PERIOD`.
    pub grace_period: Duration,
    /// `BILLING_SIGNUP_CREDIT` in micro-dollars.
    pub signup_credit_microdollars: Option<i64>,
    /// `BILLING_SIGNUP_CREDIT_EXPIRES_AFTER`.
    pub signup_credit_expires_after: Option<Duration>,
}

impl Default for BillingApi {
    fn default() -> Self {
        BillingApi {
            grace_period: Duration::from_secs(3 * 86_400),
            signup_credit_microdollars: None,
            signup_credit_expires_after: None,
        }
    }
}

impl BillingApi {
    /// From the process settings.
    pub fn new(s: &BillingSettings) -> BillingApi {
        BillingApi {
            grace_period: s.grace_period,
            signup_credit_microdollars: s.signup_credit_microdollars,
            signup_credit_expires_after: s.signup_credit_expires_after,
        }
    }

    /// The credit a tenant created at `now` receives.
    pub fn signup_credit(&self, now: chrono::DateTime<chrono::Utc>) -> Option<crosslogic_tenancy::SignupCredit> {
        self.signup_credit_microdollars
            .map(|m| crosslogic_tenancy::SignupCredit {
                amount_microdollars: m,
                expires_at: self
                    .signup_credit_expires_after
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .map(|d| now + d),
            })
    }
}

/// Wakes the webhook processor when the HTTP handler stored an event.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Signals new work.
    pub fn notify(&self) {
        self.0.notify_one();
    }

    /// Waits for a signal or `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.0.notified()).await;
    }
}

/// Starts the ledger (rollups, settlement, budgets, dunning), retention,
/// export and webhook loops on `tasks`; each stops at `shutdown`.
pub fn start(
    pool: PgPool,
    cfg: BillingConfig,
    wake: Wake,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let stripe = match &cfg.settings.stripe {
        Some(s) => Some(stripe::Stripe::new(s).map_err(|e| StartError(e.to_string()))?),
        None => None,
    };
    tasks.spawn(run_ledger(pool.clone(), cfg.clone(), shutdown.clone()));
    tasks.spawn(run_retention(pool.clone(), cfg.clone(), shutdown.clone()));
    if let Some(stripe) = stripe {
        tasks.spawn(export::run(pool.clone(), cfg.clone(), stripe, shutdown.clone()));
    }
    tasks.spawn(webhooks::run(pool, cfg, wake, shutdown));
    Ok(())
}

/// Rollups, settlement, budgets and dunning, every interval.
async fn run_ledger(pool: PgPool, cfg: BillingConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(cfg.settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now();
        if let Err(e) = rollup::rollup_pending(&pool, now).await {
            tracing::warn!(error = %e, "usage rollup pass failed; retrying");
        }
        if let Err(e) = settle::settle_due(&pool, &cfg.settings, now).await {
            tracing::warn!(error = %e, "billing settlement pass failed; retrying");
        }
        if let Err(e) = budget::check_all(&pool, now).await {
            tracing::warn!(error = %e, "budget check failed; retrying");
        }
        if let Err(e) = webhooks::suspend_past_grace(&pool, &cfg.settings, now).await {
            tracing::warn!(error = %e, "dunning pass failed; retrying");
        }
    }
}

/// Retention, every minute: its own loop, so a long purge never holds up
/// settlement or a budget's stop.
async fn run_retention(pool: PgPool, cfg: BillingConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60).max(cfg.settings.interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = retention::purge_once(&pool, &cfg, chrono::Utc::now()).await {
            tracing::warn!(error = %e, "usage retention pass failed; retrying");
        }
    }
}

/// The billing workers could not start.
#[derive(Debug, thiserror::Error)]
#[error("billing: {0}")]
pub struct StartError(String);
