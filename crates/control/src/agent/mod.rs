//! The node agent's side of the control plane: registration, heartbeats,
//! preemption notices and deregistration, authenticated per node.
//!
//! Launched nodes carry a per-node credential (`cln_…`, only its SHA-256 is
//! stored on the node row); hand-added on-prem nodes register with the
//! operator's registration token and receive their own credential in the
//! answer. Status changes happen only when something changed, each with its
//! `events` row (`node.active`, `node.unhealthy`, `node.draining`,
//! `node.preempted`, `node.terminated`) and a `health_checks` entry, in one
//! transaction.

mod api;

pub use api::{router, AgentState};

use crosslogic_core::{EventSeverity, HealthCheckStatus, NodeStatus, Provider};
use crosslogic_db::repo::events::{self, NewEvent};
use crosslogic_db::repo::nodes::{self, Load, NewNode, Node};
use crosslogic_db::PgPool;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::ServiceError;

/// Seconds between heartbeats the agents are told to use.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 5;

/// Body of `POST /agent/v1/register`.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub node_id: Uuid,
    /// The credential to use from now on (on-prem registrations only).
    pub node_token: Option<String>,
    pub heartbeat_interval_secs: u64,
}

/// Body of a heartbeat: the engine's load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub running: u32,
    pub waiting: u32,
    pub tokens_per_second: f64,
    pub kv_cache_usage: f64,
    pub engine_healthy: bool,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatAnswer {
    pub status: NodeStatus,
    /// Stop taking new work (the control plane terminates the node when idle).
    pub drain: bool,
}

fn token_matches(presented: &str, stored_hash: &str) -> bool {
    let h = crosslogic_core::keys::hash(presented);
    bool::from(h.as_bytes().ct_eq(stored_hash.as_bytes()))
}

/// Checks a per-node credential.
pub async fn authenticate_node(pool: &PgPool, node_id: Uuid, token: &str) -> Result<(), ServiceError> {
    match nodes::agent_token_hash(pool, node_id).await {
        Ok(Some(hash)) if token_matches(token, &hash) => Ok(()),
        Ok(_) => Err(ServiceError::State("unauthorized".into())),
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

/// Publishes a node event and records the matching health observation.
pub(crate) async fn node_changed(
    tx: &mut PgConnection,
    node: &Node,
    event_type: &str,
    health: HealthCheckStatus,
    detail: Option<&str>,
) -> Result<(), ServiceError> {
    let payload = json!({
        "node_id": node.id, "cluster_name": node.cluster_name, "model": node.model_name,
        "region": node.region_code, "endpoint_url": node.endpoint_url, "status": node.status, "detail": detail,
    });
    let severity = match node.status {
        NodeStatus::Dead | NodeStatus::Unhealthy => EventSeverity::Warning,
        _ if event_type == "node.preempted" => EventSeverity::Warning,
        _ => EventSeverity::Info,
    };
    events::publish(
        &mut *tx,
        &NewEvent {
            event_type: event_type.to_owned(),
            tenant_id: None,
            severity,
            payload: payload.clone(),
        },
    )
    .await?;
    nodes::record_health_check(&mut *tx, node.id, health, None, detail, &payload).await?;
    Ok(())
}

/// Moves a node to `to` (from one of `from`, any when empty) and, when
/// that changed something, publishes `event_type` and records the health
/// check — all in one transaction. `None` when the node was not moved.
pub(crate) async fn transition_node(
    pool: &PgPool,
    id: Uuid,
    to: NodeStatus,
    from: &[NodeStatus],
    event_type: &str,
    health: HealthCheckStatus,
    detail: Option<&str>,
) -> Result<Option<Node>, ServiceError> {
    let mut tx = pool.begin().await?;
    let moved = nodes::transition(&mut *tx, id, to, from).await?;
    if let Some(node) = &moved {
        node_changed(&mut tx, node, event_type, health, detail).await?;
    }
    tx.commit().await?;
    Ok(moved)
}

/// Registers a launched node (per-node credential already checked) or
/// creates an on-prem node (registration token already checked).
pub async fn register(pool: &PgPool, reg: Registration, onprem: bool) -> Result<Registered, ServiceError> {
    validate_endpoint(&reg.endpoint_url)?;
    let mut tx = pool.begin().await?;
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
    let node = nodes::register(
        &mut *tx,
        node_id,
        &reg.endpoint_url,
        reg.internal_ip.as_deref(),
        reg.external_id.as_deref(),
    )
    .await
    .map_err(|e| match e {
        crosslogic_db::DbError::NotFound { .. } => ServiceError::State("the node is dead or terminated".into()),
        other => other.into(),
    })?;
    node_changed(
        &mut tx,
        &node,
        "node.registered",
        HealthCheckStatus::Healthy,
        Some("registered"),
    )
    .await?;
    tx.commit().await?;
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
    let mut tx = pool.begin().await?;
    let mut status = nodes::heartbeat(&mut *tx, node_id, &load).await?;
    let change = match (status, hb.engine_healthy) {
        (NodeStatus::Initializing | NodeStatus::Unhealthy | NodeStatus::Launching, true) => {
            Some((NodeStatus::Active, "node.active", HealthCheckStatus::Healthy))
        }
        (NodeStatus::Active | NodeStatus::Initializing, false) => {
            Some((NodeStatus::Unhealthy, "node.unhealthy", HealthCheckStatus::Unhealthy))
        }
        _ => None,
    };
    if let Some((to, event, health)) = change {
        if let Some(node) = nodes::transition(&mut *tx, node_id, to, &[status]).await? {
            node_changed(
                &mut tx,
                &node,
                event,
                health,
                Some("engine health reported by the agent"),
            )
            .await?;
            status = node.status;
        }
    }
    tx.commit().await?;
    Ok(HeartbeatAnswer {
        status,
        drain: status == NodeStatus::Draining,
    })
}

/// A spot preemption notice: the node drains (the gateway stops routing to
/// it) and is replaced by the reconciler.
pub async fn preempted(pool: &PgPool, node_id: Uuid, notice: &str) -> Result<(), ServiceError> {
    let mut tx = pool.begin().await?;
    let from = [
        NodeStatus::Launching,
        NodeStatus::Initializing,
        NodeStatus::Active,
        NodeStatus::Unhealthy,
    ];
    if let Some(node) = nodes::transition(&mut *tx, node_id, NodeStatus::Draining, &from).await? {
        node_changed(
            &mut tx,
            &node,
            "node.preempted",
            HealthCheckStatus::Unhealthy,
            Some(notice),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The agent is shutting down: the node is terminated.
pub async fn deregister(pool: &PgPool, node_id: Uuid) -> Result<(), ServiceError> {
    let mut tx = pool.begin().await?;
    if let Some(node) = nodes::transition(&mut *tx, node_id, NodeStatus::Terminated, &[]).await? {
        node_changed(
            &mut tx,
            &node,
            "node.terminated",
            HealthCheckStatus::Dead,
            Some("deregistered by its agent"),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
