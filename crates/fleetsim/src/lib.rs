//! `crosslogic fleet simulate`: what a capacity policy costs and how many
//! requests it serves, by replaying a load trace and a spot-capacity trace
//! in virtual time (a day in about a second of wall time) through the
//! reconciler's real decisions.
//!
//! Nothing here decides how to scale or where to launch: each reconcile
//! interval the simulated fleet becomes the same [`Snapshot`] the real pass
//! reads, [`crosslogic_control::reconcile::plan`] decides, and the
//! simulator applies its actions to simulated machines (`world.rs`): boots
//! and model loads drawn from a log-normal distribution, spot launches that
//! fail while a pool has no capacity, preemption notices and reclaims from
//! the trace, billing per second at the trace's prices. The reconciler's
//! sweep (provisioner clusters against node rows) has nothing to do here:
//! the simulated provisioner and its rows never disagree.
//!
//! [`Snapshot`]: crosslogic_control::reconcile::Snapshot

pub mod report;
pub mod trace;
mod world;

use crosslogic_core::scaling::ScalingPolicy;
use crosslogic_core::CapacityPolicy;
use serde::Serialize;

pub use trace::{LoadTrace, SpotCalibration, SpotTrace};
pub use world::Sample;

/// The model the deployment serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpec {
    pub name: String,
    /// Memory the weights need (placement picks GPUs that fit it × 1.2).
    pub vram_gb: u32,
    /// Tokens per second one replica generates at full batch (the
    /// catalog's `tokens_per_second_capacity`).
    pub tokens_per_second_capacity: u32,
    /// Tokens per second one request streams: a request of `T` tokens is in
    /// flight `T / stream_tokens_per_second` seconds.
    pub stream_tokens_per_second: f64,
}

impl Default for ModelSpec {
    /// An 8B model in 16-bit weights on one 24 GB GPU (L4, A10G).
    fn default() -> Self {
        ModelSpec {
            name: "llama-3-8b".into(),
            vram_gb: 16,
            tokens_per_second_capacity: 2400,
            stream_tokens_per_second: 60.0,
        }
    }
}

/// The deployment's bounds and hedged settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeploymentSpec {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub on_demand_base: u32,
    pub spot_overprovision: u32,
}

impl Default for DeploymentSpec {
    fn default() -> Self {
        DeploymentSpec {
            min_replicas: 2,
            max_replicas: 24,
            on_demand_base: 0,
            spot_overprovision: 1,
        }
    }
}

/// How long a node takes from launch to serving: a log-normal VM boot and
/// setup, then a log-normal model load (medians, and one `sigma` for both).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootSpec {
    /// SkyPilot's GPU VM launch with setup: about 2–3 minutes.
    pub vm_median_seconds: f64,
    /// Weights from the JuiceFS cache into GPU memory, vLLM warm-up.
    pub model_load_median_seconds: f64,
    pub sigma: f64,
    /// How long a spot launch into a pool without capacity takes to fail.
    pub failed_launch_seconds: u64,
}

impl Default for BootSpec {
    fn default() -> Self {
        BootSpec {
            vm_median_seconds: 150.0,
            model_load_median_seconds: 90.0,
            sigma: 0.35,
            failed_launch_seconds: 90,
        }
    }
}

/// Everything one simulation replays.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub load: LoadTrace,
    pub spot: SpotTrace,
    pub model: ModelSpec,
    pub deployment: DeploymentSpec,
    pub boot: BootSpec,
    /// The reconciler's scaling policy. The default target of in-flight
    /// requests per replica is 70 % of the streams a replica serves at
    /// full batch (`capacity / tokens per request × stream time`), the same
    /// utilisation as the tokens/s target.
    pub scaling: ScalingPolicy,
    /// A request waiting longer than this for a replica fails.
    pub timeout_seconds: u64,
    /// Simulated before the counting starts, at the trace's first load
    /// (the fleet starts empty).
    pub warmup_seconds: u64,
    /// How much of the traces is replayed.
    pub duration_seconds: u64,
    /// Time between reconciler passes (the platform's `RECONCILE_INTERVAL`).
    pub reconcile_interval_seconds: u64,
    /// Seeds boot times and which nodes a wave reclaims.
    pub seed: u64,
    service_seconds: f64,
}

impl Scenario {
    /// A scenario over `load` and `spot` with the documented defaults,
    /// replaying the shorter of the two traces.
    pub fn new(load: LoadTrace, spot: SpotTrace) -> Scenario {
        let model = ModelSpec::default();
        let load_end = load.points.last().map_or(0, |p| p.second + 60);
        let duration_seconds = spot.duration_seconds.min(load_end).max(60);
        let mut s = Scenario {
            load,
            spot,
            model,
            deployment: DeploymentSpec::default(),
            boot: BootSpec::default(),
            scaling: ScalingPolicy::default(),
            timeout_seconds: 60,
            warmup_seconds: 3600,
            duration_seconds,
            reconcile_interval_seconds: 2,
            seed: 1,
            service_seconds: 0.0,
        };
        s.refresh();
        s
    }

    /// Recomputes what follows from the model and the load (call after
    /// changing either).
    pub fn refresh(&mut self) {
        let n = self.load.points.len().max(1) as f64;
        let mean_tokens = self.load.points.iter().map(|p| p.tokens_per_request).sum::<f64>() / n;
        self.service_seconds = mean_tokens / self.model.stream_tokens_per_second.max(1.0);
        let streams = f64::from(self.model.tokens_per_second_capacity) / mean_tokens.max(1.0) * self.service_seconds;
        self.scaling.target_in_flight_per_replica = (streams * self.scaling.target_utilization).max(1.0);
    }

    /// Seconds one request of mean size is in flight.
    pub fn service_seconds(&self) -> f64 {
        self.service_seconds
    }
}

/// What one policy did over the scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub policy: CapacityPolicy,
    pub cost_usd: f64,
    /// Tokens served.
    pub tokens: f64,
    pub usd_per_million_tokens: f64,
    pub requests: f64,
    pub served: f64,
    pub failed: f64,
    /// …of which were in flight on a replica reclaimed (or terminated)
    /// before they finished; the rest waited longer than the timeout.
    pub failed_in_flight: f64,
    /// served / (served + failed).
    pub success_rate: f64,
    pub p50_queue_seconds: f64,
    pub p99_queue_seconds: f64,
    /// Spot nodes reclaimed (with or without notice).
    pub preemptions: u64,
    pub launches: u64,
    pub launch_failures: u64,
    pub minutes_below_min: f64,
    pub spot_node_hours: f64,
    pub on_demand_node_hours: f64,
    pub scaling_events: u64,
    #[serde(skip)]
    seconds_below_min: f64,
}

impl Summary {
    fn new(policy: CapacityPolicy) -> Summary {
        Summary {
            policy,
            cost_usd: 0.0,
            tokens: 0.0,
            usd_per_million_tokens: 0.0,
            requests: 0.0,
            served: 0.0,
            failed: 0.0,
            failed_in_flight: 0.0,
            success_rate: 0.0,
            p50_queue_seconds: 0.0,
            p99_queue_seconds: 0.0,
            preemptions: 0,
            launches: 0,
            launch_failures: 0,
            minutes_below_min: 0.0,
            spot_node_hours: 0.0,
            on_demand_node_hours: 0.0,
            scaling_events: 0,
            seconds_below_min: 0.0,
        }
    }

    fn finish(&mut self) {
        self.usd_per_million_tokens = if self.tokens > 0.0 {
            self.cost_usd / self.tokens * 1e6
        } else {
            0.0
        };
        let done = self.served + self.failed;
        self.success_rate = if done > 0.0 { self.served / done } else { 1.0 };
        self.minutes_below_min = self.seconds_below_min / 60.0;
    }
}

/// One policy's run: its summary and its per-minute series.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub summary: Summary,
    pub series: Vec<Sample>,
}

/// Replays `scenario` under `policy`.
pub fn simulate(scenario: &Scenario, policy: CapacityPolicy) -> Run {
    let (summary, series) = world::run(scenario, policy);
    Run { summary, series }
}
