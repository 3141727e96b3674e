//! The decisions of one pass, without IO: from a [`Snapshot`] of the fleet,
//! the reconciler's memory and the time, the [`Action`]s to take.
//!
//! [`super::reconcile_once`] applies them to PostgreSQL and the
//! provisioner; `crosslogic fleet simulate` (crate `crosslogic-fleetsim`)
//! applies them to a simulated fleet in virtual time. Both therefore run
//! exactly these decisions — sizing (`core::scaling`), the capacity policy
//! (`core::hedge`), placement (`core::placement`, `core::candidates`),
//! backoff and cooldown, scale-down victims, replacement of dead and
//! preempted nodes.

use std::collections::HashMap;

use crosslogic_core::candidates::{self, Candidate};
use crosslogic_core::events::{DeploymentDegraded, DeploymentScaled, ScaleAction};
use crosslogic_core::hedge;
use crosslogic_core::placement::{self, GpuChoice, GpuRequest};
use crosslogic_core::scaling::{self, LoadSample, ScaleDecision};
use crosslogic_core::{CapacityPolicy, DeploymentStrategy, Event, NodeStatus, Provider};
use crosslogic_db::repo::deployments::Deployment;
use crosslogic_db::repo::nodes::Node;
use uuid::Uuid;

use super::{dur_ms, ms, requests, Fleet, ReconcileConfig, ReconcileState, Snapshot};

/// Where one new node goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub provider: Provider,
    pub region: Option<String>,
    pub gpu: Option<String>,
    pub count: u32,
    pub spot: bool,
    pub micros_per_hour: Option<i64>,
}

impl Choice {
    /// The candidate key a failure of this launch cools down.
    pub fn key(&self) -> String {
        candidates::candidate_key(
            self.provider,
            self.region.as_deref(),
            self.gpu.as_deref(),
            self.count,
            self.spot,
        )
    }

    fn from_candidate(c: Candidate) -> Choice {
        Choice {
            provider: c.provider,
            region: Some(c.region),
            gpu: Some(c.gpu),
            count: c.count,
            spot: c.spot,
            micros_per_hour: Some(c.micros_per_hour),
        }
    }
}

/// One thing a pass does, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Terminate a node (through a job when it has a cluster).
    Terminate {
        node: Uuid,
        cluster: Option<String>,
        why: &'static str,
    },
    /// Move a live node to draining.
    Drain {
        node: Uuid,
        deployment: Uuid,
        why: &'static str,
    },
    /// Create a node row and start its launch.
    Launch { deployment: Uuid, choice: Choice },
    /// Publish a platform event.
    Publish(Box<Event>),
}

/// A deployment's live replicas as the pass counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    pub deployment: Uuid,
    /// Live before this pass's drains (0 for a deleted deployment).
    pub live: i32,
    /// What its row holds (`current_replicas`); `None` = write anyway.
    pub recorded: Option<i32>,
}

/// Everything one pass decided.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Live replicas per deployment before this pass's drains.
    pub live: Vec<Replicas>,
    /// Deployments that wanted replicas but are backing off.
    pub backing_off: Vec<String>,
    /// What could not be done (subject, reason).
    pub failures: Vec<(String, String)>,
}

/// Decides one pass over `snap` at `now_ms`, updating `state` (scaling
/// timers, hedged targets, drain clocks, degraded episodes).
pub fn plan(snap: &Snapshot, cfg: &ReconcileConfig, state: &mut ReconcileState, now_ms: u64) -> Plan {
    let mut planner = Planner {
        cfg,
        state,
        now_ms,
        plan: Plan::default(),
    };
    let mut by_deployment: HashMap<Uuid, Vec<&Node>> = HashMap::new();
    for n in &snap.nodes {
        if let Some(d) = n.deployment_id {
            by_deployment.entry(d).or_default().push(n);
        }
    }
    for dep in &snap.deployments {
        let mine = by_deployment.remove(&dep.id).unwrap_or_default();
        if !cfg.manages_deployment(dep) {
            continue;
        }
        planner.deployment(snap, dep, &mine);
    }
    // Nodes of paused and deleted deployments.
    let mut rest: Vec<(Uuid, Vec<&Node>)> = by_deployment.into_iter().collect();
    rest.sort_by_key(|(id, _)| *id);
    for (dep, mine) in rest {
        let deleted = !snap.paused.contains(&dep);
        planner.wind_down(dep, &mine, deleted);
        if deleted {
            planner.plan.live.push(Replicas {
                deployment: dep,
                live: 0,
                recorded: None,
            });
        }
    }
    planner.plan
}

/// Folds a finished launch into the backoff and cooldown state: a failure
/// backs its deployment off and puts its candidate on cooldown; a success
/// clears the deployment's backoff.
pub fn launch_finished(
    cfg: &ReconcileConfig,
    state: &mut ReconcileState,
    now_ms: u64,
    deployment: Uuid,
    candidate: String,
    ok: bool,
) {
    if ok {
        state.backoff.remove(&deployment);
    } else {
        record_failure(cfg, state, now_ms, deployment);
        cool_down(cfg, state, now_ms, candidate);
    }
}

/// One more failed launch for `deployment`: its next launch waits
/// (`core::candidates::launch_backoff`).
pub fn record_failure(cfg: &ReconcileConfig, state: &mut ReconcileState, now_ms: u64, deployment: Uuid) {
    let b = state.backoff.entry(deployment).or_default();
    b.failures = b.failures.saturating_add(1);
    let delay = candidates::launch_backoff(b.failures, cfg.backoff_base, cfg.backoff_max);
    b.until_ms = now_ms.saturating_add(dur_ms(delay));
}

/// Skips `candidate` for the cooldown period.
pub fn cool_down(cfg: &ReconcileConfig, state: &mut ReconcileState, now_ms: u64, candidate: String) {
    let until = now_ms.saturating_add(dur_ms(cfg.candidate_cooldown));
    state.avoid.insert(candidate, until);
}

struct Planner<'a> {
    cfg: &'a ReconcileConfig,
    state: &'a mut ReconcileState,
    now_ms: u64,
    plan: Plan,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Which capacity a launch may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Spot first, then on-demand (the candidates' order).
    Any,
    Spot,
    OnDemand,
}

impl Planner<'_> {
    /// One active deployment: terminate what is dead or done draining,
    /// decide the size, then launch or drain.
    fn deployment(&mut self, snap: &Snapshot, dep: &Deployment, nodes: &[&Node]) {
        for n in nodes {
            self.terminate_if_done(n);
        }
        let live: Vec<&Node> = nodes.iter().copied().filter(|n| n.status.is_live()).collect();
        let launching: Vec<&Node> = nodes
            .iter()
            .copied()
            .filter(|n| n.status == NodeStatus::Launching)
            .collect();
        let serving = nodes.iter().filter(|n| n.status == NodeStatus::Active).count();
        self.check_degraded(dep, count(serving));
        self.plan.live.push(Replicas {
            deployment: dep.id,
            live: i32::try_from(live.len()).unwrap_or(i32::MAX),
            recorded: Some(dep.current_replicas),
        });
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
        if dep.capacity_policy == CapacityPolicy::Hedged {
            self.hedged(snap, dep, &live, &launching, (min, max), &load, capacity);
            return;
        }
        let (live_count, launching_count) = (count(live.len()), count(launching.len()));
        let decision = scaling::decide(
            min,
            max,
            live_count,
            launching_count,
            &load,
            capacity,
            &self.cfg.policy,
            self.state.scaling.entry(dep.id).or_default(),
            self.now_ms,
        );
        let placed: Vec<&Node> = live.iter().chain(launching.iter()).copied().collect();
        match decision {
            ScaleDecision::Launch(n) if n > 0 => {
                if let Some(n) = self.after_backoff(dep, n) {
                    let kind = if dep.capacity_policy == CapacityPolicy::OnDemand {
                        Kind::OnDemand
                    } else {
                        Kind::Any
                    };
                    let started = self.launch(snap, dep, &placed, n, kind, dep.strategy);
                    self.scaled(dep, ScaleAction::Launch, started, live_count, launching_count);
                }
            }
            ScaleDecision::Drain(n) if n > 0 => {
                self.drain_victims(dep, &live, n, live_count, launching_count);
            }
            _ => {}
        }
    }

    /// The `hedged` policy: the target size comes from the same scaling
    /// decision (with its delays) applied to the target itself, and the
    /// composition from `core::hedge`.
    #[allow(clippy::too_many_arguments)]
    fn hedged(
        &mut self,
        snap: &Snapshot,
        dep: &Deployment,
        live: &[&Node],
        launching: &[&Node],
        (min, max): (u32, u32),
        load: &LoadSample,
        capacity: f64,
    ) {
        let policy = self.cfg.policy;
        let previous = *self
            .state
            .targets
            .entry(dep.id)
            .or_insert_with(|| scaling::desired_replicas(min, max, 0, load, capacity, &policy));
        let decision = scaling::decide(
            min,
            max,
            previous,
            0,
            load,
            capacity,
            &policy,
            self.state.scaling.entry(dep.id).or_default(),
            self.now_ms,
        );
        let target = match decision {
            ScaleDecision::Launch(n) => previous.saturating_add(n),
            ScaleDecision::Drain(n) => previous.saturating_sub(n),
            ScaleDecision::Hold => previous,
        }
        .clamp(min, max.max(min));
        self.state.targets.insert(dep.id, target);

        let placed: Vec<&Node> = live.iter().chain(launching.iter()).copied().collect();
        let (spot, on_demand): (Vec<&Node>, Vec<&Node>) = placed.iter().partition(|n| n.spot_instance);
        let fleet = hedge::Fleet {
            spot: count(spot.len()),
            spot_ready: count(spot.iter().filter(|n| n.status == NodeStatus::Active).count()),
            on_demand: count(on_demand.len()),
        };
        let moves = hedge::compose(
            target,
            u32::try_from(dep.on_demand_base.max(0)).unwrap_or(0),
            u32::try_from(dep.spot_overprovision.max(0)).unwrap_or(0),
            fleet,
        );
        let (live_count, launching_count) = (count(live.len()), count(launching.len()));
        let mut started = 0;
        if moves.launch_spot > 0 {
            if let Some(n) = self.after_backoff(dep, moves.launch_spot) {
                started += self.launch(snap, dep, &spot, n, Kind::Spot, DeploymentStrategy::Spread);
            }
        }
        if moves.launch_on_demand > 0 {
            // The fallback is what covers failing spot launches: it is not
            // held back by their backoff.
            let n = moves.launch_on_demand;
            started += self.launch(snap, dep, &on_demand, n, Kind::OnDemand, DeploymentStrategy::Spread);
        }
        self.scaled(dep, ScaleAction::Launch, started, live_count, launching_count);
        // Victims: launching nodes (newest, idle) before serving ones.
        if moves.drain_spot > 0 {
            self.drain_victims(dep, &spot, moves.drain_spot, live_count, launching_count);
        }
        if moves.drain_on_demand > 0 {
            self.drain_victims(dep, &on_demand, moves.drain_on_demand, live_count, launching_count);
        }
    }

    /// `Some(n)` launches may start now (one at a time after failures), or
    /// `None` while the deployment backs off.
    fn after_backoff(&mut self, dep: &Deployment, n: u32) -> Option<u32> {
        let backoff = self.state.backoff.get(&dep.id).copied().unwrap_or_default();
        if backoff.until_ms > self.now_ms {
            self.plan.backing_off.push(dep.name.clone());
            return None;
        }
        Some(if backoff.failures > 0 { 1 } else { n })
    }

    /// Drains `n` of `nodes`, scale-down victims first
    /// (`core::placement::pick_victims`).
    fn drain_victims(&mut self, dep: &Deployment, nodes: &[&Node], n: u32, live_count: u32, launching: u32) {
        let candidates: Vec<(Uuid, NodeStatus, u32, u64)> = nodes
            .iter()
            .map(|x| (x.id, x.status, requests(x), ms(x.created_at)))
            .collect();
        let victims = placement::pick_victims(&candidates, n);
        self.scaled(dep, ScaleAction::Drain, victims.len(), live_count, launching);
        for id in victims {
            self.drain(dep.id, id, "scaled down by the reconciler");
        }
    }

    fn drain(&mut self, deployment: Uuid, node: Uuid, why: &'static str) {
        self.state.draining_since.insert(node, self.now_ms);
        self.plan.actions.push(Action::Drain { node, deployment, why });
    }

    /// Nodes of a paused or deleted deployment: dead or drained ones are
    /// terminated; for a deleted deployment every other node is drained
    /// first. A paused deployment's live nodes keep serving as they are.
    fn wind_down(&mut self, dep: Uuid, nodes: &[&Node], deleted: bool) {
        for n in nodes {
            if deleted && crate::fleet::lifecycle::Step::Drain.applies_to(n.status) {
                self.drain(dep, n.id, "its deployment was deleted");
            } else {
                self.terminate_if_done(n);
            }
        }
    }

    /// Terminates a dead node, or a draining one that is idle or has
    /// drained longer than the drain timeout — if it runs on capacity this
    /// reconciler's provisioner manages.
    fn terminate_if_done(&mut self, n: &Node) {
        if !self.cfg.manages(n.provider) {
            return;
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
        if let Some(why) = why {
            self.plan.actions.push(Action::Terminate {
                node: n.id,
                cluster: n.cluster_name.clone(),
                why,
            });
        }
    }

    /// Tracks how long `dep` has served with fewer than its minimum
    /// replicas; past `degraded_after`, publishes `deployment.degraded`
    /// once for that episode.
    fn check_degraded(&mut self, dep: &Deployment, serving: u32) {
        let min = u32::try_from(dep.min_replicas.max(0)).unwrap_or(0);
        if serving >= min {
            self.state.below_min_since.remove(&dep.id);
            self.state.degraded_reported.remove(&dep.id);
            return;
        }
        let since = *self.state.below_min_since.entry(dep.id).or_insert(self.now_ms);
        if self.now_ms.saturating_sub(since) < dur_ms(self.cfg.degraded_after)
            || self.state.degraded_reported.contains(&dep.id)
        {
            return;
        }
        self.state.degraded_reported.insert(dep.id);
        self.plan
            .actions
            .push(Action::Publish(Box::new(Event::DeploymentDegraded(
                DeploymentDegraded {
                    deployment_id: dep.id,
                    name: dep.name.clone(),
                    model_name: dep.model_name.clone(),
                    live: serving,
                    min_replicas: dep.min_replicas,
                    below_min_since: chrono::DateTime::from_timestamp_millis(i64::try_from(since).unwrap_or(0))
                        .unwrap_or_default(),
                },
            ))));
    }

    /// `deployment.scaled` for what the pass starts (nothing for 0).
    fn scaled(&mut self, dep: &Deployment, action: ScaleAction, n: usize, live: u32, launching: u32) {
        if n == 0 {
            return;
        }
        self.plan
            .actions
            .push(Action::Publish(Box::new(Event::DeploymentScaled(DeploymentScaled {
                deployment_id: dep.id,
                deployment: dep.name.clone(),
                action,
                count: count(n),
                live,
                launching,
                min: dep.min_replicas,
                max: dep.max_replicas,
            }))));
    }

    /// Plans up to `n` launches of `kind` for `dep`, placed by `strategy`
    /// against `placed` (the replicas already there); returns how many.
    fn launch(
        &mut self,
        snap: &Snapshot,
        dep: &Deployment,
        placed: &[&Node],
        n: u32,
        kind: Kind,
        strategy: DeploymentStrategy,
    ) -> usize {
        let mut per_region: HashMap<String, u32> = HashMap::new();
        // Replicas per pool (provider, region, GPU shape, spot): hedged spot
        // replicas go to the pools holding fewest first, so that one
        // correlated preemption (one pool reclaimed) takes as few as it can.
        let mut per_pool: HashMap<String, u32> = HashMap::new();
        for node in placed {
            if let Some(code) = &node.region_code {
                *per_region.entry(code.clone()).or_default() += 1;
            }
            let key = candidates::candidate_key(
                node.provider,
                node.region_code.as_deref(),
                node.gpu_type.as_deref(),
                u32::try_from(node.gpu_count.max(1)).unwrap_or(1),
                node.spot_instance,
            );
            *per_pool.entry(key).or_default() += 1;
        }
        let now = self.now_ms;
        let mut started = 0;
        for _ in 0..n {
            let choice = match &self.cfg.fleet {
                Fleet::Local => Some(Choice {
                    provider: Provider::Local,
                    region: dep.region.clone(),
                    gpu: None,
                    count: u32::try_from(dep.gpu_count.unwrap_or(1).max(1)).unwrap_or(1),
                    // Local nodes are on-demand unless a hedged deployment
                    // asks for spot ones (they are marked so, to exercise
                    // the policy on one machine).
                    spot: kind == Kind::Spot,
                    micros_per_hour: None,
                }),
                Fleet::Cloud(providers) => {
                    let mut all = cloud_candidates(self.cfg, providers, snap, dep, &per_region, kind, strategy);
                    if kind == Kind::Spot {
                        // Stable: among pools holding as many, the
                        // region-spread and price order stays.
                        all.sort_by_key(|c| per_pool.get(&c.key()).copied().unwrap_or(0));
                    }
                    if all.is_empty() {
                        self.plan.failures.push((
                            dep.name.clone(),
                            "no region and GPU of the allowed providers fit this deployment".into(),
                        ));
                        break;
                    }
                    let next = all
                        .into_iter()
                        .find(|c| self.state.avoid.get(&c.key()).is_none_or(|&t| t <= now));
                    if next.is_none() {
                        self.plan.failures.push((
                            dep.name.clone(),
                            "every candidate region and GPU failed recently; waiting for the cooldown".into(),
                        ));
                    }
                    next.map(Choice::from_candidate)
                }
            };
            let Some(choice) = choice else { break };
            *per_pool.entry(choice.key()).or_default() += 1;
            if let Some(region) = &choice.region {
                *per_region.entry(region.clone()).or_default() += 1;
            }
            self.plan.actions.push(Action::Launch {
                deployment: dep.id,
                choice,
            });
            started += 1;
        }
        started
    }
}

fn cloud_candidates(
    cfg: &ReconcileConfig,
    providers: &[Provider],
    snap: &Snapshot,
    dep: &Deployment,
    per_region: &HashMap<String, u32>,
    kind: Kind,
    strategy: DeploymentStrategy,
) -> Vec<Candidate> {
    let allowed: Vec<Provider> = match dep.provider.as_deref().map(str::parse::<Provider>) {
        Some(Ok(p)) => providers.iter().copied().filter(|x| *x == p).collect(),
        Some(Err(_)) => Vec::new(),
        None => providers.to_vec(),
    };
    let Some(model) = snap.models.get(&dep.model_name) else {
        return Vec::new();
    };
    let request = if dep.gpu_type.eq_ignore_ascii_case("auto") {
        GpuRequest::Auto
    } else {
        GpuRequest::Named {
            gpu: dep.gpu_type.clone(),
            count: dep.gpu_count.and_then(|c| u32::try_from(c).ok()),
        }
    };
    let gpus: Vec<GpuChoice> = placement::choose_gpu(
        u32::try_from(model.vram_required_gb.max(0)).unwrap_or(0),
        request,
        kind != Kind::OnDemand,
        None,
        &snap.offers,
        cfg.vram_headroom,
        cfg.max_gpus_per_node,
    )
    .into_iter()
    .filter(|g| kind != Kind::Spot || g.spot)
    .collect();
    candidates::launch_candidates(
        strategy,
        dep.region.as_deref(),
        &snap.regions,
        per_region,
        &allowed,
        &gpus,
    )
}
