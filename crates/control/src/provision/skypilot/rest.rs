//! Drives a SkyPilot API server (client/server SkyPilot, 0.8 and later).
//!
//! Every operation is asynchronous on the server: `POST /launch`, `/down` or
//! `/status` answers at once with a request id (header
//! `X-Skypilot-Request-ID`); `GET /api/get?request_id=…` blocks until the
//! request finished and returns its record (`status`, `return_value` and
//! `error`, the latter two JSON-encoded strings); `GET /api/stream` follows
//! its log as plain text.

use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use super::task::render_task;
use super::{clean_line, SkyPilotConfig};
use crate::provision::{JobLog, LaunchSpec, ProvisionError};

/// Connecting to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Submitting a request (the server only enqueues it).
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the log stream may keep flushing after the verdict arrived.
const STREAM_GRACE: Duration = Duration::from_secs(3);
/// Longest log line kept.
const MAX_LINE: usize = 8 * 1024;
/// Response body characters quoted in an error.
const EXCERPT: usize = 500;

/// A SkyPilot API server.
pub(super) struct SkyRest {
    base: String,
    token: Option<SecretString>,
    http: Client,
}

impl std::fmt::Debug for SkyRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkyRest")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// No `env_vars`: without authentication the server takes the requesting
/// user from `env_vars.SKYPILOT_USER_ID` and fails (HTTP 500) when an
/// explicit map lacks it, while an absent map defaults to the server's own
/// user, which owns the clusters launched here.
#[derive(Serialize)]
struct LaunchBody<'a> {
    task: &'a str,
    cluster_name: &'a str,
    retry_until_up: bool,
}

#[derive(Serialize)]
struct DownBody<'a> {
    cluster_name: &'a str,
    purge: bool,
}

#[derive(Serialize)]
struct StatusBody {
    cluster_names: Option<Vec<String>>,
    refresh: &'static str,
    all_users: bool,
}

/// The verdict of one finished request.
#[derive(Debug)]
struct Outcome {
    status: String,
    return_value: Value,
    error: Option<RemoteError>,
}

#[derive(Debug)]
struct RemoteError {
    kind: String,
    message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.kind, self.message),
            (false, true) => f.write_str(&self.kind),
            _ => f.write_str(&self.message),
        }
    }
}

impl Outcome {
    fn failure(&self) -> Option<String> {
        match &self.error {
            Some(e) => Some(format!("{} ({e})", self.status)),
            None if self.status == "SUCCEEDED" => None,
            None => Some(self.status.clone()),
        }
    }
}

impl SkyRest {
    pub(super) fn new(url: &str, token: Option<SecretString>) -> Result<SkyRest, ProvisionError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| ProvisionError::Failed(format!("invalid SkyPilot API server URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ProvisionError::Failed(format!(
                "invalid SkyPilot API server URL {url:?}: not http(s)"
            )));
        }
        let http = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ProvisionError::Failed(format!("building the HTTP client: {e}")))?;
        Ok(SkyRest {
            base: url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    pub(super) async fn launch(
        &self,
        spec: &LaunchSpec,
        cfg: &SkyPilotConfig,
        log: &JobLog,
    ) -> Result<(), ProvisionError> {
        // Holds the secret values: sent to the server, never logged or stored.
        let task = render_task(spec, cfg, true)?;
        let body = LaunchBody {
            task: &task,
            cluster_name: &spec.cluster_name,
            retry_until_up: false,
        };
        let id = self.submit("/launch", &body).await?;
        log.line(format!("SkyPilot launch request {id}"));

        let stream = self.stream_logs(&id, log);
        let verdict = self.get(&id);
        tokio::pin!(stream, verdict);
        let outcome = tokio::select! {
            outcome = &mut verdict => {
                // The log stream normally ends with the request; let it flush.
                let _ = tokio::time::timeout(STREAM_GRACE, &mut stream).await;
                outcome
            }
            () = &mut stream => verdict.await,
        }?;
        match outcome.failure() {
            None => Ok(()),
            Some(why) => Err(ProvisionError::Failed(format!(
                "SkyPilot launch of {} failed: {why}",
                spec.cluster_name
            ))),
        }
    }

    pub(super) async fn down(&self, cluster: &str, log: &JobLog) -> Result<(), ProvisionError> {
        let body = DownBody {
            cluster_name: cluster,
            purge: false,
        };
        let id = self.submit("/down", &body).await?;
        log.line(format!("SkyPilot down request {id}"));
        let outcome = self.get(&id).await?;
        if let Some(err) = &outcome.error {
            if is_missing_cluster(err) {
                log.line(format!("cluster {cluster} does not exist (already terminated)"));
                return Ok(());
            }
        }
        match outcome.failure() {
            None => Ok(()),
            Some(why) => Err(ProvisionError::Failed(format!(
                "SkyPilot down of {cluster} failed: {why}"
            ))),
        }
    }

    pub(super) async fn status(&self) -> Result<Vec<String>, ProvisionError> {
        let body = StatusBody {
            cluster_names: None,
            refresh: "NONE",
            all_users: true,
        };
        let id = self.submit("/status", &body).await?;
        let outcome = self.get(&id).await?;
        if let Some(why) = outcome.failure() {
            return Err(ProvisionError::Failed(format!("SkyPilot status failed: {why}")));
        }
        cluster_names(&outcome.return_value)
    }

    fn request(&self, builder: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => builder.bearer_auth(token.expose_secret()),
            None => builder,
        }
    }

    /// POSTs a request and returns its id.
    async fn submit<B: Serialize>(&self, path: &str, body: &B) -> Result<String, ProvisionError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .request(self.http.post(&url).json(body).timeout(SUBMIT_TIMEOUT))
            .send()
            .await
            .map_err(|e| http_error("POST", path, e))?;
        let resp = check_status("POST", path, resp).await?;
        let header = resp
            .headers()
            .get("x-skypilot-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(id) = header.filter(|id| !id.is_empty()) {
            return Ok(id);
        }
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        match json.get("request_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(ProvisionError::Failed(format!(
                "SkyPilot API server: POST {path} returned no request id"
            ))),
        }
    }

    /// Waits for a request to finish (`GET /api/get`) and returns its verdict.
    async fn get(&self, id: &str) -> Result<Outcome, ProvisionError> {
        let url = format!("{}/api/get", self.base);
        let resp = self
            .request(self.http.get(&url).query(&[("request_id", id)]))
            .send()
            .await
            .map_err(|e| http_error("GET", "/api/get", e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| http_error("GET", "/api/get", e))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        // A failed request comes back as HTTP 500 with the record in `detail`.
        let record = match (status, json) {
            (StatusCode::OK, Some(v)) => Some(v),
            (StatusCode::INTERNAL_SERVER_ERROR, Some(mut v)) => match v.get_mut("detail").map(Value::take) {
                Some(d) if d.is_object() => Some(d),
                _ => None,
            },
            _ => None,
        };
        let Some(record) = record else {
            return Err(ProvisionError::Failed(format!(
                "SkyPilot API server: GET /api/get for {id} returned {status}: {}",
                excerpt(&text)
            )));
        };
        Ok(parse_record(&record))
    }

    /// Copies the request's log into `log` until it ends; best effort.
    async fn stream_logs(&self, id: &str, log: &JobLog) {
        if let Err(e) = self.try_stream_logs(id, log).await {
            tracing::debug!(request_id = id, error = %e, "SkyPilot log stream failed");
            log.line(format!("(SkyPilot log stream unavailable: {e})"));
        }
    }

    async fn try_stream_logs(&self, id: &str, log: &JobLog) -> Result<(), ProvisionError> {
        let url = format!("{}/api/stream", self.base);
        let query = [("request_id", id), ("follow", "true"), ("format", "plain")];
        let resp = self
            .request(self.http.get(&url).query(&query))
            .send()
            .await
            .map_err(|e| http_error("GET", "/api/stream", e))?;
        let resp = check_status("GET", "/api/stream", resp).await?;
        let mut body = resp.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| http_error("GET", "/api/stream", e))?;
            for &b in chunk.iter() {
                if b == b'\n' || b == b'\r' {
                    emit(&pending, log);
                    pending.clear();
                } else if pending.len() < MAX_LINE {
                    pending.push(b);
                }
            }
        }
        emit(&pending, log);
        Ok(())
    }
}

fn emit(line: &[u8], log: &JobLog) {
    let line = clean_line(&String::from_utf8_lossy(line));
    if !line.trim().is_empty() {
        log.line(line);
    }
}

/// `status`, decoded `return_value` and `error` of a request record. Both
/// are JSON-encoded strings on the wire; already-decoded values are
/// accepted too.
fn parse_record(record: &Value) -> Outcome {
    let status = record
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN")
        .to_string();
    let return_value = decode_json_string(record.get("return_value"));
    let error = match decode_json_string(record.get("error")) {
        Value::Null => None,
        Value::Object(map) => {
            let field = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            Some(RemoteError {
                kind: field("type"),
                message: field("message"),
            })
        }
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(RemoteError {
            kind: String::new(),
            message: s,
        }),
        other => Some(RemoteError {
            kind: String::new(),
            message: other.to_string(),
        }),
    };
    Outcome {
        status,
        return_value,
        error,
    }
}

/// A field holding JSON text is parsed; a string that is not JSON stays a
/// string; anything else is taken as is.
fn decode_json_string(v: Option<&Value>) -> Value {
    match v {
        None => Value::Null,
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        Some(other) => other.clone(),
    }
}

/// Names from the `status` request's result: a list of cluster records.
fn cluster_names(value: &Value) -> Result<Vec<String>, ProvisionError> {
    let records = match value {
        Value::Array(records) => records,
        Value::Null => return Ok(Vec::new()),
        other => {
            return Err(ProvisionError::Failed(format!(
                "SkyPilot status returned an unexpected value: {}",
                excerpt(&other.to_string())
            )))
        }
    };
    Ok(records
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}

fn is_missing_cluster(err: &RemoteError) -> bool {
    let msg = err.message.to_ascii_lowercase();
    err.kind == "ClusterDoesNotExist" || msg.contains("does not exist") || msg.contains("not found")
}

async fn check_status(method: &str, path: &str, resp: Response) -> Result<Response, ProvisionError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    Err(ProvisionError::Failed(format!(
        "SkyPilot API server: {method} {path} returned {status}: {}",
        excerpt(&body)
    )))
}

fn http_error(method: &str, path: &str, e: reqwest::Error) -> ProvisionError {
    // `without_url`: the URL may carry credentials in its userinfo.
    ProvisionError::Failed(format!("SkyPilot API server: {method} {path}: {}", e.without_url()))
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text.chars().take(EXCERPT).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_decoded() {
        let ok = json!({"status": "SUCCEEDED", "return_value": "[{\"name\": \"cic-a\"}, {\"name\": \"x\"}]", "error": "null"});
        let o = parse_record(&ok);
        assert!(o.failure().is_none());
        assert_eq!(cluster_names(&o.return_value).unwrap(), ["cic-a", "x"]);

        let failed = json!({"status": "FAILED", "return_value": "null",
            "error": "{\"object\": \"gASV\", \"type\": \"ResourcesUnavailableError\", \"message\": \"no capacity\"}"});
        let o = parse_record(&failed);
        assert_eq!(o.failure().unwrap(), "FAILED (ResourcesUnavailableError: no capacity)");

        let cancelled = json!({"status": "CANCELLED", "return_value": "null", "error": "null"});
        assert_eq!(parse_record(&cancelled).failure().unwrap(), "CANCELLED");

        let decoded = json!({"status": "FAILED", "error": {"type": "ClusterDoesNotExist", "message": "gone"}});
        let o = parse_record(&decoded);
        assert!(is_missing_cluster(o.error.as_ref().unwrap()));
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt("  short "), "short");
        assert_eq!(excerpt(&"x".repeat(2000)).chars().count(), EXCERPT + 1);
    }
}
