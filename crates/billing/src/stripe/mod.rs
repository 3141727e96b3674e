//! A small client of the two Stripe calls billing needs — creating a
//! customer and sending a Billing Meter event — and the verification of
//! Stripe's webhook signatures ([`signature`]).
//!
//! Why our own: there is no maintained async Rust Stripe SDK that covers
//! the v1 Billing Meters API without pulling in thousands of generated
//! types; two form-encoded POSTs with Stripe's documented error envelope
//! are clearer here. Requests are `application/x-www-form-urlencoded`
//! with the secret key as a bearer token and `Stripe-Version` pinned.

pub mod signature;

use std::time::Duration;

use chrono::{DateTime, Utc};
use crosslogic_config::StripeSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

/// The Stripe API version requests are made with (Billing Meters' v1
/// `meter_events` exist since 2024; the legacy usage records were removed
/// in 2025-03-31.basil).
pub const API_VERSION: &str = "2025-03-31.basil";

/// A Stripe API client.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    meter_event_name: String,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").field("base", &self.base).finish()
    }
}

/// Why a Stripe call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StripeError {
    /// Stripe refused the request and retrying it unchanged cannot help.
    #[error("Stripe refused the request ({status}): {message}")]
    Rejected {
        status: u16,
        message: String,
        code: Option<String>,
    },
    /// Rate limited, a Stripe-side error, or the network: retry later.
    #[error("Stripe is unavailable: {message}")]
    Transient {
        message: String,
        /// `Retry-After` when Stripe sent one.
        retry_after: Option<Duration>,
    },
}

/// How a meter event was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterOutcome {
    /// Stripe recorded it now.
    Recorded,
    /// Stripe already had an event with this identifier (an earlier
    /// attempt got through): delivered.
    Duplicate,
}

/// One meter event.
#[derive(Debug, Clone)]
pub struct MeterEvent<'a> {
    pub customer: &'a str,
    /// Micro-dollars (the meter's price is $0.000001 per unit).
    pub value: i64,
    /// Unique per tenant-hour and revision.
    pub identifier: &'a str,
    /// Inside the hour the usage is of.
    pub timestamp: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// The message Stripe answers a meter event whose identifier it has seen.
const DUPLICATE_IDENTIFIER: &str = "An event already exists with identifier";

impl Stripe {
    /// A client for `settings` (15 s per call).
    pub fn new(settings: &StripeSettings) -> Result<Stripe, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("crosslogic/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Stripe {
            http,
            base: settings.api_base.clone(),
            key: settings.secret_key.clone(),
            meter_event_name: settings.meter_event_name.clone(),
        })
    }

    /// Creates the Stripe customer of a tenant. The idempotency key is the
    /// tenant's and the fields sent, so a retry (after a timeout, a crash
    /// before the id was stored) returns the same customer instead of a
    /// second one — and a retry after the tenant's name or email changed
    /// is a new request rather than one Stripe refuses as reused.
    pub async fn create_customer(&self, tenant_id: Uuid, name: &str, email: &str) -> Result<String, StripeError> {
        use sha2::Digest;
        let tenant = tenant_id.to_string();
        let fields = hex::encode(&sha2::Sha256::digest(format!("{name}\n{email}").as_bytes())[..8]);
        let form = [
            ("name", name),
            ("email", email),
            ("metadata[crosslogic_tenant_id]", tenant.as_str()),
        ];
        let resp = self
            .post(
                "/v1/customers",
                &form,
                Some(&format!("crosslogic-customer-{tenant}-{fields}")),
            )
            .await?;
        let created: Created = resp.json().await.map_err(|e| StripeError::Transient {
            message: format!("unreadable customer response: {}", e.without_url()),
            retry_after: None,
        })?;
        Ok(created.id)
    }

    /// Sends one Billing Meter event.
    pub async fn send_meter_event(&self, ev: &MeterEvent<'_>) -> Result<MeterOutcome, StripeError> {
        let value = ev.value.to_string();
        let timestamp = ev.timestamp.timestamp().to_string();
        let form = [
            ("event_name", self.meter_event_name.as_str()),
            ("payload[stripe_customer_id]", ev.customer),
            ("payload[value]", value.as_str()),
            ("identifier", ev.identifier),
            ("timestamp", timestamp.as_str()),
        ];
        match self.post("/v1/billing/meter_events", &form, None).await {
            Ok(_) => Ok(MeterOutcome::Recorded),
            Err(StripeError::Rejected { message, .. }) if message.starts_with(DUPLICATE_IDENTIFIER) => {
                Ok(MeterOutcome::Duplicate)
            }
            Err(e) => Err(e),
        }
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<reqwest::Response, StripeError> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
            .header("Stripe-Version", API_VERSION)
            .form(form);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.map_err(|e| StripeError::Transient {
            // reqwest's errors name the URL; keep them short and secret-free.
            message: e.without_url().to_string(),
            retry_after: None,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let should_retry = resp
            .headers()
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let body = resp.text().await.unwrap_or_default();
        let (message, code) = match serde_json::from_str::<ErrorEnvelope>(&body) {
            Ok(e) => (e.error.message.unwrap_or_else(|| status.to_string()), e.error.code),
            Err(_) => (format!("HTTP {}", status.as_u16()), None),
        };
        let transient = match should_retry {
            Some(v) => v,
            None => status.as_u16() == 429 || status.as_u16() == 409 || status.is_server_error(),
        };
        if transient {
            Err(StripeError::Transient { message, retry_after })
        } else {
            Err(StripeError::Rejected {
                status: status.as_u16(),
                message,
                code,
            })
        }
    }
}
