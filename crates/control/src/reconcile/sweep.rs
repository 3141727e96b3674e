//! Keeping the node rows and the provisioner's clusters in agreement.
//!
//! * A node still `launching` past the launch timeout never registered: it
//!   is declared dead (its launch counts as failed), so it is terminated and
//!   replaced.
//! * Every `sweep_interval` the provisioner lists its clusters. A cluster
//!   no unterminated node row owns is an orphan (a launch whose control
//!   plane died before recording it, a terminate that failed half-way); it
//!   is terminated once it has stayed orphaned for `orphan_grace`. A node
//!   whose cluster is gone (the VM was reclaimed, the processes were
//!   killed) is declared dead and replaced.
//!
//! At a control-plane restart this is the whole of adoption: nodes whose
//! clusters still run keep their rows and keep serving; nothing is
//! relaunched because live and launching nodes count toward the target.

use std::collections::HashSet;

use crosslogic_core::{NodeStatus, ServiceError};
use crosslogic_db::repo::provision_jobs;

use super::{dur_ms, ms, Pass, Snapshot};
use crate::fleet::lifecycle::{self, Step};

/// A `launching` node without any launch job this long after it was
/// written never had its launch started.
const NEVER_STARTED_AFTER_SECS: i64 = 60;

impl Pass<'_> {
    pub(super) async fn sweep(&mut self, snap: &Snapshot) -> Result<(), ServiceError> {
        self.launch_timeouts(snap).await?;
        let (pool, jobs, cfg, now_ms) = (self.pool, self.jobs, self.cfg, self.now_ms);
        let due = self
            .state
            .last_sweep_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= dur_ms(cfg.sweep_interval));
        if !due {
            return Ok(());
        }
        self.state.last_sweep_ms = Some(now_ms);
        // Jobs of a control plane that stopped mid-job: no job outlives the
        // launch timeout, so older `running` rows are abandoned.
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(cfg.launch_timeout).unwrap_or(chrono::Duration::MAX);
        for job in
            provision_jobs::fail_abandoned(pool, cutoff, "abandoned: the control plane stopped during the job").await?
        {
            tracing::warn!(job = %job.id, cluster = %job.cluster_name, "marked an abandoned provisioning job failed");
        }
        // Rows whose launch never started (the control plane stopped between
        // writing the row and starting the job) are dead now, not at the
        // launch timeout.
        let stale = chrono::Utc::now() - chrono::Duration::seconds(NEVER_STARTED_AFTER_SECS);
        for id in provision_jobs::launching_without_job(pool, stale).await? {
            let Some(n) = snap.nodes.iter().find(|n| n.id == id) else {
                continue;
            };
            if !cfg.manages(n.provider) || n.cluster_name.as_deref().is_some_and(|c| jobs.is_busy(c)) {
                continue;
            }
            let moved = lifecycle::transition(
                pool,
                id,
                Step::LaunchTimedOut,
                "its launch never started (the control plane stopped first)",
            )
            .await?;
            if moved.is_some() {
                self.report.declared_dead.push(id);
            }
        }
        let clusters: HashSet<String> = match jobs.provisioner().list().await {
            Ok(list) => list.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the provisioner's clusters; sweep skipped");
                self.report.failures.push(("sweep".into(), e.to_string()));
                return Ok(());
            }
        };
        let owned: HashSet<&str> = snap.nodes.iter().filter_map(|n| n.cluster_name.as_deref()).collect();
        let grace = dur_ms(cfg.orphan_grace);

        // Orphans: clusters nobody owns, terminated after the grace period.
        self.state
            .orphans_seen
            .retain(|c, _| clusters.contains(c) && !owned.contains(c.as_str()));
        let mut orphans: Vec<&String> = clusters
            .iter()
            .filter(|c| !owned.contains(c.as_str()) && !jobs.is_busy(c))
            .collect();
        orphans.sort();
        for cluster in orphans {
            let first = *self.state.orphans_seen.entry(cluster.clone()).or_insert(now_ms);
            if now_ms.saturating_sub(first) >= grace {
                tracing::warn!(cluster = %cluster, "terminating an orphaned cluster");
                if jobs.terminate(None, cluster, "orphaned cluster", None).await?.is_some() {
                    self.report.terminated.push(cluster.clone());
                }
            }
        }

        // Vanished: rows whose cluster no longer exists.
        for n in &snap.nodes {
            let Some(cluster) = &n.cluster_name else { continue };
            if !cfg.manages(n.provider)
                || !Step::Vanished.applies_to(n.status)
                || clusters.contains(cluster)
                || jobs.is_busy(cluster)
                || now_ms.saturating_sub(ms(n.created_at)) < grace
            {
                continue;
            }
            let detail = format!("cluster {cluster} no longer exists");
            if lifecycle::transition(pool, n.id, Step::Vanished, &detail)
                .await?
                .is_some()
            {
                tracing::warn!(cluster = %cluster, "node's cluster vanished: declared dead");
                self.report.declared_dead.push(n.id);
            }
        }
        Ok(())
    }

    /// Declares dead the nodes that stayed `launching` past the launch timeout.
    async fn launch_timeouts(&mut self, snap: &Snapshot) -> Result<(), ServiceError> {
        let (pool, jobs, cfg, now_ms) = (self.pool, self.jobs, self.cfg, self.now_ms);
        let timeout = dur_ms(cfg.launch_timeout);
        for n in &snap.nodes {
            let busy = n.cluster_name.as_deref().is_some_and(|c| jobs.is_busy(c));
            if n.status != NodeStatus::Launching
                || !cfg.manages(n.provider)
                || busy
                || now_ms.saturating_sub(ms(n.created_at)) < timeout
            {
                continue;
            }
            let detail = format!(
                "the node agent did not register within {}s of the launch",
                cfg.launch_timeout.as_secs()
            );
            let moved = lifecycle::transition(pool, n.id, Step::LaunchTimedOut, &detail).await?;
            if moved.is_some() {
                self.report.declared_dead.push(n.id);
                if let Some(dep) = n.deployment_id {
                    super::plan::record_failure(self.cfg, self.state, self.now_ms, dep);
                }
                if let Some(candidate) = n.metadata.get("candidate").and_then(|c| c.as_str()) {
                    super::plan::cool_down(self.cfg, self.state, self.now_ms, candidate.to_owned());
                }
            }
        }
        Ok(())
    }
}
