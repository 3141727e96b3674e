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

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crosslogic_core::scaling::{ScalingPolicy, ScalingState};
use crosslogic_core::{NodeStatus, Provider};
use crosslogic_db::repo::deployments;
use crosslogic_db::repo::nodes::Node;
use crosslogic_db::PgPool;
use uuid::Uuid;

use crate::jobs::Jobs;
use crosslogic_core::ServiceError;

mod deployment;
mod launch;
pub mod plan;
mod snapshot;
mod sweep;

pub use plan::{plan, Action, Choice, Plan};
pub use snapshot::Snapshot;

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
    /// A deployment serving fewer than its minimum replicas this long is
    /// reported as `deployment.degraded`.
    pub degraded_after: Duration,
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
            degraded_after: Duration::from_secs(300),
        }
    }

    /// Whether nodes of `provider` are this reconciler's to manage.
    pub fn manages(&self, provider: Provider) -> bool {
        match &self.fleet {
            Fleet::Local => provider == Provider::Local,
            Fleet::Cloud(providers) => providers.contains(&provider),
        }
    }

    /// Whether this reconciler sizes `dep`: one pinned to a provider is
    /// left to the control plane that launches on it (`provider` unset =
    /// any). Its nodes of other providers are counted but never touched.
    pub fn manages_deployment(&self, dep: &crosslogic_db::repo::deployments::Deployment) -> bool {
        match dep.provider.as_deref().map(str::parse::<Provider>) {
            None => true,
            Some(Ok(p)) => self.manages(p),
            Some(Err(_)) => false,
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
    /// The target size of each `hedged` deployment (its replicas are
    /// composed around it; see `crosslogic_core::hedge`).
    pub targets: HashMap<Uuid, u32>,
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
    /// Deployments serving fewer than their minimum: since when (ms).
    pub below_min_since: HashMap<Uuid, u64>,
    /// …and those already reported degraded for that episode.
    pub degraded_reported: HashSet<Uuid>,
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

/// One pass in progress: what it works with, what it remembers between
/// passes, and what it has done so far. The pass's steps are methods on it
/// (`deployment.rs`, `launch.rs`, `sweep.rs`).
pub(crate) struct Pass<'a> {
    pub pool: &'a PgPool,
    pub jobs: &'a Jobs,
    pub cfg: &'a ReconcileConfig,
    pub now_ms: u64,
    pub state: &'a mut ReconcileState,
    pub report: ReconcileReport,
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
    let mut lock = crosslogic_db::begin(pool).await?;
    if !deployments::try_reconcile_lock(&mut *lock).await? {
        return Ok(ReconcileReport::default());
    }
    let mut pass = Pass {
        pool,
        jobs,
        cfg,
        now_ms,
        state,
        report: ReconcileReport {
            acted: true,
            ..ReconcileReport::default()
        },
    };
    pass.apply_outcomes(jobs.take_outcomes());
    let mut snap = Snapshot::load(pool, cfg).await?;
    pass.sweep(&snap).await?;
    // What the sweep declared dead is replaced in this same pass.
    for n in snap
        .nodes
        .iter_mut()
        .filter(|n| pass.report.declared_dead.contains(&n.id))
    {
        n.status = NodeStatus::Dead;
    }
    let snap = snap;

    let decided = plan::plan(&snap, cfg, pass.state, now_ms);
    pass.report.backing_off = decided.backing_off;
    pass.report.failures.extend(decided.failures);
    let drained = pass.apply(&snap, decided.actions).await?;
    let counts: Vec<(Uuid, i32)> = decided
        .live
        .iter()
        .filter_map(|r| {
            let after = r.live - drained.get(&r.deployment).copied().unwrap_or(0);
            (r.recorded != Some(after)).then_some((r.deployment, after.max(0)))
        })
        .collect();
    deployments::set_current_replicas_many(pool, &counts).await?;
    pass.forget(&snap);
    crosslogic_db::commit(lock).await?;
    Ok(pass.report)
}

impl Pass<'_> {
    /// Drops what the state remembers of deployments and nodes gone since.
    fn forget(&mut self, snap: &Snapshot) {
        let active: HashSet<Uuid> = snap.deployments.iter().map(|d| d.id).collect();
        let draining: HashSet<Uuid> = snap
            .nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Draining)
            .map(|n| n.id)
            .collect();
        let now = self.now_ms;
        self.state.scaling.retain(|id, _| active.contains(id));
        self.state.targets.retain(|id, _| active.contains(id));
        self.state.backoff.retain(|id, _| active.contains(id));
        self.state.below_min_since.retain(|id, _| active.contains(id));
        self.state.degraded_reported.retain(|id| active.contains(id));
        self.state.avoid.retain(|_, until| *until > now);
        self.state.draining_since.retain(|id, _| draining.contains(id));
    }
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
