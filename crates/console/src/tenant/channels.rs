//! The tenant's notification channels (Discord, Slack, email, signed
//! webhooks): list, create (a webhook's signing secret shown once), send a
//! test, delete, and the delivery log — through `crosslogic-notify`, as
//! `/v1/notifications/…` does. Changes need an `admin` key.

use axum::extract::{Path, State};
use crosslogic_core::{NotificationChannel, ServiceError};
use crosslogic_notify::channels::{self, CreateChannel, DeliveryQuery, Scope};
use crosslogic_notify::views::{ChannelView, DeliveryView};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::keys::must_manage;
use super::Ten;
use crate::form::{self, CsrfForm};
use crate::page::{self, after, when, PageError, PageResult};
use crate::ConsoleState;

pub(crate) async fn list(State(s): State<ConsoleState>, Ten(session, t): Ten) -> PageResult {
    let scope = Scope::Tenant(t.tenant_id);
    let list: Vec<ChannelView> = channels::list_channels(s.pool(), Some(t.tenant_id))
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let deliveries: Vec<DeliveryView> = channels::query_deliveries(
        s.pool(),
        scope,
        DeliveryQuery {
            tenant_id: None,
            operator: None,
            channel_id: None,
            status: None,
            channel: None,
            event_type: None,
            from: None,
            to: None,
            after: None,
            limit: Some(50),
        },
    )
    .await?
    .into_iter()
    .map(Into::into)
    .collect();
    let manage = t.can_manage();
    let body = html! {
        h1 { "Notifications" }
        p.muted { "Where this tenant's events go (key changes, quota warnings, budget alerts…): one channel of each kind." }
        @if list.is_empty() { (page::empty("No channels yet.")) } @else {
            div.table-wrap { table #channels {
                thead { tr { th { "Kind" } th { "Destination" } th { "Events" } th { "State" } @if manage { th { span.sr-only { "Actions" } } } } }
                tbody { @for c in &list {
                    tr data-channel=(c.channel.as_str()) {
                        td { (c.channel.as_str()) } td { code { (c.destination) } }
                        td { (c.event_types.as_ref().map(|e| e.join(", ")).unwrap_or_else(|| "every event".into())) }
                        td { (page::badge(if c.enabled { "active" } else { "paused" })) @if let Some(r) = &c.disabled_reason { br; span.muted { (r) } } }
                        @if manage {
                            td.row-actions {
                                (page::action_button(&session, &format!("/console/channels/{}/test", c.id), "Send test", None, false))
                                (page::action_button(&session, &format!("/console/channels/{}/delete", c.id), "Delete", Some("Delete this channel? Its pending deliveries are dropped."), true))
                            }
                        }
                    }
                } }
            } }
        }
        @if manage {
            h2 { "New channel" }
            form.grid method="post" action="/console/channels" {
                (page::csrf(&session))
                label { "Kind" select name="channel" {
                    option value="webhook" selected { "signed webhook" } option value="slack" { "Slack" }
                    option value="discord" { "Discord" } option value="email" { "email" }
                } }
                label { "Destination" input name="destination" required placeholder="https://… or a@b.example, c@d.example" maxlength="2000"; }
                label { "Events (optional)" input name="event_types" placeholder="e.g. apikey.*, quota.*"; }
                button type="submit" { "Create channel" }
            }
        }
        h2 { "Delivery log" }
        @if deliveries.is_empty() { (page::empty("Nothing delivered yet.")) } @else {
            div.table-wrap { table #channel-deliveries {
                thead { tr { th { "When" } th { "Event" } th { "Channel" } th { "Status" } th { "Attempts" } th { "Answer" } } }
                tbody { @for d in &deliveries {
                    tr { td { (when(d.created_at)) } td { code { (d.event_type) } } td { (d.channel.as_str()) }
                         td { (page::badge(d.status.as_str())) } td.num { (d.attempts) " / " (d.max_attempts) }
                         td { @if let Some(code) = d.response_status { "HTTP " (code) " " } (d.error.as_deref().unwrap_or("")) } }
                } }
            } }
        }
    };
    Ok(page::render(&session, "Notifications", "channels", body))
}

/// The new-channel form.
#[derive(Debug, Deserialize)]
pub(crate) struct NewChannel {
    channel: String,
    destination: String,
    event_types: Option<String>,
}

pub(crate) async fn create(State(s): State<ConsoleState>, CsrfForm(session, f): CsrfForm<NewChannel>) -> PageResult {
    let t = must_manage(&session)?;
    let policy = s.admin.notify.as_ref().map(|n| n.policy).ok_or_else(|| {
        PageError::from(ServiceError::State(
            "notifications are not configured on this server".into(),
        ))
    })?;
    let input = f
        .channel
        .parse::<NotificationChannel>()
        .map_err(|e| ServiceError::invalid("channel", e.to_string()))
        .map(|channel| CreateChannel {
            channel,
            destination: f.destination.clone(),
            event_types: form::text(&f.event_types).map(|e| {
                e.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            }),
            enabled: None,
        });
    let created = match input {
        Ok(i) => channels::create_channel(s.pool(), &session.actor(), t.tenant_id, i, policy).await,
        Err(e) => Err(e),
    };
    match created {
        Ok((c, Some(secret))) => {
            let body = html! {
                h1 { "Channel created" }
                section.created-key {
                    p { strong { "Copy the signing secret now: " } "it is shown only once. Verify each delivery's "
                        code { "webhook-signature" } " with it (Standard Webhooks)." }
                    p { code #new-key-secret { (secret) } }
                    p.muted { (c.channel.as_str()) " → " code { (crosslogic_notify::views::mask(c.channel, &c.destination)) } }
                    p { a.button href="/console/channels" { "Done" } }
                }
            };
            Ok(page::render(&session, "Channel created", "channels", body))
        }
        Ok((c, None)) => {
            Ok(page::Flash::ok(format!("{} channel created.", c.channel.as_str())).redirect("/console/channels"))
        }
        Err(e) => after::<()>("/console/channels", Err(e), |_| String::new()),
    }
}

pub(crate) async fn test(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let t = must_manage(&session)?;
    let transport = s.admin.notify.as_ref().map(|n| &n.transport).ok_or_else(|| {
        PageError::from(ServiceError::State(
            "notifications are not configured on this server".into(),
        ))
    })?;
    let r = channels::send_test(s.pool(), transport, Scope::Tenant(t.tenant_id), id).await;
    after("/console/channels", r, |(d, _)| {
        match (d.status.as_str(), d.response_status) {
            ("sent", _) => "Test delivered.".into(),
            (_, Some(code)) => format!("The test was not accepted: the receiver answered HTTP {code}."),
            _ => format!("The test could not be delivered: {}", d.error.unwrap_or_default()),
        }
    })
}

pub(crate) async fn delete(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let t = must_manage(&session)?;
    let r = channels::delete_channel(s.pool(), &session.actor(), Scope::Tenant(t.tenant_id), id).await;
    after("/console/channels", r, |_| "Channel deleted.".into())
}
