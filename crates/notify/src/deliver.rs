//! Delivery: claim due deliveries with a lease, send each once, record the
//! attempt, and schedule the next one on failure.
//!
//! A claim is a lease (`lease_until`): another sender skips the row until
//! it expires, so replicas never send the same row at once, and a sender
//! that crashed mid-attempt loses nothing — its rows come due again when
//! the lease runs out. An attempt is recorded only while the lease is still
//! ours; a row is retried only after a failed attempt. Receivers dedupe on
//! `webhook-id` (the event's id), which a retry repeats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crosslogic_core::delivery::Verdict;
use crosslogic_core::events::ChannelDisabled;
use crosslogic_core::{AttemptOutcome, Event, EventSeverity, NotificationChannel};
use crosslogic_db::repo::notifications::{self, Attempt, Claimed};
use crosslogic_db::{DbError, PgPool};
use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::render::Message;
use crate::send::{Answer, Target, Transport};
use crate::views::mask;
use crate::wakeup::Listener;
use crate::NotifyConfig;

/// Slack takes about one message per second per webhook.
const SLACK_SPACING: Duration = Duration::from_secs(1);

/// Wakes the local sender when fan-out queued something (other replicas
/// are woken by `NOTIFY crosslogic_deliveries`).
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Wakes the sender.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Per-destination holds of this replica: no message to a channel before
/// its time (Slack's pace, Discord's and 429 answers' waits).
#[derive(Clone, Default)]
pub struct Holds(Arc<Mutex<HashMap<Uuid, Instant>>>);

impl Holds {
    fn until(&self, channel: Uuid) -> Option<Instant> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&channel).copied().filter(|t| *t > Instant::now())
    }

    fn hold(&self, channel: Uuid, d: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + d;
        let e = map.entry(channel).or_insert(until);
        if *e < until {
            *e = until;
        }
        map.retain(|_, t| *t > Instant::now());
    }
}

/// The sender's state: the transport and the destination holds.
#[derive(Clone)]
pub struct Sender {
    pub pool: PgPool,
    pub cfg: NotifyConfig,
    pub transport: Transport,
    holds: Holds,
}

impl Sender {
    /// A sender over `pool` with `transport`.
    pub fn new(pool: PgPool, cfg: NotifyConfig, transport: Transport) -> Sender {
        Sender {
            pool,
            cfg,
            transport,
            holds: Holds::default(),
        }
    }

    /// Claims one batch and sends it (at most `concurrency` at once).
    /// Returns how many deliveries were claimed.
    pub async fn deliver_once(&self) -> Result<usize, DbError> {
        let mut conn = self.pool.acquire().await?;
        let claimed = notifications::claim_due(&mut conn, self.cfg.batch, self.cfg.lease).await?;
        drop(conn);
        let n = claimed.len();
        // One channel's messages go one after another (in event order, and
        // each sees the hold the previous answer set); channels in parallel.
        let mut by_channel: Vec<Vec<Claimed>> = Vec::new();
        for d in claimed {
            match by_channel.iter_mut().find(|g| g[0].config_id == d.config_id) {
                Some(g) => g.push(d),
                None => by_channel.push(vec![d]),
            }
        }
        futures_util::stream::iter(by_channel)
            .for_each_concurrent(self.cfg.concurrency, |group| async move {
                for d in group {
                    let id = d.id;
                    if let Err(e) = self.attempt(d).await {
                        tracing::warn!(delivery = %id, error = %e, "could not record a delivery attempt; it is retried when its lease ends");
                    }
                }
            })
            .await;
        Ok(n)
    }

    /// One attempt of a claimed delivery.
    async fn attempt(&self, d: Claimed) -> Result<(), DbError> {
        let started_at = Utc::now();
        let (Some(config_id), Some(destination)) = (d.config_id, d.destination.clone()) else {
            return self.finish(&d, failed(started_at, "the channel was deleted")).await;
        };
        if d.enabled == Some(false) {
            return self.finish(&d, failed(started_at, "the channel is disabled")).await;
        }
        if let Some(until) = self.holds.until(config_id) {
            let at = started_at + chrono::Duration::from_std(until - Instant::now()).unwrap_or_default();
            notifications::release(&self.pool, d.id, d.lease_until, at).await?;
            return Ok(());
        }
        let (Some(event_uuid), Some(payload), Some(created_at)) = (d.event_uuid, d.payload.clone(), d.event_created_at)
        else {
            return self.finish(&d, failed(started_at, "the event no longer exists")).await;
        };
        let severity = d
            .severity
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(EventSeverity::Info);
        let message = Message {
            event: Event::from_stored(&d.event_type, payload.clone()).ok(),
            event_type: d.event_type.clone(),
            severity,
            payload,
            created_at,
            tenant: d.tenant_name.clone(),
        };
        let settings = d.settings.as_ref().map(|s| s.0.clone()).unwrap_or_default();
        let message_id = format!("msg_{}", event_uuid.simple());
        let target = Target {
            channel: d.channel,
            destination: &destination,
            tenant_owned: d.tenant_id.is_some() && d.channel != NotificationChannel::Email,
            secrets: &settings.secrets,
            message_id: &message_id,
        };
        let answer = self.transport.send(&target, &message).await;
        self.pace(config_id, d.channel, &answer);
        log(&d, &destination, &answer);
        let attempt = self.outcome(&d, started_at, &answer);
        let Verdict::Gone(reason) = &answer.verdict else {
            // Most attempts: one statement records the row and its attempt
            // (nothing when the lease ran out and another sender holds it).
            notifications::record_attempt(&self.pool, d.id, d.lease_until, &attempt).await?;
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        if !notifications::record_attempt(&mut *tx, d.id, d.lease_until, &attempt).await? {
            tx.rollback().await?;
            return Ok(());
        }
        // The receiver is gone: disable its channel and say so, with the attempt.
        if let Some(c) = notifications::disable_channel(&mut *tx, config_id, reason).await? {
            let event = Event::ChannelDisabled(ChannelDisabled {
                channel_id: c.id,
                tenant_id: c.tenant_id,
                channel: c.channel,
                destination: mask(c.channel, &c.destination),
                reason: reason.clone(),
            });
            crosslogic_db::changes::publish(&mut tx, &event).await?;
            tracing::warn!(channel_id = %c.id, kind = %c.channel, reason, "notification channel disabled: its receiver is gone");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a final outcome that needed no send.
    async fn finish(&self, d: &Claimed, a: Attempt) -> Result<(), DbError> {
        notifications::record_attempt(&self.pool, d.id, d.lease_until, &a).await?;
        Ok(())
    }

    /// Holds the destination after this answer: Slack one second between
    /// messages, Discord and 429s as long as they asked.
    fn pace(&self, config_id: Uuid, channel: NotificationChannel, a: &Answer) {
        let mut hold = a.hold_for;
        if channel == NotificationChannel::Slack {
            hold = Some(hold.map_or(SLACK_SPACING, |h| h.max(SLACK_SPACING)));
        }
        if let Some(h) = hold {
            self.holds.hold(config_id, h);
        }
    }

    /// The attempt to record for `answer`.
    fn outcome(&self, d: &Claimed, started_at: DateTime<Utc>, a: &Answer) -> Attempt {
        let mut attempt = Attempt {
            outcome: AttemptOutcome::Sent,
            started_at,
            duration_ms: i32::try_from(a.took.as_millis()).unwrap_or(i32::MAX),
            request_body: Some(a.request.clone()),
            response_status: a.status.map(i32::from),
            response_body: a.body.clone().filter(|b| !b.is_empty()),
            error: a.error.clone(),
            next_retry_at: None,
        };
        match &a.verdict {
            Verdict::Sent => {}
            Verdict::Gone(reason) => {
                attempt.outcome = AttemptOutcome::Failed;
                attempt.error = Some(format!("the receiver is gone ({reason}); the channel was disabled"));
            }
            Verdict::Retry { not_before } => {
                let made = u32::try_from(d.retry_count.saturating_add(1)).unwrap_or(u32::MAX);
                let jitter = rand::thread_rng().gen::<f64>();
                let schedule = (made < u32::try_from(d.max_retries).unwrap_or(0))
                    .then(|| self.cfg.schedule.delay_before(made, jitter))
                    .flatten();
                match schedule {
                    None => {
                        attempt.outcome = AttemptOutcome::Failed;
                        let why = a
                            .error
                            .clone()
                            .or(a.status.map(|s| format!("answered {s}")))
                            .unwrap_or_default();
                        attempt.error = Some(format!("gave up after {made} attempts (last: {why})"));
                    }
                    Some(delay) => {
                        let wait = not_before.map_or(delay, |nb| nb.max(delay));
                        attempt.outcome = AttemptOutcome::Retry;
                        attempt.next_retry_at =
                            Some(started_at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX));
                        if attempt.error.is_none() {
                            attempt.error = a.status.map(|s| format!("answered {s}"));
                        }
                    }
                }
            }
        }
        attempt
    }
}

fn failed(started_at: DateTime<Utc>, why: &str) -> Attempt {
    Attempt {
        outcome: AttemptOutcome::Failed,
        started_at,
        duration_ms: 0,
        request_body: None,
        response_status: None,
        response_body: None,
        error: Some(why.to_owned()),
        next_retry_at: None,
    }
}

fn log(d: &Claimed, destination: &str, a: &Answer) {
    let to = mask(d.channel, destination);
    match &a.verdict {
        Verdict::Sent => {
            tracing::debug!(delivery = %d.id, event_type = %d.event_type, to, status = ?a.status, "notification sent")
        }
        _ => tracing::info!(
            delivery = %d.id, event_type = %d.event_type, to, status = ?a.status, error = ?a.error,
            attempt = d.retry_count + 1, "notification attempt failed"
        ),
    }
}

/// Sends due deliveries until `shutdown`, waking on NOTIFY, on the local
/// fan-out, and when the next retry comes due; attempts in flight at
/// shutdown are finished and recorded first.
pub async fn run(pool: PgPool, cfg: NotifyConfig, transport: Transport, wake: Wake, shutdown: CancellationToken) {
    let sender = Sender::new(pool.clone(), cfg.clone(), transport);
    let mut listener = Listener::new(&pool, notifications::NOTIFY_CHANNEL);
    while !shutdown.is_cancelled() {
        let claimed = match sender.deliver_once().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "claiming notification deliveries failed; retrying");
                0
            }
        };
        if claimed > 0 {
            continue;
        }
        let wait = match notifications::next_due(&pool).await {
            Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or_default().min(cfg.poll_interval),
            _ => cfg.poll_interval,
        }
        // A row another transaction is claiming right now looks due: do not spin.
        .max(Duration::from_millis(20));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.0.notified() => {}
            () = listener.wait(wait) => {}
        }
    }
}
