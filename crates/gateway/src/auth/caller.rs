//! Who is calling: extractors that authenticate the bearer key from the
//! cache and check what its role may do. Their rejections are the OpenAI
//! envelope (401 for a bad key, 403 for a role that may not).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use crosslogic_core::ApiKeyRole;
use crosslogic_http::{bearer, ApiError};

use super::AuthedKey;
use crate::Gateway;

/// Any usable key, whatever its role.
pub struct Caller(pub Arc<AuthedKey>);

impl FromRequestParts<Gateway> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, Self::Rejection> {
        gw.keys.authenticate(bearer(&parts.headers)).await.map(Caller)
    }
}

/// A key that may run inference: any role but `read-only`.
pub struct InferenceCaller(pub Arc<AuthedKey>);

impl FromRequestParts<Gateway> for InferenceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, Self::Rejection> {
        let Caller(key) = Caller::from_request_parts(parts, gw).await?;
        if key.role == ApiKeyRole::ReadOnly {
            return Err(ApiError::forbidden(
                "insufficient_permissions",
                "This key is read-only: it can list models and read usage, not run inference.",
            ));
        }
        key.check_budget(chrono::Utc::now())?;
        Ok(InferenceCaller(key))
    }
}

/// A key with the `admin` role (403 for any other role).
pub struct AdminCaller(pub Arc<AuthedKey>);

impl FromRequestParts<Gateway> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, Self::Rejection> {
        let Caller(key) = Caller::from_request_parts(parts, gw).await?;
        if key.role != ApiKeyRole::Admin {
            return Err(insufficient(
                "Managing API keys requires an API key with the `admin` role",
                key.role,
            ));
        }
        Ok(AdminCaller(key))
    }
}

/// 403 `insufficient_permissions`: `what` needs the admin role, `has` is the caller's.
pub(crate) fn insufficient(what: &str, has: ApiKeyRole) -> ApiError {
    ApiError::forbidden(
        "insufficient_permissions",
        format!("{what}; this key has the `{has}` role."),
    )
}
