//! Sending one message to one channel: HTTP for Discord, Slack and signed
//! webhooks (15 s per attempt, redirects not followed — a 3xx is a
//! failure), SMTP through lettre for email. The answer is classified by
//! `crosslogic_core::delivery::classify`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crosslogic_config::SmtpSettings;
use crosslogic_core::delivery::{classify, Verdict};
use crosslogic_core::NotificationChannel;
use crosslogic_db::repo::notifications::SigningSecret;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::guard;
use crate::render::{self, Message};

/// At most this much of a receiver's answer is kept.
const BODY_EXCERPT: usize = 2048;

/// Where one message goes.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub channel: NotificationChannel,
    /// The webhook URL or the comma-separated addresses.
    pub destination: &'a str,
    /// A tenant's channel: checked against the SSRF rules at send time.
    pub tenant_owned: bool,
    /// Webhook channels: the secrets to sign with.
    pub secrets: &'a [SigningSecret],
    /// `webhook-id`: the event's id, the same on every retry.
    pub message_id: &'a str,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Answer {
    pub verdict: Verdict,
    pub status: Option<u16>,
    /// The start of what the receiver answered.
    pub body: Option<String>,
    /// Why nothing usable came back (connect error, timeout, refusal).
    pub error: Option<String>,
    /// What was sent (without secrets), for the delivery log.
    pub request: Value,
    /// The receiver asked not to be sent anything for this long (Discord's
    /// rate-limit headers, a 429's `Retry-After`).
    pub hold_for: Option<Duration>,
    pub took: Duration,
}

impl Answer {
    fn failed(error: String, request: Value, started: Instant) -> Answer {
        Answer {
            verdict: Verdict::Retry { not_before: None },
            status: None,
            body: None,
            error: Some(error),
            request,
            hold_for: None,
            took: started.elapsed(),
        }
    }
}

/// The clients messages leave through.
#[derive(Clone)]
pub struct Transport {
    /// For tenant channels: its resolver only answers public addresses.
    tenant_http: reqwest::Client,
    /// For the operator's channels, which may be internal.
    operator_http: reqwest::Client,
    smtp: Option<Arc<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>>,
    allow_private: bool,
}

/// The transport could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

impl Transport {
    /// Clients with `timeout` per attempt; SMTP when configured.
    pub fn new(
        timeout: Duration,
        allow_private: bool,
        smtp: Option<&SmtpSettings>,
    ) -> Result<Transport, TransportError> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("CrossLogic-Notifications/", env!("CARGO_PKG_VERSION")))
                .pool_max_idle_per_host(8)
        };
        let mut tenant = builder();
        if !allow_private {
            tenant = tenant.dns_resolver(Arc::new(guard::PublicOnly));
        }
        let http_err = |e: reqwest::Error| TransportError(format!("HTTP client: {e}"));
        let smtp = match smtp {
            None => None,
            Some(s) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(s.url.expose_secret())
                    .map_err(|e| TransportError(format!("SMTP_URL: {e}")))?
                    .timeout(Some(timeout))
                    .build();
                let from: Mailbox = s
                    .from
                    .parse()
                    .map_err(|e| TransportError(format!("SMTP_FROM {:?}: {e}", s.from)))?;
                Some(Arc::new((transport, from)))
            }
        };
        Ok(Transport {
            tenant_http: tenant.build().map_err(http_err)?,
            operator_http: builder().build().map_err(http_err)?,
            smtp,
            allow_private,
        })
    }

    /// Sends `message` to `target` once.
    pub async fn send(&self, target: &Target<'_>, message: &Message) -> Answer {
        match target.channel {
            NotificationChannel::Email => self.email(target, message).await,
            NotificationChannel::Discord => self.http(target, render::discord(message)).await,
            NotificationChannel::Slack => self.http(target, render::slack(message)).await,
            NotificationChannel::Webhook => self.http(target, render::webhook(message)).await,
        }
    }

    async fn http(&self, target: &Target<'_>, body: Value) -> Answer {
        let started = Instant::now();
        if target.tenant_owned {
            if let Err(why) = guard::check_url(target.destination, self.allow_private) {
                return Answer {
                    verdict: Verdict::Gone(format!("the channel URL {why}")),
                    ..Answer::failed(format!("refused: the channel URL {why}"), body, started)
                };
            }
        }
        let bytes = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => return Answer::failed(format!("cannot encode the body: {e}"), body, started),
        };
        let client = if target.tenant_owned {
            &self.tenant_http
        } else {
            &self.operator_http
        };
        let mut req = client
            .post(target.destination)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if target.channel == NotificationChannel::Webhook {
            match sign(target, &bytes) {
                Ok(headers) => {
                    for (k, v) in headers {
                        req = req.header(k, v);
                    }
                }
                Err(e) => return Answer::failed(e, body, started),
            }
        }
        let resp = match req.body(bytes).send().await {
            Ok(r) => r,
            Err(e) => {
                // reqwest names the URL in its errors: the URL holds secrets.
                let e = e.without_url();
                let why = if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    // reqwest's chain names the cause (refused, DNS, TLS).
                    let mut s = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(inner) = src {
                        s = format!("{s}: {inner}");
                        src = inner.source();
                    }
                    s
                };
                return Answer::failed(why, body, started);
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut text = resp.text().await.unwrap_or_default();
        if text.len() > BODY_EXCERPT {
            let mut end = BODY_EXCERPT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let retry_after = retry_after(&headers, &text);
        let hold_for = rate_limit_hold(&headers).or(if status == 429 { retry_after } else { None });
        Answer {
            verdict: classify(target.channel, Some(status), &text, retry_after),
            status: Some(status),
            body: Some(text),
            error: None,
            request: body,
            hold_for,
            took: started.elapsed(),
        }
    }

    async fn email(&self, target: &Target<'_>, message: &Message) -> Answer {
        let started = Instant::now();
        let (subject, text, html) = render::email(message);
        let request = serde_json::json!({ "to": target.destination, "subject": subject });
        let Some(smtp) = &self.smtp else {
            return Answer::failed(
                "email is not configured: set SMTP_URL (or SMTP_HOST) and SMTP_FROM".into(),
                request,
                started,
            );
        };
        let (transport, from) = &**smtp;
        let mut builder = lettre::Message::builder().from(from.clone()).subject(subject);
        for addr in target.destination.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match addr.parse::<Mailbox>() {
                Ok(mb) => builder = builder.to(mb),
                Err(e) => {
                    return Answer {
                        verdict: Verdict::Gone(format!("{addr:?} is not an address: {e}")),
                        ..Answer::failed(format!("{addr:?} is not an address: {e}"), request, started)
                    }
                }
            }
        }
        let email = match builder.multipart(MultiPart::alternative_plain_html(text, html)) {
            Ok(m) => m,
            Err(e) => return Answer::failed(format!("cannot build the email: {e}"), request, started),
        };
        match transport.send(email).await {
            Ok(resp) => Answer {
                verdict: Verdict::Sent,
                status: Some(u16::from(resp.code())),
                body: Some(resp.message().collect::<Vec<_>>().join(" ")),
                error: None,
                request,
                hold_for: None,
                took: started.elapsed(),
            },
            Err(e) if e.is_permanent() => Answer {
                verdict: Verdict::Gone(format!("the mail server refused it for good: {e}")),
                ..Answer::failed(e.to_string(), request, started)
            },
            Err(e) => Answer::failed(format!("SMTP: {e}"), request, started),
        }
    }
}

/// The Standard Webhooks headers for `body`: one `v1,` signature per valid
/// secret, space-separated, signed by the official `standardwebhooks` crate.
fn sign(target: &Target<'_>, body: &[u8]) -> Result<Vec<(&'static str, String)>, String> {
    let now = chrono::Utc::now();
    let timestamp = now.timestamp();
    let mut signatures = Vec::new();
    for s in target.secrets.iter().filter(|s| s.expires_at.is_none_or(|e| e > now)) {
        let wh = standardwebhooks::Webhook::new(&s.secret).map_err(|e| format!("signing secret: {e}"))?;
        signatures.push(
            wh.sign(target.message_id, timestamp, body)
                .map_err(|e| format!("signing: {e}"))?,
        );
    }
    if signatures.is_empty() {
        return Err("the channel has no signing secret".into());
    }
    Ok(vec![
        (standardwebhooks::HEADER_WEBHOOK_ID, target.message_id.to_owned()),
        (standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string()),
        (standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signatures.join(" ")),
    ])
}

fn seconds(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// `Retry-After` (seconds or an HTTP date), or Discord's JSON `retry_after`.
fn retry_after(headers: &reqwest::header::HeaderMap, body: &str) -> Option<Duration> {
    let header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            seconds(v).or_else(|| {
                let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
                (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
            })
        });
    let discord = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64))
        .and_then(|s| seconds(&s.to_string()));
    match (header, discord) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Discord's bucket: `X-RateLimit-Remaining: 0` → wait
/// `X-RateLimit-Reset-After` seconds before the next message.
fn rate_limit_hold(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    if get("x-ratelimit-remaining")? != "0" {
        return None;
    }
    seconds(get("x-ratelimit-reset-after")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn waits_come_from_retry_after_and_discords_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, ""), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(
                &HeaderMap::new(),
                r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#
            ),
            Some(Duration::from_millis(1500))
        );
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset-after", HeaderValue::from_static("0.25"));
        assert_eq!(rate_limit_hold(&h), Some(Duration::from_millis(250)));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("4"));
        assert_eq!(rate_limit_hold(&h), None);
    }

    #[test]
    fn signatures_verify_with_the_standard_library_and_cover_every_live_secret() {
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let new = "whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQgb2YgMzIgYnl0ZXM=";
        let now = chrono::Utc::now();
        let secrets = vec![
            SigningSecret {
                secret: old.into(),
                created_at: now,
                expires_at: Some(now + chrono::Duration::hours(1)),
            },
            SigningSecret {
                secret: new.into(),
                created_at: now,
                expires_at: None,
            },
        ];
        let target = Target {
            channel: NotificationChannel::Webhook,
            destination: "https://hooks.example.com",
            tenant_owned: true,
            secrets: &secrets,
            message_id: "msg_1",
        };
        let body = br#"{"type":"node.dead"}"#;
        let headers = sign(&target, body).unwrap();
        let mut map = http::HeaderMap::new();
        for (k, v) in &headers {
            map.insert(*k, v.parse().unwrap());
        }
        for secret in [old, new] {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(body, &map)
                .unwrap();
        }
        assert_eq!(headers[2].1.split(' ').count(), 2);
    }
}
