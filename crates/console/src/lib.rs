//! The web console at `/console`: server-rendered pages for the operator
//! (signed in with the operator token) and for tenants (signed in with an
//! API key; `admin` keys manage, other roles read).
//!
//! Why server-rendered (maud) rather than a browser app over the JSON
//! APIs: the operator token and tenant keys never reach the browser (a
//! session cookie stands for them), pages need no build step and work
//! without JavaScript except for charts and live logs, and every page is
//! one round trip. The console is a third thin edge beside the admin API
//! and the tenant self-service: its handlers call the same business
//! functions (`crosslogic-tenancy`, `crosslogic_control::fleet`,
//! `crosslogic-billing`, `crosslogic-notify`) with the same validation,
//! events and audit entries, and it contains no SQL and no business rule.
//!
//! Security: sessions in PostgreSQL (`crosslogic_db::repo::console`), the
//! cookie `HttpOnly; SameSite=Strict; Path=/console` (`Secure` behind
//! TLS), a CSRF token on every form, rate-limited sign-in, idle and
//! absolute expiry, a strict Content-Security-Policy (no inline script).

mod assets;
mod chart;
mod form;
mod operator;
mod page;
mod panels;
mod session;
mod tenant;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use crosslogic_control::admin::AdminState;

pub use session::LoginLimiter;

/// Console settings (from `CONSOLE_*`).
#[derive(Debug, Clone, Copy)]
pub struct ConsoleSettings {
    /// A session unused this long ends (`CONSOLE_IDLE_TIMEOUT`, 30 min).
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in whatever its use
    /// (`CONSOLE_SESSION_LIFETIME`, 12 h).
    pub session_lifetime: Duration,
    /// Sign-in attempts allowed per client address and minute (10).
    pub login_attempts_per_min: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            idle_timeout: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
            login_attempts_per_min: 10,
        }
    }
}

/// What console handlers share: the admin API's state (pool, operator
/// token, provisioning jobs, notification and billing settings), so both
/// edges act alike.
#[derive(Clone)]
pub struct ConsoleState {
    pub(crate) admin: AdminState,
    pub(crate) settings: ConsoleSettings,
    pub(crate) limiter: Arc<LoginLimiter>,
}

impl ConsoleState {
    /// The console over `admin`'s state.
    pub fn new(admin: AdminState, settings: ConsoleSettings) -> ConsoleState {
        let limiter = Arc::new(LoginLimiter::new(settings.login_attempts_per_min));
        ConsoleState {
            admin,
            settings,
            limiter,
        }
    }

    pub(crate) fn pool(&self) -> &crosslogic_db::PgPool {
        &self.admin.pool
    }
}

/// Every console route.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(overview))
        .route(
            "/console/",
            get(|| async { axum::response::Redirect::permanent("/console") }),
        )
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .merge(operator::routes())
        .merge(tenant::routes())
        .layer(axum::middleware::from_fn(page::security_headers))
        .with_state(state)
}

/// `/console`: the operator's overview or the tenant's.
async fn overview(
    s: axum::extract::State<ConsoleState>,
    session: session::Session,
    headers: axum::http::HeaderMap,
    q: axum::extract::Query<chart::RangeQuery>,
) -> page::PageResult {
    match session.who.clone() {
        session::Who::Operator => operator::overview::page(s, session, q).await,
        session::Who::Tenant(t) => tenant::overview::page(s, session, t, headers, q).await,
    }
}
