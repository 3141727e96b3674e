//! What happened: the event log as a live feed with filters, notification
//! deliveries (retry, redeliver) and the Stripe export log (retry).

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::Json;
use crosslogic_billing::account;
use crosslogic_billing::views::ExportView;
use crosslogic_core::events::EventKind;
use crosslogic_core::{BillingEventStatus, DeliveryStatus, EventSeverity, NotificationChannel, ServiceError};
use crosslogic_db::repo::billing::events::EventFilter as BillingFilter;
use crosslogic_notify::channels::{self, DeliveryQuery, Scope};
use crosslogic_notify::events::{self, EventFilter, EventView};
use crosslogic_notify::views::DeliveryView;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::Op;
use crate::form::{self, CsrfForm};
use crate::page::{self, after, when, PageResult};
use crate::ConsoleState;

/// Query of the events page and its feed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    severity: Option<String>,
    tenant: Option<String>,
    after: Option<i64>,
}

impl EventsQuery {
    fn filter(&self, limit: i64) -> Result<EventFilter, ServiceError> {
        Ok(EventFilter {
            tenant_id: form::text(&self.tenant)
                .map(|t| {
                    t.parse::<Uuid>()
                        .map_err(|_| ServiceError::invalid("tenant", "not a tenant id"))
                })
                .transpose()?,
            event_type: form::text(&self.event_type),
            severity: form::text(&self.severity)
                .map(|s| {
                    s.parse::<EventSeverity>()
                        .map_err(|e| ServiceError::invalid("severity", e.to_string()))
                })
                .transpose()?,
            before: None,
            after: self.after,
            limit: Some(limit),
        })
    }

    /// The filters as a query string (for the feed).
    fn query_string(&self) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("type", &self.event_type),
            ("severity", &self.severity),
            ("tenant", &self.tenant),
        ] {
            if let Some(v) = form::text(v) {
                q.push((k, v));
            }
        }
        serde_urlencoded::to_string(q).unwrap_or_default()
    }
}

/// A one-line summary of an event's data.
fn summary(e: &EventView) -> String {
    let text = e.data.to_string();
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text
    }
}

fn event_row(e: &EventView) -> Markup {
    html! {
        tr data-seq=(e.seq) {
            td { (when(e.created_at)) }
            td { code { (e.event_type) } }
            td { (page::badge(e.severity.as_str())) }
            td { @if let Some(t) = e.tenant_id { a href={"/console/tenants/" (t)} { "tenant" } } @else { "platform" } }
            td.data { code { (summary(e)) } }
        }
    }
}

pub(crate) async fn events_page(
    State(s): State<ConsoleState>,
    Op(session): Op,
    Query(q): Query<EventsQuery>,
) -> PageResult {
    let list = events::list(s.pool(), q.filter(100)?).await?;
    let families: BTreeSet<&str> = EventKind::ALL
        .iter()
        .filter_map(|k| k.as_str().split('.').next())
        .collect();
    let latest = list.first().map(|e| e.seq).unwrap_or(0);
    let body = html! {
        h1 { "Events" }
        form.filters method="get" action="/console/events" {
            label { "Type" select name="type" {
                option value="" { "every type" }
                @for f in &families {
                    @let v = format!("{f}.*");
                    option value=(v) selected[q.event_type.as_deref() == Some(v.as_str())] { (f) ".*" }
                }
            } }
            label { "Severity" select name="severity" {
                option value="" { "any" }
                @for sv in ["info", "warning", "critical"] {
                    option value=(sv) selected[q.severity.as_deref() == Some(sv)] { (sv) }
                }
            } }
            @if let Some(t) = form::text(&q.tenant) { input type="hidden" name="tenant" value=(t); }
            button type="submit" { "Filter" }
        }
        p.muted { "Newest first; new events appear as they happen." }
        div.table-wrap { table #events {
            thead { tr { th { "When" } th { "Type" } th { "Severity" } th { "Owner" } th { "Data" } } }
            tbody #event-feed data-feed-url={"/console/events/feed?" (q.query_string())} data-after=(latest) {
                @for e in &list { (event_row(e)) }
            }
        } }
        @if list.is_empty() { (page::empty("No events match yet.")) }
    };
    Ok(page::render(&session, "Events", "events", body))
}

/// `GET /console/events/feed?after=N&…`: the events after `N`, oldest
/// first, as `GET /admin/v1/events` answers them.
pub(crate) async fn events_feed(
    State(s): State<ConsoleState>,
    Op(_session): Op,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EventView>>, page::PageError> {
    Ok(Json(events::list(s.pool(), q.filter(100)?).await?))
}

/// Query of the deliveries page.
#[derive(Debug, Deserialize)]
pub(crate) struct DeliveriesQuery {
    status: Option<String>,
    channel: Option<String>,
}

pub(crate) async fn deliveries(
    State(s): State<ConsoleState>,
    Op(session): Op,
    Query(q): Query<DeliveriesQuery>,
) -> PageResult {
    let status: Option<DeliveryStatus> = form::text(&q.status)
        .map(|v| {
            v.parse()
                .map_err(|e: crosslogic_core::ParseEnumError| ServiceError::invalid("status", e.to_string()))
        })
        .transpose()?;
    let channel: Option<NotificationChannel> = form::text(&q.channel)
        .map(|v| {
            v.parse()
                .map_err(|e: crosslogic_core::ParseEnumError| ServiceError::invalid("channel", e.to_string()))
        })
        .transpose()?;
    let list: Vec<DeliveryView> = channels::query_deliveries(
        s.pool(),
        Scope::Operator,
        DeliveryQuery {
            tenant_id: None,
            operator: None,
            channel_id: None,
            status,
            channel,
            event_type: None,
            from: None,
            to: None,
            after: None,
            limit: Some(100),
        },
    )
    .await?
    .into_iter()
    .map(Into::into)
    .collect();
    let body = html! {
        h1 { "Notification deliveries" }
        form.filters method="get" action="/console/deliveries" {
            label { "Status" select name="status" {
                option value="" { "any" }
                @for st in ["pending", "retry", "sent", "failed"] { option value=(st) selected[q.status.as_deref() == Some(st)] { (st) } }
            } }
            label { "Channel" select name="channel" {
                option value="" { "any" }
                @for c in ["discord", "slack", "email", "webhook"] { option value=(c) selected[q.channel.as_deref() == Some(c)] { (c) } }
            } }
            button type="submit" { "Filter" }
        }
        @if list.is_empty() { (page::empty("No deliveries match: channels are configured per tenant (self-service or admin API) and for the operator (NOTIFY_* variables).")) } @else {
            div.table-wrap { table #deliveries {
                thead { tr { th { "When" } th { "Event" } th { "Channel" } th { "Owner" } th { "Status" } th { "Attempts" } th { "Answer" } th { span.sr-only { "Actions" } } } }
                tbody { @for d in &list {
                    tr {
                        td { (when(d.created_at)) } td { code { (d.event_type) } } td { (d.channel.as_str()) }
                        td { @if let Some(t) = d.tenant_id { a href={"/console/tenants/" (t)} { "tenant" } } @else { "operator" } }
                        td { (page::badge(d.status.as_str())) @if let Some(n) = d.next_attempt_at { br; span.muted { "next " (page::ago_or_in(n)) } } }
                        td.num { (d.attempts) " / " (d.max_attempts) }
                        td { @if let Some(code) = d.response_status { "HTTP " (code) " " } (d.error.as_deref().unwrap_or("")) }
                        td { (page::action_button(&session, &format!("/console/deliveries/{}/redeliver", d.id), "Redeliver", Some("Send this notification again now?"), false)) }
                    }
                } }
            } }
        }
    };
    Ok(page::render(&session, "Deliveries", "deliveries", body))
}

pub(crate) async fn redeliver(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(_session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let r = channels::redeliver(s.pool(), Scope::Operator, id).await;
    after("/console/deliveries", r, |_| {
        "Queued again: the next attempt is now.".into()
    })
}

/// Query of the billing page.
#[derive(Debug, Deserialize)]
pub(crate) struct ExportsQuery {
    status: Option<String>,
}

pub(crate) async fn exports(
    State(s): State<ConsoleState>,
    Op(session): Op,
    Query(q): Query<ExportsQuery>,
) -> PageResult {
    let status: Option<BillingEventStatus> = form::text(&q.status)
        .map(|v| {
            v.parse()
                .map_err(|e: crosslogic_core::ParseEnumError| ServiceError::invalid("status", e.to_string()))
        })
        .transpose()?;
    let (list, _) = account::exports(
        s.pool(),
        BillingFilter {
            status,
            ..Default::default()
        },
        100,
    )
    .await?;
    let body = html! {
        h1 { "Stripe export log" }
        p.muted { "One meter event per payable tenant-hour (and per correction). Without " code { "STRIPE_SECRET_KEY" } " hours are settled and marked not exported." }
        form.filters method="get" action="/console/billing" {
            label { "Status" select name="status" {
                option value="" { "any" }
                @for st in ["pending", "processed", "failed"] { option value=(st) selected[q.status.as_deref() == Some(st)] { (st) } }
            } }
            button type="submit" { "Filter" }
        }
        @if list.is_empty() { (page::empty("Nothing exported yet: hours are settled a few minutes after they end.")) } @else {
            div.table-wrap { table #exports {
                thead { tr { th { "Hour (UTC)" } th { "Tenant" } th { "Amount" } th { "Status" } th { "Sent to Stripe" } th { "Attempts" } th { "Last error" } th { span.sr-only { "Actions" } } } }
                tbody { @for e in &list { (export_row(&session, e)) } }
            } }
        }
    };
    Ok(page::render(&session, "Billing", "billing", body))
}

fn export_row(session: &crate::session::Session, e: &ExportView) -> Markup {
    html! {
        tr {
            td { (e.hour.map(|h| h.format("%Y-%m-%d %H:00").to_string()).unwrap_or_default()) @if let Some(r) = e.revision { @if r > 0 { " (correction " (r) ")" } } }
            td { a href={"/console/tenants/" (e.tenant_id)} { "tenant" } }
            td.num { (page::usd(e.amount.microdollars)) }
            td { (page::badge(e.status.as_str())) }
            td { (if e.exported { "yes" } else { "no" }) }
            td.num { (e.attempts) }
            td { (e.last_error.as_deref().unwrap_or("")) }
            td { @if e.status == BillingEventStatus::Failed {
                (page::action_button(session, &format!("/console/billing/exports/{}/retry", e.id), "Retry", None, false))
            } }
        }
    }
}

pub(crate) async fn retry_export(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(_session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let r = account::retry_export(s.pool(), id).await;
    after("/console/billing", r, |_| "Queued again for export.".into())
}
