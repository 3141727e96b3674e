//! The simulator's accounting, and the policies on the seeded traces.

use std::path::PathBuf;

use crosslogic_core::CapacityPolicy;
use crosslogic_fleetsim::trace::LoadPoint;
use crosslogic_fleetsim::{report, simulate, LoadTrace, Scenario, SpotTrace};

/// A constant load: `rps` requests/s of 400 tokens.
fn constant(rps: f64, hours: u64) -> LoadTrace {
    LoadTrace {
        points: vec![
            LoadPoint {
                second: 0,
                requests_per_second: rps,
                tokens_per_request: 400.0,
            },
            LoadPoint {
                second: hours * 3600 - 60,
                requests_per_second: rps,
                tokens_per_request: 400.0,
            },
        ],
    }
}

fn fixed_size(load: LoadTrace, spot: SpotTrace, replicas: u32) -> Scenario {
    let mut s = Scenario::new(load, spot);
    s.deployment.min_replicas = replicas;
    s.deployment.max_replicas = replicas;
    s.deployment.spot_overprovision = 0;
    s.refresh();
    s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn a_trace_without_preemptions_costs_exactly_price_times_hours() {
    let hours = 24;
    let spot = SpotTrace::calm(hours);
    // The cheapest shapes that fit an 8B model: GCP L4 on-demand, and the
    // cheapest spot L4/A10G at the trace's fixed prices.
    let od_price = spot
        .pools
        .iter()
        .map(|p| p.on_demand_usd_per_hour)
        .fold(f64::INFINITY, f64::min);
    let spot_price = spot.pools.iter().map(|p| p.spot_price(0)).fold(f64::INFINITY, f64::min);
    let s = fixed_size(constant(3.0, hours), spot, 3);
    assert_eq!(s.duration_seconds, hours * 3600);

    let od = simulate(&s, CapacityPolicy::OnDemand).summary;
    assert!(close(od.cost_usd, 3.0 * od_price * hours as f64), "{od:?}");
    assert!(close(od.on_demand_node_hours, 3.0 * hours as f64), "{od:?}");
    assert_eq!((od.spot_node_hours, od.preemptions, od.launches), (0.0, 0, 0), "{od:?}");
    assert_eq!(od.failed, 0.0);
    assert_eq!(od.success_rate, 1.0);
    // Every request of the day was served: 3 req/s for 24 h, 400 tokens each.
    assert!(close(od.served, 3.0 * 86_400.0), "{od:?}");
    assert!(close(od.tokens, 3.0 * 86_400.0 * 400.0), "{od:?}");
    assert!(close(od.usd_per_million_tokens, od.cost_usd / od.tokens * 1e6));
    assert!(
        od.p99_queue_seconds < 1.0,
        "three replicas serve 3 req/s without queueing: {od:?}"
    );

    let sp = simulate(&s, CapacityPolicy::Spot).summary;
    assert!(close(sp.cost_usd, 3.0 * spot_price * hours as f64), "{sp:?}");
    assert!(close(sp.spot_node_hours, 3.0 * hours as f64), "{sp:?}");
    assert_eq!(
        (sp.on_demand_node_hours, sp.preemptions, sp.failed),
        (0.0, 0, 0.0),
        "{sp:?}"
    );
}

#[test]
fn a_capacity_drought_forces_on_demand_fallback_and_hedged_returns_to_spot() {
    let hours = 12;
    let mut spot = SpotTrace::calm(hours);
    // Every spot pool reclaimed at 2 h and unlaunchable until 6 h.
    for p in &mut spot.pools {
        p.unavailable = vec![(2 * 3600, 6 * 3600)];
        p.waves = vec![crosslogic_fleetsim::trace::Wave {
            second: 2 * 3600,
            fraction: 1.0,
            spread_seconds: 60,
        }];
    }
    let mut s = Scenario::new(constant(6.0, hours), spot);
    s.deployment.min_replicas = 3;
    s.deployment.max_replicas = 6;
    s.refresh();

    let hedged = simulate(&s, CapacityPolicy::Hedged);
    let h = &hedged.summary;
    assert!(h.preemptions >= 3, "the drought reclaimed the spot replicas: {h:?}");
    assert!(h.launch_failures > 0, "spot launches failed during the drought: {h:?}");
    let during = |run: &crosslogic_fleetsim::Run, minute: u64| run.series[minute as usize];
    let mid = during(&hedged, 4 * 60);
    assert!(
        mid.on_demand_active >= 3 && mid.spot_active == 0,
        "on-demand covers the drought: {mid:?}"
    );
    let after = during(&hedged, 11 * 60);
    assert!(
        after.spot_active >= 3 && after.on_demand_active == 0,
        "back on spot once capacity returned, fallback drained: {after:?}"
    );
    assert!(h.on_demand_node_hours > 3.0 * 3.0, "{h:?}");
    // Every spot replica went at once: requests fail only until the
    // on-demand fallback has booted, then it serves the rest of the drought.
    let failing: Vec<u64> = hedged
        .series
        .iter()
        .filter(|m| m.failed > 0.0)
        .map(|m| m.minute)
        .collect();
    assert!(
        failing.iter().all(|m| (120..130).contains(m)),
        "failures outside the reclaim's first minutes: {failing:?}"
    );
    assert!(h.success_rate > 0.99, "{h:?}");

    let sp = simulate(&s, CapacityPolicy::Spot);
    let mid = during(&sp, 4 * 60);
    assert!(
        mid.on_demand_active >= 3,
        "spot policy falls back after failed launches: {mid:?}"
    );
    assert!(sp.summary.on_demand_node_hours > 0.0);
}

fn traces() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../traces")
}

/// The bar, on each checked-in 24 h trace pair: `hedged` serves
/// ≥ 99.9 % of requests at ≥ 40 % lower dollars per million tokens than
/// `on_demand`.
#[test]
fn hedged_meets_the_bar_on_the_seeded_traces() {
    for seed in [1, 2, 3] {
        let spot = SpotTrace::read_json(&traces().join(format!("spot-24h-seed{seed}.json"))).unwrap();
        let load = LoadTrace::read_csv(&traces().join(format!("load-24h-seed{seed}.csv"))).unwrap();
        let mut s = Scenario::new(load, spot);
        s.seed = seed;
        s.refresh();
        let runs: Vec<_> = [CapacityPolicy::OnDemand, CapacityPolicy::Spot, CapacityPolicy::Hedged]
            .iter()
            .map(|p| simulate(&s, *p))
            .collect();
        let table = report::table(&runs);
        eprintln!("seed {seed}\n{table}");
        let (od, hedged) = (&runs[0].summary, &runs[2].summary);
        assert!(
            od.success_rate >= 0.999,
            "seed {seed}: on_demand itself fails requests\n{table}"
        );
        assert!(hedged.success_rate >= 0.999, "seed {seed}\n{table}");
        assert!(
            hedged.usd_per_million_tokens <= 0.6 * od.usd_per_million_tokens,
            "seed {seed}: hedged not 40 % cheaper\n{table}"
        );
        assert!(
            hedged.preemptions > 0,
            "seed {seed}: the trace preempts nothing\n{table}"
        );
    }
}

#[test]
fn json_and_plots_are_written() {
    let s = fixed_size(constant(2.0, 2), SpotTrace::calm(2), 2);
    let runs = vec![
        simulate(&s, CapacityPolicy::OnDemand),
        simulate(&s, CapacityPolicy::Hedged),
    ];
    let json: serde_json::Value = serde_json::from_str(&report::json(&serde_json::json!({"hours": 2}), &runs)).unwrap();
    let p = &json["policies"][1];
    assert_eq!(p["policy"], "hedged");
    for key in [
        "cost_usd",
        "tokens",
        "usd_per_million_tokens",
        "success_rate",
        "p50_queue_seconds",
        "p99_queue_seconds",
        "preemptions",
        "minutes_below_min",
    ] {
        assert!(p[key].is_number(), "{key} missing: {p}");
    }
    let dir = tempfile::tempdir().unwrap();
    let files = report::plot(dir.path(), &runs).unwrap();
    assert_eq!(files.len(), 4);
    for f in files {
        let svg = std::fs::read_to_string(&f).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline") || svg.contains("<polygon"),
            "{}",
            f.display()
        );
        assert!(svg.contains("hours"), "{}: axis label", f.display());
    }
}

#[test]
fn hedged_spreads_spot_replicas_over_pools() {
    let s = fixed_size(constant(6.0, 4), SpotTrace::calm(4), 6);
    let hedged = simulate(&s, CapacityPolicy::Hedged);
    let end = hedged.series.last().unwrap();
    assert_eq!(end.spot_active, 6, "{end:?}");
    assert_eq!(end.largest_spot_pool, 1, "one replica per pool: {end:?}");
    // `spot` spreads over regions only: the cheapest GPU of each region.
    let spot = simulate(&s, CapacityPolicy::Spot);
    let end = spot.series.last().unwrap();
    assert_eq!((end.spot_active, end.largest_spot_pool), (6, 2), "{end:?}");
}
