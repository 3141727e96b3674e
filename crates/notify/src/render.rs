//! What each channel receives, in its provider's documented format:
//! Discord `embeds`, Slack Block Kit `blocks` with a `text` fallback, an
//! email with plain-text and HTML parts, and the Standard Webhooks body
//! `{"type", "timestamp", "data"}`.

use chrono::{DateTime, SecondsFormat, Utc};
use crosslogic_core::{Event, EventSeverity};
use serde_json::{json, Value};

/// An event ready to be rendered.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event type (`node.dead`).
    pub event_type: String,
    pub severity: EventSeverity,
    /// The typed event, when its payload matches the catalogue.
    pub event: Option<Event>,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    /// The tenant's name for tenant events.
    pub tenant: Option<String>,
}

/// Discord: at most 25 fields of at most 1024 characters each.
const DISCORD_FIELDS: usize = 25;
const DISCORD_FIELD_CHARS: usize = 1024;
/// Slack: at most 10 fields per section, 2000 characters each.
const SLACK_FIELDS: usize = 10;

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

impl Message {
    /// One line saying what happened.
    pub fn title(&self) -> String {
        let p = &self.payload;
        let s = |k: &str| p.get(k).map(text_of).unwrap_or_else(|| "?".into());
        let line = match &self.event {
            Some(Event::NodeDead(_)) => format!("Node {} is dead", s("cluster_name")),
            Some(Event::NodeUnhealthy(_)) => format!("Node {} is unhealthy", s("cluster_name")),
            Some(Event::NodePreempted(_)) => format!("Spot node {} is being preempted", s("cluster_name")),
            Some(Event::NodeLaunchFailed(_)) => format!("Launching {} failed", s("cluster_name")),
            Some(Event::NodeActive(_)) => format!("Node {} is serving", s("cluster_name")),
            Some(Event::DeploymentDegraded(_)) => format!("Deployment {} is below its minimum replicas", s("name")),
            Some(Event::DeploymentScaled(_)) => format!("Deployment {} scaled ({})", s("deployment"), s("action")),
            Some(Event::QuotaWarning(_)) => format!(
                "Environment {} used {}% of its daily tokens",
                s("environment"),
                s("percent")
            ),
            Some(Event::QuotaExhausted(_)) => format!("Environment {} used all of its daily tokens", s("environment")),
            Some(Event::KeyExpiring(_)) => format!("API key {} expires on {}", s("key_prefix"), s("expires_at")),
            Some(Event::ApiKeyRevoked(_)) => format!("API key {} was revoked", s("key_prefix")),
            Some(Event::ChannelDisabled(_)) => format!("Notification channel {} was disabled", s("channel")),
            _ => self.event_type.clone(),
        };
        match &self.tenant {
            Some(t) => format!("{line} — {t}"),
            None => line,
        }
    }

    /// A sentence with the reason, when the payload has one.
    pub fn description(&self) -> String {
        let why = ["detail", "error", "reason"]
            .iter()
            .find_map(|k| self.payload.get(*k).and_then(Value::as_str))
            .map(|d| format!("\n{d}"))
            .unwrap_or_default();
        format!("`{}` ({}){why}", self.event_type, self.severity)
    }

    /// The payload's fields in order, for tables.
    pub fn fields(&self) -> Vec<(String, String)> {
        match &self.payload {
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "detail" | "error" | "reason"))
                .map(|(k, v)| (k.clone(), text_of(v)))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn timestamp(&self) -> String {
        self.created_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

/// Discord's embed colour for a severity.
fn colour(s: EventSeverity) -> u32 {
    match s {
        EventSeverity::Info => 0x3498db,
        EventSeverity::Warning => 0xf39c12,
        EventSeverity::Critical => 0xe74c3c,
    }
}

/// A Discord incoming-webhook body.
pub fn discord(m: &Message) -> Value {
    let fields: Vec<Value> = m
        .fields()
        .into_iter()
        .take(DISCORD_FIELDS)
        .map(|(k, v)| json!({ "name": cut(&k, 256), "value": cut(&v, DISCORD_FIELD_CHARS), "inline": true }))
        .collect();
    json!({
        "username": "CrossLogic",
        "embeds": [{
            "title": cut(&m.title(), 256),
            "description": cut(&m.description(), 4096),
            "color": colour(m.severity),
            "fields": fields,
            "timestamp": m.timestamp(),
            "footer": { "text": m.event_type },
        }],
    })
}

/// A Slack incoming-webhook body: Block Kit blocks and the `text` fallback
/// notifications show.
pub fn slack(m: &Message) -> Value {
    let fields: Vec<Value> = m
        .fields()
        .into_iter()
        .take(SLACK_FIELDS)
        .map(|(k, v)| json!({ "type": "mrkdwn", "text": cut(&format!("*{k}*\n{v}"), 2000) }))
        .collect();
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": cut(&m.title(), 150) } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(&m.description(), 3000) } }),
    ];
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": format!("{} · {} · {}", m.event_type, m.severity, m.timestamp()) }],
    }));
    json!({ "text": cut(&m.title(), 3000), "blocks": blocks })
}

/// The Standard Webhooks body.
pub fn webhook(m: &Message) -> Value {
    json!({ "type": m.event_type, "timestamp": m.timestamp(), "data": m.payload })
}

/// An email: subject, plain text and HTML.
pub fn email(m: &Message) -> (String, String, String) {
    let scope = m.tenant.clone().unwrap_or_else(|| "platform".to_owned());
    let subject = format!("[CrossLogic] {} — {} ({scope})", m.event_type, m.severity);
    let mut text = format!("{}\n\n{}\n\n", m.title(), m.description().replace('`', ""));
    let mut rows = String::new();
    for (k, v) in m.fields() {
        text.push_str(&format!("{k}: {v}\n"));
        rows.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape(&k),
            escape(&v)
        ));
    }
    text.push_str(&format!("\nat {}\n", m.timestamp()));
    let html = format!(
        "<!doctype html><html><body><h2>{}</h2><p>{}</p><table>{rows}</table><p><small>{} · {}</small></p></body></html>",
        escape(&m.title()),
        escape(&m.description().replace('`', "")).replace('\n', "<br>"),
        escape(&m.event_type),
        m.timestamp()
    );
    (subject, text, html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crosslogic_core::events::{example, EventKind};

    fn message(kind: EventKind) -> Message {
        let e = example(kind);
        Message {
            event_type: kind.as_str().to_owned(),
            severity: e.severity(),
            payload: e.payload(),
            event: Some(e),
            created_at: Utc::now(),
            tenant: Some("Acme <ops>".into()),
        }
    }

    #[test]
    fn discord_embeds_stay_within_discords_limits() {
        for kind in EventKind::ALL {
            let body = discord(&message(*kind));
            let embed = &body["embeds"][0];
            assert!(embed["title"].as_str().unwrap().chars().count() <= 256);
            let fields = embed["fields"].as_array().unwrap();
            assert!(fields.len() <= 25);
            assert!(fields
                .iter()
                .all(|f| f["value"].as_str().unwrap().chars().count() <= 1024));
        }
        let body = discord(&message(EventKind::NodeDead));
        assert_eq!(body["embeds"][0]["color"], 0xf39c12);
        assert!(body["embeds"][0]["title"].as_str().unwrap().contains("is dead"));
    }

    #[test]
    fn slack_blocks_have_a_text_fallback_and_at_most_ten_fields() {
        let body = slack(&message(EventKind::DeploymentCreated));
        assert!(body["text"].as_str().unwrap().len() > 3);
        let sections: Vec<&Value> = body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b.get("fields").is_some())
            .collect();
        assert!(sections.iter().all(|s| s["fields"].as_array().unwrap().len() <= 10));
    }

    #[test]
    fn emails_name_the_event_and_the_tenant_and_escape_html() {
        let (subject, text, html) = email(&message(EventKind::QuotaExhausted));
        assert!(
            subject.contains("quota.exhausted") && subject.contains("Acme"),
            "{subject}"
        );
        assert!(text.contains("used_tokens: 1000412"), "{text}");
        assert!(html.contains("Acme &lt;ops&gt;") && !html.contains("<ops>"), "{html}");
    }

    #[test]
    fn webhook_bodies_are_type_timestamp_and_data() {
        let m = message(EventKind::ApiKeyRevoked);
        let body = webhook(&m);
        assert_eq!(body["type"], "apikey.revoked");
        assert_eq!(body["data"], m.payload);
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
