//! `crosslogic fleet simulate` and `crosslogic fleet trace` as a user runs
//! them: the seeded traces, the table, `--json`, `--plot`, a SkyPilot
//! availability trace, and precise refusals of bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::run;
use serde_json::Value;

fn traces() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../traces")
}

#[test]
fn the_seeded_day_prints_the_table_writes_json_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sim.json");
    let plots = dir.path().join("plots");
    let spot = traces().join("spot-24h-seed1.json");
    let load = traces().join("load-24h-seed1.csv");
    let (ok, out) = run(
        &[],
        &[
            "fleet",
            "simulate",
            "--spot-trace",
            spot.to_str().unwrap(),
            "--load",
            load.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("24.0 h of generated: seed 1"), "{out}");
    for policy in ["on_demand", "spot", "hedged"] {
        assert!(out.lines().any(|l| l.starts_with(policy)), "no row for {policy}: {out}");
    }
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let policies = written["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 3);
    let by = |name: &str| policies.iter().find(|p| p["policy"] == name).unwrap();
    let (od, hedged) = (by("on_demand"), by("hedged"));
    assert!(hedged["success_rate"].as_f64().unwrap() >= 0.999, "{hedged}");
    assert!(
        hedged["usd_per_million_tokens"].as_f64().unwrap() <= 0.6 * od["usd_per_million_tokens"].as_f64().unwrap(),
        "{written}"
    );
    assert_eq!(written["scenario"]["deployment"]["spot_overprovision"], 1);
    for f in [
        "replicas-on_demand.svg",
        "replicas-spot.svg",
        "replicas-hedged.svg",
        "cost.svg",
        "failed.svg",
    ] {
        let svg = std::fs::read_to_string(plots.join(f)).unwrap();
        assert!(svg.starts_with("<svg"), "{f}");
        assert!(out.contains(f), "{out}");
    }
}

#[test]
fn traces_are_generated_and_skypilot_availability_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let spot = dir.path().join("spot.json");
    let load = dir.path().join("load.csv");
    let (ok, out) = run(
        &[],
        &[
            "fleet",
            "trace",
            "spot",
            "--seed",
            "5",
            "--hours",
            "3",
            "--out",
            spot.to_str().unwrap(),
        ],
    );
    assert!(ok && out.contains("9 pools, 3 h"), "{out}");
    let (ok, out) = run(
        &[],
        &[
            "fleet",
            "trace",
            "load",
            "--seed",
            "5",
            "--hours",
            "3",
            "--low",
            "1",
            "--high",
            "5",
            "--out",
            load.to_str().unwrap(),
        ],
    );
    assert!(ok && out.contains("180 rows"), "{out}");
    // GCP L4 in us-east out for the second and third of six 30-minute slots.
    let sky = dir.path().join("sky.json");
    std::fs::write(
        &sky,
        r#"{"metadata": {"gap_seconds": 1800}, "data": [0, 1, 1, 0, 0, 0]}"#,
    )
    .unwrap();
    let (ok, out) = run(
        &[],
        &[
            "fleet",
            "simulate",
            "--spot-trace",
            spot.to_str().unwrap(),
            "--load",
            load.to_str().unwrap(),
            "--skypilot-trace",
            &format!("gcp/us-east/L4={}", sky.display()),
            "--policy",
            "hedged",
            "--min",
            "1",
            "--max",
            "4",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("gcp/us-east/L4 from"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("hedged")), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("on_demand")), "{out}");
}

#[test]
fn bad_input_is_refused_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"pools\": 3}").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--min".into(), "5".into(), "--max".into(), "3".into()],
            "--min (5) must not exceed --max (3)",
        ),
        (vec!["--policy".into(), "cheap".into()], "invalid value 'cheap'"),
        (
            vec!["--spot-trace".into(), "/nonexistent/spot.json".into()],
            "/nonexistent/spot.json",
        ),
        (
            vec!["--spot-trace".into(), broken.to_str().unwrap().into()],
            "broken.json",
        ),
        (
            vec!["--skypilot-trace".into(), "no-equals-sign".into()],
            "takes provider/region/GPU=FILE",
        ),
        (vec!["--timeout".into(), "0".into()], "--timeout must be within 1..3600"),
        (vec!["--hours".into(), "0".into()], "--hours must be within 1..744"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["fleet".to_string(), "simulate".into()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let (ok, out) = run(&[], &refs);
        assert!(!ok, "{all:?} succeeded: {out}");
        assert!(out.contains(expected), "{all:?}: expected {expected:?} in {out}");
    }
    let (ok, out) = run(
        &[],
        &[
            "fleet",
            "trace",
            "load",
            "--low",
            "9",
            "--high",
            "3",
            "--out",
            "/tmp/never-written.csv",
        ],
    );
    assert!(!ok && out.contains("0 ≤ low ≤ high"), "{out}");
}
