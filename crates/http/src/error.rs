//! The error envelope: `{"error": {"message", "type", "param", "code"}}`,
//! with the type OpenAI uses for each status, on every API.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crosslogic_core::limits::{Layer, LimitKind};
use crosslogic_core::ServiceError;

/// An error answered by any of the APIs.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error`, `insufficient_quota`, `server_error`.
    pub kind: &'static str,
    /// A stable machine-readable reason (`not_found`, `invalid_value`…).
    pub code: Option<&'static str>,
    /// The request field or parameter at fault.
    pub param: Option<Cow<'static, str>>,
    pub message: String,
    /// Seconds for `retry-after` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with every part given.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error naming `param` as the field at fault.
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// 400: the request cannot be read (not JSON, wrong content type, a
    /// malformed query string).
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("invalid_request"),
            message,
        )
    }

    /// 422: `param` is missing, of the wrong type or out of range.
    pub fn invalid_value(param: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            Some("invalid_value"),
            message,
        )
        .with_param(param)
    }

    /// 400 as OpenAI answers an invalid inference request (code `null`).
    pub fn invalid_request(message: impl Into<String>, param: Option<&'static str>) -> ApiError {
        let e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", None, message);
        match param {
            Some(p) => e.with_param(p),
            None => e,
        }
    }

    /// 404 for something that does not exist (or that the caller may not see).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("not_found"),
            message,
        )
    }

    /// 401: the credential is missing, unknown or wrong.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", Some(code), message)
    }

    /// 401 `invalid_api_key` for a missing, unknown, revoked or expired key.
    pub fn invalid_key(message: impl Into<String>) -> ApiError {
        ApiError::unauthorized("invalid_api_key", message)
    }

    /// 403: the credential may not do this, or its account is suspended.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "permission_error", Some(code), message)
    }

    /// 404 `model_not_found` (unknown, or not allowed for this key).
    pub fn model_not_found(model: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
    }

    /// 429 `rate_limit_error`; the code names the limit that refused.
    pub fn rate_limited(message: impl Into<String>, layer: Layer, kind: LimitKind) -> ApiError {
        let code: &'static str = match (layer, kind) {
            (Layer::Global, _) => "global_rate_limit_exceeded",
            (_, LimitKind::Concurrency) => "concurrency_limit_exceeded",
            (_, LimitKind::TokensPerMinute) => "tokens_per_min_exceeded",
            _ => "requests_per_min_exceeded",
        };
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some(code), message)
    }

    /// 429 `insufficient_quota` (the environment's daily token quota).
    pub fn quota(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("insufficient_quota"),
            message,
        )
    }

    /// 503: nothing can serve the request right now (retry in 5 s).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("model_unavailable"),
                message,
            )
        }
    }

    /// 502: the upstream node failed.
    pub fn upstream(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, "server_error", Some("upstream_error"), message)
    }

    /// 500 without internals (the caller logs the cause once).
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            Some("internal_error"),
            "The server had an error while processing your request.",
        )
    }
}

/// The one mapping of service errors onto statuses and the envelope.
impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            ServiceError::Conflict { field, message } => {
                let e = ApiError::new(StatusCode::CONFLICT, "invalid_request_error", Some("conflict"), message);
                match field {
                    Some(f) => e.with_param(f),
                    None => e,
                }
            }
            ServiceError::Invalid { field, message } => ApiError::invalid_value(field, format!("{field}: {message}")),
            ServiceError::State(message) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                Some("invalid_state"),
                message,
            ),
            ServiceError::Unauthorized(message) => ApiError::unauthorized("invalid_credential", message),
            ServiceError::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                ApiError::internal()
            }
        }
    }
}

/// The body of every error answer: `{"error": {...}}` (OpenAI's envelope).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"message": "Incorrect API key provided: cl_k3j9x2ab_****.", "type": "authentication_error", "param": null, "code": "invalid_api_key"}}))]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A sentence for a person: what is wrong and what is accepted.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error`, `insufficient_quota` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field or parameter at fault.
    pub param: Option<String>,
    /// A stable machine-readable reason (`invalid_value`, `not_found`,
    /// `model_not_found`, `invalid_api_key`…).
    pub code: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                message: self.message,
                kind: self.kind.to_owned(),
                param: self.param.map(|p| p.into_owned()),
                code: self.code.map(str::to_owned),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_map_to_one_status_each() {
        let cases = [
            (ServiceError::NotFound("tenant"), 404, Some("not_found")),
            (ServiceError::invalid("email", "bad"), 422, Some("invalid_value")),
            (
                ServiceError::Conflict {
                    field: Some("email"),
                    message: "taken".into(),
                },
                409,
                Some("conflict"),
            ),
            (ServiceError::State("deleted".into()), 409, Some("invalid_state")),
            (ServiceError::Unauthorized("no"), 401, Some("invalid_credential")),
            (ServiceError::internal("disk on fire"), 500, Some("internal_error")),
        ];
        for (err, status, code) in cases {
            let e = ApiError::from(err);
            assert_eq!(e.status.as_u16(), status);
            assert_eq!(e.code, code);
            assert!(!e.message.contains("disk on fire"), "internals leaked");
        }
        let e = ApiError::from(ServiceError::invalid("email", "must be an email"));
        assert_eq!(e.param.as_deref(), Some("email"));
        assert_eq!(e.message, "email: must be an email");
    }
}
