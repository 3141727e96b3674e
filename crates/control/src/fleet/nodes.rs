//! The read side of nodes. Launching, draining and terminating come with the
//! reconciler and provisioners.

use crosslogic_core::NodeStatus;
use crosslogic_db::repo::nodes::{self, HealthCheck, Node, NodeFilter};
use crosslogic_db::PgPool;
use serde::Serialize;
use uuid::Uuid;

use crate::ServiceError;

/// How many recent health checks [`get_node`] returns.
pub const RECENT_HEALTH_CHECKS: i64 = 20;

/// A node with its most recent health checks, newest first. The agent
/// credential hash is never part of it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub node: Node,
    pub health_checks: Vec<HealthCheck>,
}

/// Nodes matching `filter`, newest first, at most `limit` (1 to 500,
/// default 50). Asking for status `terminated` includes terminated nodes.
pub async fn list_nodes(pool: &PgPool, mut filter: NodeFilter, limit: Option<i64>) -> Result<Vec<Node>, ServiceError> {
    if filter.status == Some(NodeStatus::Terminated) {
        filter.include_terminated = true;
    }
    let limit = crosslogic_db::repo::page_size(limit);
    Ok(nodes::list(pool, &filter, limit).await?)
}

/// One node with its [`RECENT_HEALTH_CHECKS`] latest health checks.
pub async fn get_node(pool: &PgPool, id: Uuid) -> Result<NodeDetail, ServiceError> {
    let node = nodes::get(pool, id).await?;
    let health_checks = nodes::recent_health_checks(pool, id, RECENT_HEALTH_CHECKS).await?;
    Ok(NodeDetail { node, health_checks })
}

/// Drains a node: the gateways stop sending it work (only active nodes are
/// routed to), its agent is told `drain: true` on the next heartbeat, and
/// the reconciler terminates it once idle. Publishes `node.draining`;
/// draining an already draining node changes nothing.
pub async fn drain_node(pool: &PgPool, actor: &crate::tenancy::Actor, id: Uuid) -> Result<Node, ServiceError> {
    let mut tx = pool.begin().await?;
    let from = [
        NodeStatus::Launching,
        NodeStatus::Initializing,
        NodeStatus::Active,
        NodeStatus::Unhealthy,
    ];
    let node = match nodes::transition(&mut *tx, id, NodeStatus::Draining, &from).await? {
        Some(node) => node,
        None => {
            let node = nodes::get(&mut *tx, id).await?;
            if node.status == NodeStatus::Draining {
                return Ok(node);
            }
            return Err(ServiceError::State(format!("a {} node cannot be drained", node.status)));
        }
    };
    crate::agent::node_changed(
        &mut tx,
        &node,
        "node.draining",
        crosslogic_core::HealthCheckStatus::Healthy,
        Some("drained by the operator"),
    )
    .await?;
    crosslogic_db::repo::audit::record(
        &mut *tx,
        &crosslogic_db::repo::audit::NewAuditEntry {
            tenant_id: None,
            actor: &actor.name,
            action: "node.drain",
            resource_type: "node",
            resource_id: Some(id.to_string()),
            details: serde_json::json!({ "cluster_name": node.cluster_name }),
            ip_address: actor.ip.clone(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(node)
}
