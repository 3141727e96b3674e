//! Rate limits at four layers — global, tenant, environment, key — for
//! requests/min, tokens/min, concurrency and tokens/day (environment quota).
//!
//! Token limits are charged at admission with a [`TokenEstimate`]
//! ([`Limiter::estimate`]: the prompt's size plus its completion budget)
//! and settled to the actual usage when the request ends. A request's [`Plan`] lists every limit that applies to it. A
//! [`LimitStore`] admits the plan atomically (all limits pass and are
//! charged, or nothing is charged) and later settles it: token reservations
//! are corrected to the actual usage and concurrency slots are released.
//! Slots are leases that expire, so a crashed gateway cannot hold them
//! forever. Two stores implement the same semantics and pass one conformance
//! suite (`tests/limits.rs`): [`local::LocalStore`] (one process) and
//! [`redis::RedisStore`] (shared by every gateway; one round trip per call).
//!
//! Limits a row leaves NULL do not apply; for environments, 0 means "no
//! limit" as well.

pub mod local;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Utc};
use crosslogic_core::limits::{format_reset, Bucket, Layer, LimitKind};
use futures_util::future::BoxFuture;

use crate::auth::AuthedKey;
use crosslogic_http::ApiError;

/// A token bucket to charge.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    pub key: Arc<str>,
    pub layer: Layer,
    pub kind: LimitKind,
    pub capacity: u64,
    pub cost: u64,
}

/// A concurrency limit to take a slot in.
#[derive(Debug, Clone)]
pub struct SlotSpec {
    pub key: Arc<str>,
    pub layer: Layer,
    pub limit: u64,
}

/// A daily token quota to charge.
#[derive(Debug, Clone)]
pub struct DailySpec {
    pub key: Arc<str>,
    pub layer: Layer,
    pub quota: u64,
    pub cost: u64,
    /// Milliseconds until the quota's day ends (UTC).
    pub ms_to_reset: u64,
}

/// Every limit one request is subject to.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub request_id: Arc<str>,
    pub buckets: Vec<BucketSpec>,
    pub slots: Vec<SlotSpec>,
    pub daily: Option<DailySpec>,
    /// Tokens reserved (the estimate) in token buckets and the daily quota.
    pub reserved_tokens: u64,
}

/// Which limit refused a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub layer: Layer,
    pub kind: LimitKind,
    pub limit: u64,
    /// When to retry; `None` = the request can never fit this limit.
    pub retry_after_ms: Option<u64>,
}

/// The outcome of an admission.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admitted; units left in each bucket, in plan order.
    Admitted { remaining: Vec<f64> },
    /// Refused by one limit; nothing was charged.
    Refused(Refusal),
}

/// The backend could not be reached or answered nonsense.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate-limit store: {0}")]
pub struct StoreError(pub String);

/// Where limit state lives.
pub trait LimitStore: Send + Sync + 'static {
    /// Checks and charges every limit of `plan`, atomically.
    fn admit<'a>(&'a self, plan: &'a Plan) -> BoxFuture<'a, Result<Decision, StoreError>>;
    /// Corrects token reservations to `actual_tokens` and releases slots.
    fn settle<'a>(&'a self, plan: &'a Plan, actual_tokens: u64) -> BoxFuture<'a, Result<(), StoreError>>;
    /// [`LimitStore::settle`] off the request path, in a task on `tasks`
    /// (a store may batch such settlements).
    fn settle_later(self: Arc<Self>, plan: Plan, actual_tokens: u64, tasks: &tokio_util::task::TaskTracker) {
        tasks.spawn(async move {
            if let Err(e) = self.settle(&plan, actual_tokens).await {
                tracing::warn!(error = %e, request_id = %plan.request_id, "rate-limit settlement failed; slots free at lease expiry");
            }
        });
    }
}

/// What happens when the store fails (`RATE_LIMIT_FAILURE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Admit without limits (availability first).
    Open,
    /// Refuse with 503 (limits first).
    Closed,
}

/// Platform-wide limits and policies.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub global_requests_per_min: Option<u64>,
    pub global_tokens_per_min: Option<u64>,
    pub global_concurrency: Option<u64>,
    /// Completion tokens reserved when a request sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// How long a concurrency slot lives if its gateway dies.
    pub lease_ttl: Duration,
    pub failure_mode: FailureMode,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            global_requests_per_min: None,
            global_tokens_per_min: None,
            global_concurrency: None,
            default_max_tokens: 512,
            lease_ttl: Duration::from_secs(600),
            failure_mode: FailureMode::Open,
        }
    }
}

/// What a request reserves against the token limits at admission; the
/// reservation is settled to the real usage when the request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEstimate {
    /// The prompt: about 4 bytes of body per token. Also what is metered
    /// as the prompt if the engine never reports usage.
    pub prompt: u32,
    /// The completion budget: the request's `max_completion_tokens` or
    /// `max_tokens`, else [`LimitsConfig::default_max_tokens`]; 0 for
    /// embeddings.
    pub completion: u64,
}

impl TokenEstimate {
    /// Tokens reserved in all.
    pub fn total(&self) -> u64 {
        u64::from(self.prompt) + self.completion
    }
}

fn pos(v: Option<i32>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0)
}

/// Admission and settlement for the gateway.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn LimitStore>,
    config: LimitsConfig,
    prefix: String,
}

/// Rate-limit headers of an admitted request.
#[derive(Debug, Clone, Default)]
pub struct RateHeaders(pub Vec<(&'static str, String)>);

impl Limiter {
    /// A limiter over `store`; keys are namespaced by `prefix`.
    pub fn new(store: Arc<dyn LimitStore>, config: LimitsConfig, prefix: &str) -> Limiter {
        Limiter {
            store,
            config,
            prefix: prefix.to_owned(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// The tokens `req` reserves at admission.
    pub fn estimate(&self, req: &crate::request::InferenceRequest) -> TokenEstimate {
        TokenEstimate {
            prompt: u32::try_from(req.body_len.div_ceil(4)).unwrap_or(u32::MAX),
            completion: if req.endpoint.generates() {
                req.completion_budget.unwrap_or(self.config.default_max_tokens)
            } else {
                0
            },
        }
    }

    /// Every limit that applies to a request by `key` reserving `tokens`.
    pub fn plan(&self, key: &AuthedKey, request_id: Arc<str>, tokens: u64) -> Plan {
        let r = &key.raw;
        let p = &self.prefix;
        let cached = key.limit_names.get_or_init(|| ScopeNames::new(p, key));
        // Another limiter (another prefix) on the same key: not cached.
        let fresh;
        let names = if cached.prefix == *p {
            cached
        } else {
            fresh = ScopeNames::new(p, key);
            &fresh
        };
        let rpm = [
            self.config.global_requests_per_min,
            pos(r.tenant_requests_per_min),
            pos(r.environment_requests_per_min),
            pos(Some(r.key_requests_per_min)),
        ];
        let tpm = [
            self.config.global_tokens_per_min,
            pos(r.tenant_tokens_per_min),
            pos(Some(r.environment_tokens_per_min)),
            pos(r.key_tokens_per_min),
        ];
        let conc = [
            self.config.global_concurrency,
            pos(r.tenant_concurrency),
            pos(Some(r.environment_concurrency)),
            pos(Some(r.key_concurrency)),
        ];
        let mut plan = Plan {
            request_id,
            reserved_tokens: tokens,
            ..Plan::default()
        };
        for (i, layer) in LAYERS.iter().enumerate() {
            if let Some(cap) = rpm[i] {
                plan.buckets.push(BucketSpec {
                    key: Arc::clone(&names.rpm[i]),
                    layer: *layer,
                    kind: LimitKind::RequestsPerMinute,
                    capacity: cap,
                    cost: 1,
                });
            }
            if let Some(cap) = tpm[i] {
                plan.buckets.push(BucketSpec {
                    key: Arc::clone(&names.tpm[i]),
                    layer: *layer,
                    kind: LimitKind::TokensPerMinute,
                    capacity: cap,
                    cost: tokens,
                });
            }
            if let Some(limit) = conc[i] {
                plan.slots.push(SlotSpec {
                    key: Arc::clone(&names.conc[i]),
                    layer: *layer,
                    limit,
                });
            }
        }
        if let Some(quota) = u64::try_from(r.environment_tokens_per_day).ok().filter(|q| *q > 0) {
            let now = Utc::now();
            let day = now.date_naive();
            let next = day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc());
            let ms_to_reset = next.map_or(86_400_000, |n| u64::try_from((n - now).num_milliseconds()).unwrap_or(0));
            plan.daily = Some(DailySpec {
                key: Arc::from(format!(
                    "{p}:day:env:{}:{}{:02}{:02}",
                    key.environment_id,
                    day.year(),
                    day.month(),
                    day.day()
                )),
                layer: Layer::Environment,
                quota,
                cost: tokens,
                ms_to_reset,
            });
        }
        plan
    }

    /// Admits a plan, or answers the 429 (or 503) to send.
    pub async fn admit(&self, plan: &Plan) -> Result<RateHeaders, ApiError> {
        match self.store.admit(plan).await {
            Ok(Decision::Admitted { remaining }) => Ok(headers(plan, &remaining)),
            Ok(Decision::Refused(r)) => {
                crate::telemetry::rate_limited(r.layer, r.kind);
                Err(refusal_error(&r))
            }
            Err(e) => match self.config.failure_mode {
                FailureMode::Open => {
                    tracing::warn!(error = %e, "rate-limit store unavailable; admitting without limits (fail open)");
                    Ok(RateHeaders::default())
                }
                FailureMode::Closed => {
                    tracing::error!(error = %e, "rate-limit store unavailable; refusing (fail closed)");
                    Err(ApiError::unavailable(
                        "Rate limiting is temporarily unavailable; retry shortly.",
                    ))
                }
            },
        }
    }
}

/// The layers, in the order of [`ScopeNames`]' arrays.
const LAYERS: [Layer; 4] = [Layer::Global, Layer::Tenant, Layer::Environment, Layer::Key];

/// The names of one key's counters in the limit store, per layer: the same
/// for every request of the key, so made once (on its cached [`AuthedKey`])
/// rather than formatted a dozen times per request.
#[derive(Debug, Clone)]
pub struct ScopeNames {
    prefix: String,
    rpm: [Arc<str>; 4],
    tpm: [Arc<str>; 4],
    conc: [Arc<str>; 4],
}

impl ScopeNames {
    fn new(prefix: &str, key: &AuthedKey) -> ScopeNames {
        let scopes = [
            "global".to_owned(),
            format!("tenant:{}", key.tenant_id),
            format!("env:{}", key.environment_id),
            format!("key:{}", key.key_id),
        ];
        let names =
            |kind: &str| -> [Arc<str>; 4] { scopes.each_ref().map(|s| Arc::from(format!("{prefix}:{kind}:{s}"))) };
        ScopeNames {
            prefix: prefix.to_owned(),
            // Not "rpm"/"tpm": those held hashes before buckets became
            // strings; gateways of both versions on one Redis keep apart.
            rpm: names("req"),
            tpm: names("tok"),
            conc: names("conc"),
        }
    }
}

/// OpenAI's headers from the tightest request and token buckets.
fn headers(plan: &Plan, remaining: &[f64]) -> RateHeaders {
    let mut out = Vec::new();
    for (kind, suffix) in [
        (LimitKind::RequestsPerMinute, "requests"),
        (LimitKind::TokensPerMinute, "tokens"),
    ] {
        let tightest = plan
            .buckets
            .iter()
            .zip(remaining)
            .filter(|(b, _)| b.kind == kind)
            .min_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal));
        if let Some((b, rem)) = tightest {
            let (limit, remaining_name, reset_name) = match suffix {
                "requests" => (
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ),
                _ => (
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ),
            };
            out.push((limit, b.capacity.to_string()));
            out.push((remaining_name, (rem.max(0.0).floor() as u64).to_string()));
            out.push((reset_name, format_reset(Bucket::reset_ms(*rem, b.capacity))));
        }
    }
    RateHeaders(out)
}

fn refusal_error(r: &Refusal) -> ApiError {
    let what = match r.kind {
        LimitKind::RequestsPerMinute => format!("requests per minute (limit {})", r.limit),
        LimitKind::TokensPerMinute => format!("tokens per minute (limit {})", r.limit),
        LimitKind::Concurrency => format!("concurrent requests (limit {})", r.limit),
        LimitKind::TokensPerDay => format!("tokens per day (quota {})", r.limit),
    };
    let scope = match r.layer {
        Layer::Global => "the platform",
        Layer::Tenant => "your organization",
        Layer::Environment => "this environment",
        Layer::Key => "this API key",
    };
    let (message, retry) = match r.retry_after_ms {
        Some(ms) => (
            format!(
                "Rate limit reached for {scope}: {what}. Please try again in {}.",
                format_reset(ms)
            ),
            ms.div_ceil(1000).max(1),
        ),
        None => (
            format!("This request is larger than the limit for {scope}: {what}. Reduce max_tokens or the prompt."),
            60,
        ),
    };
    let mut err = if r.kind == LimitKind::TokensPerDay {
        ApiError::quota(message)
    } else {
        ApiError::rate_limited(message, r.layer, r.kind)
    };
    err.retry_after = Some(retry);
    err
}

/// An admitted request's hold on its limits. Dropping it settles the plan
/// with `actual_tokens` in a task on the gateway's tracker: token buckets
/// and the daily quota are corrected, concurrency slots released — on every
/// exit path, since drop always runs.
pub struct Lease {
    limiter: Limiter,
    plan: Plan,
    tasks: tokio_util::task::TaskTracker,
    /// Tokens the request really used (prompt + completion); 0 until known.
    pub actual_tokens: u64,
}

impl Lease {
    /// Holds `plan` (already admitted by `limiter`) until dropped.
    pub fn new(limiter: Limiter, plan: Plan, tasks: tokio_util::task::TaskTracker) -> Lease {
        Lease {
            limiter,
            plan,
            tasks,
            actual_tokens: 0,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return; // runtime gone: leases expire on their own
        }
        let plan = std::mem::take(&mut self.plan);
        Arc::clone(&self.limiter.store).settle_later(plan, self.actual_tokens, &self.tasks);
    }
}
