//! Channel configuration, the delivery log and test sends — the business
//! functions behind the admin API and tenant self-service.
//!
//! A tenant has at most one channel per kind (Discord, Slack, email,
//! webhook). Filters are checked against the event catalogue. Tenant URLs
//! must be `https` and public ([`crate::guard`]). A webhook channel gets a
//! `whsec_…` signing secret, shown once; rotating it keeps the old one
//! signing for a day so receivers can switch without missing a message.
//! The operator's channels come from the environment: their destination
//! cannot be changed and they cannot be deleted here, only enabled,
//! disabled, filtered and tested. Every change is evented and audited.

use std::time::Instant;

use base64::Engine;
use chrono::Utc;
use crosslogic_core::delivery::{check_filter_entry, Verdict};
use crosslogic_core::events::{ChannelEvent, ChannelTest};
use crosslogic_core::{Actor, AttemptOutcome, Event, EventSeverity, NotificationChannel, ServiceError};
use crosslogic_db::changes;
use crosslogic_db::repo::notifications::{
    self, Attempt, AttemptRow, ChannelConfig, ChannelPatch, ChannelSettings, Delivery, DeliveryFilter, NewChannel,
    SigningSecret,
};
use crosslogic_db::PgPool;
use rand::RngCore;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::guard;
use crate::render::Message;
use crate::send::{Target, Transport};
use crate::views::mask;

/// How long a rotated-out signing secret keeps signing.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// Most addresses one email channel sends to.
const MAX_RECIPIENTS: usize = 10;

/// Whose channels a caller may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The operator (admin API): every channel.
    Operator,
    /// A tenant (self-service): its own channels only.
    Tenant(Uuid),
}

/// What saved destinations may point at.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `NOTIFY_ALLOW_PRIVATE_TARGETS`.
    pub allow_private: bool,
}

/// Body of "create channel".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    pub channel: NotificationChannel,
    /// The incoming-webhook URL (Discord, Slack, webhook) or the
    /// comma-separated email addresses.
    pub destination: String,
    /// Event types (`node.dead`), families (`node.*`) or `*`; absent or
    /// `null` = every event.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Absent = `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Body of "update channel": only the given fields change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `null` = every event; a list replaces the filter.
    #[serde(default, deserialize_with = "present")]
    pub event_types: Option<Option<Vec<String>>>,
}

fn event_types(v: Option<Vec<String>>) -> Result<Option<Vec<String>>, ServiceError> {
    let Some(list) = v else { return Ok(None) };
    if list.is_empty() {
        return Err(ServiceError::invalid(
            "event_types",
            "must list at least one event type, or be null for every event",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for e in list {
        let e = e.trim().to_owned();
        check_filter_entry(&e).map_err(|m| ServiceError::invalid("event_types", m))?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(Some(out))
}

fn email_list(raw: &str) -> Result<String, ServiceError> {
    let addrs: Vec<&str> = raw.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    if addrs.is_empty() || addrs.len() > MAX_RECIPIENTS {
        return Err(ServiceError::invalid(
            "destination",
            format!("must be 1 to {MAX_RECIPIENTS} comma-separated email addresses"),
        ));
    }
    for a in &addrs {
        if a.parse::<lettre::Address>().is_err() {
            return Err(ServiceError::invalid(
                "destination",
                format!("{a:?} is not an email address such as ops@example.com"),
            ));
        }
    }
    Ok(addrs.join(","))
}

/// Checks a destination for `channel` owned by a tenant.
async fn destination(channel: NotificationChannel, raw: &str, policy: Policy) -> Result<String, ServiceError> {
    if channel == NotificationChannel::Email {
        return email_list(raw);
    }
    let url =
        guard::check_url(raw.trim(), policy.allow_private).map_err(|m| ServiceError::invalid("destination", m))?;
    if !policy.allow_private {
        guard::check_resolves_public(&url)
            .await
            .map_err(|m| ServiceError::invalid("destination", m))?;
    }
    Ok(url.to_string())
}

/// A new `whsec_…` secret: 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key))
}

fn event(c: &ChannelConfig) -> ChannelEvent {
    ChannelEvent {
        channel_id: c.id,
        tenant_id: c.tenant_id,
        channel: c.channel,
        destination: mask(c.channel, &c.destination),
        enabled: c.enabled,
        event_types: c.event_types.clone(),
    }
}

/// A channel the scope may see; any other looks absent.
pub async fn get_channel(pool: &PgPool, scope: Scope, id: Uuid) -> Result<ChannelConfig, ServiceError> {
    let c = notifications::get_channel(pool, id).await?;
    match scope {
        Scope::Tenant(t) if c.tenant_id != Some(t) => Err(ServiceError::NotFound("notification channel")),
        _ => Ok(c),
    }
}

/// A tenant's channels (`None`: the operator's).
pub async fn list_channels(pool: &PgPool, tenant: Option<Uuid>) -> Result<Vec<ChannelConfig>, ServiceError> {
    Ok(notifications::list_channels(pool, tenant).await?)
}

/// Creates one of `tenant_id`'s channels; publishes
/// `notification.channel_created`. Returns the channel and, for a webhook
/// channel, its signing secret (shown this once).
pub async fn create_channel(
    pool: &PgPool,
    actor: &Actor,
    tenant_id: Uuid,
    input: CreateChannel,
    policy: Policy,
) -> Result<(ChannelConfig, Option<String>), ServiceError> {
    let destination = destination(input.channel, &input.destination, policy).await?;
    let event_types = event_types(input.event_types)?;
    let secret = (input.channel == NotificationChannel::Webhook).then(new_secret);
    let settings = ChannelSettings {
        secrets: secret
            .iter()
            .map(|s| SigningSecret {
                secret: s.clone(),
                created_at: Utc::now(),
                expires_at: None,
            })
            .collect(),
        min_severity: None,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    crosslogic_db::repo::tenants::get(&mut *tx, tenant_id).await?;
    let c = notifications::create_channel(
        &mut *tx,
        &NewChannel {
            tenant_id: Some(tenant_id),
            channel: input.channel,
            enabled: input.enabled.unwrap_or(true),
            destination,
            event_types,
            settings,
        },
    )
    .await
    .map_err(|e| match e {
        crosslogic_db::DbError::Conflict { .. } => ServiceError::Conflict {
            field: Some("channel"),
            message: format!(
                "a {} channel exists already (one per kind); update or delete it",
                input.channel
            ),
        },
        other => other.into(),
    })?;
    changes::record(&mut tx, actor, &Event::ChannelCreated(event(&c))).await?;
    crosslogic_db::commit(tx).await?;
    Ok((c, secret))
}

/// Changes a channel; publishes `notification.channel_updated`.
pub async fn update_channel(
    pool: &PgPool,
    actor: &Actor,
    scope: Scope,
    id: Uuid,
    input: UpdateChannel,
    policy: Policy,
) -> Result<ChannelConfig, ServiceError> {
    let current = get_channel(pool, scope, id).await?;
    let destination = match &input.destination {
        None => None,
        Some(_) if current.tenant_id.is_none() => {
            return Err(ServiceError::invalid(
                "destination",
                "the operator's channels are configured by NOTIFY_* settings; change it there and restart",
            ))
        }
        Some(d) => Some(destination(current.channel, d, policy).await?),
    };
    let patch = ChannelPatch {
        destination,
        enabled: input.enabled,
        event_types: input.event_types.map(event_types).transpose()?,
        settings: None,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let c = notifications::update_channel(&mut *tx, id, &patch).await?;
    changes::record(&mut tx, actor, &Event::ChannelUpdated(event(&c))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(c)
}

/// Deletes a tenant's channel; publishes `notification.channel_deleted`.
/// Its delivery log stays.
pub async fn delete_channel(pool: &PgPool, actor: &Actor, scope: Scope, id: Uuid) -> Result<(), ServiceError> {
    let c = get_channel(pool, scope, id).await?;
    if c.tenant_id.is_none() {
        return Err(ServiceError::State(
            "the operator's channels are configured by NOTIFY_* settings: unset the variable and restart, \
             or disable the channel"
                .into(),
        ));
    }
    let mut tx = crosslogic_db::begin(pool).await?;
    notifications::delete_channel(&mut *tx, id).await?;
    changes::record(&mut tx, actor, &Event::ChannelDeleted(event(&c))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(())
}

/// Gives a webhook channel a new signing secret (returned, shown once);
/// the previous ones keep signing for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    pool: &PgPool,
    actor: &Actor,
    scope: Scope,
    id: Uuid,
) -> Result<(ChannelConfig, String), ServiceError> {
    let current = get_channel(pool, scope, id).await?;
    if current.channel != NotificationChannel::Webhook {
        return Err(ServiceError::State("only webhook channels have signing secrets".into()));
    }
    if current.tenant_id.is_none() {
        return Err(ServiceError::State(
            "the operator's webhook secret is NOTIFY_WEBHOOK_SECRET: change it there and restart".into(),
        ));
    }
    let now = Utc::now();
    let secret = new_secret();
    let mut settings = current.settings.clone();
    settings.secrets.retain(|s| s.expires_at.is_none_or(|e| e > now));
    for s in &mut settings.secrets {
        let ends = now + ROTATION_OVERLAP;
        s.expires_at = Some(s.expires_at.map_or(ends, |e| e.min(ends)));
    }
    settings.secrets.push(SigningSecret {
        secret: secret.clone(),
        created_at: now,
        expires_at: None,
    });
    let mut tx = crosslogic_db::begin(pool).await?;
    let c = notifications::update_channel(
        &mut *tx,
        id,
        &ChannelPatch {
            settings: Some(settings),
            ..ChannelPatch::default()
        },
    )
    .await?;
    changes::record(&mut tx, actor, &Event::ChannelUpdated(event(&c))).await?;
    crosslogic_db::commit(tx).await?;
    Ok((c, secret))
}

/// Sends a `notification.test` message to one channel now (enabled or
/// not) and records it in the delivery log; the delivery tells how it went.
pub async fn send_test(
    pool: &PgPool,
    transport: &Transport,
    scope: Scope,
    id: Uuid,
) -> Result<(Delivery, Vec<AttemptRow>), ServiceError> {
    let c = get_channel(pool, scope, id).await?;
    let test = Event::ChannelTest(ChannelTest {
        channel_id: c.id,
        tenant_id: c.tenant_id,
        message: "This is a test notification from CrossLogic: this channel is set up.".into(),
    });
    let tenant = match c.tenant_id {
        Some(t) => Some(crosslogic_db::repo::tenants::get(pool, t).await?.name),
        None => None,
    };
    let message = Message {
        event_type: test.kind().as_str().to_owned(),
        severity: EventSeverity::Info,
        payload: test.payload(),
        event: Some(test),
        created_at: Utc::now(),
        tenant,
    };
    let message_id = format!("msg_{}", Uuid::new_v4().simple());
    let started_at = Utc::now();
    let started = Instant::now();
    let answer = transport
        .send(
            &Target {
                channel: c.channel,
                destination: &c.destination,
                tenant_owned: c.tenant_id.is_some() && c.channel != NotificationChannel::Email,
                secrets: &c.settings.secrets,
                message_id: &message_id,
            },
            &message,
        )
        .await;
    let outcome = if answer.verdict == Verdict::Sent {
        AttemptOutcome::Sent
    } else {
        AttemptOutcome::Failed
    };
    let attempt = Attempt {
        outcome,
        started_at,
        duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
        request_body: Some(answer.request.clone()),
        response_status: answer.status.map(i32::from),
        response_body: answer.body.clone().filter(|b| !b.is_empty()),
        error: answer
            .error
            .clone()
            .or_else(|| (outcome == AttemptOutcome::Failed).then(|| format!("{:?}", answer.verdict))),
        next_retry_at: None,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let d = notifications::record_direct(&mut tx, &c, message.event_type.as_str(), &attempt).await?;
    crosslogic_db::commit(tx).await?;
    let attempts = notifications::attempts(pool, d.id).await?;
    Ok((d, attempts))
}

/// Query of the delivery log (`GET …/notifications/deliveries`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// The operator only: one tenant's deliveries.
    pub tenant_id: Option<Uuid>,
    /// The operator only: `true` = the operator's own channels' deliveries.
    pub operator: Option<bool>,
    pub channel_id: Option<Uuid>,
    pub status: Option<crosslogic_core::DeliveryStatus>,
    pub channel: Option<NotificationChannel>,
    /// An event type (`node.dead`) or a family (`node.*`).
    pub event_type: Option<String>,
    /// Created at or after this time (RFC 3339).
    pub from: Option<chrono::DateTime<Utc>>,
    /// Created before this time.
    pub to: Option<chrono::DateTime<Utc>>,
    /// A delivery id: the page after it (the previous page's last id).
    pub after: Option<Uuid>,
    pub limit: Option<i64>,
}

/// The delivery log of `scope` for `q`, newest first.
pub async fn query_deliveries(pool: &PgPool, scope: Scope, q: DeliveryQuery) -> Result<Vec<Delivery>, ServiceError> {
    if scope != Scope::Operator && (q.tenant_id.is_some() || q.operator.is_some()) {
        let field = if q.tenant_id.is_some() { "tenant_id" } else { "operator" };
        return Err(ServiceError::invalid(
            field,
            "only the operator's admin API filters by owner",
        ));
    }
    let event_type = match q.event_type.as_deref().map(str::trim) {
        None => None,
        Some(t) => {
            check_filter_entry(t).map_err(|m| ServiceError::invalid("event_type", m))?;
            match t.strip_suffix('*') {
                Some(family) => Some(family.to_owned()).filter(|f| !f.is_empty()),
                None => Some(t.to_owned()),
            }
        }
    };
    let before = match q.after {
        None => None,
        Some(id) => {
            let d = notifications::get_delivery(pool, id)
                .await
                .map_err(|_| ServiceError::invalid("after", "no such delivery"))?;
            Some((d.created_at, d.id))
        }
    };
    let tenant_id = match (q.operator, q.tenant_id) {
        (Some(true), _) => Some(None),
        (_, Some(t)) => Some(Some(t)),
        _ => None,
    };
    let filter = DeliveryFilter {
        tenant_id,
        config_id: q.channel_id,
        status: q.status,
        channel: q.channel,
        event_type,
        from: q.from,
        to: q.to,
        before,
    };
    list_deliveries(pool, scope, filter, q.limit).await
}

/// Bounds of a delivery-log page (1 to 500, default 50).
pub fn page(limit: Option<i64>) -> i64 {
    crosslogic_db::repo::page_size(limit)
}

/// The delivery log of a scope, newest first.
pub async fn list_deliveries(
    pool: &PgPool,
    scope: Scope,
    mut filter: DeliveryFilter,
    limit: Option<i64>,
) -> Result<Vec<Delivery>, ServiceError> {
    if let Scope::Tenant(t) = scope {
        filter.tenant_id = Some(Some(t));
    }
    Ok(notifications::list_deliveries(pool, &filter, page(limit)).await?)
}

/// One delivery with its attempts.
pub async fn get_delivery(pool: &PgPool, scope: Scope, id: Uuid) -> Result<(Delivery, Vec<AttemptRow>), ServiceError> {
    let d = notifications::get_delivery(pool, id).await?;
    if let Scope::Tenant(t) = scope {
        if d.tenant_id != Some(t) {
            return Err(ServiceError::NotFound("notification delivery"));
        }
    }
    let attempts = notifications::attempts(pool, id).await?;
    Ok((d, attempts))
}

/// Queues a delivery again for one more attempt now (a test send cannot
/// be redelivered: send another).
pub async fn redeliver(pool: &PgPool, scope: Scope, id: Uuid) -> Result<Delivery, ServiceError> {
    let (d, _) = get_delivery(pool, scope, id).await?;
    if d.event_id.is_none() {
        return Err(ServiceError::State(
            "a test send is not queued and cannot be redelivered; send another test".into(),
        ));
    }
    let mut conn = pool.acquire().await.map_err(crosslogic_db::DbError::from)?;
    Ok(notifications::redeliver(&mut conn, id).await?)
}
