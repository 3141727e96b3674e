//! The node agent: runs next to the engine (vLLM or the simulator) on a GPU
//! node and keeps the control plane informed.
//!
//! [`run`] goes through the node's life:
//! 1. wait until the engine's `GET /health` answers 200 (model loading takes
//!    minutes; bounded by [`AgentConfig::engine_start_timeout`]);
//! 2. register (`POST /agent/v1/register`) with the per-node credential of a
//!    launched node, or with the operator's registration token for a
//!    hand-added node — then use the `node_token` the control plane returns;
//!    connection errors and 5xx are retried with backoff, refusals end the
//!    agent with the control plane's message;
//! 3. heartbeat at the interval the control plane chose, with the load read
//!    from the engine's Prometheus `/metrics` (see [`parse_engine_metrics`]);
//!    a node asked to drain keeps heartbeating; 401/404 mean the node was
//!    removed and end the agent with [`AgentExit::Removed`];
//! 4. meanwhile, when [`AgentConfig::preemption`] is set, poll the cloud's
//!    metadata service and report the first spot preemption notice once;
//! 5. on shutdown, deregister (best effort, at most 5 s).
//!
//! The credential is never logged.
//!
//! Files: `config` (what the caller provides), `client` and `wire` (the
//! control plane's agent API: calls and bodies), `engine` (health, metrics,
//! served model), `load` (Prometheus text to load), `register`, `heartbeat`,
//! `preemption`, `backoff`.

mod backoff;
mod client;
mod config;
mod engine;
mod heartbeat;
mod load;
mod preemption;
mod register;
mod wire;

use std::convert::Infallible;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use config::{
    AgentConfig, Cloud, PreemptionConfig, UnknownCloud, DEFAULT_ENGINE_START_TIMEOUT, DEFAULT_PREEMPTION_POLL_INTERVAL,
};
pub use load::{parse_engine_metrics, EngineLoad, TokenRate};

use client::ControlClient;
use engine::{Engine, Startup};
use preemption::Watcher;
use register::Session;

/// How long deregistration may take at shutdown.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// How the agent ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentExit {
    /// `shutdown` fired (the node deregistered if it had registered).
    Stopped,
    /// The control plane no longer knows the node (heartbeat answered 401 or
    /// 404, or the node's status is `terminated`).
    Removed,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An HTTP client could not be built (TLS backend set-up).
    #[error("could not set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The engine's `/health` did not answer 200 in time.
    #[error("the engine at {url} did not become healthy within {waited:?}")]
    EngineNotReady { url: String, waited: Duration },
    /// Registration with a registration token needs the served model name,
    /// and neither the configuration nor the engine's `/v1/models` gave one.
    #[error("no model configured and the engine's /v1/models names none")]
    UnknownModel,
    /// The control plane refused the registration (401, 403, 422, …).
    #[error("the control plane refused the registration ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The control plane accepted the registration with a body the agent does
    /// not understand.
    #[error("unexpected registration answer: {0}")]
    BadReply(String),
}

/// Runs the agent until `shutdown` fires or the control plane removes the
/// node. See the module documentation for the steps.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> Result<AgentExit, AgentError> {
    let engine = Engine::new(&cfg.engine_url).map_err(AgentError::Client)?;
    let client = ControlClient::new(&cfg.control_url).map_err(AgentError::Client)?;
    let watcher = cfg
        .preemption
        .clone()
        .map(Watcher::new)
        .transpose()
        .map_err(AgentError::Client)?;
    tracing::info!(
        control = %cfg.control_url,
        engine = %cfg.engine_url,
        advertise = %cfg.advertise_url,
        node_id = ?cfg.node_id,
        preemption = ?cfg.preemption.as_ref().map(|p| p.cloud),
        "node agent starting"
    );

    match engine.wait_healthy(cfg.engine_start_timeout, &shutdown).await {
        Startup::Healthy => tracing::info!(engine = %cfg.engine_url, "engine healthy"),
        Startup::Cancelled => return Ok(AgentExit::Stopped),
        Startup::TimedOut => {
            return Err(AgentError::EngineNotReady {
                url: cfg.engine_url.clone(),
                waited: cfg.engine_start_timeout,
            })
        }
    }

    let Some(session) = register::register(&cfg, &engine, &client, &shutdown).await? else {
        return Ok(AgentExit::Stopped);
    };

    let watching = watch_preemption(watcher, &client, &session);
    let exit = tokio::select! {
        exit = heartbeat::run(&engine, &client, &session) => exit,
        never = watching => match never {},
        () = shutdown.cancelled() => {
            deregister(&client, &session).await;
            AgentExit::Stopped
        }
    };
    tracing::info!(node_id = %session.node_id, ?exit, "node agent stopped");
    Ok(exit)
}

/// Reports the first preemption notice (if a watcher is configured), then
/// idles: it never completes, so it cannot end the agent.
async fn watch_preemption(watcher: Option<Watcher>, client: &ControlClient, session: &Session) -> Infallible {
    if let Some(watcher) = watcher {
        preemption::watch(watcher, client, session.node_id, &session.token).await;
    }
    std::future::pending().await
}

/// Best-effort deregistration, bounded by [`DEREGISTER_TIMEOUT`].
async fn deregister(client: &ControlClient, session: &Session) {
    let node_id = session.node_id;
    match tokio::time::timeout(DEREGISTER_TIMEOUT, client.deregister(node_id, &session.token)).await {
        Ok(Ok(())) => tracing::info!(%node_id, "node deregistered"),
        Ok(Err(e)) => tracing::warn!(%node_id, error = %e, "deregistration failed"),
        Err(_) => tracing::warn!(%node_id, "deregistration timed out"),
    }
}
