//! Extractors whose rejections are [`ApiError`]s naming the field at fault:
//! a JSON body, a query string and a UUID path segment; and the bearer
//! token of a request.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::ApiError;

/// The token of `Authorization: Bearer <token>`, trimmed; `None` when the
/// header is absent, not text or not a bearer credential.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A JSON body: 400 when it is not JSON (or not sent as JSON), 422 naming
/// the field (`param`) when a field is missing, unknown or of the wrong type.
pub struct Body<T>(pub T);

/// Like [`Body`], but an empty body means `T::default()` (for creations
/// whose fields are all optional).
pub struct BodyOrDefault<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let json = is_json(req.headers());
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|e| ApiError::malformed(format!("could not read the body: {}", e.body_text())))?;
    Ok((json, bytes))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (json, bytes) = read(req, state).await?;
        if !json {
            return Err(ApiError::malformed(
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        parse_json(&bytes).map(Body)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for BodyOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (json, bytes) = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(BodyOrDefault(T::default()));
        }
        if !json {
            return Err(ApiError::malformed(
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        parse_json(&bytes).map(BodyOrDefault)
    }
}

/// Parses a JSON document into `T`, with errors that name their field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // PostgreSQL cannot store NUL in text or jsonb: refuse it here, naming
    // the field, rather than fail at the database. Only a body that spells
    // the escape at all is looked at twice.
    if bytes.windows(6).any(|w| w == br"\u0000") {
        if let Some(path) = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .as_ref()
            .and_then(|v| nul_at(v, String::new()))
        {
            let path = if path.is_empty() { ".".to_owned() } else { path };
            return Err(field_error(&path, "must not contain the NUL character (\\u0000)"));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => field_error(&path, &strip_position(&inner.to_string())),
            _ => ApiError::malformed(format!("invalid JSON body: {inner}")),
        }
    })?;
    // Characters after the document make it malformed too.
    de.end()
        .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// The path (as serde_path_to_error writes it) of the first string or key
/// holding a NUL character.
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let inner = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(path.clone())
            } else {
                nul_at(v, inner)
            }
        }),
        _ => None,
    }
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rsplit_once(" at line ") {
        Some((m, _)) => m.to_owned(),
        None => message.to_owned(),
    }
}

/// A 422 for a data error at `path` (`.` = the document itself).
fn field_error(path: &str, message: &str) -> ApiError {
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|r| r.split('`').next())
            .map(str::to_owned)
    };
    // A missing or unknown field is reported at its parent: name the field.
    let missing = quoted("missing field `");
    let named = missing.clone().or_else(|| quoted("unknown field `"));
    let parent = (path != ".").then(|| path.to_owned());
    let param = match (parent, named) {
        (Some(p), Some(f)) => format!("{p}.{f}"),
        (None, Some(f)) => f,
        (Some(p), None) => p,
        (None, None) => return ApiError::invalid_value("body", format!("body: {message}")).without_param(),
    };
    let top = param.split(['.', '[']).next().unwrap_or_default().to_owned();
    if top.is_empty() {
        // The document itself has the wrong shape (e.g. an array).
        return ApiError::invalid_value("body", format!("body: {message}")).without_param();
    }
    let text = if missing.is_some() {
        format!("{param}: is required ({message})")
    } else if message.contains(&format!("`{param}`")) {
        message.to_owned()
    } else {
        format!("{param}: {message}")
    };
    ApiError::invalid_value(top, text)
}

impl ApiError {
    fn without_param(mut self) -> ApiError {
        self.param = None;
        self
    }
}

/// A query string: 400 when it cannot be decoded, 422 naming the parameter
/// when one is unknown or of the wrong type. No query string is an empty one.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Parses a query string into `T`, with errors that name their parameter.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // As for bodies: PostgreSQL cannot compare against a NUL character.
    if let Some((name, _)) = form_urlencoded::parse(query.as_bytes()).find(|(_, v)| v.contains('\0')) {
        return Err(field_error(&name, "must not contain the NUL character (%00)"));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        field_error(&path, &message)
    })
}

/// A `{id}` path segment that must be a UUID; anything else is a 404
/// (it cannot name an existing resource).
pub struct Id(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::malformed(e.body_text()))?;
        Uuid::parse_str(&raw)
            .map(Id)
            .map_err(|_| ApiError::not_found(format!("{raw:?} is not an id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn a_nul_character_is_refused_naming_its_field() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Input {
            name: String,
            metadata: Option<serde_json::Value>,
        }
        let e = parse_json::<Input>(br#"{"name": "a\u0000b"}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.param.as_deref(), Some("name"), "{e:?}");
        let e = parse_json::<Input>(br#"{"name": "x", "metadata": {"k": ["ok", "\u0000"]}}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("metadata"), "{e:?}");
        assert!(e.message.contains("metadata.k[1]"), "{e:?}");
        let e = parse_query::<Input>("name=a%00").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("name"), "{e:?}");
        // An escaped backslash followed by "u0000" is ordinary text.
        let ok = parse_json::<Input>(br#"{"name": "\\u0000"}"#).unwrap();
        assert_eq!(ok.name, "\\u0000");
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: String,
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        limits: Option<Limits>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        rpm: u32,
    }

    fn body_err(text: &str) -> ApiError {
        match parse_json::<Input>(text.as_bytes()) {
            Ok(v) => panic!("{text} parsed: {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        let e = body_err(r#"{"count": 1}"#);
        assert_eq!((e.status.as_u16(), e.param.as_deref()), (422, Some("name")));
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
        let e = body_err(r#"{"name": "a", "colour": 1}"#);
        assert_eq!(e.param.as_deref(), Some("colour"));
        assert!(e.message.contains("unknown field `colour`"), "{}", e.message);
        let e = body_err(r#"{"name": "a", "count": "x"}"#);
        assert_eq!(e.param.as_deref(), Some("count"));
        assert!(e.message.starts_with("count: invalid type"), "{}", e.message);
        let e = body_err(r#"{"name": "a", "limits": {"rpm": -1}}"#);
        assert_eq!(e.param.as_deref(), Some("limits"));
        assert!(e.message.starts_with("limits.rpm: "), "{}", e.message);
        let e = body_err(r#"[1]"#);
        assert_eq!((e.status.as_u16(), e.param.as_deref()), (422, None));
        for bad in [r#"{"name": "#, "nope", r#"{"name": "a"} x"#] {
            let e = body_err(bad);
            assert_eq!(e.status.as_u16(), 400, "{bad}: {}", e.message);
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        limit: Option<i64>,
        status: Option<crosslogic_core::NodeStatus>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        assert!(parse_query::<Q>("").is_ok());
        let q: Q = parse_query("limit=5&status=active").unwrap();
        assert_eq!(q.limit, Some(5));
        let e = parse_query::<Q>("limit=lots").unwrap_err();
        assert_eq!((e.status.as_u16(), e.param.as_deref()), (422, Some("limit")));
        let e = parse_query::<Q>("status=asleep").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("status"));
        let e = parse_query::<Q>("colour=blue").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("colour"));
    }

    #[test]
    fn bearer_tokens_are_parsed_once() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
