//! The operator's channels: configured in the environment (`NOTIFY_*`),
//! mirrored at start into `notification_config` rows with `tenant_id`
//! NULL, so their deliveries are queued, logged and disabled like a
//! tenant's. A channel removed from the environment is disabled; one
//! disabled because its receiver is gone stays disabled until its URL
//! changes (or the operator enables it again through the admin API).

use chrono::Utc;
use crosslogic_config::{NotifySettings, Severity};
use crosslogic_core::{EventSeverity, NotificationChannel};
use crosslogic_db::repo::notifications::{self, ChannelSettings, SigningSecret};
use crosslogic_db::{DbError, PgPool};
use secrecy::ExposeSecret;

/// The severity type of the events table for a configured minimum.
pub fn severity(s: Severity) -> EventSeverity {
    match s {
        Severity::Info => EventSeverity::Info,
        Severity::Warning => EventSeverity::Warning,
        Severity::Critical => EventSeverity::Critical,
    }
}

/// Writes the configured operator channels and disables the others.
pub async fn sync(pool: &PgPool, s: &NotifySettings) -> Result<(), DbError> {
    let min = Some(severity(s.min_severity));
    let plain = ChannelSettings {
        secrets: Vec::new(),
        min_severity: min,
    };
    let mut configured = Vec::new();
    let mut tx = pool.begin().await?;
    if let Some(url) = &s.discord_webhook_url {
        notifications::upsert_operator_channel(&mut *tx, NotificationChannel::Discord, url.expose_secret(), &plain)
            .await?;
        configured.push(NotificationChannel::Discord);
    }
    if let Some(url) = &s.slack_webhook_url {
        notifications::upsert_operator_channel(&mut *tx, NotificationChannel::Slack, url.expose_secret(), &plain)
            .await?;
        configured.push(NotificationChannel::Slack);
    }
    if !s.email_to.is_empty() {
        notifications::upsert_operator_channel(&mut *tx, NotificationChannel::Email, &s.email_to.join(","), &plain)
            .await?;
        configured.push(NotificationChannel::Email);
    }
    if let (Some(url), Some(secret)) = (&s.webhook_url, &s.webhook_secret) {
        let signed = ChannelSettings {
            secrets: vec![SigningSecret {
                secret: secret.expose_secret().to_owned(),
                created_at: Utc::now(),
                expires_at: None,
            }],
            min_severity: min,
        };
        notifications::upsert_operator_channel(&mut *tx, NotificationChannel::Webhook, url.expose_secret(), &signed)
            .await?;
        configured.push(NotificationChannel::Webhook);
    }
    notifications::disable_unconfigured_operator_channels(&mut *tx, &configured).await?;
    tx.commit().await?;
    if !configured.is_empty() {
        let kinds: Vec<&str> = configured.iter().map(|c| c.as_str()).collect();
        tracing::info!(channels = ?kinds, min_severity = s.min_severity.as_str(), "operator notification channels");
    }
    Ok(())
}
