//! Forms: every state-changing request carries the session's CSRF token
//! (and, when the browser sends one, an `Origin` of this host), and its
//! fields are read as text, then parsed with messages that name the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use crosslogic_core::ServiceError;
use serde::de::DeserializeOwned;

use crate::page::PageError;
use crate::session::Session;
use crate::ConsoleState;

/// Form bodies larger than this are refused.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Constant-time equality of two tokens.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// A form posted by a signed-in page of this console, with its fields.
pub(crate) struct CsrfForm<T>(pub Session, pub T);

fn forbidden(msg: &str) -> Response {
    PageError::new(StatusCode::FORBIDDEN, "Form refused", msg).into_response()
}

/// Whether `origin` (scheme://host[:port]) names the host the request was sent to.
fn origin_matches(origin: &str, host: &str) -> bool {
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

impl<T: DeserializeOwned + Send> FromRequest<ConsoleState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        if let (Some(origin), Some(host)) = (parts.headers.get(header::ORIGIN), parts.headers.get(header::HOST)) {
            let ok = matches!((origin.to_str(), host.to_str()), (Ok(o), Ok(h)) if origin_matches(o, h));
            if !ok {
                return Err(forbidden("This form was sent from another site."));
            }
        }
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Form refused",
                "Send the form as application/x-www-form-urlencoded.",
            )
            .into_response());
        }
        let req = Request::from_parts(parts, body);
        let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "Form refused", "The form is too large.").into_response()
            })?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            PageError::new(StatusCode::BAD_REQUEST, "Form refused", "The form could not be read.").into_response()
        })?;
        let presented = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
        if !presented.is_some_and(|p| same(p, &session.csrf)) {
            return Err(forbidden(
                "This form expired or did not come from this console session: reload the page and try again.",
            ));
        }
        let value = parse::<T>(&bytes).map_err(|e| e.into_response())?;
        Ok(CsrfForm(session, value))
    }
}

fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Form refused",
            &format!("The form is incomplete or has a wrong value: {e}."),
        )
    })
}

/// An optional text field: `None` when empty or blank.
pub(crate) fn text(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An optional whole number field, its error naming `field`.
pub(crate) fn int(field: &'static str, v: &Option<String>) -> Result<Option<i64>, ServiceError> {
    text(v)
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ServiceError::invalid(field, format!("`{s}` is not a whole number")))
        })
        .transpose()
}

/// An optional field parsed with `FromStr` (enums, ids), its error naming `field`.
pub(crate) fn parsed<T: std::str::FromStr>(field: &'static str, v: &Option<String>) -> Result<Option<T>, ServiceError>
where
    T::Err: std::fmt::Display,
{
    text(v)
        .map(|s| s.parse::<T>().map_err(|e| ServiceError::invalid(field, e.to_string())))
        .transpose()
}

/// A checkbox: present = on.
pub(crate) fn checked(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| s == "on" || s == "true" || s == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_name_this_host() {
        assert!(origin_matches("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(origin_matches("https://console.example.com", "console.example.com"));
        assert!(!origin_matches("https://evil.example", "console.example.com"));
        assert!(!origin_matches("null", "console.example.com"));
    }

    #[test]
    fn fields_parse_with_named_errors() {
        assert_eq!(int("min_replicas", &Some(" 3 ".into())).unwrap(), Some(3));
        assert_eq!(int("min_replicas", &Some("".into())).unwrap(), None);
        let e = int("min_replicas", &Some("three".into())).unwrap_err();
        assert!(e.to_string().contains("min_replicas"), "{e}");
        assert!(checked(&Some("on".into())) && !checked(&None));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
