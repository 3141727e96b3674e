//! `crosslogic notifications …`: `/admin/v1/notifications` and
//! `/admin/v1/tenants/{id}/notifications`.

use clap::{Args, Subcommand};
use crosslogic_core::{DeliveryStatus, NotificationChannel};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;
use super::{compact, confirm, details, one_of, require_change, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: NotificationsCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List channels: the operator's (from NOTIFY_* settings), or a tenant's with --tenant.
    Channels {
        /// A tenant's channels instead of the operator's.
        #[arg(long, value_name = "ID")]
        tenant: Option<Uuid>,
    },
    /// Add a channel to a tenant (one per kind); a webhook's signing secret is printed once.
    Create {
        /// The tenant.
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
        /// discord, slack, email or webhook.
        #[arg(long, value_parser = one_of(NotificationChannel::ALL, NotificationChannel::as_str))]
        channel: NotificationChannel,
        /// The incoming-webhook https URL, or comma-separated email addresses.
        #[arg(long, value_name = "URL|EMAILS")]
        destination: String,
        /// Event types, families (node.*) or *, comma-separated [default: every event].
        #[arg(long, value_name = "TYPES", value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Show one channel.
    Get {
        /// Channel id.
        id: Uuid,
    },
    /// Change a channel's destination, filter or state; only the given fields change.
    Update {
        /// Channel id.
        id: Uuid,
        /// A new destination (tenant channels only).
        #[arg(long, value_name = "URL|EMAILS")]
        destination: Option<String>,
        /// Event types, families or *, comma-separated.
        #[arg(long, value_name = "TYPES", value_delimiter = ',', conflicts_with = "all_events")]
        events: Option<Vec<String>>,
        /// Receive every event (clears the filter).
        #[arg(long)]
        all_events: bool,
        /// Enable the channel (also after the platform disabled it).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable the channel.
        #[arg(long)]
        disable: bool,
    },
    /// Delete a tenant's channel (its delivery log stays).
    ///
    /// Asks you to type the channel id unless --yes is given.
    Delete {
        /// Channel id.
        id: Uuid,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Send a test message to a channel now and print how it went.
    Test {
        /// Channel id.
        id: Uuid,
    },
    /// Give a webhook channel a new signing secret (printed once); the old one signs for another day.
    RotateSecret {
        /// Channel id.
        id: Uuid,
    },
    /// The delivery log, newest first.
    Deliveries {
        /// Only this tenant's.
        #[arg(long, value_name = "ID", conflicts_with = "operator")]
        tenant: Option<Uuid>,
        /// Only the operator's channels'.
        #[arg(long)]
        operator: bool,
        /// Only this channel's.
        #[arg(long, value_name = "ID")]
        channel_id: Option<Uuid>,
        /// Only deliveries in this status.
        #[arg(long, value_parser = one_of(DeliveryStatus::ALL, DeliveryStatus::as_str))]
        status: Option<DeliveryStatus>,
        /// Only this event type or family (node.*).
        #[arg(long, value_name = "TYPE")]
        event_type: Option<String>,
        /// At most this many (1 to 500) [default: 50].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show one delivery with its attempts.
    Delivery {
        /// Delivery id.
        id: Uuid,
    },
    /// Queue a delivery again for one more attempt now.
    Redeliver {
        /// Delivery id.
        id: Uuid,
    },
}

pub async fn run(args: NotificationsArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        NotificationsCommand::Channels { tenant } => {
            let path = match tenant {
                Some(t) => format!("tenants/{t}/notifications/channels"),
                None => "notifications/channels".to_owned(),
            };
            show(json, &api.get(&path, &[]).await?, channels)
        }
        NotificationsCommand::Create {
            tenant,
            channel,
            destination,
            events,
            disabled,
        } => {
            let body = compact(json!({
                "channel": channel,
                "destination": destination,
                "event_types": events,
                "enabled": disabled.then_some(false),
            }));
            let c = api
                .post(&format!("tenants/{tenant}/notifications/channels"), body)
                .await?;
            show(json, &c, channel_detail)
        }
        NotificationsCommand::Get { id } => show(
            json,
            &api.get(&format!("notifications/channels/{id}"), &[]).await?,
            channel_detail,
        ),
        NotificationsCommand::Update {
            id,
            destination,
            events,
            all_events,
            enable,
            disable,
        } => {
            let mut body = compact(json!({
                "destination": destination,
                "event_types": events,
                "enabled": if enable { Some(true) } else if disable { Some(false) } else { None },
            }));
            if all_events {
                if let Value::Object(m) = &mut body {
                    m.insert("event_types".into(), Value::Null);
                }
            }
            require_change(&body, "--destination, --events, --all-events, --enable, --disable")?;
            let c = api.patch(&format!("notifications/channels/{id}"), body).await?;
            show(json, &c, channel_detail)
        }
        NotificationsCommand::Delete { id, yes } => {
            if !yes {
                let c = api.get(&format!("notifications/channels/{id}"), &[]).await?;
                let action = format!(
                    "delete the {} channel to {} (its delivery log stays)",
                    text(&c, "channel", "?"),
                    text(&c, "destination", "?")
                );
                confirm(&action, "the channel id", &id.to_string())?;
            }
            api.delete(&format!("notifications/channels/{id}")).await?;
            if !json {
                output::line(&format!("channel {id} deleted"));
            }
            Ok(())
        }
        NotificationsCommand::Test { id } => {
            let d = api
                .post(&format!("notifications/channels/{id}/test"), json!({}))
                .await?;
            show(json, &d, delivery_detail)
        }
        NotificationsCommand::RotateSecret { id } => {
            let c = api
                .post(&format!("notifications/channels/{id}/rotate-secret"), json!({}))
                .await?;
            show(json, &c, channel_detail)
        }
        NotificationsCommand::Deliveries {
            tenant,
            operator,
            channel_id,
            status,
            event_type,
            limit,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(t) = tenant {
                query.push(("tenant_id", t.to_string()));
            }
            if operator {
                query.push(("operator", "true".into()));
            }
            if let Some(c) = channel_id {
                query.push(("channel_id", c.to_string()));
            }
            if let Some(s) = status {
                query.push(("status", s.to_string()));
            }
            if let Some(t) = event_type {
                query.push(("event_type", t));
            }
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            show(json, &api.get("notifications/deliveries", &query).await?, deliveries)
        }
        NotificationsCommand::Delivery { id } => show(
            json,
            &api.get(&format!("notifications/deliveries/{id}"), &[]).await?,
            delivery_detail,
        ),
        NotificationsCommand::Redeliver { id } => {
            let d = api
                .post(&format!("notifications/deliveries/{id}/redeliver"), json!({}))
                .await?;
            show(json, &d, |d| {
                output::line(&format!("delivery {} queued again", text(d, "id", "?")));
            })
        }
    }
}

fn channels(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|c| {
            vec![
                text(c, "id", "-"),
                text(c, "channel", "-"),
                text(c, "destination", "-"),
                if c["enabled"] == true {
                    "yes".into()
                } else {
                    "no".into()
                },
                text(c, "event_types", "all"),
                text(c, "disabled_reason", ""),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no channels");
        return;
    }
    output::table(
        &["id", "channel", "destination", "enabled", "events", "disabled because"],
        &rows,
    );
}

fn channel_detail(c: &Value) {
    details(&[
        ("id", text(c, "id", "-")),
        ("tenant", text(c, "tenant_id", "operator")),
        ("channel", text(c, "channel", "-")),
        ("destination", text(c, "destination", "-")),
        ("enabled", text(c, "enabled", "-")),
        ("events", text(c, "event_types", "all")),
        ("disabled because", text(c, "disabled_reason", "-")),
        ("signing secrets", text(c, "signing_secrets", "-")),
        ("created", when(c, "created_at", "-")),
        ("updated", when(c, "updated_at", "-")),
    ]);
    if let Some(secret) = c["signing_secret"].as_str() {
        output::line("");
        output::line(&format!(
            "signing secret (shown once; receivers verify with it): {secret}"
        ));
    }
}

fn deliveries(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|d| {
            vec![
                text(d, "id", "-"),
                when(d, "created_at", "-"),
                text(d, "event_type", "-"),
                text(d, "channel", "-"),
                text(d, "status", "-"),
                format!("{}/{}", text(d, "attempts", "0"), text(d, "max_attempts", "?")),
                text(d, "response_status", "-"),
                text(d, "error", ""),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no deliveries");
        return;
    }
    output::table(
        &[
            "id", "created", "event", "channel", "status", "attempts", "answer", "error",
        ],
        &rows,
    );
}

fn delivery_detail(d: &Value) {
    details(&[
        ("id", text(d, "id", "-")),
        ("event", text(d, "event_type", "-")),
        ("channel", text(d, "channel", "-")),
        ("status", text(d, "status", "-")),
        (
            "attempts",
            format!("{} of {}", text(d, "attempts", "0"), text(d, "max_attempts", "?")),
        ),
        ("answer", text(d, "response_status", "-")),
        ("error", text(d, "error", "-")),
        ("next attempt", when(d, "next_attempt_at", "-")),
        ("sent", when(d, "sent_at", "-")),
    ]);
    let attempts: Vec<Vec<String>> = d["attempt_log"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            vec![
                text(a, "attempt", "-"),
                when(a, "started_at", "-"),
                text(a, "outcome", "-"),
                text(a, "response_status", "-"),
                format!("{} ms", text(a, "duration_ms", "?")),
                text(a, "error", ""),
            ]
        })
        .collect();
    if !attempts.is_empty() {
        output::line("");
        output::table(&["#", "at", "outcome", "answer", "took", "error"], &attempts);
    }
}
