//! Small parsers for configuration values; each error names its variable.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::ConfigError;

/// Parses a Go-style duration as the seed uses (`30s`, `5m`, `1h`, `1h30m`,
/// `500ms`); `0` alone means zero.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    if v.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{v:?} has no unit: write e.g. {v}s or {v}m"));
    }
    humantime::parse_duration(v)
        .map_err(|e| format!("{v:?} is not a duration ({e}): expected forms like 30s, 5m, 1h, 1h30m"))
}

pub(crate) fn duration_var(var: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|m| ConfigError::new(var, m))
}

pub(crate) fn u32_in(var: &str, value: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            var,
            format!("invalid value {value:?}: expected an integer from {min} to {max}"),
        )),
    }
}

pub(crate) fn socket_addr(var: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::new(
            var,
            format!("invalid value {value:?}: expected IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080"),
        )
    })
}

pub(crate) fn redis_url(var: &str, value: &str) -> Result<SecretString, ConfigError> {
    let url = url::Url::parse(value).map_err(|e| {
        ConfigError::new(
            var,
            format!("not a URL ({e}): expected redis://[:password@]host:6379[/db]"),
        )
    })?;
    match url.scheme() {
        "redis" | "rediss" | "redis+unix" | "unix" => Ok(SecretString::from(value.to_owned())),
        other => Err(ConfigError::new(
            var,
            format!("unsupported scheme {other:?}: expected redis:// or rediss://"),
        )),
    }
}

/// Replaces the password of a URL with `****` for display.
pub(crate) fn redact_url(url: &SecretString) -> String {
    match url::Url::parse(url.expose_secret()) {
        Ok(mut u) => {
            if u.password().is_some() {
                // set_password only fails for URLs that cannot have one.
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable, redacted)".to_owned(),
    }
}
