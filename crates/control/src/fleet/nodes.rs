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
