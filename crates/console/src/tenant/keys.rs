//! The tenant's keys: list; with an `admin` key, create (shown once) and
//! revoke — through the same `crosslogic-tenancy` calls as `/v1/keys`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use crosslogic_core::ApiKeyStatus;
use crosslogic_tenancy as tenancy;
use maud::html;
use uuid::Uuid;

use super::Ten;
use crate::form::CsrfForm;
use crate::operator::tenants::{base_url, NewKey};
use crate::page::{self, after, PageError, PageResult};
use crate::session::Who;
use crate::{panels, ConsoleState};

pub(crate) async fn list(State(s): State<ConsoleState>, Ten(session, t): Ten) -> PageResult {
    let keys = tenancy::list_keys(s.pool(), t.tenant_id, None).await?;
    let envs = tenancy::list_environments(s.pool(), t.tenant_id).await?;
    let revoke = |k: &crosslogic_db::repo::api_keys::ApiKey| format!("/console/keys/{}/revoke", k.id);
    let body = html! {
        h1 { "API keys" }
        @if t.can_manage() {
            (panels::keys(&session, &keys, &envs, Some(&revoke)))
            h2 { "New key" }
            (panels::new_key_form(&session, "/console/keys", &envs))
        } @else {
            (panels::keys(&session, &keys, &envs, None))
            p.muted { "Your key's role (" (t.role.as_str()) ") can look but not change keys: sign in with an admin key to create or revoke them." }
        }
    };
    Ok(page::render(&session, "API keys", "keys", body))
}

pub(crate) fn must_manage(session: &crate::session::Session) -> Result<crate::session::TenantWho, PageError> {
    match &session.who {
        Who::Tenant(t) if t.can_manage() => Ok(t.clone()),
        Who::Tenant(t) => Err(PageError::forbidden(&format!(
            "Managing keys needs a key with the admin role; yours is {}.",
            t.role.as_str()
        ))),
        Who::Operator => Err(PageError::forbidden(
            "Manage a tenant's keys from its page under Tenants.",
        )),
    }
}

pub(crate) async fn create(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    CsrfForm(session, f): CsrfForm<NewKey>,
) -> PageResult {
    let t = must_manage(&session)?;
    let created = match f.input() {
        // The environment must be the tenant's: create_key checks it.
        Ok(input) => tenancy::create_key(s.pool(), &session.actor(), t.tenant_id, input).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(k) => Ok(panels::created_key(&session, &k, "/console/keys", &base_url(&headers))),
        Err(e) => after::<()>("/console/keys", Err(e), |_| String::new()),
    }
}

pub(crate) async fn revoke(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let t = must_manage(&session)?;
    let k = tenancy::get_key(s.pool(), id).await?;
    if k.tenant_id != t.tenant_id {
        // Another tenant's key: as if it did not exist.
        return Err(crosslogic_core::ServiceError::NotFound("api key").into());
    }
    let r = tenancy::set_key_status(s.pool(), &session.actor(), id, ApiKeyStatus::Revoked).await;
    after("/console/keys", r, |k| {
        if k.id == t.key_id {
            "You revoked the key you signed in with: this session ends with it.".into()
        } else {
            format!("Key {}… revoked.", k.key_prefix)
        }
    })
}
