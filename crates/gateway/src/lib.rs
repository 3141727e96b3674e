//! The OpenAI-compatible data plane.
//!
//! Invariant: no SQL strings here (all data access goes through
//! `crosslogic-db`), and no database query on the request path for a known
//! key: keys, nodes and the catalog are served from memory, kept current by
//! background tasks; usage is written in batches off the request path.
//!
//! The path of an inference request (`POST /v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`), in order:
//!
//! 1. **Authenticate** — [`auth::InferenceCaller`]: the bearer key from the
//!    in-memory [`auth::KeyCache`] (status, expiry, environment and tenant
//!    checked on every request; `read-only` keys refused).
//! 2. **Read the request** — [`request::InferenceRequest`]: model, stream
//!    flag, completion budget; a streamed request asks the engine for its
//!    usage chunk ([`stream::ask_for_usage`]).
//! 3. **Find the model** — in the [`routing`] snapshot: known, allowed by
//!    the environment's model list, right for the endpoint.
//! 4. **Pick nodes** — [`routing::Snapshot::candidates`]: active nodes
//!    serving it, the environment's region first, least outstanding work.
//! 5. **Admit** — [`limits`]: the [`limits::TokenEstimate`] (prompt size +
//!    completion budget) and a request against every limit of the four
//!    layers (global, tenant, environment, key × requests/min, tokens/min,
//!    concurrency, tokens/day), charged atomically by the limit store; a
//!    [`limits::Lease`] settles them to the real usage when the request ends.
//! 6. **Forward** — [`proxy`]: to the best node, another one on connect
//!    failure or 502/503 before any byte reached the client; JSON answered
//!    whole, streams passed through as they arrive ([`stream`], which hides
//!    the usage chunk the client did not ask for).
//! 7. **Meter** — [`usage::RequestGuard`] of the served attempt (sharing
//!    the [`usage::RequestContext`] with the proxy) records exactly one
//!    usage row on every exit path — completed, failed mid-stream, or
//!    cancelled by the client — and [`metering`] writes rows in batches off
//!    the request path, spooling to disk while PostgreSQL is away.
//!
//! Tenant self-service (`self_service`: usage, latency percentiles and the
//! tenant's keys, role-checked by the same extractors) reads PostgreSQL per
//! request through `crosslogic-db` and `crosslogic-tenancy`; the gateway
//! never depends on the control plane.

pub mod auth;
mod handlers;
pub mod limits;
pub mod metering;
pub mod openapi;
mod proxy;
pub mod request;
pub mod routing;
mod self_service;
pub mod stream;
pub mod telemetry;
pub mod usage;

use std::path::PathBuf;
use std::time::Duration;

use crosslogic_db::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use auth::KeyCache;
use metering::Metering;
use routing::Routes;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where usage is journaled (before each response completes) and
    /// spooled while PostgreSQL is unreachable.
    pub spool_dir: PathBuf,
    /// Journal every completed request's usage to disk before its last
    /// byte is sent (`USAGE_JOURNAL`, on by default): nothing billable is
    /// lost when the process dies.
    pub usage_journal: bool,
    /// How often nodes and catalog are reloaded.
    pub refresh_interval: Duration,
    /// Longest silence from a node before its response is abandoned (an idle
    /// timeout, so long streams are never cut while tokens flow).
    pub upstream_idle_timeout: Duration,
    /// Platform-wide limits and limiter policies.
    pub limits: limits::LimitsConfig,
    /// Redis for limits shared by all gateways; `None` = in-process limits.
    pub redis_url: Option<String>,
    /// Namespace of the limiter's Redis keys.
    pub redis_prefix: String,
    /// Notification test sends and destination rules (self-service
    /// channels); `None` = public https targets only, no email.
    pub notify: Option<crosslogic_notify::NotifyApi>,
    /// Billing settings the self-service billing routes show.
    pub billing: crosslogic_billing::BillingApi,
}

impl GatewayConfig {
    /// Defaults with the spool under `data_dir/spool`.
    pub fn new(data_dir: &std::path::Path) -> GatewayConfig {
        GatewayConfig {
            spool_dir: data_dir.join("spool"),
            usage_journal: true,
            refresh_interval: Duration::from_secs(1),
            upstream_idle_timeout: Duration::from_secs(300),
            limits: limits::LimitsConfig::default(),
            redis_url: None,
            redis_prefix: "crosslogic".to_owned(),
            notify: None,
            billing: crosslogic_billing::BillingApi::default(),
        }
    }
}

/// Shared state of the gateway's handlers.
#[derive(Clone)]
pub struct Gateway {
    keys: KeyCache,
    routes: Routes,
    metering: Metering,
    http: reqwest::Client,
    limiter: limits::Limiter,
    /// Owns short tasks spawned per request (limit settlement).
    tasks: TaskTracker,
    /// Notification channels' test sends and destination rules.
    notify: crosslogic_notify::NotifyApi,
    /// Billing settings (grace period shown in the billing summary).
    billing: crosslogic_billing::BillingApi,
}

/// Builds the gateway, loads its first snapshot, and starts its background
/// tasks on `tasks` (stopped by `shutdown`; the usage writer drains last).
pub async fn start(
    pool: PgPool,
    config: &GatewayConfig,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<OpenApiRouter, StartError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(config.upstream_idle_timeout)
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        // A node answers; it never redirects (and following one would send
        // a tenant's prompt elsewhere).
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StartError(format!("HTTP client: {e}")))?;
    let routes = Routes::default();
    routes
        .refresh(&pool)
        .await
        .map_err(|e| StartError(format!("loading nodes and catalog: {e}")))?;
    let store: std::sync::Arc<dyn limits::LimitStore> = match &config.redis_url {
        Some(url) => std::sync::Arc::new(
            limits::redis::RedisStore::new(url, config.limits.lease_ttl, tasks.clone())
                .map_err(|e| StartError(e.to_string()))?,
        ),
        None => std::sync::Arc::new(limits::local::LocalStore::new(config.limits.lease_ttl)),
    };
    let limiter = limits::Limiter::new(store, config.limits.clone(), &config.redis_prefix);
    let keys = KeyCache::new(pool.clone());
    let (metering, writer) = metering::channel(config.spool_dir.clone(), config.usage_journal)
        .map_err(|e| StartError(format!("usage journal in {}: {e}", config.spool_dir.display())))?;
    tasks.spawn(routing::run_refresher(
        routes.clone(),
        pool.clone(),
        config.refresh_interval,
        shutdown.clone(),
    ));
    tasks.spawn(auth::run_invalidator(keys.clone(), pool.clone(), shutdown.clone()));
    tasks.spawn(metering::run_writer(writer, pool, shutdown));
    let notify = match &config.notify {
        Some(n) => n.clone(),
        None => crosslogic_notify::NotifyApi::strict().map_err(|e| StartError(e.to_string()))?,
    };
    let gw = Gateway {
        keys,
        routes,
        metering,
        http,
        limiter,
        tasks: tasks.clone(),
        notify,
        billing: config.billing,
    };
    Ok(router(gw))
}

/// Every gateway route, each documented by its handler's `#[utoipa::path]`
/// (which also gives the path and method it is served at).
fn router(gw: Gateway) -> OpenApiRouter {
    use self_service::notifications;
    OpenApiRouter::new()
        .routes(routes!(handlers::chat_completions))
        .routes(routes!(handlers::completions))
        .routes(routes!(handlers::embeddings))
        .routes(routes!(handlers::list_models))
        .routes(routes!(handlers::get_model))
        .routes(routes!(self_service::usage::usage))
        .routes(routes!(self_service::usage::latency))
        .routes(routes!(self_service::billing::summary))
        .routes(routes!(self_service::billing::costs))
        .routes(routes!(self_service::billing::credits))
        .routes(routes!(self_service::keys::list_keys, self_service::keys::create_key))
        .routes(routes!(self_service::keys::get_key))
        .routes(routes!(self_service::keys::revoke_key))
        .routes(routes!(notifications::list_channels, notifications::create_channel))
        .routes(routes!(
            notifications::get_channel,
            notifications::update_channel,
            notifications::delete_channel
        ))
        .routes(routes!(notifications::test_channel))
        .routes(routes!(notifications::rotate_secret))
        .routes(routes!(notifications::list_deliveries))
        .routes(routes!(notifications::get_delivery))
        .routes(routes!(notifications::redeliver))
        // Not an operation: OpenAI's answer for any other path under /v1.
        .route("/v1/{*rest}", axum::routing::any(handlers::not_found))
        .with_state(gw)
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
#[error("gateway start failed: {0}")]
pub struct StartError(String);
