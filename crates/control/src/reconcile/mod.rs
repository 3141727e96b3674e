//! The deployments reconciler: one pass compares each active deployment's
//! nodes with what its load and bounds need, and starts launch, drain and
//! terminate work; the work itself runs as background [`Jobs`].
//!
//! A pass reads the whole fleet in a fixed number of queries (deployments,
//! unterminated nodes, models, and for clouds the regions and GPU catalog)
//! whatever its size, then writes only what changes. The decisions are the
//! pure functions of `crosslogic_core::{scaling, placement, candidates}`;
//! this module gathers their inputs and applies their answers:
//!
//! * dead nodes, and draining nodes that are idle or drained too long, are
//!   terminated; nodes stuck in `launching` past the launch timeout are
//!   declared dead (and so replaced); a deleted deployment's nodes are
//!   drained and terminated, a paused one's are left serving as they are;
//! * [`sweep`] compares the provisioner's clusters with the node rows:
//!   clusters nobody owns are terminated after a grace period, nodes whose
//!   cluster vanished are declared dead — this is also how a restarted
//!   control plane adopts what is still running (live rows with live
//!   clusters are simply kept);
//! * [`launch`] picks where each new replica goes, skipping candidates that
//!   failed recently, with exponential backoff per deployment.
//!
//! Only one control-plane replica acts per pass: the pass holds a
//! transaction-scoped advisory lock for its whole duration (it only starts
//! jobs, so it is short).

use std::collections::HashMap;
use std::time::Duration;

use crosslogic_core::placement;
use crosslogic_core::scaling::{self, LoadSample, ScaleDecision, ScalingPolicy, ScalingState};
use crosslogic_core::{DeploymentStatus, EventSeverity, HealthCheckStatus, NodeStatus, Provider};
use crosslogic_db::repo::catalog::{self, Model};
use crosslogic_db::repo::deployments::{self, Deployment};
use crosslogic_db::repo::events::{self, NewEvent};
use crosslogic_db::repo::nodes::{self, Node};
use crosslogic_db::PgPool;
use serde_json::json;
use uuid::Uuid;

use crate::agent::transition_node;
use crate::jobs::Jobs;
use crate::ServiceError;

mod launch;
mod sweep;

/// Which capacity the provisioner launches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fleet {
    /// Processes on this machine: no GPU, region or price choice.
    Local,
    /// Cloud VMs on these providers (a deployment's own `provider`, when
    /// set, narrows it), placed by region and GPU price.
    Cloud(Vec<Provider>),
}

/// How the reconciler behaves.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub fleet: Fleet,
    /// Where launched node agents reach the control plane.
    pub control_url: String,
    /// Scaling thresholds and delays.
    pub policy: ScalingPolicy,
    /// A draining node is terminated after this long even if still busy.
    pub drain_timeout: Duration,
    /// A node still `launching` (its agent never registered) this long
    /// after it was created is declared dead and replaced.
    pub launch_timeout: Duration,
    /// A cluster no node row owns is terminated once it has been seen
    /// orphaned this long (covers a launch whose row is being written).
    pub orphan_grace: Duration,
    /// How often the provisioner's cluster list is compared with the rows.
    pub sweep_interval: Duration,
    /// First delay after a failed launch; doubles per consecutive failure…
    pub backoff_base: Duration,
    /// …up to this.
    pub backoff_max: Duration,
    /// A (provider, region, GPU, spot) that failed is skipped this long.
    pub candidate_cooldown: Duration,
    /// Model memory × this must fit in the node's GPUs (`gpu_type=auto`).
    pub vram_headroom: f64,
    /// Largest GPU count per node `auto` considers.
    pub max_gpus_per_node: u32,
}

impl ReconcileConfig {
    /// Defaults for `provider` (`local`, or one cloud), agents calling back
    /// to `control_url`.
    pub fn new(provider: Provider, control_url: impl Into<String>) -> ReconcileConfig {
        let fleet = if provider == Provider::Local {
            Fleet::Local
        } else {
            Fleet::Cloud(vec![provider])
        };
        ReconcileConfig::for_fleet(fleet, control_url)
    }

    /// Defaults for `fleet`. Local nodes start in seconds, cloud nodes in
    /// minutes: the launch timeout is 3 and 30 minutes, the orphan grace 30
    /// seconds and 10 minutes, and clusters are listed every 5 and 60
    /// seconds respectively (`sky status` is not free).
    pub fn for_fleet(fleet: Fleet, control_url: impl Into<String>) -> ReconcileConfig {
        let (launch_timeout, orphan_grace, sweep_interval) = match fleet {
            Fleet::Local => (
                Duration::from_secs(180),
                Duration::from_secs(30),
                Duration::from_secs(5),
            ),
            Fleet::Cloud(_) => (
                Duration::from_secs(1800),
                Duration::from_secs(600),
                Duration::from_secs(60),
            ),
        };
        ReconcileConfig {
            fleet,
            control_url: control_url.into(),
            policy: ScalingPolicy::default(),
            drain_timeout: Duration::from_secs(600),
            launch_timeout,
            orphan_grace,
            sweep_interval,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            candidate_cooldown: Duration::from_secs(900),
            vram_headroom: 1.2,
            max_gpus_per_node: 8,
        }
    }

    /// Whether nodes of `provider` are this reconciler's to manage.
    fn manages(&self, provider: Provider) -> bool {
        match &self.fleet {
            Fleet::Local => provider == Provider::Local,
            Fleet::Cloud(providers) => providers.contains(&provider),
        }
    }
}

/// Launch failures of one deployment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failed launches.
    pub failures: u32,
    /// No launch before this (ms).
    pub until_ms: u64,
}

/// What the reconciler remembers between passes (per control-plane replica).
#[derive(Debug, Default)]
pub struct ReconcileState {
    /// Scaling timers per deployment.
    pub scaling: HashMap<Uuid, ScalingState>,
    /// When each draining node was first seen draining (ms).
    pub draining_since: HashMap<Uuid, u64>,
    /// Launch backoff per deployment.
    pub backoff: HashMap<Uuid, Backoff>,
    /// Candidate keys to skip until the given time (ms).
    pub avoid: HashMap<String, u64>,
    /// Clusters without a node row, and when first seen so (ms).
    pub orphans_seen: HashMap<String, u64>,
    /// When the provisioner's clusters were last compared with the rows.
    pub last_sweep_ms: Option<u64>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReconcileReport {
    /// `false` when another replica held the lock: nothing was done.
    pub acted: bool,
    /// Cluster names whose launch started.
    pub launched: Vec<String>,
    /// Nodes moved to draining.
    pub drained: Vec<Uuid>,
    /// Cluster names whose termination started.
    pub terminated: Vec<String>,
    /// Nodes declared dead by the pass (launch timeout, cluster vanished).
    pub declared_dead: Vec<Uuid>,
    /// Deployments that wanted replicas but are backing off.
    pub backing_off: Vec<String>,
    /// What could not be done (subject, reason).
    pub failures: Vec<(String, String)>,
}

/// Everything a pass reads, loaded once.
pub(crate) struct Snapshot {
    /// Active deployments.
    pub deployments: Vec<Deployment>,
    /// Ids of paused deployments (left as they are; only dead nodes go).
    pub paused: std::collections::HashSet<Uuid>,
    pub nodes: Vec<Node>,
    pub models: HashMap<String, Model>,
    pub regions: Vec<placement::RegionInfo>,
    /// Provider-specific region names by region code.
    pub cloud_regions: HashMap<String, serde_json::Value>,
    pub offers: Vec<placement::GpuOffer>,
}

fn is_live(s: NodeStatus) -> bool {
    matches!(s, NodeStatus::Initializing | NodeStatus::Active | NodeStatus::Unhealthy)
}

fn ms(t: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

fn requests(n: &Node) -> u32 {
    u32::try_from(n.running_requests.max(0)).unwrap_or(0) + u32::try_from(n.waiting_requests.max(0)).unwrap_or(0)
}

fn dur_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One reconciler pass at `now_ms` (milliseconds since the Unix epoch: node
/// ages are compared with their `created_at`).
pub async fn reconcile_once(
    pool: &PgPool,
    jobs: &Jobs,
    cfg: &ReconcileConfig,
    state: &mut ReconcileState,
    now_ms: u64,
) -> Result<ReconcileReport, ServiceError> {
    let mut lock = pool.begin().await?;
    if !deployments::try_reconcile_lock(&mut *lock).await? {
        return Ok(ReconcileReport::default());
    }
    let mut report = ReconcileReport {
        acted: true,
        ..ReconcileReport::default()
    };
    launch::apply_outcomes(cfg, state, jobs.take_outcomes(), now_ms);
    let mut snap = load(pool, cfg).await?;
    sweep::sweep(pool, jobs, cfg, state, &snap, now_ms, &mut report).await?;
    // What the sweep declared dead is replaced in this same pass.
    for n in snap.nodes.iter_mut().filter(|n| report.declared_dead.contains(&n.id)) {
        n.status = NodeStatus::Dead;
    }
    let snap = snap;

    let mut by_deployment: HashMap<Uuid, Vec<&Node>> = HashMap::new();
    for n in &snap.nodes {
        if let Some(d) = n.deployment_id {
            by_deployment.entry(d).or_default().push(n);
        }
    }
    let mut counts = Vec::with_capacity(snap.deployments.len());
    for dep in &snap.deployments {
        let mine = by_deployment.remove(&dep.id).unwrap_or_default();
        let live = reconcile_deployment(pool, jobs, cfg, state, &snap, now_ms, dep, &mine, &mut report).await?;
        if live != dep.current_replicas {
            counts.push((dep.id, live));
        }
    }
    // Nodes of paused and deleted deployments.
    for (dep, mine) in by_deployment {
        let deleted = !snap.paused.contains(&dep);
        wind_down(pool, jobs, cfg, state, now_ms, &mine, deleted, &mut report).await?;
        if deleted {
            counts.push((dep, 0));
        }
    }
    deployments::set_current_replicas_many(pool, &counts).await?;
    state
        .scaling
        .retain(|id, _| snap.deployments.iter().any(|d| d.id == *id));
    state
        .backoff
        .retain(|id, _| snap.deployments.iter().any(|d| d.id == *id));
    state.avoid.retain(|_, until| *until > now_ms);
    let draining: std::collections::HashSet<Uuid> = snap
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Draining)
        .map(|n| n.id)
        .collect();
    state.draining_since.retain(|id, _| draining.contains(id));
    lock.commit().await?;
    Ok(report)
}

async fn load(pool: &PgPool, cfg: &ReconcileConfig) -> Result<Snapshot, ServiceError> {
    let deployments = deployments::list(pool, Some(DeploymentStatus::Active)).await?;
    let paused = deployments::list(pool, Some(DeploymentStatus::Paused))
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    let nodes = nodes::list_unterminated(pool).await?;
    let models = catalog::list_models(pool)
        .await?
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    let ((regions, cloud_regions), offers) = match cfg.fleet {
        Fleet::Local => ((Vec::new(), HashMap::new()), Vec::new()),
        Fleet::Cloud(_) => (launch::region_infos(pool).await?, launch::gpu_offers(pool).await?),
    };
    Ok(Snapshot {
        deployments,
        paused,
        nodes,
        models,
        regions,
        cloud_regions,
        offers,
    })
}

/// Terminates `nodes` that are dead or done draining; for a deleted
/// deployment (`deleted`), first drains every live one. A paused
/// deployment's live nodes are left serving as they are.
#[allow(clippy::too_many_arguments)]
async fn wind_down(
    pool: &PgPool,
    jobs: &Jobs,
    cfg: &ReconcileConfig,
    state: &mut ReconcileState,
    now_ms: u64,
    nodes: &[&Node],
    deleted: bool,
    report: &mut ReconcileReport,
) -> Result<(), ServiceError> {
    for n in nodes {
        if deleted && (is_live(n.status) || n.status == NodeStatus::Launching) {
            let from = [
                NodeStatus::Launching,
                NodeStatus::Initializing,
                NodeStatus::Active,
                NodeStatus::Unhealthy,
            ];
            let moved = transition_node(
                pool,
                n.id,
                NodeStatus::Draining,
                &from,
                "node.draining",
                HealthCheckStatus::Healthy,
                Some("its deployment was deleted"),
            )
            .await?;
            if moved.is_some() {
                state.draining_since.insert(n.id, now_ms);
                report.drained.push(n.id);
            }
            continue;
        }
        terminate_if_done(pool, jobs, cfg, state, now_ms, n, report).await?;
    }
    Ok(())
}

/// Terminates a dead node, or a draining one that is idle or has drained
/// longer than the drain timeout.
async fn terminate_if_done(
    pool: &PgPool,
    jobs: &Jobs,
    cfg: &ReconcileConfig,
    state: &mut ReconcileState,
    now_ms: u64,
    n: &Node,
    report: &mut ReconcileReport,
) -> Result<(), ServiceError> {
    let why = match n.status {
        NodeStatus::Dead => Some("dead"),
        NodeStatus::Draining => {
            let since = *state.draining_since.entry(n.id).or_insert(now_ms);
            if requests(n) == 0 {
                Some("drained")
            } else if now_ms.saturating_sub(since) >= dur_ms(cfg.drain_timeout) {
                Some("drain timeout")
            } else {
                None
            }
        }
        _ => None,
    };
    match why {
        Some(why) => terminate(pool, jobs, n, why, report).await,
        None => Ok(()),
    }
}

/// Reconciles one deployment; returns its live replica count afterwards.
#[allow(clippy::too_many_arguments)]
async fn reconcile_deployment(
    pool: &PgPool,
    jobs: &Jobs,
    cfg: &ReconcileConfig,
    state: &mut ReconcileState,
    snap: &Snapshot,
    now_ms: u64,
    dep: &Deployment,
    nodes: &[&Node],
    report: &mut ReconcileReport,
) -> Result<i32, ServiceError> {
    // 1. Terminate dead nodes, and draining nodes that are idle or drained
    //    for longer than the timeout.
    for n in nodes {
        terminate_if_done(pool, jobs, cfg, state, now_ms, n, report).await?;
    }

    // 2. Decide on the size.
    let live: Vec<&Node> = nodes.iter().copied().filter(|n| is_live(n.status)).collect();
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
    let min = u32::try_from(dep.min_replicas.max(0)).unwrap_or(0);
    let max = u32::try_from(dep.max_replicas.max(0)).unwrap_or(0);
    let live_count = u32::try_from(live.len()).unwrap_or(u32::MAX);
    let launching_count = u32::try_from(launching.len()).unwrap_or(u32::MAX);
    let decision = scaling::decide(
        min,
        max,
        live_count,
        launching_count,
        &load,
        capacity,
        &cfg.policy,
        state.scaling.entry(dep.id).or_default(),
        now_ms,
    );

    let mut live_after = live.len();
    match decision {
        ScaleDecision::Launch(n) if n > 0 => {
            let backoff = state.backoff.get(&dep.id).copied().unwrap_or_default();
            if backoff.until_ms > now_ms {
                report.backing_off.push(dep.name.clone());
            } else {
                // After failures, probe with one launch at a time.
                let n = if backoff.failures > 0 { 1 } else { n };
                let placed: Vec<&Node> = live.iter().chain(launching.iter()).copied().collect();
                let started =
                    launch::launch_replicas(pool, jobs, cfg, state, snap, now_ms, dep, &placed, n, report).await?;
                if started > 0 {
                    scaled_event(pool, dep, "launch", started, live_count, launching_count).await?;
                }
            }
        }
        ScaleDecision::Drain(n) if n > 0 => {
            let candidates: Vec<(Uuid, NodeStatus, u32, u64)> = live
                .iter()
                .map(|x| (x.id, x.status, requests(x), ms(x.created_at)))
                .collect();
            let victims = placement::pick_victims(&candidates, n);
            scaled_event(pool, dep, "drain", victims.len(), live_count, launching_count).await?;
            let from = [NodeStatus::Initializing, NodeStatus::Active, NodeStatus::Unhealthy];
            for id in victims {
                let moved = transition_node(
                    pool,
                    id,
                    NodeStatus::Draining,
                    &from,
                    "node.draining",
                    HealthCheckStatus::Healthy,
                    Some("scaled down by the reconciler"),
                )
                .await?;
                if moved.is_some() {
                    state.draining_since.insert(id, now_ms);
                    report.drained.push(id);
                    live_after = live_after.saturating_sub(1);
                }
            }
        }
        _ => {}
    }
    Ok(i32::try_from(live_after).unwrap_or(i32::MAX))
}

async fn scaled_event(
    pool: &PgPool,
    dep: &Deployment,
    action: &str,
    count: usize,
    live: u32,
    launching: u32,
) -> Result<(), ServiceError> {
    events::publish(
        pool,
        &NewEvent {
            event_type: "deployment.scaled".into(),
            tenant_id: None,
            severity: EventSeverity::Info,
            payload: json!({
                "deployment_id": dep.id, "deployment": dep.name, "action": action, "count": count,
                "live": live, "launching": launching, "min": dep.min_replicas, "max": dep.max_replicas,
            }),
        },
    )
    .await?;
    Ok(())
}

/// Starts terminating a node (a node without a cluster is just marked
/// terminated). Does nothing while a job for its cluster runs.
pub(crate) async fn terminate(
    pool: &PgPool,
    jobs: &Jobs,
    n: &Node,
    why: &str,
    report: &mut ReconcileReport,
) -> Result<(), ServiceError> {
    match &n.cluster_name {
        Some(cluster) => {
            if jobs.terminate(Some(n.id), cluster, why).await?.is_some() {
                report.terminated.push(cluster.clone());
            }
        }
        None => {
            let detail = format!("terminated by the reconciler ({why})");
            let moved = transition_node(
                pool,
                n.id,
                NodeStatus::Terminated,
                &[],
                "node.terminated",
                HealthCheckStatus::Dead,
                Some(&detail),
            )
            .await?;
            if moved.is_some() {
                report.terminated.push(n.id.to_string());
            }
        }
    }
    Ok(())
}

/// Runs [`reconcile_once`] every `interval` until `shutdown`, then waits
/// up to `job_grace` for running jobs. Launched nodes outlive the control
/// plane: a restart finds them through their rows and the provisioner.
pub async fn run_reconciler(
    pool: PgPool,
    jobs: Jobs,
    cfg: ReconcileConfig,
    interval: Duration,
    job_grace: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut state = ReconcileState::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
                if let Err(e) = reconcile_once(&pool, &jobs, &cfg, &mut state, now_ms).await {
                    tracing::warn!(error = %e, "reconcile pass failed");
                }
            }
        }
    }
    jobs.shutdown(job_grace).await;
}
