//! Applying a pass's [`Action`]s: drains and terminations through the node
//! lifecycle and the provisioning jobs, events through the outbox.

use std::collections::HashMap;

use crosslogic_core::{Event, ServiceError};
use uuid::Uuid;

use super::plan::Action;
use super::{Pass, Snapshot};
use crate::fleet::lifecycle::{self, Step};

impl Pass<'_> {
    /// Applies `actions` in order; returns how many nodes each deployment
    /// actually had drained.
    pub(super) async fn apply(
        &mut self,
        snap: &Snapshot,
        actions: Vec<Action>,
    ) -> Result<HashMap<Uuid, i32>, ServiceError> {
        let mut drained: HashMap<Uuid, i32> = HashMap::new();
        for action in actions {
            match action {
                Action::Terminate { node, cluster, why } => self.terminate(node, cluster, why).await?,
                Action::Drain { node, deployment, why } => {
                    if self.drain(node, why).await? {
                        *drained.entry(deployment).or_default() += 1;
                    }
                }
                Action::Launch { deployment, choice } => {
                    let Some(dep) = snap.deployments.iter().find(|d| d.id == deployment) else {
                        continue;
                    };
                    if let Some(cluster) = self.start_launch(snap, dep, choice).await? {
                        self.report.launched.push(cluster);
                    }
                }
                Action::Publish(event) => self.publish(&event).await?,
            }
        }
        Ok(drained)
    }

    /// Moves a node to draining (out of routing); `true` if it moved.
    async fn drain(&mut self, id: Uuid, why: &str) -> Result<bool, ServiceError> {
        let moved = lifecycle::transition(self.pool, id, Step::Drain, why).await?;
        if moved.is_some() {
            self.report.drained.push(id);
        }
        Ok(moved.is_some())
    }

    /// Starts terminating a node (a node without a cluster is just marked
    /// terminated). Does nothing while a job for its cluster runs.
    async fn terminate(&mut self, node: Uuid, cluster: Option<String>, why: &str) -> Result<(), ServiceError> {
        match cluster {
            Some(cluster) => {
                if self.jobs.terminate(Some(node), &cluster, why, None).await?.is_some() {
                    self.report.terminated.push(cluster);
                }
            }
            None => {
                let detail = format!("terminated by the reconciler ({why})");
                let moved = lifecycle::transition(self.pool, node, Step::Terminate, &detail).await?;
                if moved.is_some() {
                    self.report.terminated.push(node.to_string());
                }
            }
        }
        Ok(())
    }

    /// Publishes a platform event (`deployment.scaled`, `.degraded`).
    async fn publish(&self, event: &Event) -> Result<(), ServiceError> {
        if let Event::DeploymentDegraded(d) = event {
            tracing::warn!(deployment = %d.name, serving = d.live, min = d.min_replicas,
                "deployment degraded: below its minimum replicas");
        }
        let mut conn = self.pool.acquire().await.map_err(crosslogic_db::DbError::from)?;
        crosslogic_db::changes::publish(&mut conn, event).await?;
        Ok(())
    }
}
