//! A recording HTTP receiver on port 0: the stand-in for a Discord or Slack
//! incoming webhook or a customer's webhook endpoint. It records every
//! request and answers from a script (then a default), so a test can make it
//! fail, rate-limit, disappear (410) or hang.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

/// One request received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with an empty body.
    Status(u16),
    /// This status, headers and body.
    Full(u16, Vec<(String, String)>, String),
    /// Never answer within `Duration` (then 200).
    Hang(Duration),
}

#[derive(Default)]
struct Inner {
    recorded: Vec<Recorded>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`; any path is accepted.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

async fn receive(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let mut inner = r.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.recorded.push(Recorded {
            path: uri.path().to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body.to_vec(),
            at: Instant::now(),
        });
        let next = inner.script.pop_front();
        next.or_else(|| inner.default.clone()).unwrap_or(Reply::Status(204))
    };
    r.arrived.notify_waiters();
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap_or(StatusCode::OK).into_response(),
        Reply::Full(s, headers, body) => {
            let mut resp = (StatusCode::from_u16(s).unwrap_or(StatusCode::OK), body).into_response();
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_bytes()),
                    axum::http::HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    /// Starts a receiver answering 204 unless told otherwise.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let r = Receiver {
            url,
            inner: Arc::default(),
            arrived: Arc::default(),
        };
        let app = axum::Router::new().fallback(receive).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    /// Answers the next requests with `replies`, in order.
    pub fn reply_next(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .script
            .extend(replies);
    }

    /// Answers every request without a scripted reply with `reply`.
    pub fn reply_always(&self, reply: Reply) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).default = Some(reply);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).recorded.clone()
    }

    /// Waits (at most `within`) until `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let got = self.received();
                assert!(
                    got.len() >= n,
                    "expected {n} requests within {within:?}, got {}",
                    got.len()
                );
                return got;
            }
        }
    }
}

/// Whether the official Python `standardwebhooks` library (installed by
/// `scripts/test.sh`, found through `CROSSLOGIC_TEST_PYTHON`) accepts the
/// signature of a recorded webhook with `secret`. Panics when the verifier
/// itself cannot run, so a broken setup never reads as "rejected".
pub fn standard_webhook_verifies(secret: &str, r: &Recorded) -> bool {
    use std::io::Write;
    let python = std::env::var("CROSSLOGIC_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/verify_webhook.py");
    let input = serde_json::json!({
        "secret": secret,
        "body": String::from_utf8_lossy(&r.body),
        "headers": {
            "webhook-id": r.header("webhook-id"),
            "webhook-timestamp": r.header("webhook-timestamp"),
            "webhook-signature": r.header("webhook-signature"),
        },
    });
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python (scripts/test.sh installs standardwebhooks)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to the verifier");
    let out = child.wait_with_output().expect("the verifier ran");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        stdout == "verified" || stdout == "rejected",
        "the verifier failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout == "verified"
}
