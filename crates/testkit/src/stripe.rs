//! A local stand-in for the two Stripe endpoints billing calls, following
//! Stripe's documented formats: form-encoded bodies, the secret key as a
//! bearer token, `Idempotency-Key` on customer creation (a retry returns
//! the same customer), Billing Meter events with a unique `identifier`
//! (a repeat answers 400 "An event already exists with identifier …" with
//! `stripe-should-retry: false`) and a timestamp at most 35 days old and 5
//! minutes ahead. It records what it accepted and can fail on demand
//! (rate limits, 5xx, a response that never arrives).
//!
//! [`stripe_signature`] signs webhook payloads with the official Python
//! `stripe` library.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A meter event Stripe accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEvent {
    pub event_name: String,
    pub customer: String,
    pub value: i64,
    pub identifier: String,
    pub timestamp: i64,
}

/// A customer Stripe created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub tenant_id: String,
}

/// A scripted failure of the next meter event call.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Answer this status (429, 500, 503…) with `Retry-After` seconds; the
    /// event is not recorded.
    Status(u16, Option<u64>),
    /// Record the event, then hold the response this long (the caller may
    /// give up or die meanwhile: Stripe has it, the caller does not know).
    RecordThenHang(Duration),
}

#[derive(Default)]
struct Inner {
    customers: Vec<Customer>,
    idempotency: HashMap<String, String>,
    events: Vec<MeterEvent>,
    /// Every meter event call, accepted or not.
    calls: usize,
    failures: VecDeque<Failure>,
}

/// A running stand-in.
#[derive(Clone)]
pub struct StripeStandIn {
    /// `http://127.0.0.1:<port>`: the `STRIPE_API_BASE`.
    pub url: String,
    /// The secret key it accepts.
    pub key: String,
    inner: Arc<Mutex<Inner>>,
}

fn error(status: StatusCode, message: &str, retry: Option<bool>) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
        .into_response();
    if let Some(r) = retry {
        resp.headers_mut().insert(
            "stripe-should-retry",
            axum::http::HeaderValue::from_static(if r { "true" } else { "false" }),
        );
    }
    resp
}

async fn handle(State(s): State<StripeStandIn>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(format!("Bearer {}", s.key).as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided.", None);
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return error(StatusCode::BAD_REQUEST, "Stripe takes form-encoded bodies.", None);
    }
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => return error(StatusCode::BAD_REQUEST, "Invalid form body.", None),
    };
    match uri.path() {
        "/v1/customers" => customer(&s, &headers, &form),
        "/v1/billing/meter_events" => meter_event(&s, &form).await,
        _ => error(StatusCode::NOT_FOUND, "Unrecognized request URL.", None),
    }
}

fn customer(s: &StripeStandIn, headers: &HeaderMap, form: &HashMap<String, String>) -> Response {
    let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = key.as_ref().and_then(|k| inner.idempotency.get(k)) {
        return axum::Json(json!({"id": id, "object": "customer"})).into_response();
    }
    let id = format!("cus_test{}", inner.customers.len() + 1);
    inner.customers.push(Customer {
        id: id.clone(),
        name: form.get("name").cloned().unwrap_or_default(),
        email: form.get("email").cloned().unwrap_or_default(),
        tenant_id: form.get("metadata[crosslogic_tenant_id]").cloned().unwrap_or_default(),
    });
    if let Some(k) = key {
        inner.idempotency.insert(k, id.clone());
    }
    axum::Json(json!({"id": id, "object": "customer"})).into_response()
}

async fn meter_event(s: &StripeStandIn, form: &HashMap<String, String>) -> Response {
    let failure = {
        let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.calls += 1;
        inner.failures.pop_front()
    };
    if let Some(Failure::Status(status, retry_after)) = &failure {
        let mut resp = error(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Scripted failure.",
            None,
        );
        if let Some(secs) = retry_after {
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        return resp;
    }
    let get = |k: &str| form.get(k).cloned();
    let (Some(event_name), Some(customer), Some(value), Some(identifier), Some(timestamp)) = (
        get("event_name"),
        get("payload[stripe_customer_id]"),
        get("payload[value]"),
        get("identifier"),
        get("timestamp"),
    ) else {
        return error(StatusCode::BAD_REQUEST, "Missing required param.", Some(false));
    };
    let (Ok(value), Ok(timestamp)) = (value.parse::<i64>(), timestamp.parse::<i64>()) else {
        return error(StatusCode::BAD_REQUEST, "Invalid integer.", Some(false));
    };
    let now = chrono::Utc::now().timestamp();
    if timestamp < now - 35 * 86_400 {
        return error(
            StatusCode::BAD_REQUEST,
            "The event timestamp cannot be more than 35 days in past.",
            Some(false),
        );
    }
    if timestamp > now + 300 {
        return error(
            StatusCode::BAD_REQUEST,
            "The event timestamp cannot be more than 5 minutes in the future.",
            Some(false),
        );
    }
    {
        let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.customers.iter().any(|c| c.id == customer) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("No such customer: '{customer}'"),
                Some(false),
            );
        }
        if inner.events.iter().any(|e| e.identifier == identifier) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("An event already exists with identifier {identifier}."),
                Some(false),
            );
        }
        inner.events.push(MeterEvent {
            event_name: event_name.clone(),
            customer: customer.clone(),
            value,
            identifier: identifier.clone(),
            timestamp,
        });
    }
    if let Some(Failure::RecordThenHang(d)) = failure {
        tokio::time::sleep(d).await;
    }
    axum::Json(json!({
        "object": "billing.meter_event",
        "event_name": event_name,
        "identifier": identifier,
        "payload": {"stripe_customer_id": customer, "value": value.to_string()},
        "timestamp": timestamp,
        "livemode": false,
    }))
    .into_response()
}

impl StripeStandIn {
    /// Starts a stand-in accepting the secret key `sk_test_crosslogic`.
    pub async fn start() -> StripeStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let s = StripeStandIn {
            url: format!("http://{}", listener.local_addr().expect("addr")),
            key: "sk_test_crosslogic".into(),
            inner: Arc::default(),
        };
        let app = axum::Router::new().fallback(handle).with_state(s.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        s
    }

    /// Fails the next meter event calls as scripted, in order.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failures
            .extend(failures);
    }

    /// Meter events accepted (each identifier once).
    pub fn events(&self) -> Vec<MeterEvent> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).events.clone()
    }

    /// Meter event calls received, accepted or not.
    pub fn calls(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).calls
    }

    /// Customers created.
    pub fn customers(&self) -> Vec<Customer> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).customers.clone()
    }

    /// Waits (at most `within`) until `n` meter events were accepted.
    pub async fn wait_for_events(&self, n: usize, within: Duration) -> Vec<MeterEvent> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let got = self.events();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} meter events within {within:?}, got {}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The `STRIPE_*` variables pointing the platform here.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("STRIPE_SECRET_KEY".into(), self.key.clone()),
            ("STRIPE_API_BASE".into(), self.url.clone()),
            ("STRIPE_METER_EVENT_NAME".into(), "crosslogic_usage".into()),
        ]
    }
}

/// The `Stripe-Signature` header of `payload` signed with `secret` at unix
/// `timestamp` (now when `None`), computed by the official Python `stripe`
/// library (`CROSSLOGIC_TEST_PYTHON`, installed by `scripts/test.sh`).
pub fn stripe_signature(payload: &str, secret: &str, timestamp: Option<i64>) -> String {
    use std::io::Write;
    let python = std::env::var("CROSSLOGIC_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/stripe_sign.py");
    let input = json!({"payload": payload, "secret": secret, "timestamp": timestamp});
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python (scripts/test.sh installs stripe)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to the signer");
    let out = child.wait_with_output().expect("the signer ran");
    assert!(
        out.status.success(),
        "the stripe signer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
