//! The simulated fleet in virtual time, driven by the real reconciler's
//! decisions ([`crosslogic_control::reconcile::plan`]).
//!
//! Every second: spot capacity events (notices, reclaims) happen, launches
//! finish or fail, requests arrive and are served by the active replicas.
//! Every reconcile interval: the fleet is turned into the [`Snapshot`] the
//! real pass reads, and the plan's actions are applied here the way the
//! platform applies them (a drain stops routing, a launch becomes a node
//! after its boot and model load, a terminate stops its bill).
//!
//! Serving is a fluid model: one FIFO queue in front of the active replicas
//! (the gateway's least-outstanding-work routing spreads requests over
//! them), each replica producing the model's `tokens_per_second_capacity`.
//! A request waiting longer than the timeout fails. Requests in flight on a
//! replica reclaimed while still serving (no or too short a notice) fail;
//! a draining replica finishes what it holds within one request's duration.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use crosslogic_control::reconcile::{self, Action, Fleet, ReconcileConfig, ReconcileState, Snapshot};
use crosslogic_core::placement::{GpuOffer, RegionInfo};
use crosslogic_core::{
    CapacityPolicy, DeploymentStatus, DeploymentStrategy, Event, ModelStatus, ModelType, NodeStatus,
};
use crosslogic_db::repo::catalog::Model;
use crosslogic_db::repo::deployments::Deployment;
use crosslogic_db::repo::nodes::Node;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::Serialize;
use uuid::Uuid;

use crate::trace::{Pool, SpotTrace};
use crate::{Scenario, Summary};

/// Virtual time starts here (the snapshot's `created_at` values are real
/// timestamps, as the reconciler compares them with its clock).
const EPOCH_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// One point of the per-minute series the plots draw.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub minute: u64,
    pub spot_active: u32,
    pub on_demand_active: u32,
    pub launching: u32,
    /// Active spot replicas in the pool holding most: what one correlated
    /// preemption can take at once.
    pub largest_spot_pool: u32,
    pub cost_usd: f64,
    pub failed: f64,
    pub requests: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Booting and loading the model; `Some(t)` = its launch fails at `t`.
    Launching {
        ready_at: u64,
        fails_at: Option<u64>,
    },
    Active,
    Draining {
        since: u64,
        held: u32,
    },
    /// Reclaimed by the cloud; its row waits for the reconciler.
    Dead,
}

struct SimNode {
    id: Uuid,
    pool: usize,
    spot: bool,
    gpus: u32,
    created: u64,
    phase: Phase,
    candidate: String,
    /// A preemption notice: reclaimed at this second.
    reclaim_at: Option<u64>,
    /// In-flight requests (Little's law) in the last second, while active.
    in_flight: f64,
    tokens_per_second: f64,
    waiting: f64,
}

struct Batch {
    arrived: f64,
    count: f64,
    tokens: f64,
}

/// Runs `scenario` under `policy`; returns the summary and the series.
pub(crate) fn run(scenario: &Scenario, policy: CapacityPolicy) -> (Summary, Vec<Sample>) {
    let mut w = World::new(scenario, policy);
    w.run();
    w.finish()
}

struct World<'a> {
    s: &'a Scenario,
    cfg: ReconcileConfig,
    state: ReconcileState,
    deployment: Deployment,
    model: Model,
    regions: Vec<RegionInfo>,
    offers: Vec<GpuOffer>,
    pools: HashMap<(String, String, String), usize>,
    nodes: Vec<SimNode>,
    queue: VecDeque<Batch>,
    rng: StdRng,
    /// Waves not yet applied, by pool: index of the next.
    next_wave: Vec<usize>,
    boot: LogNormal<f64>,
    load: LogNormal<f64>,
    // What is counted after the warm-up.
    counting: bool,
    sum: Summary,
    delays: Vec<(f64, f64)>,
    samples: Vec<Sample>,
    minute: Sample,
}

fn lognormal(median_s: f64, sigma: f64) -> LogNormal<f64> {
    LogNormal::new(median_s.max(1.0).ln(), sigma.max(0.0)).unwrap_or_else(|_| unreachable!("finite parameters"))
}

impl<'a> World<'a> {
    fn new(s: &'a Scenario, policy: CapacityPolicy) -> World<'a> {
        let epoch = DateTime::<Utc>::from_timestamp_millis(EPOCH_MS as i64).unwrap_or_default();
        let mut cfg = ReconcileConfig::for_fleet(
            Fleet::Cloud(
                s.spot
                    .pools
                    .iter()
                    .map(|p| p.provider)
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect(),
            ),
            "http://control.invalid",
        );
        cfg.policy = s.scaling;
        let deployment = Deployment {
            id: Uuid::from_u128(1),
            name: "sim".into(),
            model_name: s.model.name.clone(),
            min_replicas: s.deployment.min_replicas as i32,
            max_replicas: s.deployment.max_replicas as i32,
            current_replicas: 0,
            strategy: DeploymentStrategy::Spread,
            provider: None,
            region: None,
            gpu_type: "auto".into(),
            gpu_count: None,
            use_spot: policy != CapacityPolicy::OnDemand,
            capacity_policy: policy,
            on_demand_base: s.deployment.on_demand_base as i32,
            spot_overprovision: s.deployment.spot_overprovision as i32,
            status: DeploymentStatus::Active,
            metadata: serde_json::Value::Null,
            created_at: epoch,
            updated_at: epoch,
            deleted_at: None,
        };
        let model = Model {
            id: Uuid::from_u128(2),
            name: s.model.name.clone(),
            family: "sim".into(),
            size: "sim".into(),
            model_type: ModelType::Chat,
            context_length: 8192,
            vram_required_gb: s.model.vram_gb as i32,
            price_input: 0,
            price_output: 0,
            tokens_per_second_capacity: s.model.tokens_per_second_capacity as i32,
            status: ModelStatus::Active,
            metadata: serde_json::Value::Null,
            created_at: epoch,
            updated_at: epoch,
        };
        let (regions, offers) = catalog(&s.spot);
        let pools = s
            .spot
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.provider.to_string(), p.region.clone(), p.gpu.clone()), i))
            .collect();
        World {
            s,
            cfg,
            state: ReconcileState::default(),
            deployment,
            model,
            regions,
            offers,
            pools,
            nodes: Vec::new(),
            queue: VecDeque::new(),
            rng: StdRng::seed_from_u64(s.seed),
            next_wave: vec![0; s.spot.pools.len()],
            boot: lognormal(s.boot.vm_median_seconds, s.boot.sigma),
            load: lognormal(s.boot.model_load_median_seconds, s.boot.sigma),
            counting: false,
            sum: Summary::new(policy),
            delays: Vec::new(),
            samples: Vec::new(),
            minute: Sample::default(),
        }
    }

    fn run(&mut self) {
        let warmup = self.s.warmup_seconds;
        let end = warmup + self.s.duration_seconds;
        let interval = self.s.reconcile_interval_seconds.max(1);
        for tick in 0..end {
            self.counting = tick >= warmup;
            // Trace time: the warm-up replays the trace's first second.
            let t = tick.saturating_sub(warmup);
            self.capacity_events(tick, t);
            self.launches(tick);
            self.serve(tick, t);
            self.bill(t);
            if tick % interval == 0 {
                self.reconcile(tick);
            }
            if self.counting && (t + 1) % 60 == 0 {
                self.sample(t / 60);
            }
        }
    }

    fn pool(&self, n: &SimNode) -> &Pool {
        &self.s.spot.pools[n.pool]
    }

    /// Waves, independent preemptions, and reclaims whose notice ran out.
    fn capacity_events(&mut self, tick: u64, t: u64) {
        let counting = self.counting;
        for p in 0..self.s.spot.pools.len() {
            let pool = &self.s.spot.pools[p];
            while counting && self.next_wave[p] < pool.waves.len() && pool.waves[self.next_wave[p]].second <= t {
                let wave = pool.waves[self.next_wave[p]];
                self.next_wave[p] += 1;
                for i in 0..self.nodes.len() {
                    let n = &self.nodes[i];
                    if n.pool != p || !n.spot || n.reclaim_at.is_some() || n.phase == Phase::Dead {
                        continue;
                    }
                    if self.rng.gen_bool(wave.fraction) {
                        let delay = if wave.spread_seconds > 0 {
                            self.rng.gen_range(0..=wave.spread_seconds)
                        } else {
                            0
                        };
                        self.notice(i, tick + delay);
                    }
                }
            }
        }
        // Independent preemptions.
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if !counting || !n.spot || n.reclaim_at.is_some() || n.phase == Phase::Dead {
                continue;
            }
            let hazard = self.pool(n).hazard_per_node_hour / 3600.0;
            if hazard > 0.0 && self.rng.gen_bool(hazard.min(1.0)) {
                self.notice(i, tick);
            }
        }
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            match n.reclaim_at {
                // The agent saw the notice: the node drains (out of routing).
                Some(at) if at > tick => {
                    let notice = self.pool(n).notice_seconds;
                    if at.saturating_sub(notice) <= tick && n.phase == Phase::Active {
                        let held = n.in_flight.ceil() as u32;
                        self.nodes[i].phase = Phase::Draining { since: tick, held };
                        self.sum.preemptions += u64::from(self.counting);
                    } else if at.saturating_sub(notice) <= tick {
                        if let Phase::Launching { .. } = n.phase {
                            self.nodes[i].phase = Phase::Dead;
                            self.sum.preemptions += u64::from(self.counting);
                        }
                    }
                }
                Some(_) => self.reclaim(i, tick),
                None => {}
            }
        }
    }

    /// A notice for node `i`, reclaimed `notice_seconds` after `at`.
    fn notice(&mut self, i: usize, at: u64) {
        let notice = self.pool(&self.nodes[i]).notice_seconds;
        self.nodes[i].reclaim_at = Some(at + notice);
    }

    /// The cloud takes node `i` back: what it still serves fails.
    fn reclaim(&mut self, i: usize, tick: u64) {
        let n = &mut self.nodes[i];
        let lost = match n.phase {
            Phase::Active => {
                self.sum.preemptions += u64::from(self.counting);
                n.in_flight
            }
            Phase::Draining { since, held } => held_at(since, held, tick, self.s.service_seconds()),
            _ => 0.0,
        };
        n.phase = Phase::Dead;
        n.reclaim_at = None;
        if self.counting {
            self.sum.failed += lost;
            self.sum.failed_in_flight += lost;
            self.minute.failed += lost;
        }
    }

    /// Launches that finish (the node registers and turns active) or fail.
    fn launches(&mut self, tick: u64) {
        let mut finished = Vec::new();
        for n in &mut self.nodes {
            if let Phase::Launching { ready_at, fails_at } = n.phase {
                if fails_at.is_some_and(|at| at <= tick) {
                    n.phase = Phase::Dead;
                    finished.push((n.candidate.clone(), false));
                    self.sum.launch_failures += u64::from(self.counting);
                } else if fails_at.is_none() && ready_at <= tick {
                    n.phase = Phase::Active;
                    finished.push((n.candidate.clone(), true));
                }
            }
        }
        let now = EPOCH_MS + tick * 1000;
        for (candidate, ok) in finished {
            reconcile::plan::launch_finished(&self.cfg, &mut self.state, now, self.deployment.id, candidate, ok);
        }
    }

    /// Arrivals, timeouts and serving for one second.
    fn serve(&mut self, tick: u64, t: u64) {
        let load = self.s.load.at(t);
        let arrivals = load.requests_per_second;
        if arrivals > 0.0 {
            self.queue.push_back(Batch {
                arrived: tick as f64,
                count: arrivals,
                tokens: load.tokens_per_request,
            });
            if self.counting {
                self.sum.requests += arrivals;
                self.minute.requests += arrivals;
            }
        }
        let timeout = self.s.timeout_seconds as f64;
        while let Some(b) = self.queue.front() {
            if tick as f64 - b.arrived < timeout {
                break;
            }
            let b = self.queue.pop_front().unwrap_or_else(|| unreachable!("front exists"));
            if self.counting {
                self.sum.failed += b.count;
                self.minute.failed += b.count;
            }
        }
        let active: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].phase == Phase::Active)
            .collect();
        let capacity = self.s.model.tokens_per_second_capacity as f64;
        let budget = capacity * active.len() as f64;
        let mut used = 0.0;
        let mut served = 0.0;
        while let Some(b) = self.queue.front_mut() {
            let left = budget - used;
            if left <= 1e-9 {
                break;
            }
            let need = b.count * b.tokens;
            let take = if need <= left { b.count } else { left / b.tokens };
            let delay = (tick as f64 - b.arrived) + (used + take * b.tokens / 2.0) / budget;
            if self.counting {
                self.delays.push((delay, take));
                self.sum.tokens += take * b.tokens;
                self.sum.served += take;
            }
            served += take;
            used += take * b.tokens;
            b.count -= take;
            if b.count <= 1e-9 {
                self.queue.pop_front();
            }
        }
        let waiting: f64 = self.queue.iter().map(|b| b.count).sum();
        let share = 1.0 / active.len().max(1) as f64;
        let service = self.s.service_seconds();
        for i in active {
            let n = &mut self.nodes[i];
            n.in_flight = served * service * share;
            n.tokens_per_second = used * share;
            n.waiting = waiting * share;
        }
    }

    /// Adds one second of every billed node's price.
    fn bill(&mut self, t: u64) {
        let mut cost = 0.0;
        for n in &self.nodes {
            // A launch that fails never got a machine.
            if matches!(n.phase, Phase::Dead | Phase::Launching { fails_at: Some(_), .. }) {
                continue;
            }
            let pool = self.pool(n);
            let per_gpu = if n.spot {
                pool.spot_price(t)
            } else {
                pool.on_demand_usd_per_hour
            };
            cost += per_gpu * f64::from(n.gpus) / 3600.0;
            if self.counting {
                let hours = 1.0 / 3600.0;
                if n.spot {
                    self.sum.spot_node_hours += hours;
                } else {
                    self.sum.on_demand_node_hours += hours;
                }
            }
        }
        if self.counting {
            self.sum.cost_usd += cost;
            self.minute.cost_usd = self.sum.cost_usd;
        }
    }

    /// One reconciler pass: the real plan over this fleet's snapshot.
    fn reconcile(&mut self, tick: u64) {
        let now = EPOCH_MS + tick * 1000;
        // Draining replicas finish their requests.
        let service = self.s.service_seconds();
        let snap = self.snapshot(tick, service);
        let plan = reconcile::plan(&snap, &self.cfg, &mut self.state, now);
        let serving = self.nodes.iter().filter(|n| n.phase == Phase::Active).count() as u32;
        if self.counting && serving < self.s.deployment.min_replicas {
            self.sum.seconds_below_min += self.s.reconcile_interval_seconds.max(1) as f64;
        }
        for action in plan.actions {
            match action {
                Action::Terminate { node, .. } => {
                    if let Some(i) = self.nodes.iter().position(|n| n.id == node) {
                        let n = self.nodes.remove(i);
                        if let Phase::Draining { since, held } = n.phase {
                            let lost = held_at(since, held, tick, service);
                            if self.counting {
                                self.sum.failed += lost;
                                self.sum.failed_in_flight += lost;
                                self.sum.failed_in_flight += lost;
                                self.minute.failed += lost;
                            }
                        }
                    }
                }
                Action::Drain { node, .. } => {
                    if let Some(n) = self.nodes.iter_mut().find(|n| n.id == node) {
                        match n.phase {
                            Phase::Active => {
                                n.phase = Phase::Draining {
                                    since: tick,
                                    held: n.in_flight.ceil() as u32,
                                }
                            }
                            Phase::Launching { .. } => n.phase = Phase::Draining { since: tick, held: 0 },
                            _ => {}
                        }
                    }
                }
                Action::Launch { choice, .. } => self.launch(tick, &choice),
                Action::Publish(event) => {
                    if self.counting {
                        if let Event::DeploymentScaled(_) = *event {
                            self.sum.scaling_events += 1;
                        }
                    }
                }
            }
        }
    }

    fn launch(&mut self, tick: u64, choice: &reconcile::Choice) {
        let key = (
            choice.provider.to_string(),
            choice.region.clone().unwrap_or_default(),
            choice.gpu.clone().unwrap_or_default(),
        );
        let Some(&pool) = self.pools.get(&key) else {
            return;
        };
        let t = tick.saturating_sub(self.s.warmup_seconds);
        let available = !choice.spot || self.s.spot.pools[pool].spot_available(t);
        let phase = if available {
            let boot = self.boot.sample(&mut self.rng) + self.load.sample(&mut self.rng);
            Phase::Launching {
                ready_at: tick + boot.round() as u64,
                fails_at: None,
            }
        } else {
            Phase::Launching {
                ready_at: u64::MAX,
                fails_at: Some(tick + self.s.boot.failed_launch_seconds),
            }
        };
        self.sum.launches += u64::from(self.counting);
        self.nodes.push(SimNode {
            id: Uuid::from_u128(self.rng.gen()),
            pool,
            spot: choice.spot,
            gpus: choice.count,
            created: tick,
            phase,
            candidate: choice.key(),
            reclaim_at: None,
            in_flight: 0.0,
            tokens_per_second: 0.0,
            waiting: 0.0,
        });
    }

    /// The fleet as the reconciler's snapshot reads it.
    fn snapshot(&self, tick: u64, service: f64) -> Snapshot {
        Snapshot {
            deployments: vec![self.deployment.clone()],
            paused: HashSet::new(),
            nodes: self.nodes.iter().map(|n| self.row(n, tick, service)).collect(),
            models: HashMap::from([(self.model.name.clone(), self.model.clone())]),
            regions: self.regions.clone(),
            cloud_regions: HashMap::new(),
            offers: self.offers.clone(),
        }
    }

    fn row(&self, n: &SimNode, tick: u64, service: f64) -> Node {
        let pool = self.pool(n);
        let created = DateTime::<Utc>::from_timestamp_millis((EPOCH_MS + n.created * 1000) as i64).unwrap_or_default();
        let (status, running, waiting, tps) = match n.phase {
            Phase::Launching { .. } => (NodeStatus::Launching, 0.0, 0.0, 0.0),
            Phase::Active => (NodeStatus::Active, n.in_flight, n.waiting, n.tokens_per_second),
            Phase::Draining { since, held } => (NodeStatus::Draining, held_at(since, held, tick, service), 0.0, 0.0),
            Phase::Dead => (NodeStatus::Dead, 0.0, 0.0, 0.0),
        };
        Node {
            id: n.id,
            node_id_external: None,
            cluster_name: Some(format!("sim-{}", n.id.simple())),
            provider: pool.provider,
            region_id: None,
            region_code: Some(pool.region.clone()),
            instance_type: None,
            gpu_type: Some(pool.gpu.clone()),
            gpu_count: n.gpus as i32,
            vram_total_gb: None,
            vram_free_gb: None,
            model_id: None,
            model_name: Some(self.model.name.clone()),
            deployment_id: Some(self.deployment.id),
            endpoint_url: None,
            internal_ip: None,
            spot_instance: n.spot,
            throughput_tokens_per_sec: tps,
            running_requests: running.ceil() as i32,
            waiting_requests: waiting.ceil() as i32,
            kv_cache_usage: 0.0,
            status,
            health_score: 1.0,
            last_heartbeat_at: None,
            metadata: serde_json::Value::Null,
            created_at: created,
            updated_at: created,
            terminated_at: None,
        }
    }

    fn sample(&mut self, minute: u64) {
        let mut s = self.minute;
        s.minute = minute;
        let mut per_pool: HashMap<usize, u32> = HashMap::new();
        for n in &self.nodes {
            if n.spot && n.phase == Phase::Active {
                *per_pool.entry(n.pool).or_default() += 1;
            }
        }
        s.largest_spot_pool = per_pool.values().copied().max().unwrap_or(0);
        for n in &self.nodes {
            match n.phase {
                Phase::Active if n.spot => s.spot_active += 1,
                Phase::Active => s.on_demand_active += 1,
                Phase::Launching { .. } => s.launching += 1,
                _ => {}
            }
        }
        self.samples.push(s);
        self.minute = Sample {
            cost_usd: self.sum.cost_usd,
            ..Sample::default()
        };
    }

    fn finish(mut self) -> (Summary, Vec<Sample>) {
        // Requests still queued at the end are neither served nor failed:
        // they count as failed only once their timeout passed.
        self.delays.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = self.delays.iter().map(|d| d.1).sum();
        let quantile = |q: f64| {
            let mut acc = 0.0;
            for (d, c) in &self.delays {
                acc += c;
                if acc >= q * total {
                    return *d;
                }
            }
            self.delays.last().map_or(0.0, |d| d.0)
        };
        self.sum.p50_queue_seconds = quantile(0.5);
        self.sum.p99_queue_seconds = quantile(0.99);
        self.sum.finish();
        (self.sum, self.samples)
    }
}

/// Requests a replica that started draining at `since` holding `held` still
/// has at `tick`: each finishes within one request's duration.
fn held_at(since: u64, held: u32, tick: u64, service: f64) -> f64 {
    let left = 1.0 - (tick.saturating_sub(since) as f64 / service.max(1.0));
    f64::from(held) * left.max(0.0)
}

/// The regions and GPU catalog of the trace's pools, as the reconciler's
/// snapshot holds them (spot prices: the trace's mean, as an operator's
/// catalog would).
fn catalog(trace: &SpotTrace) -> (Vec<RegionInfo>, Vec<GpuOffer>) {
    let mut regions: Vec<RegionInfo> = Vec::new();
    let mut offers: Vec<GpuOffer> = Vec::new();
    for p in &trace.pools {
        match regions.iter_mut().find(|r| r.code == p.region) {
            Some(r) if !r.providers.contains(&p.provider) => r.providers.push(p.provider),
            Some(_) => {}
            None => regions.push(RegionInfo {
                code: p.region.clone(),
                providers: vec![p.provider],
                cost_multiplier_milli: 1000,
                usable: true,
            }),
        }
        if !offers.iter().any(|o| o.gpu == p.gpu && o.provider == p.provider) {
            let same: Vec<&Pool> = trace
                .pools
                .iter()
                .filter(|q| q.gpu == p.gpu && q.provider == p.provider)
                .collect();
            let spot = same
                .iter()
                .map(|q| q.mean_spot_price(trace.duration_seconds))
                .sum::<f64>()
                / same.len() as f64;
            offers.push(GpuOffer {
                gpu: p.gpu.clone(),
                vram_gb: p.vram_gb,
                provider: p.provider,
                on_demand_micros_per_hour: (p.on_demand_usd_per_hour * 1e6).round() as i64,
                spot_micros_per_hour: Some((spot * 1e6).round() as i64),
                available: true,
            });
        }
    }
    (regions, offers)
}
