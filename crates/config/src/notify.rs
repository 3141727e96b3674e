//! Settings of notification delivery: the operator's channels (`NOTIFY_*`),
//! the SMTP relay for email channels (`SMTP_*`), retries and the watchers
//! that publish quota, key-expiry and degraded-deployment events.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::{parse, ConfigError};

/// Minimum severity of an event sent to the operator's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// Its name (`info`, `warning`, `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// TLS toward the SMTP relay (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (a relay on this host or a test server).
    None,
    /// STARTTLS, required (submission port 587).
    StartTls,
    /// Implicit TLS (SMTPS, port 465).
    Tls,
}

/// The SMTP relay email channels send through.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// A lettre connection URL: `smtp://[user:pass@]host:port[?tls=required]`
    /// or `smtps://…` (from `SMTP_URL`, or built from `SMTP_HOST`, `SMTP_PORT`,
    /// `SMTP_USER`, `SMTP_PASSWORD`, `SMTP_TLS`). Holds the password.
    pub url: SecretString,
    /// The sender address (`SMTP_FROM`), e.g. `CrossLogic <alerts@example.com>`.
    pub from: String,
}

/// Notification settings.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `NOTIFY_DISCORD_WEBHOOK_URL`: the operator's Discord incoming webhook.
    pub discord_webhook_url: Option<SecretString>,
    /// `NOTIFY_SLACK_WEBHOOK_URL`: the operator's Slack incoming webhook.
    pub slack_webhook_url: Option<SecretString>,
    /// `NOTIFY_EMAIL_TO`: the operator's addresses (comma-separated).
    pub email_to: Vec<String>,
    /// `NOTIFY_WEBHOOK_URL`: the operator's signed webhook receiver…
    pub webhook_url: Option<SecretString>,
    /// …and `NOTIFY_WEBHOOK_SECRET`, its `whsec_…` signing secret.
    pub webhook_secret: Option<SecretString>,
    /// `NOTIFY_MIN_SEVERITY` (`warning`): lesser events skip operator channels.
    pub min_severity: Severity,
    /// `NOTIFY_RETRY_SCHEDULE`: the delay before each attempt (the Standard
    /// Webhooks schedule: `0s,5s,5m,30m,2h,5h,10h,14h,20h,24h`).
    pub retry_schedule: Vec<Duration>,
    /// `NOTIFY_TIMEOUT` (15s): one attempt's limit.
    pub timeout: Duration,
    /// `NOTIFY_ALLOW_PRIVATE_TARGETS` (false): let tenant channels reach
    /// loopback, private and link-local addresses (on-prem, tests).
    pub allow_private_targets: bool,
    /// The SMTP relay, when email channels are to work.
    pub smtp: Option<SmtpSettings>,
    /// `KEY_EXPIRY_WARNING` (3 days): how long before an API key expires
    /// `key.expiring` is published.
    pub key_expiry_warning: Duration,
    /// `DEPLOYMENT_DEGRADED_AFTER` (5m): how long a deployment may stay
    /// below its minimum before `deployment.degraded`.
    pub deployment_degraded_after: Duration,
}

fn webhook_url(var: &str, value: &str) -> Result<SecretString, ConfigError> {
    let url = url::Url::parse(value).map_err(|e| {
        ConfigError::new(
            var,
            format!("not a URL ({e}): expected https://… (the incoming webhook's URL)"),
        )
    })?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(SecretString::from(value.to_owned())),
        _ => Err(ConfigError::new(
            var,
            "expected an http(s):// URL (the incoming webhook's URL)",
        )),
    }
}

fn email(var: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let ok = v
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !v.contains(char::is_whitespace));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ConfigError::new(
            var,
            format!("{v:?} is not an email address: expected e.g. ops@example.com"),
        ))
    }
}

/// A `whsec_` + base64 secret of 24 to 64 bytes (the Standard Webhooks form).
pub fn webhook_secret(var: &str, value: &str) -> Result<SecretString, ConfigError> {
    use base64::Engine;
    let bad = || {
        ConfigError::new(
            var,
            "expected whsec_ followed by base64 of 24 to 64 random bytes \
             (e.g. echo whsec_$(openssl rand -base64 32))",
        )
    };
    let body = value.strip_prefix("whsec_").ok_or_else(bad)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad())?;
    if !(24..=64).contains(&key.len()) {
        return Err(bad());
    }
    Ok(SecretString::from(value.to_owned()))
}

fn smtp<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<Option<SmtpSettings>, ConfigError> {
    let url = match (get("SMTP_URL"), get("SMTP_HOST")) {
        (Some(u), _) => {
            let parsed = url::Url::parse(u).map_err(|e| {
                ConfigError::new(
                    "SMTP_URL",
                    format!("not a URL ({e}): expected smtp://user:pass@host:587?tls=required or smtps://…"),
                )
            })?;
            if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host().is_none() {
                return Err(ConfigError::new(
                    "SMTP_URL",
                    "expected smtp://[user:pass@]host:port[?tls=required] or smtps://[user:pass@]host:port",
                ));
            }
            SecretString::from(u.to_owned())
        }
        (None, Some(host)) => {
            let tls = match get("SMTP_TLS") {
                None | Some("starttls") => SmtpTls::StartTls,
                Some("tls") => SmtpTls::Tls,
                Some("none") => SmtpTls::None,
                Some(other) => {
                    return Err(ConfigError::new(
                        "SMTP_TLS",
                        format!("invalid value {other:?}: expected starttls, tls or none"),
                    ))
                }
            };
            let port = match get("SMTP_PORT") {
                Some(p) => parse::u32_in("SMTP_PORT", p, 1, 65_535)?,
                None => match tls {
                    SmtpTls::Tls => 465,
                    SmtpTls::StartTls => 587,
                    SmtpTls::None => 25,
                },
            };
            let scheme = if tls == SmtpTls::Tls { "smtps" } else { "smtp" };
            let mut u = url::Url::parse(&format!("{scheme}://localhost/"))
                .map_err(|e| ConfigError::new("SMTP_HOST", e.to_string()))?;
            u.set_host(Some(host))
                .map_err(|e| ConfigError::new("SMTP_HOST", format!("{host:?} is not a host name ({e})")))?;
            let _ = u.set_port(u16::try_from(port).ok());
            if let Some(user) = get("SMTP_USER") {
                let _ = u.set_username(user);
                if let Some(pw) = get("SMTP_PASSWORD") {
                    let _ = u.set_password(Some(pw));
                }
            }
            let mut text = u.to_string().trim_end_matches('/').to_owned();
            if tls == SmtpTls::StartTls {
                text.push_str("?tls=required");
            }
            SecretString::from(text)
        }
        (None, None) => return Ok(None),
    };
    let from = match get("SMTP_FROM") {
        Some(f) => f.trim().to_owned(),
        None => {
            return Err(ConfigError::new(
                "SMTP_FROM",
                "required with SMTP_URL or SMTP_HOST: the sender address, e.g. \"CrossLogic <alerts@example.com>\"",
            ))
        }
    };
    if !from.contains('@') {
        return Err(ConfigError::new(
            "SMTP_FROM",
            format!("{from:?} is not an address: expected e.g. alerts@example.com or \"Name <alerts@example.com>\""),
        ));
    }
    Ok(Some(SmtpSettings { url, from }))
}

impl NotifySettings {
    pub(crate) fn from_vars<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<NotifySettings, ConfigError> {
        let url = |var: &str| get(var).map(|v| webhook_url(var, v)).transpose();
        let discord_webhook_url = url("NOTIFY_DISCORD_WEBHOOK_URL")?;
        let slack_webhook_url = url("NOTIFY_SLACK_WEBHOOK_URL")?;
        let webhook_url = url("NOTIFY_WEBHOOK_URL")?;
        let webhook_secret = get("NOTIFY_WEBHOOK_SECRET")
            .map(|v| webhook_secret("NOTIFY_WEBHOOK_SECRET", v))
            .transpose()?;
        if webhook_url.is_some() && webhook_secret.is_none() {
            return Err(ConfigError::new(
                "NOTIFY_WEBHOOK_SECRET",
                "required with NOTIFY_WEBHOOK_URL: the whsec_… secret the receiver verifies signatures with \
                 (e.g. echo whsec_$(openssl rand -base64 32))",
            ));
        }
        let email_to = match get("NOTIFY_EMAIL_TO") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .filter(|a| !a.trim().is_empty())
                .map(|a| email("NOTIFY_EMAIL_TO", a))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let min_severity = match get("NOTIFY_MIN_SEVERITY") {
            None | Some("warning") => Severity::Warning,
            Some("info") => Severity::Info,
            Some("critical") => Severity::Critical,
            Some(other) => {
                return Err(ConfigError::new(
                    "NOTIFY_MIN_SEVERITY",
                    format!("invalid value {other:?}: expected info, warning or critical"),
                ))
            }
        };
        let retry_schedule = match get("NOTIFY_RETRY_SCHEDULE") {
            None => [0, 5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400]
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            Some(v) => {
                let list = v
                    .split(',')
                    .map(|d| parse::duration_var("NOTIFY_RETRY_SCHEDULE", d))
                    .collect::<Result<Vec<_>, _>>()?;
                if list.is_empty() || list.len() > 50 {
                    return Err(ConfigError::new(
                        "NOTIFY_RETRY_SCHEDULE",
                        "expected 1 to 50 comma-separated delays, e.g. 0s,5s,5m,30m,2h",
                    ));
                }
                list
            }
        };
        let duration = |var: &str, default: Duration| -> Result<Duration, ConfigError> {
            match get(var) {
                Some(v) => {
                    let d = parse::duration_var(var, v)?;
                    if d.is_zero() {
                        return Err(ConfigError::new(var, "must be longer than 0"));
                    }
                    Ok(d)
                }
                None => Ok(default),
            }
        };
        let allow_private_targets = match get("NOTIFY_ALLOW_PRIVATE_TARGETS") {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "NOTIFY_ALLOW_PRIVATE_TARGETS",
                    format!("invalid value {other:?}: expected true or false"),
                ))
            }
        };
        Ok(NotifySettings {
            discord_webhook_url,
            slack_webhook_url,
            email_to,
            webhook_url,
            webhook_secret,
            min_severity,
            retry_schedule,
            timeout: duration("NOTIFY_TIMEOUT", Duration::from_secs(15))?,
            allow_private_targets,
            smtp: smtp(get)?,
            key_expiry_warning: duration("KEY_EXPIRY_WARNING", Duration::from_secs(3 * 86_400))?,
            deployment_degraded_after: duration("DEPLOYMENT_DEGRADED_AFTER", Duration::from_secs(300))?,
        })
    }

    pub(crate) fn report(&self, out: &mut Vec<(String, String)>) {
        let secret = |v: &Option<SecretString>| match v {
            Some(s) => mask_url(s.expose_secret()),
            None => "(unset)".to_owned(),
        };
        out.push(("NOTIFY_DISCORD_WEBHOOK_URL".into(), secret(&self.discord_webhook_url)));
        out.push(("NOTIFY_SLACK_WEBHOOK_URL".into(), secret(&self.slack_webhook_url)));
        out.push((
            "NOTIFY_EMAIL_TO".into(),
            if self.email_to.is_empty() {
                "(unset)".into()
            } else {
                self.email_to.join(",")
            },
        ));
        out.push(("NOTIFY_WEBHOOK_URL".into(), secret(&self.webhook_url)));
        out.push((
            "NOTIFY_WEBHOOK_SECRET".into(),
            if self.webhook_secret.is_some() {
                "(set, redacted)".into()
            } else {
                "(unset)".into()
            },
        ));
        out.push(("NOTIFY_MIN_SEVERITY".into(), self.min_severity.as_str().into()));
        let d = |d: Duration| humantime::format_duration(d).to_string();
        out.push((
            "NOTIFY_RETRY_SCHEDULE".into(),
            self.retry_schedule.iter().map(|x| d(*x)).collect::<Vec<_>>().join(","),
        ));
        out.push(("NOTIFY_TIMEOUT".into(), d(self.timeout)));
        out.push((
            "NOTIFY_ALLOW_PRIVATE_TARGETS".into(),
            self.allow_private_targets.to_string(),
        ));
        out.push((
            "SMTP_URL".into(),
            match &self.smtp {
                Some(s) => parse::redact_url(&s.url),
                None => "(unset: email channels cannot send)".into(),
            },
        ));
        out.push((
            "SMTP_FROM".into(),
            self.smtp.as_ref().map_or("(unset)".into(), |s| s.from.clone()),
        ));
        out.push(("KEY_EXPIRY_WARNING".into(), d(self.key_expiry_warning)));
        out.push(("DEPLOYMENT_DEGRADED_AFTER".into(), d(self.deployment_degraded_after)));
    }
}

/// A webhook URL shown with everything after the host masked (Discord and
/// Slack URLs carry their token in the path).
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}/…", u.scheme()),
            (Some(h), None) => format!("{}://{h}/…", u.scheme()),
            (None, _) => "(redacted)".into(),
        },
        Err(_) => "(redacted)".into(),
    }
}
