//! Signing in and out, and the [`Session`] every page extracts.
//!
//! The cookie holds 256 random bits; PostgreSQL keeps their SHA-256 with
//! the principal (operator, or a tenant's key). Each request re-reads the
//! session with its key's current status, so a revoked key, a suspended
//! tenant, a rotated operator token, a logout or an idle period ends it
//! on every replica at once. The CSRF token of a session is derived from
//! its secret (the page embeds it; a cross-site page cannot read it).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use chrono::Utc;
use crosslogic_core::{keys, Actor, ApiKeyRole};
use crosslogic_db::repo::{api_keys, console as sessions};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::html;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::form::CsrfForm;
use crate::page::{self, Flash, PageError, PageResult};
use crate::ConsoleState;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "cl_session";
/// The sign-in form's double-submit token (before any session exists).
const LOGIN_COOKIE: &str = "cl_login";
/// Activity is written at most this often (seconds) per session.
const TOUCH_EVERY_SECS: i64 = 15;

/// A tenant signed in with one of its keys.
#[derive(Debug, Clone)]
pub(crate) struct TenantWho {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub key_id: Uuid,
    pub key_prefix: String,
    pub key_name: String,
    pub role: ApiKeyRole,
}

impl TenantWho {
    /// Whether this key may change things (create or revoke keys…).
    pub fn can_manage(&self) -> bool {
        self.role == ApiKeyRole::Admin
    }
}

/// Who is signed in.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    Operator,
    Tenant(TenantWho),
}

/// A live session, extracted from the cookie; pages without one redirect
/// to the sign-in page.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub who: Who,
    /// The token every form of this session must carry.
    pub csrf: String,
    /// A one-time message left by the previous action.
    pub flash: Option<Flash>,
    /// The client's address, recorded with the changes it makes.
    pub ip: Option<String>,
}

impl Session {
    /// Who makes the changes of this session: the operator, or the key.
    pub fn actor(&self) -> Actor {
        match &self.who {
            Who::Operator => Actor::admin(self.ip.clone()),
            Who::Tenant(t) => Actor::key(&t.key_prefix, self.ip.clone()),
        }
    }
}

/// The CSRF token of the session whose secret is `token`.
fn csrf_of(token: &str) -> String {
    hex::encode(&Sha256::digest(format!("crosslogic-console-csrf:{token}").as_bytes())[..16])
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Whether the request reached the proxy in front of us over TLS (the
/// server itself speaks plain HTTP): cookies are then `Secure`.
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    let proto = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    proto("x-forwarded-proto").is_some_and(|p| p.split(',').next().is_some_and(|p| p.trim() == "https"))
        || proto("forwarded").is_some_and(|f| f.contains("proto=https"))
}

/// A cookie scoped to the console.
pub(crate) fn cookie(name: &'static str, value: String, headers: &HeaderMap) -> Cookie<'static> {
    let mut c = Cookie::new(name, value);
    c.set_path("/console");
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.set_secure(over_tls(headers));
    c
}

/// The cookie that removes `name` from a jar that holds it.
pub(crate) fn removal(name: &'static str) -> Cookie<'static> {
    let mut c = Cookie::from(name);
    c.set_path("/console");
    c
}

/// A cookie that makes the browser drop `name` (for responses built
/// without the request's jar).
pub(crate) fn expired(name: &'static str) -> Cookie<'static> {
    let mut c = removal(name);
    c.make_removal();
    c
}

fn login_redirect(parts: &Parts) -> Response {
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
    let target = format!(
        "/console/login?{}",
        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
    );
    Redirect::to(&target).into_response()
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
            return Err(login_redirect(parts));
        };
        let idle = state.settings.idle_timeout.as_secs() as i64;
        let found = sessions::find(state.pool(), &keys::hash(&token), idle)
            .await
            .map_err(|e| PageError::from(e).into_response())?;
        let Some(row) = found else {
            return Err(login_redirect(parts));
        };
        let who = match (row.api_key_id, row.tenant_id) {
            (Some(key_id), Some(tenant_id)) => {
                let role = row.key().filter(|k| k.usable(Utc::now())).map(|k| k.role);
                let Some(role) = role else {
                    // The key was revoked, suspended or expired since sign-in.
                    let _ = sessions::delete(state.pool(), &keys::hash(&token)).await;
                    return Err(login_redirect(parts));
                };
                Who::Tenant(TenantWho {
                    tenant_id,
                    tenant_name: row.tenant_name.unwrap_or_default(),
                    key_id,
                    key_prefix: row.key_prefix.unwrap_or_default(),
                    key_name: row.key_name.unwrap_or_default(),
                    role,
                })
            }
            _ => {
                let current = state.admin.operator_token().map(|t| t.fingerprint("console-operator"));
                if current.is_none() || current != row.credential_hash {
                    // The operator token changed (or was removed) since sign-in.
                    let _ = sessions::delete(state.pool(), &keys::hash(&token)).await;
                    return Err(login_redirect(parts));
                }
                Who::Operator
            }
        };
        if (Utc::now() - row.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
            sessions::touch(state.pool(), row.id)
                .await
                .map_err(|e| PageError::from(e).into_response())?;
        }
        Ok(Session {
            who,
            csrf: csrf_of(&token),
            flash: Flash::from_jar(&jar),
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        })
    }
}

/// Sign-in attempts per client address (in this process: each replica
/// counts its own, which bounds guessing per replica).
pub struct LoginLimiter(DefaultKeyedRateLimiter<IpAddr>);

impl LoginLimiter {
    /// `per_min` attempts per minute and address (at least 1).
    pub fn new(per_min: u32) -> LoginLimiter {
        let n = NonZeroU32::new(per_min.max(1)).unwrap_or(NonZeroU32::MIN);
        LoginLimiter(RateLimiter::keyed(Quota::per_minute(n)))
    }

    fn allow(&self, ip: IpAddr) -> bool {
        if self.0.len() > 10_000 {
            self.0.retain_recent();
        }
        self.0.check_key(&ip).is_ok()
    }
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// Where to go after signing in: a console path, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/console".to_owned(),
    }
}

/// `GET /console/login`.
pub(crate) async fn login_page(headers: HeaderMap, jar: CookieJar, Query(q): Query<LoginQuery>) -> Response {
    let token = random_token();
    let flash = Flash::from_jar(&jar);
    let body = login_form(&token, &safe_next(q.next.as_deref()), None);
    let jar = jar.add(cookie(LOGIN_COOKIE, token, &headers));
    let mut resp = page::bare("Sign in", flash.as_ref(), body);
    if flash.is_some() {
        resp = (Flash::clear(), resp).into_response();
    }
    (jar, resp).into_response()
}

fn login_form(token: &str, next: &str, error: Option<&str>) -> maud::Markup {
    html! {
        section.login {
            h1 { "Sign in to CrossLogic" }
            @if let Some(e) = error { p.flash.error role="alert" { (e) } }
            form method="post" action="/console/login" {
                input type="hidden" name="login_csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="credential" { "Operator token or API key" }
                input #credential type="password" name="credential" required autocomplete="current-password" autofocus;
                p.hint {
                    "Operators: the token in " code { "ADMIN_API_TOKEN" } " (the demo keeps it in "
                    code { ".crosslogic/admin-token" } "). Tenants: an API key — an " code { "admin" }
                    " key manages keys and channels; other roles can look."
                }
                button type="submit" { "Sign in" }
            }
        }
    }
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    credential: String,
    login_csrf: String,
    next: Option<String>,
}

/// `POST /console/login`.
pub(crate) async fn login(
    State(s): State<ConsoleState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::Form(f): axum::Form<LoginForm>,
) -> PageResult {
    let next = safe_next(f.next.as_deref());
    let retry = |status: StatusCode, msg: &str| -> Response {
        let token = random_token();
        let jar = CookieJar::new().add(cookie(LOGIN_COOKIE, token.clone(), &headers));
        let mut resp = page::bare("Sign in", None, login_form(&token, &next, Some(msg)));
        *resp.status_mut() = status;
        (jar, resp).into_response()
    };
    if !s.limiter.allow(addr.ip()) {
        let mut r = retry(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from your address: wait a minute and try again.",
        );
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("60"),
        );
        return Ok(r);
    }
    let expected = jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    if expected.is_empty() || !crate::form::same(&expected, &f.login_csrf) {
        return Ok(retry(
            StatusCode::FORBIDDEN,
            "This sign-in form expired or did not come from the console: try again.",
        ));
    }
    let credential = f.credential.trim();
    let principal = if keys::prefix_of(credential).is_some() {
        match api_keys::auth_by_hash(s.pool(), &keys::hash(credential)).await {
            Ok(k) if usable(&k) => Some(sessions::Principal::Tenant {
                api_key_id: k.key_id,
                tenant_id: k.tenant_id,
            }),
            Ok(_) | Err(crosslogic_db::DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        s.admin
            .operator_token()
            .filter(|t| t.matches(credential))
            .map(|t| sessions::Principal::Operator {
                credential_fingerprint: t.fingerprint("console-operator"),
            })
    };
    let Some(principal) = principal else {
        tracing::info!(client = %addr.ip(), "console sign-in refused");
        let msg = if keys::prefix_of(credential).is_none() && s.admin.operator_token().is_none() {
            "That is not an API key, and operator sign-in is disabled on this server (ADMIN_API_TOKEN is not set)."
        } else {
            "That token or key is not valid, or the key is revoked, suspended or expired."
        };
        return Ok(retry(StatusCode::UNAUTHORIZED, msg));
    };
    let token = random_token();
    let idle = s.settings.idle_timeout.as_secs() as i64;
    let lifetime = chrono::Duration::from_std(s.settings.session_lifetime).unwrap_or(chrono::Duration::hours(12));
    sessions::create(
        s.pool(),
        &sessions::NewSession {
            token_hash: keys::hash(&token),
            principal,
            client_ip: Some(addr.ip().to_string()),
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|u| u.chars().take(512).collect()),
            expires_at: Utc::now() + lifetime,
        },
        idle,
    )
    .await?;
    tracing::info!(client = %addr.ip(), "console sign-in");
    let jar = jar
        .remove(removal(LOGIN_COOKIE))
        .add(cookie(SESSION_COOKIE, token, &headers));
    Ok((jar, Redirect::to(&next)).into_response())
}

/// Whether a key may sign in: the gateway's rule (`core::keys::refusal`).
fn usable(k: &api_keys::KeyAuth) -> bool {
    keys::refusal(
        k.key_status,
        k.expires_at,
        k.environment_status,
        k.tenant_status,
        Utc::now(),
    )
    .is_none()
}

/// `POST /console/logout`.
pub(crate) async fn logout(
    State(s): State<ConsoleState>,
    jar: CookieJar,
    CsrfForm(_session, _): CsrfForm<page::Empty>,
) -> PageResult {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        sessions::delete(s.pool(), &keys::hash(c.value())).await?;
    }
    let jar = jar.remove(removal(SESSION_COOKIE));
    Ok((jar, Flash::ok("Signed out.").redirect("/console/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(safe_next(Some("/console/tenants?q=a")), "/console/tenants?q=a");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console");
        assert_eq!(safe_next(Some("//evil.example/console")), "/console");
        assert_eq!(safe_next(Some("/console\\..\\x")), "/console");
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn csrf_depends_on_the_session_secret() {
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert_eq!(csrf_of("a"), csrf_of("a"));
        assert_eq!(csrf_of("a").len(), 32);
    }

    #[test]
    fn tls_is_read_from_the_proxy_headers() {
        let mut h = HeaderMap::new();
        assert!(!over_tls(&h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(over_tls(&h));
        h.insert("x-forwarded-proto", "http".parse().unwrap());
        assert!(!over_tls(&h));
        h.insert("forwarded", "for=1.2.3.4;proto=https".parse().unwrap());
        assert!(over_tls(&h));
    }

    #[test]
    fn login_limiter_counts_per_address() {
        let l = LoginLimiter::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.allow(a) && l.allow(a));
        assert!(!l.allow(a));
        assert!(l.allow(b));
    }
}
