//! The HTTP client of the control plane's node-agent API (`/agent/v1`):
//! register, heartbeat, preemption notice, deregister. JSON bodies (see
//! `wire`), bearer credentials, errors in the OpenAI envelope
//! `{"error": {"message", ...}}`.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::wire::{Heartbeat, HeartbeatReply, Registered, Registration};

/// Time limit of one call to the control plane.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit for establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a non-JSON error body is kept as the message.
const MAX_MESSAGE_CHARS: usize = 300;

/// A bearer credential. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credential(String);

impl Credential {
    pub(crate) fn new(token: impl Into<String>) -> Credential {
        Credential(token.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No answer: connection refused, reset, timed out.
    #[error("control plane unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    /// An answer other than 2xx; `message` is the envelope's message.
    #[error("control plane answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// A 2xx whose body is not what the API promises.
    #[error("unexpected answer from the control plane: {0}")]
    Decode(#[source] reqwest::Error),
}

impl CallError {
    /// Worth retrying: no answer, a 5xx, 408 or 429.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            CallError::Transport(_) => true,
            CallError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            CallError::Decode(_) => false,
        }
    }

    /// The HTTP status the control plane answered, if it answered.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            CallError::Transport(_) | CallError::Decode(_) => None,
        }
    }
}

/// An HTTP client for the agent API of one control plane.
#[derive(Debug, Clone)]
pub(crate) struct ControlClient {
    http: reqwest::Client,
    base: String,
}

impl ControlClient {
    pub(crate) fn new(base_url: &str) -> Result<ControlClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(ControlClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST /agent/v1/register`.
    pub(crate) async fn register(&self, token: &Credential, body: &Registration) -> Result<Registered, CallError> {
        let resp = self.post("/agent/v1/register", token, body).await?;
        decode(resp).await
    }

    /// `POST /agent/v1/nodes/{id}/heartbeat`.
    pub(crate) async fn heartbeat(
        &self,
        node_id: Uuid,
        token: &Credential,
        body: &Heartbeat,
    ) -> Result<HeartbeatReply, CallError> {
        let resp = self.post(&node_path(node_id, "heartbeat"), token, body).await?;
        decode(resp).await
    }

    /// `POST /agent/v1/nodes/{id}/preemption` with the notice as the cloud
    /// gave it.
    pub(crate) async fn preemption(
        &self,
        node_id: Uuid,
        token: &Credential,
        provider: &str,
        notice: &str,
    ) -> Result<(), CallError> {
        let body = json!({ "provider": provider, "notice": notice });
        self.post(&node_path(node_id, "preemption"), token, &body).await?;
        Ok(())
    }

    /// `POST /agent/v1/nodes/{id}/deregister`.
    pub(crate) async fn deregister(&self, node_id: Uuid, token: &Credential) -> Result<(), CallError> {
        self.post(&node_path(node_id, "deregister"), token, &json!({})).await?;
        Ok(())
    }

    /// Sends the call; any non-2xx answer becomes [`CallError::Status`].
    async fn post<B: Serialize + ?Sized>(
        &self,
        path: &str,
        token: &Credential,
        body: &B,
    ) -> Result<reqwest::Response, CallError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await
            .map_err(CallError::Transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(CallError::Status {
            status,
            message: error_message(status, &text),
        })
    }
}

fn node_path(node_id: Uuid, action: &str) -> String {
    format!("/agent/v1/nodes/{node_id}/{action}")
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, CallError> {
    resp.json().await.map_err(CallError::Decode)
}

/// The message of an error answer: the envelope's `error.message`, else the
/// start of the body, else the status' reason.
fn error_message(status: StatusCode, body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
            return message.to_owned();
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_owned();
    }
    body.chars().take(MAX_MESSAGE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_the_envelope() {
        let body = r#"{"error":{"message":"invalid registration token","type":"authentication_error","param":null,"code":null}}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, body),
            "invalid registration token"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, "  upstream down\n"),
            "upstream down"
        );
        assert_eq!(error_message(StatusCode::FORBIDDEN, ""), "Forbidden");
    }

    #[test]
    fn transient_errors_are_5xx_408_429() {
        let status = |s: StatusCode| CallError::Status {
            status: s,
            message: String::new(),
        };
        assert!(status(StatusCode::SERVICE_UNAVAILABLE).is_transient());
        assert!(status(StatusCode::TOO_MANY_REQUESTS).is_transient());
        assert!(!status(StatusCode::UNAUTHORIZED).is_transient());
        assert!(!status(StatusCode::UNPROCESSABLE_ENTITY).is_transient());
    }

    #[test]
    fn credentials_do_not_show_in_debug() {
        assert!(!format!("{:?}", Credential::new("abc123")).contains("abc123"));
    }
}
