//! API key authentication with an in-memory cache.
//!
//! A known key costs no database query: the first request with a key loads
//! it (with its environment and tenant) in one query, later ones hit the
//! cache. Correctness does not depend on a TTL: [`run_invalidator`] listens to
//! `NOTIFY crosslogic_auth` (sent by triggers when a key, environment or
//! tenant changes) and drops the affected entries at once. If the listening
//! connection drops, cached keys keep working while the database is away (a
//! revocation cannot commit then either) and the whole cache is cleared when
//! LISTEN is re-established, since notifications may have been missed.
//! Expiry is checked on every request against the clock.
//!
//! Handlers never parse credentials: they take one of the extractors of
//! [`caller`] ([`Caller`]: any usable key; [`InferenceCaller`]: a key that
//! may run inference; [`AdminCaller`]: an `admin`-role key), so a handler
//! cannot forget the check.

mod caller;
mod invalidate;

pub(crate) use caller::insufficient;
pub use caller::{AdminCaller, Caller, InferenceCaller};
pub use invalidate::run_invalidator;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use crosslogic_core::{keys, ApiKeyRole};
use crosslogic_db::repo::api_keys::{self, KeyAuth};
use crosslogic_db::{DbError, PgPool};
use crosslogic_http::ApiError;
use uuid::Uuid;

/// Channel the triggers of migration 04 notify.
pub const AUTH_CHANNEL: &str = "crosslogic_auth";
/// Unknown-key entries kept at most (a flood of bad keys cannot grow memory).
const MAX_NEGATIVE: usize = 100_000;

/// An authenticated key and what limits and routes its requests.
#[derive(Debug, Clone)]
pub struct AuthedKey {
    pub key_id: Uuid,
    pub key_prefix: String,
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    pub role: ApiKeyRole,
    /// Preferred region code of the environment.
    pub region: Option<String>,
    /// Models the environment may use; `None` = all.
    pub allowed_models: Option<HashSet<String>>,
    pub raw: KeyAuth,
    /// This key's limit counter names, made once by the limiter.
    pub(crate) limit_names: std::sync::OnceLock<crate::limits::ScopeNames>,
}

impl AuthedKey {
    fn from_row(raw: KeyAuth) -> AuthedKey {
        let allowed: HashSet<String> = raw.environment_models.iter().cloned().collect();
        AuthedKey {
            key_id: raw.key_id,
            key_prefix: raw.key_prefix.clone(),
            tenant_id: raw.tenant_id,
            environment_id: raw.environment_id,
            role: raw.role,
            region: raw.environment_region.clone(),
            allowed_models: if allowed.is_empty() { None } else { Some(allowed) },
            raw,
            limit_names: std::sync::OnceLock::new(),
        }
    }

    /// Whether this key's environment may use `model`.
    pub fn may_use(&self, model: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|m| m.contains(model))
    }

    /// Refuses inference while the tenant's monthly budget has stopped its
    /// requests (a hard stop; lifted when the budget is raised — the
    /// change reaches every gateway by `NOTIFY` — or when the month turns).
    pub(crate) fn check_budget(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        let this_month = crosslogic_core::billing::month_day(now);
        if self.raw.tenant_spend_blocked_month != Some(this_month) {
            return Ok(());
        }
        let budget = self
            .raw
            .tenant_budget_microdollars
            .map(|b| format!(" of {}", crosslogic_core::Micros(b)))
            .unwrap_or_default();
        let resumes = crosslogic_core::billing::next_month_start(now).format("%Y-%m-%d");
        Err(ApiError::quota(format!(
            "Your account's monthly budget{budget} is used up. Requests resume when the budget is raised \
             or on {resumes} (UTC)."
        )))
    }

    /// Refuses keys that are not usable right now (`core::keys::refusal`).
    fn check_usable(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        use crosslogic_core::keys::KeyRefusal;
        let r = &self.raw;
        match crosslogic_core::keys::refusal(r.key_status, r.expires_at, r.environment_status, r.tenant_status, now) {
            None => Ok(()),
            Some(KeyRefusal::Revoked) => Err(ApiError::invalid_key("This API key has been revoked.")),
            Some(KeyRefusal::Suspended) => Err(ApiError::forbidden("key_suspended", "This API key is suspended.")),
            Some(KeyRefusal::Expired) => Err(ApiError::invalid_key("This API key has expired.")),
            Some(KeyRefusal::EnvironmentSuspended) => Err(ApiError::forbidden(
                "environment_suspended",
                "This key's environment is suspended.",
            )),
            Some(KeyRefusal::TenantSuspended) => Err(ApiError::forbidden(
                "account_suspended",
                "Your account is suspended; contact the operator.",
            )),
            Some(KeyRefusal::TenantDeleted) => Err(ApiError::invalid_key("This API key belongs to a deleted account.")),
        }
    }
}

#[derive(Clone)]
enum Entry {
    Known(Arc<AuthedKey>),
    Unknown,
}

/// The key cache shared by all requests of a gateway.
#[derive(Clone)]
pub struct KeyCache {
    pool: PgPool,
    entries: Arc<RwLock<HashMap<String, Entry>>>,
}

impl KeyCache {
    /// An empty cache over `pool`.
    pub fn new(pool: PgPool) -> KeyCache {
        KeyCache {
            pool,
            entries: Arc::default(),
        }
    }

    /// The pool keys are loaded from (the self-service routes query it too).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Authenticates a bearer token (`None`: the request had none).
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Arc<AuthedKey>, ApiError> {
        let Some(token) = token else {
            return Err(ApiError::invalid_key(
                "You didn't provide an API key. Provide it as Authorization: Bearer <key>.",
            ));
        };
        let Some(prefix) = keys::prefix_of(token) else {
            return Err(ApiError::invalid_key("Incorrect API key provided."));
        };
        let hash = keys::hash(token);
        let cached = self.entries.read().ok().and_then(|m| m.get(&hash).cloned());
        let entry = match cached {
            Some(e) => e,
            None => self.load(&hash, prefix).await?,
        };
        match entry {
            Entry::Unknown => Err(ApiError::invalid_key(format!(
                "Incorrect API key provided: {prefix}_****."
            ))),
            Entry::Known(key) => {
                key.check_usable(Utc::now())?;
                Ok(key)
            }
        }
    }

    async fn load(&self, hash: &str, prefix: &str) -> Result<Entry, ApiError> {
        let entry = match api_keys::auth_by_hash(&self.pool, hash).await {
            Ok(row) => Entry::Known(Arc::new(AuthedKey::from_row(row))),
            Err(DbError::NotFound { .. }) => Entry::Unknown,
            Err(e) => {
                tracing::error!(error = %e, key_prefix = prefix, "key lookup failed");
                return Err(ApiError::unavailable(
                    "Authentication is temporarily unavailable; retry shortly.",
                ));
            }
        };
        if let Ok(mut map) = self.entries.write() {
            if matches!(entry, Entry::Unknown) && map.len() >= MAX_NEGATIVE {
                map.retain(|_, e| matches!(e, Entry::Known(_)));
            }
            map.insert(hash.to_owned(), entry.clone());
        }
        Ok(entry)
    }

    /// Drops entries affected by a `crosslogic_auth` notification
    /// (`api_keys:<id>`, `environments:<id>`, `tenants:<id>`).
    pub fn invalidate(&self, payload: &str) {
        let Some((table, id)) = payload.split_once(':') else {
            return;
        };
        let Ok(id) = Uuid::parse_str(id) else { return };
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, e| match e {
                Entry::Unknown => true,
                Entry::Known(k) => match table {
                    "api_keys" => k.key_id != id,
                    "environments" => k.environment_id != id,
                    "tenants" => k.tenant_id != id,
                    _ => true,
                },
            });
        }
    }

    /// Empties the cache (after a possibly missed notification).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }
}
