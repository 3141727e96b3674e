//! The node agent's side of the control plane: registration, heartbeats,
//! preemption notices and deregistration, authenticated per node.
//!
//! Launched nodes carry a per-node credential (`cln_…`, only its SHA-256 is
//! stored on the node row); hand-added on-prem nodes register with the
//! operator's registration token and receive their own credential in the
//! answer. Status changes go through the node lifecycle
//! ([`crate::fleet::lifecycle`]): only when something changed, each with its
//! event (`node.registered`, `.active`, `.unhealthy`, `.preempted`,
//! `.terminated`) and a `health_checks` entry, in one transaction.

mod api;

pub use api::{router, AgentState};

use crosslogic_core::{NodeStatus, Provider, ServiceError};
use crosslogic_db::repo::nodes::{self, Load, NewNode};
use crosslogic_db::PgPool;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::fleet::lifecycle::{self, Step};

/// Seconds between heartbeats the agents are told to use.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 5;

/// Body of `POST /agent/v1/register`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Set by launched nodes; absent for on-prem registrations.
    #[serde(default)]
    pub node_id: Option<Uuid>,
    pub endpoint_url: String,
    #[serde(default)]
    pub internal_ip: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// On-prem registrations: the served model, region and GPUs.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub gpu_type: Option<String>,
    #[serde(default)]
    pub gpu_count: Option<u32>,
}

/// Answer to a registration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Registered {
    pub node_id: Uuid,
    /// The credential to use from now on (on-prem registrations only).
    pub node_token: Option<String>,
    pub heartbeat_interval_secs: u64,
}

/// Body of a heartbeat: the engine's load.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub running: u32,
    pub waiting: u32,
    pub tokens_per_second: f64,
    pub kv_cache_usage: f64,
    pub engine_healthy: bool,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeartbeatAnswer {
    pub status: NodeStatus,
    /// Stop taking new work (the control plane terminates the node when idle).
    pub drain: bool,
}

/// Checks a per-node credential (compared in constant time with the
/// stored hash); a node without one, or another token, is `Unauthorized`.
pub async fn authenticate_node(pool: &PgPool, node_id: Uuid, token: &str) -> Result<(), ServiceError> {
    match nodes::agent_token_hash(pool, node_id).await {
        Ok(Some(hash)) if crosslogic_core::keys::verify(token, &hash) => Ok(()),
        Ok(_) => Err(ServiceError::Unauthorized("invalid node credential")),
        Err(crosslogic_db::DbError::NotFound { .. }) => Err(ServiceError::NotFound("node")),
        Err(e) => Err(e.into()),
    }
}

fn validate_endpoint(url: &str) -> Result<(), ServiceError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "http://".len()
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "endpoint_url",
            "must be an http:// or https:// URL the gateways can reach",
        ))
    }
}

/// Registers a launched node (per-node credential already checked) or
/// creates an on-prem node (registration token already checked).
pub async fn register(pool: &PgPool, reg: Registration, onprem: bool) -> Result<Registered, ServiceError> {
    validate_endpoint(&reg.endpoint_url)?;
    let mut tx = crosslogic_db::begin(pool).await?;
    let (node_id, node_token) = match (reg.node_id, onprem) {
        (Some(id), false) => (id, None),
        (None, true) => {
            let model = reg
                .model
                .clone()
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| ServiceError::invalid("model", "on-prem registration must name the served model"))?;
            let (token, hash) = crosslogic_core::keys::generate_node_token(&mut rand::rngs::OsRng);
            let node = nodes::create(
                &mut *tx,
                &NewNode {
                    cluster_name: format!("onprem-{}", Uuid::new_v4().simple()),
                    provider: Provider::OnPrem,
                    region_code: reg.region.clone(),
                    instance_type: None,
                    gpu_type: reg.gpu_type.clone(),
                    gpu_count: i32::try_from(reg.gpu_count.unwrap_or(1)).unwrap_or(1),
                    vram_total_gb: None,
                    model_name: model,
                    deployment_id: None,
                    spot_instance: false,
                    agent_token_hash: Some(hash),
                    metadata: json!({ "registered_by": "registration_token" }),
                },
            )
            .await?;
            (node.id, Some(token))
        }
        (Some(_), true) => {
            return Err(ServiceError::invalid(
                "node_id",
                "only per-node credentials register a node_id",
            ))
        }
        (None, false) => return Err(ServiceError::invalid("node_id", "required with a per-node credential")),
    };
    let node = lifecycle::register(
        &mut tx,
        node_id,
        &reg.endpoint_url,
        reg.internal_ip.as_deref(),
        reg.external_id.as_deref(),
    )
    .await?;
    crosslogic_db::commit(tx).await?;
    tracing::info!(node_id = %node.id, endpoint = %reg.endpoint_url, "node registered");
    Ok(Registered {
        node_id: node.id,
        node_token,
        heartbeat_interval_secs: HEARTBEAT_INTERVAL_SECS,
    })
}

/// Stores a heartbeat and moves the node between initializing, active and
/// unhealthy as the engine's health says.
pub async fn heartbeat(pool: &PgPool, node_id: Uuid, hb: Heartbeat) -> Result<HeartbeatAnswer, ServiceError> {
    if !(0.0..=1.0).contains(&hb.kv_cache_usage) || !hb.tokens_per_second.is_finite() || hb.tokens_per_second < 0.0 {
        return Err(ServiceError::invalid(
            "kv_cache_usage",
            "kv_cache_usage must be 0..1 and tokens_per_second ≥ 0",
        ));
    }
    let load = Load {
        running_requests: i32::try_from(hb.running).unwrap_or(i32::MAX),
        waiting_requests: i32::try_from(hb.waiting).unwrap_or(i32::MAX),
        throughput_tokens_per_sec: hb.tokens_per_second,
        kv_cache_usage: hb.kv_cache_usage,
        vram_free_gb: None,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let mut status = nodes::heartbeat(&mut *tx, node_id, &load).await?;
    let step = if hb.engine_healthy {
        Step::EngineHealthy
    } else {
        Step::EngineUnhealthy
    };
    // Most heartbeats change nothing: only a status the step moves costs a write.
    if step.applies_to(status) {
        if let Some(node) =
            lifecycle::apply(&mut tx, node_id, step, "engine health reported by the agent", None).await?
        {
            status = node.status;
        }
    }
    crosslogic_db::commit(tx).await?;
    Ok(HeartbeatAnswer {
        status,
        drain: status == NodeStatus::Draining,
    })
}

/// A spot preemption notice: the node drains (the gateway stops routing to
/// it) and is replaced by the reconciler.
pub async fn preempted(pool: &PgPool, node_id: Uuid, notice: &str) -> Result<(), ServiceError> {
    lifecycle::transition(pool, node_id, Step::Preempted, notice).await?;
    Ok(())
}

/// The agent is shutting down: the node is terminated.
pub async fn deregister(pool: &PgPool, node_id: Uuid) -> Result<(), ServiceError> {
    lifecycle::transition(pool, node_id, Step::Terminate, "deregistered by its agent").await?;
    Ok(())
}
