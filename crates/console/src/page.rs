//! The page shell (navigation, flash messages, security headers), errors
//! as pages, and the small formatting helpers every page uses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, Utc};
use crosslogic_core::ServiceError;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use crate::session::{Session, Who};

/// What a page handler answers.
pub(crate) type PageResult = Result<Response, PageError>;

/// A form with no fields but the CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

/// The cookie carrying a one-time message to the next page.
const FLASH_COOKIE: &str = "cl_flash";

/// A one-time message shown on the next page (after a redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub ok: bool,
    pub message: String,
}

impl Flash {
    pub fn ok(message: impl Into<String>) -> Flash {
        Flash {
            ok: true,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Flash {
        Flash {
            ok: false,
            message: message.into(),
        }
    }

    pub fn from_jar(jar: &CookieJar) -> Option<Flash> {
        let v = jar.get(FLASH_COOKIE)?.value();
        let decoded: Vec<(String, String)> = serde_urlencoded::from_str(v).ok()?;
        let (kind, message) = decoded.into_iter().next()?;
        Some(Flash {
            ok: kind == "ok",
            message: message.chars().take(500).collect(),
        })
    }

    /// A redirect (303) to `to` that shows this message there.
    pub fn redirect(self, to: &str) -> Response {
        let value = serde_urlencoded::to_string([(if self.ok { "ok" } else { "error" }, self.message.as_str())])
            .unwrap_or_default();
        let mut c = crate::session::removal(FLASH_COOKIE);
        c.set_value(value);
        c.set_http_only(true);
        c.set_same_site(axum_extra::extract::cookie::SameSite::Strict);
        c.set_max_age(Some(time_secs(60)));
        (CookieJar::new().add(c), Redirect::to(to)).into_response()
    }

    /// Removes the message once shown.
    pub fn clear() -> CookieJar {
        CookieJar::new().add(crate::session::expired(FLASH_COOKIE))
    }
}

fn time_secs(s: i64) -> time::Duration {
    time::Duration::seconds(s)
}

/// The redirect after a form: back to `to` with the outcome as a message.
pub(crate) fn after<T>(to: &str, result: Result<T, ServiceError>, ok: impl FnOnce(T) -> String) -> PageResult {
    match result {
        Ok(v) => Ok(Flash::ok(ok(v)).redirect(to)),
        Err(ServiceError::Internal(e)) => Err(PageError::from(ServiceError::Internal(e))),
        Err(e) => Ok(Flash::error(explain(&e)).redirect(to)),
    }
}

/// A user-facing sentence for a refused change.
pub(crate) fn explain(e: &ServiceError) -> String {
    match e {
        ServiceError::Invalid { field, message } => format!("{}: {message}", field.replace('_', " ")),
        ServiceError::NotFound(what) => format!("The {what} no longer exists."),
        other => other.to_string(),
    }
}

/// A read whose error becomes a page (for `try_join!` of a page's reads).
pub(crate) async fn load<T, E: Into<PageError>>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, PageError> {
    f.await.map_err(Into::into)
}

/// A failure shown as a page.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    title: String,
    message: String,
}

impl PageError {
    pub fn new(status: StatusCode, title: &str, message: &str) -> PageError {
        PageError {
            status,
            title: title.to_owned(),
            message: message.to_owned(),
        }
    }

    pub fn forbidden(message: &str) -> PageError {
        PageError::new(StatusCode::FORBIDDEN, "Not allowed", message)
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => PageError::new(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("This {what} does not exist (or is not yours)."),
            ),
            ServiceError::Internal(err) => {
                tracing::error!(error = %err, "console page failed");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not build this page; the error is in its log. Try again in a moment.",
                )
            }
            ServiceError::Unauthorized(m) => PageError::new(StatusCode::UNAUTHORIZED, "Not signed in", m),
            other => PageError::new(StatusCode::UNPROCESSABLE_ENTITY, "Refused", &explain(&other)),
        }
    }
}

impl From<crosslogic_db::DbError> for PageError {
    fn from(e: crosslogic_db::DbError) -> Self {
        PageError::from(ServiceError::from(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = html! {
            section.error-page {
                h1 { (self.title) }
                p { (self.message) }
                p { a href="/console" { "Back to the console" } }
            }
        };
        let mut r = bare(&self.title, None, body);
        *r.status_mut() = self.status;
        r
    }
}

/// Security headers of every console response: no inline script, no
/// framing, nothing cached (pages hold tenants' data).
pub(crate) async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let assets = req.uri().path().starts_with("/console/assets/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !assets {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · CrossLogic console" }
        link rel="icon" href="data:,";
        link rel="stylesheet" href=(crate::assets::url("uPlot.min.css"));
        link rel="stylesheet" href=(crate::assets::url("console.css"));
        script src=(crate::assets::url("uPlot.iife.min.js")) defer {}
        script src=(crate::assets::url("console.js")) defer {}
    }
}

fn flash_box(flash: Option<&Flash>) -> Markup {
    html! {
        @if let Some(f) = flash {
            p.flash.ok[f.ok].error[!f.ok] role=(if f.ok { "status" } else { "alert" }) { (f.message) }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub(crate) fn bare(title: &str, flash: Option<&Flash>, body: Markup) -> Response {
    let doc = html! {
        html lang="en" {
            head { (head(title)) }
            body.bare {
                main #main { (flash_box(flash)) (body) }
            }
        }
    };
    html_response(doc)
}

fn html_response(doc: Markup) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        doc.into_string(),
    )
        .into_response()
}

const OPERATOR_NAV: &[(&str, &str, &str)] = &[
    ("overview", "/console", "Overview"),
    ("tenants", "/console/tenants", "Tenants"),
    ("deployments", "/console/deployments", "Deployments"),
    ("nodes", "/console/nodes", "Nodes"),
    ("catalog", "/console/catalog", "Catalog"),
    ("events", "/console/events", "Events"),
    ("deliveries", "/console/deliveries", "Deliveries"),
    ("billing", "/console/billing", "Billing"),
];

const TENANT_NAV: &[(&str, &str, &str)] = &[
    ("overview", "/console", "Usage"),
    ("keys", "/console/keys", "API keys"),
    ("channels", "/console/channels", "Notifications"),
];

/// A signed-in page: navigation for the session's principal, its flash
/// message (cleared once shown), and `body`.
pub(crate) fn render(session: &Session, title: &str, active: &str, body: Markup) -> Response {
    let (nav, who) = match &session.who {
        Who::Operator => (OPERATOR_NAV, "Operator".to_owned()),
        Who::Tenant(t) => (
            TENANT_NAV,
            match t.key_name.as_str() {
                "" => format!("{} · key {}… ({})", t.tenant_name, t.key_prefix, t.role.as_str()),
                name => format!("{} · {name} ({}…, {})", t.tenant_name, t.key_prefix, t.role.as_str()),
            },
        ),
    };
    let doc = html! {
        html lang="en" {
            head { (head(title)) }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "CrossLogic" }
                    nav aria-label="Console" {
                        ul {
                            @for (key, href, label) in nav {
                                li { a href=(href) aria-current=[(*key == active).then_some("page")] { (label) } }
                            }
                        }
                    }
                    div.who {
                        span { (who) }
                        form method="post" action="/console/logout" {
                            (csrf(session))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    (flash_box(session.flash.as_ref()))
                    (body)
                }
            }
        }
    };
    let resp = html_response(doc);
    if session.flash.is_some() {
        (Flash::clear(), resp).into_response()
    } else {
        resp
    }
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A one-button form posting to `action`, asking `confirm` first when given.
pub(crate) fn action_button(
    session: &Session,
    action: &str,
    label: &str,
    confirm: Option<&str>,
    danger: bool,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(session))
            button.danger[danger] type="submit" { (label) }
        }
    }
}

/// A timestamp as UTC text.
pub(crate) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago `t` was, in words.
pub(crate) fn ago(t: DateTime<Utc>) -> String {
    let s = (Utc::now() - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

/// How far `t` is from now, in words (`in 30 s` or `2 min ago`).
pub(crate) fn ago_or_in(t: DateTime<Utc>) -> String {
    let s = (t - Utc::now()).num_seconds();
    match s {
        ..=0 => ago(t),
        1..=59 => format!("in {s} s"),
        60..=3599 => format!("in {} min", s / 60),
        _ => format!("in {} h", s / 3600),
    }
}

/// A status as a coloured badge.
pub(crate) fn badge(status: &str) -> Markup {
    let tone =
        match status {
            "active" | "healthy" | "completed" | "delivered" | "exported" | "running" | "sent" | "processed"
            | "info" => "good",
            "launching" | "registering" | "draining" | "pending" | "paused" | "scaling" | "warn" | "retry"
            | "warning" => "warn",
            "suspended" | "revoked" | "dead" | "unhealthy" | "failed" | "terminated" | "deleted" | "error"
            | "critical" | "blocked" => "bad",
            _ => "neutral",
        };
    html! { span class={"badge " (tone)} { (status) } }
}

/// Whole micro-dollars as dollars (`$1.234567`, trailing zeros trimmed to cents).
pub(crate) fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (whole, frac) = (m / 1_000_000, m % 1_000_000);
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("{sign}${whole}.{f}")
}

/// A rate with the precision its size needs (`0.0028`, `3.52`, `1520.4`).
pub(crate) fn rate(v: f64) -> String {
    match v {
        0.0 => "0".into(),
        v if v < 0.1 => format!("{v:.4}"),
        v if v < 100.0 => format!("{v:.2}"),
        v => format!("{v:.1}"),
    }
}

/// A count with thousands separators.
pub(crate) fn count(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// An empty-state paragraph.
pub(crate) fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// JSON embedded for scripts (`<script type="application/json">`), with
/// `<` escaped so no value can close the element.
pub(crate) fn json_data(id: &str, value: &serde_json::Value) -> Markup {
    let text = value.to_string().replace('<', "\\u003c");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_counts_read_well() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(1_500_000), "$1.50");
        assert_eq!(usd(1_234_567), "$1.234567");
        assert_eq!(usd(-30), "-$0.00003");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(10.0 / 3600.0), "0.0028");
        assert_eq!(rate(3.5), "3.50");
        assert_eq!(rate(1520.44), "1520.4");
    }

    #[test]
    fn embedded_json_cannot_close_its_script() {
        let m = json_data("x", &serde_json::json!({"a": "</script><script>alert(1)</script>"}));
        assert!(!m.into_string().contains("</script><script>"));
    }
}
