//! One deployment's share of a pass: terminate what is dead or done
//! draining, decide the size from load and bounds, then launch or drain.
//! Also the wind-down of paused and deleted deployments.

use crosslogic_core::events::{DeploymentDegraded, DeploymentScaled, ScaleAction};
use crosslogic_core::placement;
use crosslogic_core::scaling::{self, LoadSample, ScaleDecision};
use crosslogic_core::{Event, NodeStatus, ServiceError};
use crosslogic_db::repo::deployments::Deployment;
use crosslogic_db::repo::nodes::Node;
use uuid::Uuid;

use super::{dur_ms, ms, requests, Pass, Snapshot};
use crate::fleet::lifecycle::{self, Step};

impl Pass<'_> {
    /// Reconciles one active deployment; returns its live replica count
    /// afterwards.
    pub(super) async fn reconcile_deployment(
        &mut self,
        snap: &Snapshot,
        dep: &Deployment,
        nodes: &[&Node],
    ) -> Result<i32, ServiceError> {
        // 1. Terminate dead nodes, and draining nodes that are idle or
        //    drained for longer than the timeout.
        for n in nodes {
            self.terminate_if_done(n).await?;
        }

        // 2. Decide on the size (and report a deployment that serves below
        //    its minimum for too long).
        let live: Vec<&Node> = nodes.iter().copied().filter(|n| n.status.is_live()).collect();
        let serving = nodes.iter().filter(|n| n.status == NodeStatus::Active).count();
        self.check_degraded(dep, u32::try_from(serving).unwrap_or(u32::MAX))
            .await?;
        let launching: Vec<&Node> = nodes
            .iter()
            .copied()
            .filter(|n| n.status == NodeStatus::Launching)
            .collect();
        let load = live.iter().fold(LoadSample::default(), |mut acc, n| {
            acc.in_flight = acc
                .in_flight
                .saturating_add(u32::try_from(n.running_requests.max(0)).unwrap_or(0));
            acc.queued = acc
                .queued
                .saturating_add(u32::try_from(n.waiting_requests.max(0)).unwrap_or(0));
            acc.tokens_per_second += n.throughput_tokens_per_sec.max(0.0);
            acc
        });
        let capacity = snap
            .models
            .get(&dep.model_name)
            .map_or(0.0, |m| f64::from(m.tokens_per_second_capacity.max(0)));
        let live_count = u32::try_from(live.len()).unwrap_or(u32::MAX);
        let launching_count = u32::try_from(launching.len()).unwrap_or(u32::MAX);
        let decision = scaling::decide(
            u32::try_from(dep.min_replicas.max(0)).unwrap_or(0),
            u32::try_from(dep.max_replicas.max(0)).unwrap_or(0),
            live_count,
            launching_count,
            &load,
            capacity,
            &self.cfg.policy,
            self.state.scaling.entry(dep.id).or_default(),
            self.now_ms,
        );

        // 3. Act on it.
        let mut live_after = live.len();
        match decision {
            ScaleDecision::Launch(n) if n > 0 => {
                let backoff = self.state.backoff.get(&dep.id).copied().unwrap_or_default();
                if backoff.until_ms > self.now_ms {
                    self.report.backing_off.push(dep.name.clone());
                } else {
                    // After failures, probe with one launch at a time.
                    let n = if backoff.failures > 0 { 1 } else { n };
                    let placed: Vec<&Node> = live.iter().chain(launching.iter()).copied().collect();
                    let started = self.launch_replicas(snap, dep, &placed, n).await?;
                    if started > 0 {
                        self.scaled_event(dep, ScaleAction::Launch, started, live_count, launching_count)
                            .await?;
                    }
                }
            }
            ScaleDecision::Drain(n) if n > 0 => {
                let candidates: Vec<(Uuid, NodeStatus, u32, u64)> = live
                    .iter()
                    .map(|x| (x.id, x.status, requests(x), ms(x.created_at)))
                    .collect();
                let victims = placement::pick_victims(&candidates, n);
                self.scaled_event(dep, ScaleAction::Drain, victims.len(), live_count, launching_count)
                    .await?;
                for id in victims {
                    if self.drain(id, "scaled down by the reconciler").await? {
                        live_after = live_after.saturating_sub(1);
                    }
                }
            }
            _ => {}
        }
        Ok(i32::try_from(live_after).unwrap_or(i32::MAX))
    }

    /// Nodes of a paused or deleted deployment: dead or drained ones are
    /// terminated; for a deleted deployment (`deleted`) every other node is
    /// drained first. A paused deployment's live nodes keep serving as they
    /// are.
    pub(super) async fn wind_down(&mut self, nodes: &[&Node], deleted: bool) -> Result<(), ServiceError> {
        for n in nodes {
            if deleted && Step::Drain.applies_to(n.status) {
                self.drain(n.id, "its deployment was deleted").await?;
            } else {
                self.terminate_if_done(n).await?;
            }
        }
        Ok(())
    }

    /// Moves a node to draining (out of routing); `true` if it moved.
    async fn drain(&mut self, id: Uuid, why: &str) -> Result<bool, ServiceError> {
        let moved = lifecycle::transition(self.pool, id, Step::Drain, why).await?;
        if moved.is_some() {
            self.state.draining_since.insert(id, self.now_ms);
            self.report.drained.push(id);
        }
        Ok(moved.is_some())
    }

    /// Terminates a dead node, or a draining one that is idle or has
    /// drained longer than the drain timeout — if it runs on capacity this
    /// reconciler's provisioner manages (another control plane's provisioner
    /// tears the others down).
    async fn terminate_if_done(&mut self, n: &Node) -> Result<(), ServiceError> {
        if !self.cfg.manages(n.provider) {
            return Ok(());
        }
        let why = match n.status {
            NodeStatus::Dead => Some("dead"),
            NodeStatus::Draining => {
                let since = *self.state.draining_since.entry(n.id).or_insert(self.now_ms);
                if requests(n) == 0 {
                    Some("drained")
                } else if self.now_ms.saturating_sub(since) >= dur_ms(self.cfg.drain_timeout) {
                    Some("drain timeout")
                } else {
                    None
                }
            }
            _ => None,
        };
        match why {
            Some(why) => self.terminate(n, why).await,
            None => Ok(()),
        }
    }

    /// Starts terminating a node (a node without a cluster is just marked
    /// terminated). Does nothing while a job for its cluster runs.
    async fn terminate(&mut self, n: &Node, why: &str) -> Result<(), ServiceError> {
        match &n.cluster_name {
            Some(cluster) => {
                if self.jobs.terminate(Some(n.id), cluster, why, None).await?.is_some() {
                    self.report.terminated.push(cluster.clone());
                }
            }
            None => {
                let detail = format!("terminated by the reconciler ({why})");
                let moved = lifecycle::transition(self.pool, n.id, Step::Terminate, &detail).await?;
                if moved.is_some() {
                    self.report.terminated.push(n.id.to_string());
                }
            }
        }
        Ok(())
    }

    /// Tracks how long `dep` has served with fewer than its minimum
    /// replicas; past `degraded_after`, publishes `deployment.degraded`
    /// once for that episode.
    async fn check_degraded(&mut self, dep: &Deployment, serving: u32) -> Result<(), ServiceError> {
        let min = u32::try_from(dep.min_replicas.max(0)).unwrap_or(0);
        if serving >= min {
            self.state.below_min_since.remove(&dep.id);
            self.state.degraded_reported.remove(&dep.id);
            return Ok(());
        }
        let since = *self.state.below_min_since.entry(dep.id).or_insert(self.now_ms);
        if self.now_ms.saturating_sub(since) < dur_ms(self.cfg.degraded_after)
            || self.state.degraded_reported.contains(&dep.id)
        {
            return Ok(());
        }
        let event = Event::DeploymentDegraded(DeploymentDegraded {
            deployment_id: dep.id,
            name: dep.name.clone(),
            model_name: dep.model_name.clone(),
            live: serving,
            min_replicas: dep.min_replicas,
            below_min_since: chrono::DateTime::from_timestamp_millis(i64::try_from(since).unwrap_or(0))
                .unwrap_or_default(),
        });
        let mut conn = self.pool.acquire().await.map_err(crosslogic_db::DbError::from)?;
        crosslogic_db::changes::publish(&mut conn, &event).await?;
        self.state.degraded_reported.insert(dep.id);
        tracing::warn!(deployment = %dep.name, serving, min, "deployment degraded: below its minimum replicas");
        Ok(())
    }

    /// Publishes `deployment.scaled` for what a pass started.
    async fn scaled_event(
        &self,
        dep: &Deployment,
        action: ScaleAction,
        count: usize,
        live: u32,
        launching: u32,
    ) -> Result<(), ServiceError> {
        let event = Event::DeploymentScaled(DeploymentScaled {
            deployment_id: dep.id,
            deployment: dep.name.clone(),
            action,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            live,
            launching,
            min: dep.min_replicas,
            max: dep.max_replicas,
        });
        let mut conn = self.pool.acquire().await.map_err(crosslogic_db::DbError::from)?;
        crosslogic_db::changes::publish(&mut conn, &event).await?;
        Ok(())
    }
}
