//! The deployments reconciler: one pass compares each active deployment's
//! nodes with what its load and bounds need, launches or drains through a
//! [`Provisioner`], and terminates draining nodes once idle (or drained too
//! long) and dead nodes. The decisions themselves are the pure functions of
//! `crosslogic_core::{scaling, placement}`; this module only gathers their
//! inputs and applies their answers.
//!
//! Only one control-plane replica acts per pass: the pass holds a
//! transaction-scoped advisory lock for its whole duration.

use std::collections::HashMap;
use std::time::Duration;

use crosslogic_core::placement::{self, RegionInfo};
use crosslogic_core::scaling::{self, LoadSample, ScaleDecision, ScalingPolicy, ScalingState};
use crosslogic_core::{DeploymentStatus, EventSeverity, HealthCheckStatus, NodeStatus, Provider, RegionStatus};
use crosslogic_db::repo::catalog;
use crosslogic_db::repo::deployments::{self, Deployment};
use crosslogic_db::repo::events::{self, NewEvent};
use crosslogic_db::repo::nodes::{self, NewNode, Node, NodeFilter};
use crosslogic_db::PgPool;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::provision::{LaunchSpec, Provisioner};
use crate::ServiceError;

/// Nodes of one deployment considered at most (far above any max_replicas).
const MAX_NODES_PER_DEPLOYMENT: i64 = 10_000;

/// How the reconciler behaves.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// The provider the provisioner launches on (`local` skips GPU and
    /// region choice).
    pub provider: Provider,
    /// Where launched node agents reach the control plane.
    pub control_url: String,
    /// Scaling thresholds and delays.
    pub policy: ScalingPolicy,
    /// A draining node is terminated after this long even if still busy.
    pub drain_timeout: Duration,
    /// Tokens per second one replica sustains (0 = only in-flight counts).
    pub replica_tokens_per_second: f64,
}

impl ReconcileConfig {
    /// Defaults for `provider`, agents calling back to `control_url`.
    pub fn new(provider: Provider, control_url: impl Into<String>) -> ReconcileConfig {
        ReconcileConfig {
            provider,
            control_url: control_url.into(),
            policy: ScalingPolicy::default(),
            drain_timeout: Duration::from_secs(600),
            replica_tokens_per_second: 0.0,
        }
    }
}

/// What the reconciler remembers between passes (per control-plane replica).
#[derive(Debug, Default)]
pub struct ReconcileState {
    /// Scaling timers per deployment.
    pub scaling: HashMap<Uuid, ScalingState>,
    /// When each draining node was first seen draining (ms).
    pub draining_since: HashMap<Uuid, u64>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReconcileReport {
    /// `false` when another replica held the lock: nothing was done.
    pub acted: bool,
    /// Cluster names launched.
    pub launched: Vec<String>,
    /// Nodes moved to draining.
    pub drained: Vec<Uuid>,
    /// Cluster names terminated.
    pub terminated: Vec<String>,
    /// Launches or terminations that failed (cluster, error).
    pub failures: Vec<(String, String)>,
}

fn is_live(s: NodeStatus) -> bool {
    matches!(s, NodeStatus::Initializing | NodeStatus::Active | NodeStatus::Unhealthy)
}

fn created_ms(n: &Node) -> u64 {
    u64::try_from(n.created_at.timestamp_millis()).unwrap_or(0)
}

fn requests(n: &Node) -> u32 {
    u32::try_from(n.running_requests.max(0)).unwrap_or(0) + u32::try_from(n.waiting_requests.max(0)).unwrap_or(0)
}

/// One reconciler pass at `now_ms` (milliseconds, any monotonic origin
/// consistent across passes).
pub async fn reconcile_once(
    pool: &PgPool,
    provisioner: &dyn Provisioner,
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
    let active = deployments::list(pool, Some(DeploymentStatus::Active)).await?;
    let regions = if cfg.provider == Provider::Local {
        Vec::new()
    } else {
        region_infos(pool).await?
    };
    for dep in &active {
        reconcile_deployment(pool, provisioner, cfg, state, now_ms, dep, &regions, &mut report).await?;
    }
    state.scaling.retain(|id, _| active.iter().any(|d| d.id == *id));
    lock.commit().await?;
    Ok(report)
}

async fn region_infos(pool: &PgPool) -> Result<Vec<RegionInfo>, ServiceError> {
    Ok(catalog::list_regions(pool)
        .await?
        .into_iter()
        .map(|r| RegionInfo {
            providers: r
                .cloud_providers
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_str()?.parse().ok()).collect())
                .unwrap_or_default(),
            cost_multiplier_milli: u32::try_from(r.cost_multiplier_milli).unwrap_or(1000),
            usable: matches!(r.status, RegionStatus::Active | RegionStatus::Degraded),
            code: r.code,
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
async fn reconcile_deployment(
    pool: &PgPool,
    provisioner: &dyn Provisioner,
    cfg: &ReconcileConfig,
    state: &mut ReconcileState,
    now_ms: u64,
    dep: &Deployment,
    regions: &[RegionInfo],
    report: &mut ReconcileReport,
) -> Result<(), ServiceError> {
    let filter = NodeFilter {
        deployment_id: Some(dep.id),
        ..NodeFilter::default()
    };
    let all = nodes::list(pool, &filter, MAX_NODES_PER_DEPLOYMENT).await?;

    // 1. Terminate dead nodes, and draining nodes that are idle or drained
    //    for longer than the timeout.
    let timeout_ms = u64::try_from(cfg.drain_timeout.as_millis()).unwrap_or(u64::MAX);
    for n in &all {
        let why = match n.status {
            NodeStatus::Dead => Some("dead"),
            NodeStatus::Draining => {
                let since = *state.draining_since.entry(n.id).or_insert(now_ms);
                if requests(n) == 0 {
                    Some("drained")
                } else if now_ms.saturating_sub(since) >= timeout_ms {
                    Some("drain timeout")
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(why) = why {
            terminate_node(pool, provisioner, n, why, report).await?;
            state.draining_since.remove(&n.id);
        }
    }

    // 2. Decide on the size.
    let live: Vec<&Node> = all.iter().filter(|n| is_live(n.status)).collect();
    let launching = all.iter().filter(|n| n.status == NodeStatus::Launching).count();
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
    let min = u32::try_from(dep.min_replicas.max(0)).unwrap_or(0);
    let max = u32::try_from(dep.max_replicas.max(0)).unwrap_or(0);
    let live_count = u32::try_from(live.len()).unwrap_or(u32::MAX);
    let launching = u32::try_from(launching).unwrap_or(u32::MAX);
    let decision = scaling::decide(
        min,
        max,
        live_count,
        launching,
        &load,
        cfg.replica_tokens_per_second,
        &cfg.policy,
        state.scaling.entry(dep.id).or_default(),
        now_ms,
    );

    match decision {
        ScaleDecision::Launch(n) if n > 0 => {
            let mut per_region: HashMap<String, u32> = HashMap::new();
            for node in live
                .iter()
                .copied()
                .chain(all.iter().filter(|n| n.status == NodeStatus::Launching))
            {
                if let Some(code) = &node.region_code {
                    *per_region.entry(code.clone()).or_default() += 1;
                }
            }
            let targets: Vec<Option<String>> = if cfg.provider == Provider::Local {
                vec![dep.region.clone(); n as usize]
            } else {
                placement::choose_regions(
                    dep.strategy,
                    dep.region.as_deref(),
                    regions,
                    &per_region,
                    Some(cfg.provider),
                    n,
                )
                .into_iter()
                .map(Some)
                .collect()
            };
            if targets.is_empty() {
                report
                    .failures
                    .push((dep.name.clone(), "no eligible region to launch in".into()));
            }
            scaled_event(pool, dep, "launch", targets.len(), live_count, launching).await?;
            for region in targets {
                launch_node(pool, provisioner, cfg, dep, region, report).await?;
            }
        }
        ScaleDecision::Drain(n) if n > 0 => {
            let candidates: Vec<(Uuid, NodeStatus, u32, u64)> = live
                .iter()
                .map(|x| (x.id, x.status, requests(x), created_ms(x)))
                .collect();
            let victims = placement::pick_victims(&candidates, n);
            scaled_event(pool, dep, "drain", victims.len(), live_count, launching).await?;
            for id in victims {
                let mut tx = pool.begin().await?;
                let from = [NodeStatus::Initializing, NodeStatus::Active, NodeStatus::Unhealthy];
                if let Some(node) = nodes::transition(&mut *tx, id, NodeStatus::Draining, &from).await? {
                    crate::agent::node_changed(
                        &mut tx,
                        &node,
                        "node.draining",
                        HealthCheckStatus::Healthy,
                        Some("scaled down by the reconciler"),
                    )
                    .await?;
                    state.draining_since.insert(id, now_ms);
                    report.drained.push(id);
                }
                tx.commit().await?;
            }
        }
        _ => {}
    }

    let now_live = nodes::list(pool, &filter, MAX_NODES_PER_DEPLOYMENT)
        .await?
        .iter()
        .filter(|n| is_live(n.status))
        .count();
    deployments::set_current_replicas(pool, dep.id, i32::try_from(now_live).unwrap_or(i32::MAX)).await?;
    Ok(())
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

async fn launch_node(
    pool: &PgPool,
    provisioner: &dyn Provisioner,
    cfg: &ReconcileConfig,
    dep: &Deployment,
    region: Option<String>,
    report: &mut ReconcileReport,
) -> Result<(), ServiceError> {
    // Local nodes have no GPU choice; elsewhere a named type is used as is.
    let (gpu, gpu_count) = if cfg.provider == Provider::Local || dep.gpu_type.eq_ignore_ascii_case("auto") {
        (None, u32::try_from(dep.gpu_count.unwrap_or(1).max(1)).unwrap_or(1))
    } else {
        (
            Some(dep.gpu_type.clone()),
            u32::try_from(dep.gpu_count.unwrap_or(1).max(1)).unwrap_or(1),
        )
    };
    let spot = dep.use_spot && cfg.provider != Provider::Local;
    let id = Uuid::new_v4().simple().to_string();
    let cluster = placement::cluster_name(
        cfg.provider,
        region.as_deref().unwrap_or(cfg.provider.as_str()),
        gpu.as_deref().unwrap_or("any"),
        spot,
        &id,
    );
    let (token, hash) = crosslogic_core::keys::generate_node_token(&mut rand::rngs::OsRng);
    let node = nodes::create(
        pool,
        &NewNode {
            cluster_name: cluster.clone(),
            provider: cfg.provider,
            region_code: region.clone(),
            instance_type: None,
            gpu_type: gpu.clone(),
            gpu_count: i32::try_from(gpu_count).unwrap_or(1),
            vram_total_gb: None,
            model_name: dep.model_name.clone(),
            deployment_id: Some(dep.id),
            spot_instance: spot,
            agent_token_hash: Some(hash),
            metadata: json!({ "launched_by": "reconciler" }),
        },
    )
    .await?;
    let spec = LaunchSpec {
        cluster_name: cluster.clone(),
        node_id: node.id,
        node_token: SecretString::from(token),
        model: dep.model_name.clone(),
        region,
        gpu,
        gpu_count,
        spot,
        control_url: cfg.control_url.clone(),
    };
    match provisioner.launch(spec).await {
        Ok(_) => {
            tracing::info!(deployment = %dep.name, cluster = %cluster, "node launched");
            report.launched.push(cluster);
        }
        Err(e) => {
            tracing::warn!(deployment = %dep.name, cluster = %cluster, error = %e, "launch failed");
            let mut tx = pool.begin().await?;
            if let Some(node) = nodes::transition(&mut *tx, node.id, NodeStatus::Terminated, &[]).await? {
                let detail = format!("launch failed: {e}");
                crate::agent::node_changed(
                    &mut tx,
                    &node,
                    "node.terminated",
                    HealthCheckStatus::Dead,
                    Some(&detail),
                )
                .await?;
            }
            tx.commit().await?;
            report.failures.push((cluster, e.to_string()));
        }
    }
    Ok(())
}

async fn terminate_node(
    pool: &PgPool,
    provisioner: &dyn Provisioner,
    n: &Node,
    why: &str,
    report: &mut ReconcileReport,
) -> Result<(), ServiceError> {
    if let Some(cluster) = &n.cluster_name {
        if let Err(e) = provisioner.terminate(cluster).await {
            tracing::warn!(cluster = %cluster, error = %e, "terminate failed; retried next pass");
            report.failures.push((cluster.clone(), e.to_string()));
            return Ok(());
        }
    }
    let mut tx = pool.begin().await?;
    if let Some(node) = nodes::transition(&mut *tx, n.id, NodeStatus::Terminated, &[]).await? {
        let detail = format!("terminated by the reconciler ({why})");
        crate::agent::node_changed(
            &mut tx,
            &node,
            "node.terminated",
            HealthCheckStatus::Dead,
            Some(&detail),
        )
        .await?;
    }
    tx.commit().await?;
    report
        .terminated
        .push(n.cluster_name.clone().unwrap_or_else(|| n.id.to_string()));
    Ok(())
}

/// Runs [`reconcile_once`] every `interval` until `shutdown`. Launched
/// nodes outlive the control plane (a restart finds them through their
/// node rows and heartbeats).
pub async fn run_reconciler(
    pool: PgPool,
    provisioner: std::sync::Arc<dyn Provisioner>,
    cfg: ReconcileConfig,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut state = ReconcileState::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
                if let Err(e) = reconcile_once(&pool, provisioner.as_ref(), &cfg, &mut state, now_ms).await {
                    tracing::warn!(error = %e, "reconcile pass failed");
                }
            }
        }
    }
}
