//! An inference request as the gateway reads it: which endpoint, which
//! model, streamed or not, its completion budget — and the body, passed on
//! untouched except for asking the engine for usage when streaming.

use std::sync::Arc;

use bytes::Bytes;
use crosslogic_core::ModelType;
use crosslogic_http::ApiError;

use crate::routing::{ModelInfo, Snapshot};
use crate::stream;

/// The OpenAI-compatible inference endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    /// The path on the node (the same as ours).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }

    /// Whether the endpoint generates tokens (and can stream them).
    pub fn generates(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
    }
}

/// The fields of an OpenAI request body the gateway acts on; everything
/// else passes through untouched (and is not allocated while parsing).
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
}

/// A parsed inference request.
pub struct InferenceRequest {
    pub endpoint: Endpoint,
    pub model: String,
    /// Streamed (server-sent events) rather than one JSON answer.
    pub stream: bool,
    /// `max_completion_tokens`, else `max_tokens`, when the client set one.
    pub completion_budget: Option<u64>,
    /// Size of the client's body, for the token estimate.
    pub body_len: usize,
    /// What is sent to the node.
    pub body: Bytes,
    /// The client did not ask for the usage chunk the gateway asked the
    /// engine for: hide it from the stream.
    pub hide_usage: bool,
}

impl InferenceRequest {
    /// Reads `body` for `endpoint`: 400 in OpenAI's words when it is not a
    /// JSON object or names no model. A streamed request asks the engine
    /// for its usage chunk ([`stream::ask_for_usage`]).
    pub fn parse(endpoint: Endpoint, body: Bytes) -> Result<InferenceRequest, ApiError> {
        let head: Head = serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid_request(format!("We could not parse the JSON body of your request: {e}."), None)
        })?;
        let model = match head.model.as_deref() {
            Some(m) if !m.is_empty() => m.to_owned(),
            _ => {
                return Err(ApiError::invalid_request(
                    "You must provide a model parameter.",
                    Some("model"),
                ))
            }
        };
        let stream = endpoint.generates() && head.stream == Some(true);
        let completion_budget = head.max_completion_tokens.or(head.max_tokens);
        let body_len = body.len();
        let (body, hide_usage) = if stream {
            stream::ask_for_usage(&body)?
        } else {
            (body, false)
        };
        Ok(InferenceRequest {
            endpoint,
            model,
            stream,
            completion_budget,
            body_len,
            body,
            hide_usage,
        })
    }

    /// The model from `snapshot`, if `may_use` allows it and it serves this
    /// endpoint (404 `model_not_found` for unknown or forbidden models).
    pub fn model_in(&self, snapshot: &Snapshot, may_use: impl Fn(&str) -> bool) -> Result<Arc<ModelInfo>, ApiError> {
        let model = match snapshot.models.get(&self.model) {
            Some(m) if may_use(&self.model) => Arc::clone(m),
            _ => return Err(ApiError::model_not_found(&self.model)),
        };
        let name = &self.model;
        match (self.endpoint, model.model_type) {
            (Endpoint::Embeddings, ModelType::Embedding) => Ok(model),
            (Endpoint::Embeddings, _) => Err(ApiError::invalid_request(
                format!("The model `{name}` does not produce embeddings."),
                Some("model"),
            )),
            (_, ModelType::Embedding) => Err(ApiError::invalid_request(
                format!("The model `{name}` is an embedding model; use /v1/embeddings."),
                Some("model"),
            )),
            _ => Ok(model),
        }
    }
}
