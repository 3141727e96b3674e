//! Failure injection driven by request headers.
//!
//! - `X-Sim-Delay-Ms: <n>` — wait n milliseconds before anything else;
//! - `X-Return-Error: <status>` — answer with that status (400..=599) and
//!   vLLM's error envelope, before any byte;
//! - `X-Sim-Abort-After: <n>` — break a stream after n content tokens (see
//!   `stream`), or answer a non-streaming request with 500.
//!
//! The random failures of `SimConfig::error_rate` are drawn by `Sim::roll_error`.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

use super::engine::pause;
use super::error::ApiError;

pub(crate) const DELAY_HEADER: &str = "x-sim-delay-ms";
pub(crate) const RETURN_ERROR_HEADER: &str = "x-return-error";
pub(crate) const ABORT_AFTER_HEADER: &str = "x-sim-abort-after";

/// What the headers ask of the rest of the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    /// Content tokens after which a stream breaks.
    pub(crate) abort_after: Option<u32>,
}

impl Directives {
    /// The error a non-streaming request gets when asked to abort.
    pub(crate) fn abort_unary(&self) -> Result<(), ApiError> {
        match self.abort_after {
            Some(_) => Err(ApiError::internal("Simulated engine failure (X-Sim-Abort-After).")),
            None => Ok(()),
        }
    }
}

/// Applies the delay and forced-error headers; returns the rest.
pub(crate) async fn apply(headers: &HeaderMap) -> Result<Directives, ApiError> {
    if let Some(ms) = number::<u64>(headers, DELAY_HEADER)? {
        pause(Duration::from_millis(ms)).await;
    }
    if let Some(code) = number::<u16>(headers, RETURN_ERROR_HEADER)? {
        let status = StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| ApiError::bad_request(format!("{RETURN_ERROR_HEADER} must be a status in 400..=599")))?;
        return Err(ApiError::new(
            status,
            format!("Simulated error ({RETURN_ERROR_HEADER}: {code})."),
        ));
    }
    Ok(Directives {
        abort_after: number::<u32>(headers, ABORT_AFTER_HEADER)?,
    })
}

/// A header parsed as a number; a present but unparsable value is a 400.
fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Result<Option<T>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<T>().ok())
                .ok_or_else(|| ApiError::bad_request(format!("invalid {name} header")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn headers_force_errors_and_aborts() {
        let mut h = HeaderMap::new();
        assert_eq!(apply(&h).await, Ok(Directives::default()));
        h.insert(ABORT_AFTER_HEADER, HeaderValue::from_static("3"));
        assert_eq!(apply(&h).await, Ok(Directives { abort_after: Some(3) }));
        h.insert(RETURN_ERROR_HEADER, HeaderValue::from_static("503"));
        assert_eq!(apply(&h).await.unwrap_err().status(), StatusCode::SERVICE_UNAVAILABLE);
        h.insert(RETURN_ERROR_HEADER, HeaderValue::from_static("200"));
        assert_eq!(apply(&h).await.unwrap_err().status(), StatusCode::BAD_REQUEST);
        h.insert(RETURN_ERROR_HEADER, HeaderValue::from_static("x"));
        assert_eq!(apply(&h).await.unwrap_err().status(), StatusCode::BAD_REQUEST);
    }
}
