//! Registration: tell the control plane where this node serves, retrying
//! while the control plane is unreachable or failing, and learn the node id,
//! the credential to use from then on and the heartbeat interval.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::backoff::Backoff;
use super::client::{CallError, ControlClient, Credential};
use super::config::AgentConfig;
use super::engine::Engine;
use super::wire::{Registered, Registration};
use super::AgentError;

/// Heartbeat interval when the control plane does not say.
const DEFAULT_HEARTBEAT_INTERVAL_SECS: u64 = 5;

/// A registered node: who it is and how it authenticates.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) node_id: Uuid,
    pub(crate) token: Credential,
    pub(crate) heartbeat_interval: Duration,
}

/// Registers the node; `Ok(None)` when `shutdown` fired first.
///
/// Connection errors, 5xx, 408 and 429 are retried with backoff for as long as
/// it takes; any other refusal (401, 403, 422, …) ends the agent with the
/// control plane's message.
pub(crate) async fn register(
    cfg: &AgentConfig,
    engine: &Engine,
    client: &ControlClient,
    shutdown: &CancellationToken,
) -> Result<Option<Session>, AgentError> {
    let body = registration(cfg, engine).await?;
    let token = Credential::new(cfg.token.clone());
    let mut backoff = Backoff::default();
    loop {
        let attempt = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            attempt = client.register(&token, &body) => attempt,
        };
        let err = match attempt {
            Ok(reply) => return Ok(Some(session(cfg, reply, token))),
            Err(e) if e.is_transient() => e,
            Err(CallError::Status { status, message }) => {
                return Err(AgentError::Rejected {
                    status: status.as_u16(),
                    message,
                })
            }
            Err(e) => return Err(AgentError::BadReply(e.to_string())),
        };
        let delay = backoff.next_delay();
        tracing::warn!(error = %err, retry_in = ?delay, "registration failed; retrying");
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// The registration body: a launched node names its id; a hand-added node
/// describes itself (its model read from the engine when not configured).
async fn registration(cfg: &AgentConfig, engine: &Engine) -> Result<Registration, AgentError> {
    if let Some(node_id) = cfg.node_id {
        return Ok(Registration::Launched {
            node_id,
            endpoint_url: cfg.advertise_url.clone(),
            internal_ip: cfg.internal_ip.clone(),
            external_id: cfg.external_id.clone(),
        });
    }
    let model = match &cfg.model {
        Some(model) => model.clone(),
        None => engine.served_model().await.ok_or(AgentError::UnknownModel)?,
    };
    Ok(Registration::OnPrem {
        endpoint_url: cfg.advertise_url.clone(),
        internal_ip: cfg.internal_ip.clone(),
        external_id: cfg.external_id.clone(),
        model,
        region: cfg.region.clone(),
        gpu_type: cfg.gpu_type.clone(),
        gpu_count: cfg.gpu_count,
    })
}

fn session(cfg: &AgentConfig, reply: Registered, token: Credential) -> Session {
    if cfg.node_id.is_some_and(|id| id != reply.node_id) {
        tracing::warn!(configured = ?cfg.node_id, registered = %reply.node_id, "the control plane registered a different node id; using its id");
    }
    let token = reply.node_token.map_or(token, Credential::new);
    let secs = reply
        .heartbeat_interval_secs
        .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_SECS)
        .max(1);
    let session = Session {
        node_id: reply.node_id,
        token,
        heartbeat_interval: Duration::from_secs(secs),
    };
    tracing::info!(node_id = %session.node_id, heartbeat_interval_secs = secs, "node registered");
    session
}
