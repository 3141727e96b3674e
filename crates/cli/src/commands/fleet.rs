//! `crosslogic fleet …`: the fleet simulator (`crosslogic-fleetsim`) and its
//! trace generators.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use crosslogic_core::CapacityPolicy;
use crosslogic_fleetsim::{report, simulate, LoadTrace, Scenario, SpotCalibration, SpotTrace};

use crate::output;

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Replay a day (or more) of load and spot capacity in virtual time
    /// through the reconciler's real decisions, once per capacity policy,
    /// and print cost, dollars per million tokens, success rate, queueing
    /// delay and preemptions side by side.
    ///
    /// Without trace files it generates both from --seed (the same traces
    /// `crosslogic fleet trace` writes).
    Simulate(SimulateArgs),
    /// Write a seeded trace for `simulate` (documented in docs/SPOT.md).
    #[command(subcommand)]
    Trace(TraceCommand),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Spot capacity and prices per cloud/region/GPU (JSON, as `fleet trace spot` writes).
    #[arg(long, value_name = "FILE")]
    spot_trace: Option<PathBuf>,
    /// Requests per second and tokens per request over time (CSV
    /// `second,requests_per_second,tokens_per_request`).
    #[arg(long, value_name = "FILE")]
    load: Option<PathBuf>,
    /// Replace one pool's spot availability with a SkyPilot spot-study
    /// trace: `provider/region/GPU=FILE` (JSON {"metadata": {"gap_seconds"},
    /// "data": [0|1, …]}, 1 = preempted). Repeatable.
    #[arg(long, value_name = "POOL=FILE")]
    skypilot_trace: Vec<String>,
    /// Seed of generated traces and of the simulation (boot times, which
    /// nodes a wave reclaims).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hours of generated traces.
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// Policies to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "on_demand,spot,hedged",
          value_parser = super::admin_client::one_of(CapacityPolicy::ALL, CapacityPolicy::as_str))]
    policy: Vec<CapacityPolicy>,
    /// Fewest replicas.
    #[arg(long, default_value_t = 2)]
    min: u32,
    /// Most replicas.
    #[arg(long, default_value_t = 24)]
    max: u32,
    /// hedged: replicas always on-demand.
    #[arg(long, default_value_t = 0)]
    on_demand_base: u32,
    /// hedged: spot replicas beyond the target.
    #[arg(long, default_value_t = 1)]
    spot_overprovision: u32,
    /// A request waiting longer than this many seconds for a replica fails.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Write the summaries as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw replicas, cost and failed requests over time as SVG into DIR.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Spot capacity and prices for us-east, us-west, eu-west × AWS A10G,
    /// AWS L4, GCP L4: droughts, correlated preemption waves, independent
    /// preemptions, prices within the published spot/on-demand ratios.
    Spot {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 24)]
        hours: u64,
        /// Mean hours a pool's spot capacity stays available.
        #[arg(long, default_value_t = SpotCalibration::default().mean_hours_available)]
        mean_hours_available: f64,
        /// Mean hours of a capacity drought (at least 0.5).
        #[arg(long, default_value_t = SpotCalibration::default().mean_hours_drought)]
        mean_hours_drought: f64,
        /// Mean hours between correlated preemption waves in one pool.
        #[arg(long, default_value_t = SpotCalibration::default().mean_hours_between_waves)]
        mean_hours_between_waves: f64,
        /// Independent preemptions per spot node-hour.
        #[arg(long, default_value_t = SpotCalibration::default().hazard_per_node_hour)]
        hazard_per_node_hour: f64,
        /// Output file (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// A day-shaped load: diurnal curve between --low and --high requests/s,
    /// noise and bursts; one row per minute.
    Load {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 24)]
        hours: u64,
        /// Requests per second at night.
        #[arg(long, default_value_t = 4.0)]
        low: f64,
        /// Requests per second in the afternoon peak.
        #[arg(long, default_value_t = 30.0)]
        high: f64,
        /// Output file (CSV).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn run(cmd: FleetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FleetCommand::Simulate(args) => simulate_cmd(args)?,
        FleetCommand::Trace(TraceCommand::Spot {
            seed,
            hours,
            mean_hours_available,
            mean_hours_drought,
            mean_hours_between_waves,
            hazard_per_node_hour,
            out,
        }) => {
            check_hours(hours)?;
            for (name, v) in [
                ("--mean-hours-available", mean_hours_available),
                ("--mean-hours-drought", mean_hours_drought),
                ("--mean-hours-between-waves", mean_hours_between_waves),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    bail!("{name} must be a positive number of hours, got {v}");
                }
            }
            if !(hazard_per_node_hour.is_finite() && (0.0..=1.0).contains(&hazard_per_node_hour)) {
                bail!("--hazard-per-node-hour must be within 0..1, got {hazard_per_node_hour}");
            }
            let cal = SpotCalibration {
                mean_hours_available,
                mean_hours_drought,
                mean_hours_between_waves,
                hazard_per_node_hour,
            };
            let trace = SpotTrace::generate(seed, hours, cal);
            write(&out, &trace.to_json())?;
            let waves: usize = trace.pools.iter().map(|p| p.waves.len()).sum();
            let droughts: usize = trace.pools.iter().map(|p| p.unavailable.len()).sum();
            output::line(&format!(
                "wrote {}: {} pools, {hours} h, {waves} preemption waves, {droughts} droughts",
                out.display(),
                trace.pools.len()
            ));
        }
        FleetCommand::Trace(TraceCommand::Load {
            seed,
            hours,
            low,
            high,
            out,
        }) => {
            check_hours(hours)?;
            if !(low.is_finite() && high.is_finite() && 0.0 <= low && low <= high) {
                bail!("--low and --high must be requests per second with 0 ≤ low ≤ high, got {low} and {high}");
            }
            let trace = LoadTrace::generate(seed, hours, low, high);
            write(&out, &trace.to_csv())?;
            output::line(&format!(
                "wrote {}: {} rows, one per minute",
                out.display(),
                trace.points.len()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_hours(hours: u64) -> anyhow::Result<()> {
    if !(1..=24 * 31).contains(&hours) {
        bail!("--hours must be within 1..744, got {hours}");
    }
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn simulate_cmd(a: SimulateArgs) -> anyhow::Result<()> {
    check_hours(a.hours)?;
    if a.max == 0 || a.min > a.max {
        bail!(
            "--min ({}) must not exceed --max ({}), and --max must be at least 1",
            a.min,
            a.max
        );
    }
    if a.on_demand_base > a.max {
        bail!(
            "--on-demand-base ({}) must not exceed --max ({})",
            a.on_demand_base,
            a.max
        );
    }
    if a.spot_overprovision > 100 {
        bail!(
            "--spot-overprovision must be within 0..100, got {}",
            a.spot_overprovision
        );
    }
    if !(1..=3600).contains(&a.timeout) {
        bail!("--timeout must be within 1..3600 seconds, got {}", a.timeout);
    }
    if a.policy.is_empty() {
        bail!("--policy names no policy");
    }
    let mut spot = match &a.spot_trace {
        Some(path) => SpotTrace::read_json(path)?,
        None => SpotTrace::generate(a.seed, a.hours, SpotCalibration::default()),
    };
    for spec in &a.skypilot_trace {
        let Some((pool, file)) = spec.split_once('=') else {
            bail!("--skypilot-trace takes provider/region/GPU=FILE, got {spec:?}");
        };
        spot.apply_skypilot_availability(std::path::Path::new(file), pool)?;
    }
    let load = match &a.load {
        Some(path) => LoadTrace::read_csv(path)?,
        None => LoadTrace::generate(a.seed, a.hours, 4.0, 30.0),
    };
    let mut scenario = Scenario::new(load, spot);
    scenario.seed = a.seed;
    scenario.timeout_seconds = a.timeout;
    scenario.deployment.min_replicas = a.min;
    scenario.deployment.max_replicas = a.max;
    scenario.deployment.on_demand_base = a.on_demand_base;
    scenario.deployment.spot_overprovision = a.spot_overprovision;
    scenario.refresh();

    let started = Instant::now();
    let runs: Vec<_> = a.policy.iter().map(|p| simulate(&scenario, *p)).collect();
    let wall = started.elapsed();
    let hours = scenario.duration_seconds as f64 / 3600.0;
    output::line(&format!(
        "fleet simulation: {hours:.1} h of {} ({} spot pools), min {} max {} replicas, on-demand base {}, \
         spot over-provision {}, timeout {} s; {} policies in {:.2} s of wall time",
        scenario.spot.description,
        scenario.spot.pools.len(),
        a.min,
        a.max,
        a.on_demand_base,
        a.spot_overprovision,
        a.timeout,
        runs.len(),
        wall.as_secs_f64()
    ));
    output::line("");
    for l in report::table(&runs).lines() {
        output::line(l);
    }
    if let Some(path) = &a.json {
        let described = serde_json::json!({
            "spot_trace": scenario.spot.description,
            "hours": hours,
            "model": scenario.model,
            "deployment": scenario.deployment,
            "boot": scenario.boot,
            "timeout_seconds": scenario.timeout_seconds,
            "seed": scenario.seed,
        });
        write(path, &report::json(&described, &runs))?;
        output::line(&format!("\nwrote {}", path.display()));
    }
    if let Some(dir) = &a.plot {
        let files = report::plot(dir, &runs)?;
        for f in files {
            output::line(&format!("wrote {}", f.display()));
        }
    }
    Ok(())
}
