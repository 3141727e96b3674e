//! The admin API's error responses and extractors. Errors use the same
//! envelope as the OpenAI-compatible API: `{"error": {message, type, param, code}}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::ServiceError;

/// An error answered by the admin API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    param: Option<String>,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
        }
    }

    fn param(mut self, p: impl Into<String>) -> ApiError {
        self.param = Some(p.into());
        self
    }

    /// 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } });
        (self.status, Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "not_found",
                format!("{what} not found"),
            ),
            ServiceError::Conflict { field, message } => {
                let e = ApiError::new(StatusCode::CONFLICT, "invalid_request_error", "conflict", message);
                match field {
                    Some(f) => e.param(f),
                    None => e,
                }
            }
            ServiceError::Invalid { field, message } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "invalid_value",
                format!("{field}: {message}"),
            )
            .param(field),
            ServiceError::State(message) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_request_error", "invalid_state", message)
            }
            ServiceError::Internal(e) => {
                tracing::error!(error = %e, "admin request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal_error",
                    "internal error",
                )
            }
        }
    }
}

/// A JSON body whose parse errors come back in the error envelope (400 for
/// malformed JSON, 422 naming the field for a wrong or missing one).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "invalid_value",
                e.body_text()
                    .replace("Failed to deserialize the JSON body into the target type: ", ""),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::bad_request(
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {}", e.body_text()))),
        }
    }
}

/// A `{id}` path segment that must be a UUID.
pub struct Id(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Uuid::parse_str(&raw).map(Id).map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "not_found",
                format!("{raw:?} is not an id"),
            )
        })
    }
}
