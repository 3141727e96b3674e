//! Channels and deliveries as the APIs show them. Destination URLs embed
//! secrets (Discord and Slack put their token in the path), so a view only
//! ever shows a URL's scheme and host; signing secrets appear once, in the
//! answer that created them.

use chrono::{DateTime, Utc};
use crosslogic_core::{AttemptOutcome, DeliveryStatus, NotificationChannel};
use crosslogic_db::repo::notifications::{AttemptRow, ChannelConfig, Delivery};
use serde::Serialize;
use uuid::Uuid;

/// A destination as shown: `https://hooks.slack.com/…`; email addresses as
/// they are.
pub fn mask(channel: NotificationChannel, destination: &str) -> String {
    match channel {
        NotificationChannel::Email => destination.to_owned(),
        _ => crosslogic_config::mask_url(destination),
    }
}

/// A notification channel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    /// Always `notification_channel`.
    pub object: &'static str,
    pub id: Uuid,
    /// `null`: one of the operator's channels (configured by `NOTIFY_*`).
    pub tenant_id: Option<Uuid>,
    pub channel: NotificationChannel,
    pub enabled: bool,
    /// Masked: scheme and host only.
    pub destination: String,
    /// `null`: every event type.
    pub event_types: Option<Vec<String>>,
    /// Why the platform disabled it (its receiver is gone).
    pub disabled_reason: Option<String>,
    /// Webhook channels: how many secrets sign each delivery now (2 during
    /// a rotation).
    pub signing_secrets: usize,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ChannelConfig> for ChannelView {
    fn from(c: ChannelConfig) -> Self {
        let now = Utc::now();
        ChannelView {
            object: "notification_channel",
            destination: mask(c.channel, &c.destination),
            signing_secrets: c
                .settings
                .secrets
                .iter()
                .filter(|s| s.expires_at.is_none_or(|e| e > now))
                .count(),
            id: c.id,
            tenant_id: c.tenant_id,
            channel: c.channel,
            enabled: c.enabled,
            event_types: c.event_types,
            disabled_reason: c.disabled_reason,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A channel just created, or whose secret was just rotated.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelWithSecret {
    #[serde(flatten)]
    pub channel: ChannelView,
    /// Webhook channels: the new `whsec_…` signing secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// One delivery of an event to a channel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Always `notification_delivery`.
    pub object: &'static str,
    pub id: Uuid,
    pub event_type: String,
    pub tenant_id: Option<Uuid>,
    pub channel: NotificationChannel,
    /// `null` once the channel was deleted.
    pub channel_id: Option<Uuid>,
    pub status: DeliveryStatus,
    /// Attempts made so far…
    pub attempts: i32,
    /// …and at most.
    pub max_attempts: i32,
    /// The last attempt's answer.
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (`pending`, `retry`).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let waiting = matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Retry);
        DeliveryView {
            object: "notification_delivery",
            id: d.id,
            event_type: d.event_type,
            tenant_id: d.tenant_id,
            channel: d.channel,
            channel_id: d.config_id,
            status: d.status,
            attempts: d.retry_count,
            max_attempts: d.max_retries,
            response_status: d.response_status,
            response_body: d.response_body,
            error: d.error,
            created_at: d.created_at,
            sent_at: d.sent_at,
            failed_at: d.failed_at,
            next_attempt_at: if waiting { d.next_retry_at } else { None },
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub outcome: AttemptOutcome,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

impl From<AttemptRow> for AttemptView {
    fn from(a: AttemptRow) -> Self {
        AttemptView {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            response_status: a.response_status,
            response_body: a.response_body,
            error: a.error,
        }
    }
}

/// A delivery with its attempts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    pub attempt_log: Vec<AttemptView>,
}
