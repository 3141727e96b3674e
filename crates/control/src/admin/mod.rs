//! The operator's admin API under `/admin/v1`, authenticated with
//! `ADMIN_API_TOKEN` (`Authorization: Bearer …`, compared in constant time).
//!
//! Handlers extract with `crosslogic-http` (one body, query and path-id
//! extractor, one error envelope), call a function of
//! [`crosslogic_tenancy`] or [`crate::fleet`] that knows nothing of HTTP,
//! and answer that result's view type from [`views`] (or
//! `crosslogic_tenancy::views`): rows never reach the wire.

mod billing;
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
use axum::routing::{get, post, put};
use axum::Router;
use crosslogic_core::keys::TokenDigest;
use crosslogic_core::Actor;
use crosslogic_db::PgPool;
use crosslogic_http::{bearer, ApiError};
use secrecy::{ExposeSecret, SecretString};

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

/// Every admin route.
pub fn router(state: AdminState) -> Router {
    let routes = Router::new()
        .route("/tenants", post(tenancy::create_tenant).get(tenancy::list_tenants))
        .route(
            "/tenants/{id}",
            get(tenancy::get_tenant)
                .patch(tenancy::update_tenant)
                .delete(tenancy::delete_tenant),
        )
        .route("/tenants/{id}/suspend", post(tenancy::suspend_tenant))
        .route("/tenants/{id}/activate", post(tenancy::activate_tenant))
        .route(
            "/tenants/{id}/environments",
            post(tenancy::create_environment).get(tenancy::list_environments),
        )
        .route("/tenants/{id}/keys", post(tenancy::create_key).get(tenancy::list_keys))
        .route(
            "/environments/{id}",
            get(tenancy::get_environment)
                .patch(tenancy::update_environment)
                .delete(tenancy::delete_environment),
        )
        .route("/environments/{id}/suspend", post(tenancy::suspend_environment))
        .route("/environments/{id}/activate", post(tenancy::activate_environment))
        .route("/keys/{id}", get(tenancy::get_key).patch(tenancy::update_key))
        .route("/keys/{id}/revoke", post(tenancy::revoke_key))
        .route("/keys/{id}/suspend", post(tenancy::suspend_key))
        .route("/keys/{id}/activate", post(tenancy::activate_key))
        .route("/regions", get(fleet::list_regions))
        .route("/regions/{code}", get(fleet::get_region).put(fleet::put_region))
        .route("/models", get(fleet::list_models))
        .route("/models/{name}", get(fleet::get_model).put(fleet::put_model))
        .route("/models/{name}/deprecate", post(fleet::deprecate_model))
        .route("/gpus", get(fleet::list_gpus))
        .route("/gpus/{name}/{provider}", put(fleet::put_gpu))
        .route(
            "/deployments",
            post(fleet::create_deployment).get(fleet::list_deployments),
        )
        .route(
            "/deployments/{id}",
            get(fleet::get_deployment)
                .patch(fleet::update_deployment)
                .delete(fleet::delete_deployment),
        )
        .route("/deployments/{id}/pause", post(fleet::pause_deployment))
        .route("/deployments/{id}/resume", post(fleet::resume_deployment))
        .route("/nodes", get(nodes::list_nodes))
        .route("/nodes/{id}", get(nodes::get_node))
        .route("/nodes/{id}/drain", post(nodes::drain_node))
        .route("/nodes/{id}/terminate", post(nodes::terminate_node))
        .route("/nodes/{id}/logs", get(nodes::node_logs))
        .route(
            "/tenants/{id}/notifications/channels",
            get(notifications::list_tenant_channels).post(notifications::create_channel),
        )
        .route("/notifications/channels", get(notifications::list_operator_channels))
        .route(
            "/notifications/channels/{id}",
            get(notifications::get_channel)
                .patch(notifications::update_channel)
                .delete(notifications::delete_channel),
        )
        .route("/notifications/channels/{id}/test", post(notifications::test_channel))
        .route(
            "/notifications/channels/{id}/rotate-secret",
            post(notifications::rotate_secret),
        )
        .route("/notifications/deliveries", get(notifications::list_deliveries))
        .route("/notifications/deliveries/{id}", get(notifications::get_delivery))
        .route(
            "/notifications/deliveries/{id}/redeliver",
            post(notifications::redeliver),
        )
        .route("/tenants/{id}/billing", get(billing::summary))
        .route("/tenants/{id}/billing/costs", get(billing::costs))
        .route("/tenants/{id}/usage", get(billing::tenant_usage))
        .route(
            "/tenants/{id}/credits",
            get(billing::list_credits).post(billing::grant_credit),
        )
        .route(
            "/tenants/{id}/budget",
            put(billing::set_budget).delete(billing::clear_budget),
        )
        .route("/usage", get(billing::platform_usage))
        .route("/billing/exports", get(billing::list_exports))
        .route("/billing/exports/{id}", get(billing::get_export))
        .route("/billing/exports/{id}/retry", post(billing::retry_export))
        .route("/billing/revenue", get(billing::revenue))
        .route("/billing/webhooks", get(billing::list_webhooks))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state);
    Router::new().nest("/admin/v1", routes)
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
