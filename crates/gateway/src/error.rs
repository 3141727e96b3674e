//! OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`
//! with the type OpenAI uses for each status.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answered under `/v1`.
#[derive(Debug, Clone)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    pub message: String,
    /// Seconds for `retry-after` (429, 503).
    pub retry_after: Option<u64>,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> Self {
        OpenAiError {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 invalid_request_error.
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        OpenAiError {
            param,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", None, message)
        }
    }

    /// 401 for a missing, unknown, revoked or expired key.
    pub fn invalid_key(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            Some("invalid_api_key"),
            message,
        )
    }

    /// 403: the key may not do this, or its account is suspended.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", Some(code), message)
    }

    /// 404 model_not_found (unknown, or not allowed for this key).
    pub fn model_not_found(model: &str) -> Self {
        OpenAiError {
            param: Some("model"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
                format!("The model `{model}` does not exist or you do not have access to it."),
            )
        }
    }

    /// 429 rate_limit_error; `code` names the limit (`key_requests_per_min`…).
    pub fn rate_limited(
        message: impl Into<String>,
        layer: crosslogic_core::limits::Layer,
        kind: crosslogic_core::limits::LimitKind,
    ) -> Self {
        let code: &'static str = match (layer, kind) {
            (crosslogic_core::limits::Layer::Global, _) => "global_rate_limit_exceeded",
            (_, crosslogic_core::limits::LimitKind::Concurrency) => "concurrency_limit_exceeded",
            (_, crosslogic_core::limits::LimitKind::TokensPerMinute) => "tokens_per_min_exceeded",
            _ => "requests_per_min_exceeded",
        };
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some(code), message)
    }

    /// 429 insufficient_quota (the environment's daily token quota).
    pub fn quota(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("insufficient_quota"),
            message,
        )
    }

    /// 503: nothing can serve the request right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        OpenAiError {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("model_unavailable"),
                message,
            )
        }
    }

    /// 502: the node failed.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "server_error", Some("upstream_error"), message)
    }

    /// 500 without internals (the cause is logged by the caller).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            "The server had an error while processing your request.",
        )
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp
    }
}
