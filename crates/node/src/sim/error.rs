//! Errors in vLLM's OpenAI-server envelope.
//!
//! vLLM answers every failure with
//! `{"error":{"message":"…","type":"BadRequestError","param":null,"code":400}}`:
//! `type` names the HTTP status the way the OpenAI Python SDK names its
//! exception classes and `code` repeats the status number.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A request that failed before any response byte was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// Any status with a message.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400 `BadRequestError`: the request is malformed or cannot be served.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 `NotFoundError` for a model this server does not serve, worded as vLLM does.
    pub(crate) fn unknown_model(model: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("The model `{model}` does not exist."))
    }

    /// 500 `InternalServerError` (injected failures; says nothing about internals).
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The HTTP status of the response.
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

/// The `type` field vLLM (and the OpenAI SDK) use for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequestError",
        401 => "AuthenticationError",
        403 => "PermissionDeniedError",
        404 => "NotFoundError",
        408 => "RequestTimeoutError",
        409 => "ConflictError",
        413 => "RequestEntityTooLargeError",
        422 => "UnprocessableEntityError",
        429 => "RateLimitError",
        500 => "InternalServerError",
        501 => "NotImplementedError",
        502 => "BadGatewayError",
        503 => "ServiceUnavailableError",
        504 => "GatewayTimeoutError",
        s if s >= 500 => "InternalServerError",
        _ => "BadRequestError",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status.as_u16(), message = %self.message, "simulator request refused");
        let body = json!({
            "error": {
                "message": self.message,
                "type": error_type(self.status),
                "param": null,
                "code": self.status.as_u16(),
            }
        });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_status() {
        assert_eq!(error_type(StatusCode::BAD_REQUEST), "BadRequestError");
        assert_eq!(error_type(StatusCode::NOT_FOUND), "NotFoundError");
        assert_eq!(error_type(StatusCode::SERVICE_UNAVAILABLE), "ServiceUnavailableError");
        assert_eq!(error_type(StatusCode::from_u16(599).unwrap()), "InternalServerError");
        assert_eq!(error_type(StatusCode::from_u16(418).unwrap()), "BadRequestError");
    }
}
