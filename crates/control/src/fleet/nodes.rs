//! Nodes for the operator: list, inspect, drain, terminate, and read or
//! follow their launch logs. Launching belongs to the reconciler.

use crosslogic_core::{Actor, NodeStatus, ServiceError};
use crosslogic_db::repo::nodes::{self, HealthCheck, Node, NodeFilter};
use crosslogic_db::repo::provision_jobs::{self, JobLine, ProvisionJob};
use crosslogic_db::PgPool;
use uuid::Uuid;

use super::lifecycle::{self, Step};

/// How many recent health checks [`get_node`] returns.
pub const RECENT_HEALTH_CHECKS: i64 = 20;

/// A node with its most recent health checks, newest first.
#[derive(Debug, Clone)]
pub struct NodeDetail {
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
pub async fn drain_node(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Node, ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let node = match lifecycle::apply(&mut tx, id, Step::Drain, "drained by the operator", Some(actor)).await? {
        Some(node) => node,
        None => {
            let node = nodes::get(&mut *tx, id).await?;
            if node.status == NodeStatus::Draining {
                return Ok(node);
            }
            return Err(ServiceError::State(format!("a {} node cannot be drained", node.status)));
        }
    };
    crosslogic_db::commit(tx).await?;
    Ok(node)
}

/// A termination the operator asked for.
#[derive(Debug, Clone)]
pub struct Termination {
    /// The node as it is now (`draining` while its cluster is torn down,
    /// `terminated` once done or when it had no cluster).
    pub node: Node,
    /// The background job tearing the cluster down, if one was started.
    pub job_id: Option<Uuid>,
}

/// Terminates a node: it leaves the routing table at once (moved to
/// `draining`), and its cluster is torn down by a background job that marks
/// it `terminated` when done (a node without a cluster — hand-added on-prem —
/// is marked terminated directly). A deployment's reconciler replaces it.
/// Terminating a terminated node changes nothing.
pub async fn terminate_node(
    pool: &PgPool,
    jobs: Option<&crate::jobs::Jobs>,
    actor: &Actor,
    id: Uuid,
) -> Result<Termination, ServiceError> {
    let node = nodes::get(pool, id).await?;
    if node.status == NodeStatus::Terminated {
        return Ok(Termination { node, job_id: None });
    }
    let (cluster, jobs) = match (&node.cluster_name, jobs) {
        (Some(c), Some(j)) => (Some(c.clone()), Some(j)),
        (Some(_), None) => {
            return Err(ServiceError::State(
                "this control plane runs no provisioner (serve --provisioner …): drain the node instead, \
                 or terminate it from a control plane that launches nodes"
                    .into(),
            ))
        }
        (None, _) => (None, None),
    };
    // With a cluster the node leaves routing now and the teardown job
    // marks it terminated; without one it is terminated at once.
    let step = if cluster.is_some() {
        Step::Retire
    } else {
        Step::Terminate
    };
    lifecycle::transition_by(pool, actor, id, step, "terminated by the operator").await?;
    let job_id = match (cluster, jobs) {
        (Some(c), Some(j)) => {
            j.terminate(Some(id), &c, "terminated by the operator", Some(actor.clone()))
                .await?
        }
        _ => None,
    };
    Ok(Termination {
        node: nodes::get(pool, id).await?,
        job_id,
    })
}

/// A page of a node's launch and terminate logs.
#[derive(Debug, Clone)]
pub struct NodeLogs {
    /// The node's provisioning jobs, oldest first.
    pub jobs: Vec<ProvisionJob>,
    /// Lines after the cursor asked for, in order.
    pub lines: Vec<JobLine>,
    /// Pass as `after` to get the lines that follow.
    pub next_cursor: i64,
    /// Whether a job is still running (more lines may come).
    pub running: bool,
}

/// Log lines of a node's jobs after cursor `after` (0 = from the start), at
/// most `limit` (1 to 5,000, default 1,000).
pub async fn node_logs(pool: &PgPool, id: Uuid, after: i64, limit: Option<i64>) -> Result<NodeLogs, ServiceError> {
    nodes::get(pool, id).await?;
    let limit = limit.unwrap_or(1000).clamp(1, 5000);
    let jobs = provision_jobs::for_node(pool, id).await?;
    let lines = provision_jobs::node_lines(pool, id, after.max(0), limit).await?;
    let next_cursor = lines.last().map_or(after.max(0), |l| l.id);
    let running = jobs
        .iter()
        .any(|j| j.status == crosslogic_core::ProvisionJobStatus::Running);
    Ok(NodeLogs {
        jobs,
        lines,
        next_cursor,
        running,
    })
}
