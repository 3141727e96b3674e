//! The heartbeat loop: every interval, read the engine's load and health and
//! report them. The control plane answers with the node's status; draining is
//! its business (it stops routing and terminates the node when idle), the
//! agent keeps heartbeating until the node is gone.

use std::time::Instant;

use reqwest::StatusCode;
use tokio::time::MissedTickBehavior;

use super::client::ControlClient;
use super::engine::Engine;
use super::load::{EngineLoad, TokenRate};
use super::register::Session;
use super::wire::{Heartbeat, NodeStatus};
use super::AgentExit;

/// Heartbeats until the control plane no longer knows the node (401, 404) or
/// says it is terminated; transient failures are logged and retried at the
/// next beat.
pub(crate) async fn run(engine: &Engine, client: &ControlClient, session: &Session) -> AgentExit {
    let mut ticker = tokio::time::interval(session.heartbeat_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut rate = TokenRate::default();
    let mut status = None;
    let mut draining = false;
    let mut failures = 0u64;
    loop {
        ticker.tick().await;
        let beat = sample(engine, &mut rate).await;
        match client.heartbeat(session.node_id, &session.token, &beat).await {
            Ok(reply) => {
                if failures > 0 {
                    tracing::info!(failures, "heartbeats accepted again");
                    failures = 0;
                }
                if status != Some(reply.status) {
                    tracing::info!(node_id = %session.node_id, status = ?reply.status, "node status");
                    status = Some(reply.status);
                }
                if (reply.drain || reply.status == NodeStatus::Draining) && !draining {
                    draining = true;
                    tracing::info!(node_id = %session.node_id, "draining: the control plane routes no new work here and terminates the node when idle");
                }
                if reply.status == NodeStatus::Terminated {
                    tracing::info!(node_id = %session.node_id, "the control plane terminated this node");
                    return AgentExit::Removed;
                }
            }
            Err(e) if matches!(e.status(), Some(StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND)) => {
                tracing::warn!(node_id = %session.node_id, error = %e, "the control plane no longer knows this node");
                return AgentExit::Removed;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(node_id = %session.node_id, error = %e, failures, "heartbeat failed");
            }
        }
    }
}

/// The engine's load and health now.
async fn sample(engine: &Engine, rate: &mut TokenRate) -> Heartbeat {
    let (engine_healthy, load) = tokio::join!(engine.healthy(), engine.load());
    let (load, tokens_per_second) = match load {
        Ok(load) => (load, rate.update(load.generation_tokens_total, Instant::now())),
        Err(e) => {
            tracing::warn!(engine = %engine.url(), error = %e, "could not scrape the engine's metrics");
            (EngineLoad::default(), 0.0)
        }
    };
    Heartbeat {
        running: load.running,
        waiting: load.waiting,
        tokens_per_second,
        kv_cache_usage: load.kv_cache_usage,
        engine_healthy,
    }
}
