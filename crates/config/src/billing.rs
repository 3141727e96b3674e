//! Settings of billing: Stripe (`STRIPE_*`), the grace period before a
//! tenant in arrears is suspended, the signup credit, how long raw usage
//! rows are kept, and the pace of the billing workers.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};

use crate::{parse, ConfigError};

/// Stripe account settings; present when `STRIPE_SECRET_KEY` is set.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// `STRIPE_SECRET_KEY`: `sk_live_…`, `sk_test_…` or a restricted `rk_…` key.
    pub secret_key: SecretString,
    /// `STRIPE_API_BASE` (`https://api.stripe.com`): tests point it at a
    /// local stand-in.
    pub api_base: String,
    /// `STRIPE_METER_EVENT_NAME` (`crosslogic_usage`): the `event_name` of
    /// the Billing Meter that prices one unit at $0.000001.
    pub meter_event_name: String,
}

/// Billing settings.
#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Usage export to Stripe Billing Meters; `None` = not exported.
    pub stripe: Option<StripeSettings>,
    /// `STRIPE_WEBHOOK_SECRET`: one or more `whsec_…` secrets (comma-separated
    /// while rotating); `POST /webhooks/stripe` answers 503 without one.
    pub webhook_secrets: Vec<SecretString>,
    /// `BILLING_GRACE_PERIOD` (3 days): how long an invoice may stay unpaid
    /// after a failed payment before the tenant is suspended.
    pub grace_period: Duration,
    /// `BILLING_SIGNUP_CREDIT`: dollars credited to every new tenant (unset
    /// or 0 = none), e.g. `5` or `2.50`.
    pub signup_credit_microdollars: Option<i64>,
    /// `BILLING_SIGNUP_CREDIT_EXPIRES_AFTER`: the signup credit's lifetime
    /// (unset = it does not expire).
    pub signup_credit_expires_after: Option<Duration>,
    /// `BILLING_SETTLE_DELAY` (5m): how long after an hour ends it is
    /// settled and exported (late rows in that time join the first export;
    /// later ones go out as a correction).
    pub settle_delay: Duration,
    /// `USAGE_RETENTION` (90 days): raw usage rows older than this are
    /// deleted once their hour is rolled up, settled and exported.
    pub usage_retention: Duration,
    /// `BILLING_INTERVAL` (5s): how often the rollup, settlement, export,
    /// budget and dunning workers look for work.
    pub interval: Duration,
    /// `BILLING_EXPORT_LEASE` (60s): how long a claimed Stripe export is held
    /// before another replica (or this one after a crash) sends it again —
    /// harmless, Stripe deduplicates the identifier. Longer than a call (15 s).
    pub export_lease: Duration,
}

impl BillingSettings {
    pub(crate) fn from_vars<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<BillingSettings, ConfigError> {
        let duration = |var: &str, default: Duration, min: Duration| -> Result<Duration, ConfigError> {
            match get(var) {
                Some(v) => {
                    let d = parse::duration_var(var, v)?;
                    if d < min {
                        return Err(ConfigError::new(
                            var,
                            format!("must be at least {} (got {v})", humantime::format_duration(min)),
                        ));
                    }
                    Ok(d)
                }
                None => Ok(default),
            }
        };
        let stripe = match get("STRIPE_SECRET_KEY") {
            None => None,
            Some(key) => {
                if !["sk_", "rk_"].iter().any(|p| key.starts_with(p)) || key.len() < 12 {
                    return Err(ConfigError::new(
                        "STRIPE_SECRET_KEY",
                        "expected a Stripe secret key (sk_live_…, sk_test_… or a restricted rk_… key)",
                    ));
                }
                let api_base = match get("STRIPE_API_BASE") {
                    None => "https://api.stripe.com".to_owned(),
                    Some(v) => {
                        let url = url::Url::parse(v).map_err(|e| {
                            ConfigError::new(
                                "STRIPE_API_BASE",
                                format!("not a URL ({e}): expected https://api.stripe.com"),
                            )
                        })?;
                        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                            return Err(ConfigError::new(
                                "STRIPE_API_BASE",
                                "expected an http(s):// URL such as https://api.stripe.com",
                            ));
                        }
                        v.trim_end_matches('/').to_owned()
                    }
                };
                let meter_event_name = get("STRIPE_METER_EVENT_NAME").unwrap_or("crosslogic_usage").to_owned();
                if meter_event_name.len() > 100
                    || !meter_event_name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
                {
                    return Err(ConfigError::new(
                        "STRIPE_METER_EVENT_NAME",
                        "expected the meter's event name: letters, digits, `_`, `-` or `.`, at most 100",
                    ));
                }
                Some(StripeSettings {
                    secret_key: SecretString::from(key.to_owned()),
                    api_base,
                    meter_event_name,
                })
            }
        };
        let webhook_secrets = match get("STRIPE_WEBHOOK_SECRET") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with("whsec_") && s.len() > 10 {
                        Ok(SecretString::from(s.to_owned()))
                    } else {
                        Err(ConfigError::new(
                            "STRIPE_WEBHOOK_SECRET",
                            "expected the endpoint's signing secret whsec_… (several comma-separated while rotating)",
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let signup_credit_microdollars = match get("BILLING_SIGNUP_CREDIT") {
            None => None,
            Some(v) => match dollars("BILLING_SIGNUP_CREDIT", v)? {
                0 => None,
                m => Some(m),
            },
        };
        let signup_credit_expires_after = match get("BILLING_SIGNUP_CREDIT_EXPIRES_AFTER") {
            None => None,
            Some(_) => Some(duration(
                "BILLING_SIGNUP_CREDIT_EXPIRES_AFTER",
                Duration::ZERO,
                Duration::from_secs(3600),
            )?),
        };
        Ok(BillingSettings {
            stripe,
            webhook_secrets,
            grace_period: duration("BILLING_GRACE_PERIOD", Duration::from_secs(3 * 86_400), Duration::ZERO)?,
            signup_credit_microdollars,
            signup_credit_expires_after,
            settle_delay: duration("BILLING_SETTLE_DELAY", Duration::from_secs(300), Duration::ZERO)?,
            usage_retention: duration(
                "USAGE_RETENTION",
                Duration::from_secs(90 * 86_400),
                Duration::from_secs(86_400),
            )?,
            interval: duration("BILLING_INTERVAL", Duration::from_secs(5), Duration::from_millis(50))?,
            export_lease: duration("BILLING_EXPORT_LEASE", Duration::from_secs(60), Duration::from_secs(1))?,
        })
    }

    pub(crate) fn report(&self, out: &mut Vec<(String, String)>) {
        let d = |v: Duration| humantime::format_duration(v).to_string();
        match &self.stripe {
            Some(s) => {
                let key = s.secret_key.expose_secret();
                let mode = if key.contains("_live_") { "live" } else { "test" };
                out.push(("STRIPE_SECRET_KEY".into(), format!("(set, redacted; {mode} mode)")));
                out.push(("STRIPE_API_BASE".into(), s.api_base.clone()));
                out.push(("STRIPE_METER_EVENT_NAME".into(), s.meter_event_name.clone()));
            }
            None => out.push((
                "STRIPE_SECRET_KEY".into(),
                "(unset: usage is billed here but not exported to Stripe)".into(),
            )),
        }
        out.push((
            "STRIPE_WEBHOOK_SECRET".into(),
            match self.webhook_secrets.len() {
                0 => "(unset: POST /webhooks/stripe is refused)".into(),
                n => format!("({n} set, redacted)"),
            },
        ));
        out.push(("BILLING_GRACE_PERIOD".into(), d(self.grace_period)));
        out.push((
            "BILLING_SIGNUP_CREDIT".into(),
            self.signup_credit_microdollars.map_or_else(
                || "(none)".into(),
                |m| format!("${}.{:06}", m / 1_000_000, m % 1_000_000),
            ),
        ));
        out.push((
            "BILLING_SIGNUP_CREDIT_EXPIRES_AFTER".into(),
            self.signup_credit_expires_after.map_or_else(|| "(never)".into(), d),
        ));
        out.push(("BILLING_SETTLE_DELAY".into(), d(self.settle_delay)));
        out.push(("USAGE_RETENTION".into(), d(self.usage_retention)));
        out.push(("BILLING_INTERVAL".into(), d(self.interval)));
        out.push(("BILLING_EXPORT_LEASE".into(), d(self.export_lease)));
    }
}

/// A dollar amount (`5`, `2.50`, `0.000001`) in micro-dollars, from 0 to
/// a million dollars.
fn dollars(var: &str, value: &str) -> Result<i64, ConfigError> {
    let bad = || {
        ConfigError::new(
            var,
            format!(
                "invalid value {value:?}: expected dollars from 0 to 1000000 with at most 6 decimals, e.g. 5 or 2.50"
            ),
        )
    };
    let d = Decimal::from_str(value.trim().trim_start_matches('$')).map_err(|_| bad())?;
    if d.is_sign_negative() || d.scale() > 6 || d > Decimal::from(1_000_000) {
        return Err(bad());
    }
    let micros = d * Decimal::from(1_000_000);
    i64::try_from(micros.trunc().mantissa() / 10i128.pow(micros.trunc().scale())).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_exact_micro_dollars() {
        assert_eq!(dollars("X", "5").unwrap(), 5_000_000);
        assert_eq!(dollars("X", "2.50").unwrap(), 2_500_000);
        assert_eq!(dollars("X", "$0.000001").unwrap(), 1);
        for bad in ["-1", "0.0000001", "abc", "2000000"] {
            assert!(dollars("X", bad).is_err(), "{bad}");
        }
    }
}
