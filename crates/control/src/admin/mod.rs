//! The operator's admin API under `/admin/v1`, authenticated with
//! `ADMIN_API_TOKEN` (`Authorization: Bearer …`, compared in constant time).
//!
//! Handlers extract with `crosslogic-http` (one body, query and path-id
//! extractor, one error envelope), call a function of
//! [`crosslogic_tenancy`] or [`crate::fleet`] that knows nothing of HTTP,
//! and answer that result's view type from [`views`] (or
//! `crosslogic_tenancy::views`): rows never reach the wire.

mod billing;
mod events;
mod fleet;
mod nodes;
mod notifications;
mod tenancy;
pub mod views;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use crosslogic_core::keys::TokenDigest;
use crosslogic_core::Actor;
use crosslogic_db::PgPool;
use crosslogic_http::{bearer, ApiError};
use secrecy::{ExposeSecret, SecretString};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// Database pool.
    pub pool: PgPool,
    /// The operator token; `None` disables the admin API.
    token: Option<TokenDigest>,
    /// Background provisioning jobs, when this control plane launches nodes.
    pub jobs: Option<crate::jobs::Jobs>,
    /// Notification test sends and destination rules.
    pub notify: Option<crosslogic_notify::NotifyApi>,
    /// Billing settings the admin API applies (signup credit, grace period).
    pub billing: crosslogic_billing::BillingApi,
}

impl AdminState {
    /// State for the admin API; without a token every admin request is refused.
    pub fn new(pool: PgPool, token: Option<&SecretString>) -> AdminState {
        AdminState {
            pool,
            token: token.map(|t| TokenDigest::of(t.expose_secret())),
            jobs: None,
            notify: crosslogic_notify::NotifyApi::strict().ok(),
            billing: crosslogic_billing::BillingApi::default(),
        }
    }

    /// The operator token's digest (`None`: the admin API is disabled).
    pub fn operator_token(&self) -> Option<&TokenDigest> {
        self.token.as_ref()
    }

    /// Applies the process's billing settings.
    pub fn with_billing(mut self, billing: crosslogic_billing::BillingApi) -> AdminState {
        self.billing = billing;
        self
    }

    /// Sends test notifications and checks destinations as `notify` says.
    pub fn with_notify(mut self, notify: crosslogic_notify::NotifyApi) -> AdminState {
        self.notify = Some(notify);
        self
    }

    /// Lets node termination tear clusters down through `jobs`.
    pub fn with_jobs(mut self, jobs: crate::jobs::Jobs) -> AdminState {
        self.jobs = Some(jobs);
        self
    }
}

/// Every admin route, each documented by its handler's `#[utoipa::path]`
/// (which also gives the path and method it is served at).
pub fn router(state: AdminState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(tenancy::create_tenant, tenancy::list_tenants))
        .routes(routes!(
            tenancy::get_tenant,
            tenancy::update_tenant,
            tenancy::delete_tenant
        ))
        .routes(routes!(tenancy::suspend_tenant))
        .routes(routes!(tenancy::activate_tenant))
        .routes(routes!(tenancy::create_environment, tenancy::list_environments))
        .routes(routes!(tenancy::create_key, tenancy::list_keys))
        .routes(routes!(
            tenancy::get_environment,
            tenancy::update_environment,
            tenancy::delete_environment
        ))
        .routes(routes!(tenancy::suspend_environment))
        .routes(routes!(tenancy::activate_environment))
        .routes(routes!(tenancy::get_key, tenancy::update_key))
        .routes(routes!(tenancy::revoke_key))
        .routes(routes!(tenancy::suspend_key))
        .routes(routes!(tenancy::activate_key))
        .routes(routes!(fleet::list_regions))
        .routes(routes!(fleet::get_region, fleet::put_region))
        .routes(routes!(fleet::list_models))
        .routes(routes!(fleet::get_model, fleet::put_model))
        .routes(routes!(fleet::deprecate_model))
        .routes(routes!(fleet::list_gpus))
        .routes(routes!(fleet::put_gpu))
        .routes(routes!(fleet::create_deployment, fleet::list_deployments))
        .routes(routes!(
            fleet::get_deployment,
            fleet::update_deployment,
            fleet::delete_deployment
        ))
        .routes(routes!(fleet::pause_deployment))
        .routes(routes!(fleet::resume_deployment))
        .routes(routes!(nodes::list_nodes))
        .routes(routes!(nodes::get_node))
        .routes(routes!(nodes::drain_node))
        .routes(routes!(nodes::terminate_node))
        .routes(routes!(nodes::node_logs))
        .routes(routes!(
            notifications::list_tenant_channels,
            notifications::create_channel
        ))
        .routes(routes!(notifications::list_operator_channels))
        .routes(routes!(
            notifications::get_channel,
            notifications::update_channel,
            notifications::delete_channel
        ))
        .routes(routes!(notifications::rotate_secret))
        .routes(routes!(notifications::redeliver))
        .routes(routes!(notifications::test_channel))
        .routes(routes!(notifications::list_deliveries))
        .routes(routes!(notifications::get_delivery))
        .routes(routes!(billing::summary))
        .routes(routes!(billing::costs))
        .routes(routes!(billing::tenant_usage))
        .routes(routes!(billing::platform_usage))
        .routes(routes!(billing::list_credits, billing::grant_credit))
        .routes(routes!(billing::set_budget, billing::clear_budget))
        .routes(routes!(billing::list_exports))
        .routes(routes!(billing::get_export))
        .routes(routes!(billing::retry_export))
        .routes(routes!(billing::revenue))
        .routes(routes!(billing::list_webhooks))
        .routes(routes!(events::list_events))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state)
}

/// Rejects requests without the operator token.
async fn require_admin(State(state): State<AdminState>, req: Request, next: Next) -> Result<Response, ApiError> {
    let Some(expected) = state.token else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            Some("admin_disabled"),
            "the admin API is disabled: set ADMIN_API_TOKEN and restart",
        ));
    };
    let Some(presented) = bearer(req.headers()) else {
        return Err(ApiError::unauthorized(
            "missing_token",
            "send the operator token as Authorization: Bearer <ADMIN_API_TOKEN>",
        ));
    };
    if !expected.matches(presented) {
        return Err(ApiError::unauthorized("invalid_token", "invalid admin token"));
    }
    Ok(next.run(req).await)
}

/// The admin actor with the client's address (when the server records it).
pub struct AdminActor(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for AdminActor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(AdminActor(Actor::admin(ip)))
    }
}
