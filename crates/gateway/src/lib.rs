//! The OpenAI-compatible data plane.
//!
//! Invariant: no SQL strings here (all data access goes through
//! `crosslogic-db`), and no database query on the request path for a known
//! key: keys, nodes and the catalog are served from memory, kept current by
//! background tasks; usage is written in batches off the request path.
//!
//! Request path: [`auth`] (cached key) → [`handlers`] (validation, model
//! access) → [`routing`] (candidate nodes) → [`proxy`] (send, retry,
//! stream) → [`usage`] (one record per served request, on every exit path)
//! → [`metering`] (batched insert, spool on failure).

pub mod auth;
pub mod error;
mod handlers;
pub mod metering;
mod proxy;
pub mod routing;
mod stream;
pub mod usage;

use std::path::PathBuf;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use crosslogic_db::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use auth::KeyCache;
use metering::Metering;
use routing::Routes;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where usage is spooled while PostgreSQL is unreachable.
    pub spool_dir: PathBuf,
    /// How often nodes and catalog are reloaded.
    pub refresh_interval: Duration,
    /// Longest silence from a node before its response is abandoned (an idle
    /// timeout, so long streams are never cut while tokens flow).
    pub upstream_idle_timeout: Duration,
}

impl GatewayConfig {
    /// Defaults with the spool under `data_dir/spool`.
    pub fn new(data_dir: &std::path::Path) -> GatewayConfig {
        GatewayConfig {
            spool_dir: data_dir.join("spool"),
            refresh_interval: Duration::from_secs(1),
            upstream_idle_timeout: Duration::from_secs(300),
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
}

/// Builds the gateway, loads its first snapshot, and starts its background
/// tasks on `tasks` (stopped by `shutdown`; the usage writer drains last).
pub async fn start(
    pool: PgPool,
    config: &GatewayConfig,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<Router, StartError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(config.upstream_idle_timeout)
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| StartError(format!("HTTP client: {e}")))?;
    let routes = Routes::default();
    routes
        .refresh(&pool)
        .await
        .map_err(|e| StartError(format!("loading nodes and catalog: {e}")))?;
    let keys = KeyCache::new(pool.clone());
    let (metering, writer) = metering::channel(config.spool_dir.clone());
    tasks.spawn(routing::run_refresher(
        routes.clone(),
        pool.clone(),
        config.refresh_interval,
        shutdown.clone(),
    ));
    tasks.spawn(auth::run_invalidator(keys.clone(), pool.clone(), shutdown.clone()));
    tasks.spawn(metering::run_writer(writer, pool, shutdown));
    let gw = Gateway {
        keys,
        routes,
        metering,
        http,
    };
    Ok(router(gw))
}

fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{id}", get(handlers::get_model))
        .route("/v1/{*rest}", axum::routing::any(handlers::not_found))
        .with_state(gw)
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
#[error("gateway start failed: {0}")]
pub struct StartError(String);
