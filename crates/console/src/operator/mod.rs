//! The operator's pages: overview, tenants, deployments, nodes, catalog.

pub(crate) mod activity;
pub(crate) mod catalog;
pub(crate) mod fleet;
pub(crate) mod overview;
pub(crate) mod tenants;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::page::PageError;
use crate::session::{Session, Who};
use crate::ConsoleState;

/// A session of the operator; tenants get a 403 page.
pub(crate) struct Op(pub Session);

impl FromRequestParts<ConsoleState> for Op {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let s = Session::from_request_parts(parts, state).await?;
        match s.who {
            Who::Operator => Ok(Op(s)),
            Who::Tenant(_) => Err(PageError::forbidden("This page is for the platform operator.").into_response()),
        }
    }
}

pub(crate) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/tenants", get(tenants::list).post(tenants::create))
        .route("/console/tenants/{id}", get(tenants::detail))
        .route("/console/tenants/{id}/suspend", post(tenants::suspend))
        .route("/console/tenants/{id}/activate", post(tenants::activate))
        .route("/console/tenants/{id}/environments", post(tenants::create_environment))
        .route("/console/tenants/{id}/keys", post(tenants::create_key))
        .route("/console/tenants/{id}/keys/{key}/revoke", post(tenants::revoke_key))
        .route(
            "/console/deployments",
            get(fleet::deployments).post(fleet::create_deployment),
        )
        .route("/console/deployments/{id}/scale", post(fleet::scale_deployment))
        .route("/console/deployments/{id}/pause", post(fleet::pause_deployment))
        .route("/console/deployments/{id}/resume", post(fleet::resume_deployment))
        .route("/console/deployments/{id}/delete", post(fleet::delete_deployment))
        .route("/console/nodes", get(fleet::nodes))
        .route("/console/nodes/{id}", get(fleet::node))
        .route("/console/nodes/{id}/log", get(fleet::node_log))
        .route("/console/nodes/{id}/drain", post(fleet::drain_node))
        .route("/console/nodes/{id}/terminate", post(fleet::terminate_node))
        .route("/console/catalog", get(catalog::catalog))
        .route(
            "/console/catalog/model",
            get(catalog::model_form).post(catalog::save_model),
        )
        .route("/console/catalog/gpu", get(catalog::gpu_form).post(catalog::save_gpu))
        .route(
            "/console/catalog/region",
            get(catalog::region_form).post(catalog::save_region),
        )
        .route("/console/events", get(activity::events_page))
        .route("/console/events/feed", get(activity::events_feed))
        .route("/console/deliveries", get(activity::deliveries))
        .route("/console/deliveries/{id}/redeliver", post(activity::redeliver))
        .route("/console/billing", get(activity::exports))
        .route("/console/billing/exports/{id}/retry", post(activity::retry_export))
        .route("/console/tenants/{id}/credits", post(tenants::grant_credit))
        .route("/console/tenants/{id}/budget", post(tenants::set_budget))
}
