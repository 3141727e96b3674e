//! The tenant's pages: usage and cost, keys. What a key sees follows the
//! self-service API's rule: an `admin` key sees and manages the whole
//! tenant; other roles see their own key's usage and the key list, and
//! change nothing.

pub(crate) mod channels;
pub(crate) mod keys;
pub(crate) mod overview;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::page::PageError;
use crate::session::{Session, TenantWho, Who};
use crate::ConsoleState;

/// A session of a tenant's key; the operator gets a 403 page (the
/// operator sees tenants on their own pages).
pub(crate) struct Ten(pub Session, pub TenantWho);

impl FromRequestParts<ConsoleState> for Ten {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let s = Session::from_request_parts(parts, state).await?;
        match s.who.clone() {
            Who::Tenant(t) => Ok(Ten(s, t)),
            Who::Operator => Err(PageError::forbidden(
                "This page is a tenant's: as the operator, open the tenant from the Tenants page.",
            )
            .into_response()),
        }
    }
}

pub(crate) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/{id}/revoke", post(keys::revoke))
        .route("/console/channels", get(channels::list).post(channels::create))
        .route("/console/channels/{id}/test", post(channels::test))
        .route("/console/channels/{id}/delete", post(channels::delete))
}
