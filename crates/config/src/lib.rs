//! Configuration of the `crosslogic` binary, read once at start.
//!
//! Every value comes from an environment variable (12-factor); command-line
//! flags may override a few of them after parsing. A bad value is reported
//! with the variable's name and what it accepts; secrets (passwords, tokens)
//! are held in [`secrecy::SecretString`] and never appear in `Debug`, errors
//! or [`Config::report`].

mod billing;
mod database;
mod notify;
mod parse;
mod provision;

pub use billing::{BillingSettings, StripeSettings};
pub use notify::{mask_url, webhook_secret, NotifySettings, Severity, SmtpSettings, SmtpTls};
pub use provision::ProvisionSettings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use database::{DatabaseConfig, DatabaseTarget, ExternalDatabase, PoolConfig, SslMode};
pub use parse::parse_duration;

/// A configuration value that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// The environment variable (or flag) at fault.
    pub variable: String,
    /// What is wrong and what is accepted. Never contains a secret.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &str, message: impl Into<String>) -> Self {
        ConfigError {
            variable: variable.to_owned(),
            message: message.into(),
        }
    }
}

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where PostgreSQL is and how to pool connections to it.
    pub database: DatabaseConfig,
    /// HTTP listen address (`LISTEN_ADDR`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Directory for local state: the embedded PostgreSQL cluster, spools
    /// (`CROSSLOGIC_DATA_DIR`, default `./.crosslogic`).
    pub data_dir: PathBuf,
    /// Directory holding `initdb` and `postgres` for the embedded database
    /// (`CROSSLOGIC_PG_BIN`); searched on PATH and usual locations when unset.
    pub pg_bin: Option<PathBuf>,
    /// Redis for shared rate-limit state (`REDIS_URL`); optional.
    pub redis_url: Option<SecretString>,
    /// JuiceFS metadata store of the model volume (`JUICEFS_REDIS_URL`).
    pub juicefs_redis_url: Option<SecretString>,
    /// Operator token for the admin API (`ADMIN_API_TOKEN`).
    pub admin_api_token: Option<SecretString>,
    /// Token hand-added on-prem node agents register with
    /// (`NODE_REGISTRATION_TOKEN`); unset = only launched nodes register.
    pub node_registration_token: Option<SecretString>,
    /// No heartbeat for this long marks a node unhealthy (`NODE_UNHEALTHY_AFTER`, 20s).
    pub node_unhealthy_after: Duration,
    /// No heartbeat for this long marks a node dead (`NODE_DEAD_AFTER`, 60s).
    pub node_dead_after: Duration,
    /// How long shutdown waits for in-flight requests (`SHUTDOWN_TIMEOUT`, 30s).
    pub shutdown_timeout: Duration,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Platform-wide rate limits and limiter policy.
    pub limits: LimitsSettings,
    /// Node provisioners.
    pub provision: ProvisionSettings,
    /// Notification delivery.
    pub notify: NotifySettings,
    /// Billing: Stripe, grace period, signup credit, retention.
    pub billing: BillingSettings,
    /// `USAGE_JOURNAL` (`on`): append each completed request's usage to a
    /// local journal before its last byte is sent, so a gateway killed at
    /// any instant loses no usage (`off`: in-memory batches only).
    pub usage_journal: bool,
    /// A console session unused this long ends (`CONSOLE_IDLE_TIMEOUT`, 30m).
    pub console_idle_timeout: Duration,
    /// A console session ends this long after sign-in
    /// (`CONSOLE_SESSION_LIFETIME`, 12h).
    pub console_session_lifetime: Duration,
}

/// Platform-wide limits (`GLOBAL_*`) and the limiter's policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsSettings {
    /// `GLOBAL_REQUESTS_PER_MIN`: all tenants together; unset = no limit.
    pub global_requests_per_min: Option<u64>,
    /// `GLOBAL_TOKENS_PER_MIN`.
    pub global_tokens_per_min: Option<u64>,
    /// `GLOBAL_CONCURRENCY`.
    pub global_concurrency: Option<u64>,
    /// `RATE_LIMIT_FAILURE_MODE`: `open` (default: admit when Redis is
    /// unreachable) or `closed` (refuse with 503).
    pub fail_open: bool,
    /// `RATE_LIMIT_DEFAULT_MAX_TOKENS` (512): completion tokens reserved for
    /// a request that sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// `CONCURRENCY_LEASE_TTL` (10m): how long a concurrency slot outlives a
    /// crashed gateway.
    pub lease_ttl: Duration,
}

impl LimitsSettings {
    fn from_vars<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<LimitsSettings, ConfigError> {
        let limit = |var: &str| -> Result<Option<u64>, ConfigError> {
            get(var)
                .map(|v| parse::u32_in(var, v, 1, u32::MAX).map(u64::from))
                .transpose()
        };
        Ok(LimitsSettings {
            global_requests_per_min: limit("GLOBAL_REQUESTS_PER_MIN")?,
            global_tokens_per_min: limit("GLOBAL_TOKENS_PER_MIN")?,
            global_concurrency: limit("GLOBAL_CONCURRENCY")?,
            fail_open: match get("RATE_LIMIT_FAILURE_MODE") {
                None | Some("open") => true,
                Some("closed") => false,
                Some(other) => {
                    return Err(ConfigError::new(
                        "RATE_LIMIT_FAILURE_MODE",
                        format!("invalid value {other:?}: expected open or closed"),
                    ))
                }
            },
            default_max_tokens: match get("RATE_LIMIT_DEFAULT_MAX_TOKENS") {
                Some(v) => u64::from(parse::u32_in("RATE_LIMIT_DEFAULT_MAX_TOKENS", v, 1, 10_000_000)?),
                None => 512,
            },
            lease_ttl: match get("CONCURRENCY_LEASE_TTL") {
                Some(v) => match parse::duration_var("CONCURRENCY_LEASE_TTL", v)? {
                    d if d.is_zero() => {
                        return Err(ConfigError::new(
                            "CONCURRENCY_LEASE_TTL",
                            "must be longer than 0 (e.g. 10m)",
                        ))
                    }
                    d => d,
                },
                None => Duration::from_secs(600),
            },
        })
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&std::env::vars().collect())
    }

    /// Reads configuration from a variable map (the environment, or a test's).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let database = DatabaseConfig::from_vars(&get)?;
        let listen = match get("LISTEN_ADDR") {
            Some(v) => parse::socket_addr("LISTEN_ADDR", v)?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let data_dir = PathBuf::from(get("CROSSLOGIC_DATA_DIR").unwrap_or(".crosslogic"));
        let pg_bin = get("CROSSLOGIC_PG_BIN").map(PathBuf::from);
        let juicefs_redis_url = match get("JUICEFS_REDIS_URL") {
            Some(v) => Some(parse::redis_url("JUICEFS_REDIS_URL", v)?),
            None => None,
        };
        let redis_url = match get("REDIS_URL") {
            Some(v) => Some(parse::redis_url("REDIS_URL", v)?),
            None => None,
        };
        let admin_api_token = match get("ADMIN_API_TOKEN") {
            Some(v) if v.len() < 16 => {
                return Err(ConfigError::new(
                    "ADMIN_API_TOKEN",
                    "too short: use at least 16 characters (e.g. `openssl rand -hex 32`)",
                ))
            }
            Some(v) => Some(SecretString::from(v.to_owned())),
            None => None,
        };
        let node_registration_token = match get("NODE_REGISTRATION_TOKEN") {
            Some(v) if v.len() < 16 => {
                return Err(ConfigError::new(
                    "NODE_REGISTRATION_TOKEN",
                    "too short: use at least 16 characters (e.g. `openssl rand -hex 32`)",
                ))
            }
            Some(v) => Some(SecretString::from(v.to_owned())),
            None => None,
        };
        let node_unhealthy_after = match get("NODE_UNHEALTHY_AFTER") {
            Some(v) => parse::duration_var("NODE_UNHEALTHY_AFTER", v)?,
            None => Duration::from_secs(20),
        };
        let node_dead_after = match get("NODE_DEAD_AFTER") {
            Some(v) => parse::duration_var("NODE_DEAD_AFTER", v)?,
            None => Duration::from_secs(60),
        };
        if node_unhealthy_after.is_zero() || node_dead_after <= node_unhealthy_after {
            return Err(ConfigError::new(
                "NODE_DEAD_AFTER",
                "must be longer than NODE_UNHEALTHY_AFTER, and both longer than 0 (defaults 60s and 20s)",
            ));
        }
        let shutdown_timeout = match get("SHUTDOWN_TIMEOUT") {
            Some(v) => parse::duration_var("SHUTDOWN_TIMEOUT", v)?,
            None => Duration::from_secs(30),
        };
        let log_format = match get("LOG_FORMAT") {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("invalid value {other:?}: expected text or json"),
                ))
            }
        };
        let limits = LimitsSettings::from_vars(&get)?;
        let provision = ProvisionSettings::from_vars(&get)?;
        let notify = NotifySettings::from_vars(&get)?;
        let billing = BillingSettings::from_vars(&get)?;
        let usage_journal = match get("USAGE_JOURNAL") {
            None | Some("on") | Some("true") | Some("1") => true,
            Some("off") | Some("false") | Some("0") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "USAGE_JOURNAL",
                    format!("invalid value {other:?}: expected on or off"),
                ))
            }
        };
        let console_idle_timeout = positive(get("CONSOLE_IDLE_TIMEOUT"), "CONSOLE_IDLE_TIMEOUT", 30 * 60)?;
        let console_session_lifetime =
            positive(get("CONSOLE_SESSION_LIFETIME"), "CONSOLE_SESSION_LIFETIME", 12 * 3600)?;
        Ok(Config {
            billing,
            usage_journal,
            console_idle_timeout,
            console_session_lifetime,
            limits,
            provision,
            notify,
            database,
            listen,
            data_dir,
            pg_bin,
            redis_url,
            juicefs_redis_url,
            admin_api_token,
            node_registration_token,
            node_unhealthy_after,
            node_dead_after,
            shutdown_timeout,
            log_format,
        })
    }

    /// The effective configuration as `(name, value)` lines for
    /// `crosslogic config check`, with every secret redacted.
    pub fn report(&self) -> Vec<(String, String)> {
        let mut out = self.database.report();
        out.push(("LISTEN_ADDR".into(), self.listen.to_string()));
        out.push(("CROSSLOGIC_DATA_DIR".into(), self.data_dir.display().to_string()));
        out.push((
            "CROSSLOGIC_PG_BIN".into(),
            self.pg_bin
                .as_ref()
                .map_or_else(|| "(search PATH)".into(), |p| p.display().to_string()),
        ));
        out.push((
            "REDIS_URL".into(),
            self.redis_url
                .as_ref()
                .map_or_else(|| "(unset: in-process limits)".into(), parse::redact_url),
        ));
        out.push((
            "JUICEFS_REDIS_URL".into(),
            self.juicefs_redis_url
                .as_ref()
                .map_or_else(|| "(unset)".into(), parse::redact_url),
        ));
        out.push((
            "ADMIN_API_TOKEN".into(),
            if self.admin_api_token.is_some() {
                "(set, redacted)".into()
            } else {
                "(unset: admin API disabled)".into()
            },
        ));
        out.push((
            "NODE_REGISTRATION_TOKEN".into(),
            if self.node_registration_token.is_some() {
                "(set, redacted)".into()
            } else {
                "(unset: only launched nodes register)".into()
            },
        ));
        let opt = |v: Option<u64>| v.map_or_else(|| "(no limit)".to_owned(), |n| n.to_string());
        out.push((
            "GLOBAL_REQUESTS_PER_MIN".into(),
            opt(self.limits.global_requests_per_min),
        ));
        out.push(("GLOBAL_TOKENS_PER_MIN".into(), opt(self.limits.global_tokens_per_min)));
        out.push(("GLOBAL_CONCURRENCY".into(), opt(self.limits.global_concurrency)));
        out.push((
            "RATE_LIMIT_FAILURE_MODE".into(),
            if self.limits.fail_open {
                "open".into()
            } else {
                "closed".into()
            },
        ));
        out.push((
            "RATE_LIMIT_DEFAULT_MAX_TOKENS".into(),
            self.limits.default_max_tokens.to_string(),
        ));
        out.push((
            "CONCURRENCY_LEASE_TTL".into(),
            humantime::format_duration(self.limits.lease_ttl).to_string(),
        ));
        out.push((
            "NODE_UNHEALTHY_AFTER".into(),
            humantime::format_duration(self.node_unhealthy_after).to_string(),
        ));
        out.push((
            "NODE_DEAD_AFTER".into(),
            humantime::format_duration(self.node_dead_after).to_string(),
        ));
        out.push((
            "SHUTDOWN_TIMEOUT".into(),
            humantime::format_duration(self.shutdown_timeout).to_string(),
        ));
        out.push((
            "LOG_FORMAT".into(),
            match self.log_format {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            },
        ));
        self.provision.report(&mut out);
        self.notify.report(&mut out);
        self.billing.report(&mut out);
        out.push((
            "USAGE_JOURNAL".into(),
            if self.usage_journal { "on".into() } else { "off".into() },
        ));
        out.push((
            "CONSOLE_IDLE_TIMEOUT".into(),
            humantime::format_duration(self.console_idle_timeout).to_string(),
        ));
        out.push((
            "CONSOLE_SESSION_LIFETIME".into(),
            humantime::format_duration(self.console_session_lifetime).to_string(),
        ));
        out
    }
}

/// A duration variable that must be longer than 0 (`default_secs` when unset).
fn positive(value: Option<&str>, var: &str, default_secs: u64) -> Result<Duration, ConfigError> {
    match value {
        Some(v) => match parse::duration_var(var, v)? {
            d if d.is_zero() => Err(ConfigError::new(var, "must be longer than 0 (e.g. 30m)")),
            d => Ok(d),
        },
        None => Ok(Duration::from_secs(default_secs)),
    }
}

#[cfg(test)]
mod tests;
