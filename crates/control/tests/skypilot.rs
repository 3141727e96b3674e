//! The SkyPilot provisioner: the rendered task YAML (golden files, and loaded
//! by real SkyPilot when `CROSSLOGIC_SKYPILOT_PYTHON` names a Python with
//! `sky` importable), the CLI driven through a recording stand-in `sky`, and
//! the REST client against a recording stand-in API server.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crosslogic_control::provision::skypilot::render_task;
use crosslogic_control::provision::{
    JobLog, LaunchSpec, ProvisionError, Provisioner, SkyPilotConfig, SkyPilotProvisioner,
};
use crosslogic_core::Provider;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use uuid::Uuid;

const TOKEN: &str = "cln_node_tok_9d8c7b6a5f4e3d2c1b0a";
const JUICEFS_URL: &str = "redis://:jfs-pass-42@redis.internal:6379/1";

fn aws_spec() -> LaunchSpec {
    LaunchSpec {
        cluster_name: "cic-aws-us-east-1-a10g-spot-7f3a".into(),
        node_id: Uuid::parse_str("7f3a2c4e-1b6d-4e8f-9a0b-1c2d3e4f5a6b").unwrap(),
        node_token: SecretString::from(TOKEN),
        model: "llama-3-8b".into(),
        model_source: Some("meta-llama/Meta-Llama-3-8B-Instruct".into()),
        provider: Provider::Aws,
        region: Some("us-east".into()),
        cloud_region: Some("us-east-1".into()),
        gpu: Some("A10G".into()),
        gpu_count: 1,
        spot: true,
        control_url: "https://control.example.com".into(),
    }
}

fn gcp_spec() -> LaunchSpec {
    LaunchSpec {
        cluster_name: "cic-gcp-a100-80gb-od-19c0".into(),
        node_id: Uuid::parse_str("19c0d2e3-f4a5-4b6c-8d7e-9f0a1b2c3d4e").unwrap(),
        node_token: SecretString::from(TOKEN),
        model: "llama-3-70b".into(),
        model_source: None,
        provider: Provider::Gcp,
        region: None,
        cloud_region: None,
        gpu: Some("A100-80GB".into()),
        gpu_count: 2,
        spot: false,
        control_url: "https://control.example.com".into(),
    }
}

fn aws_config() -> SkyPilotConfig {
    let mut cfg = SkyPilotConfig::new("/var/lib/crosslogic/skypilot", "/usr/local/bin/crosslogic");
    cfg.juicefs_meta_url = Some(SecretString::from(JUICEFS_URL));
    cfg
}

fn gcp_config() -> SkyPilotConfig {
    let mut cfg = SkyPilotConfig::new("/var/lib/crosslogic/skypilot", "/usr/local/bin/crosslogic");
    cfg.vllm_version = Some("0.8.5".into());
    cfg
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 regenerates it)",
        path.display()
    );
}

fn drain(rx: &mut UnboundedReceiver<String>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    lines
}

// ---------------------------------------------------------------- task YAML

#[test]
fn golden_task_aws_spot_with_juicefs() {
    let yaml = render_task(&aws_spec(), &aws_config(), false).unwrap();
    golden("skypilot_task_aws_spot_juicefs.yaml", &yaml);
}

#[test]
fn golden_task_gcp_on_demand() {
    let yaml = render_task(&gcp_spec(), &gcp_config(), false).unwrap();
    golden("skypilot_task_gcp_ondemand.yaml", &yaml);
}

#[test]
fn secrets_are_values_only_in_rest_mode() {
    let cli = render_task(&aws_spec(), &aws_config(), false).unwrap();
    assert!(!cli.contains(TOKEN));
    assert!(!cli.contains("jfs-pass-42"));
    let doc: Value = serde_yaml_ng::from_str(&cli).unwrap();
    assert_eq!(
        doc["secrets"],
        json!({"CROSSLOGIC_NODE_TOKEN": null, "JUICEFS_META_URL": null})
    );

    let rest = render_task(&aws_spec(), &aws_config(), true).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&rest).unwrap();
    assert_eq!(
        doc["secrets"],
        json!({"CROSSLOGIC_NODE_TOKEN": TOKEN, "JUICEFS_META_URL": JUICEFS_URL})
    );
    // Only under `secrets`: nowhere else in the task.
    let mut without = doc.clone();
    without.as_object_mut().unwrap().remove("secrets");
    assert!(!without.to_string().contains(TOKEN));

    // Debug output of the configuration redacts the JuiceFS URL.
    let debug = format!("{:?}", aws_config());
    assert!(!debug.contains("jfs-pass-42"), "{debug}");

    let no_juicefs = render_task(&gcp_spec(), &gcp_config(), true).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&no_juicefs).unwrap();
    assert_eq!(doc["secrets"], json!({"CROSSLOGIC_NODE_TOKEN": TOKEN}));
}

#[test]
fn task_fields() {
    // The cloud is asked for its own region name; the node reports ours.
    let doc: Value = serde_yaml_ng::from_str(&render_task(&aws_spec(), &aws_config(), false).unwrap()).unwrap();
    assert_eq!(doc["resources"]["infra"], "aws/us-east-1");
    assert_eq!(doc["envs"]["CROSSLOGIC_REGION"], "us-east");
    assert!(doc["run"]
        .as_str()
        .unwrap()
        .contains(r#"--region "$CROSSLOGIC_REGION""#));

    let doc: Value = serde_yaml_ng::from_str(&render_task(&gcp_spec(), &gcp_config(), false).unwrap()).unwrap();
    assert_eq!(
        doc["resources"],
        json!({"infra": "gcp", "accelerators": "A100-80GB:2", "use_spot": false, "disk_size": 256, "ports": 8000})
    );
    assert_eq!(doc["envs"]["MODEL_SOURCE"], "llama-3-70b");
    assert_eq!(doc["envs"]["GPU_COUNT"], "2");
    assert!(doc["envs"].get("CROSSLOGIC_REGION").is_none());
    assert_eq!(
        doc["file_mounts"],
        json!({"~/.crosslogic/crosslogic": "/usr/local/bin/crosslogic"})
    );
    let run = doc["run"].as_str().unwrap();
    assert!(run.contains("--cloud gcp"));
    assert!(!run.contains("--region"));
    assert!(!run.contains("HF_HOME"));
    assert!(doc["setup"].as_str().unwrap().contains("pip install -U 'vllm==0.8.5'"));

    let mut cpu = gcp_spec();
    cpu.gpu = None;
    cpu.provider = Provider::Oci;
    let doc: Value = serde_yaml_ng::from_str(&render_task(&cpu, &gcp_config(), false).unwrap()).unwrap();
    assert!(doc["resources"].get("accelerators").is_none());
    assert!(!doc["run"].as_str().unwrap().contains("--cloud"));

    let mut local = gcp_spec();
    local.provider = Provider::Local;
    assert!(matches!(
        render_task(&local, &gcp_config(), false),
        Err(ProvisionError::Failed(_))
    ));
}

#[test]
fn run_script_is_valid_bash() {
    for (spec, cfg) in [(aws_spec(), aws_config()), (gcp_spec(), gcp_config())] {
        let doc: Value = serde_yaml_ng::from_str(&render_task(&spec, &cfg, false).unwrap()).unwrap();
        for key in ["setup", "run"] {
            let script = doc[key].as_str().unwrap();
            let out = std::process::Command::new("bash")
                .args(["-n", "-c", script])
                .output()
                .unwrap();
            assert!(out.status.success(), "{key}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The rendered task loads in real SkyPilot (with and without secret
/// values). Runs only when `CROSSLOGIC_SKYPILOT_PYTHON` names a Python that
/// can `import sky`.
#[test]
fn real_skypilot_loads_the_task() {
    let Some(python) = std::env::var_os("CROSSLOGIC_SKYPILOT_PYTHON").filter(|p| !p.is_empty()) else {
        eprintln!("skipped: set CROSSLOGIC_SKYPILOT_PYTHON to a python with `sky` importable");
        return;
    };
    let probe = std::process::Command::new(&python).args(["-c", "import sky"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: {python:?} cannot `import sky`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("crosslogic");
    std::fs::write(&agent, "#!/bin/sh\n").unwrap();
    let script = r#"
import json, sys
import sky
out = []
for path in sys.argv[1:]:
    t = sky.Task.from_yaml(path)
    (r,) = list(t.resources)
    out.append({
        "name": t.name,
        "cloud": str(r.cloud).lower() if r.cloud is not None else None,
        "region": r.region,
        "accelerators": r.accelerators,
        "use_spot": r.use_spot,
        "disk_size": r.disk_size,
        "ports": [str(p) for p in (r.ports or [])],
        "envs": dict(t.envs),
        "secrets": sorted(t.secrets.keys()),
        "managed": sorted(getattr(ref, "name", str(ref)) for ref in getattr(t, "_managed_secret_refs", [])),
        "file_mounts": t.file_mounts,
        "setup": t.setup,
        "run": t.run,
    })
print(json.dumps(out))
"#;
    let mut paths = Vec::new();
    for (i, (spec, mut cfg)) in [(aws_spec(), aws_config()), (gcp_spec(), gcp_config())]
        .into_iter()
        .enumerate()
    {
        cfg.agent_binary = agent.clone();
        for with_secrets in [false, true] {
            let path = dir.path().join(format!("task-{i}-{with_secrets}.yaml"));
            std::fs::write(&path, render_task(&spec, &cfg, with_secrets).unwrap()).unwrap();
            paths.push(path);
        }
    }
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(&paths)
        .env("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SkyPilot rejected the task:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    let tasks: Vec<Value> = serde_json::from_str(last).unwrap();
    assert_eq!(tasks.len(), 4);
    for (i, t) in tasks.iter().enumerate() {
        let aws = i < 2;
        let with_secrets = i % 2 == 1;
        let remote_agent = "~/.crosslogic/crosslogic";
        assert_eq!(t["file_mounts"][remote_agent], agent.to_str().unwrap(), "{t}");
        assert_eq!(t["ports"], json!(["8000"]), "{t}");
        assert_eq!(t["disk_size"], 256, "{t}");
        assert_eq!(t["envs"]["ENGINE_PORT"], "8000", "{t}");
        assert!(t["run"].as_str().unwrap().contains("vllm serve"), "{t}");
        if aws {
            assert_eq!(t["name"], "cic-aws-us-east-1-a10g-spot-7f3a");
            assert_eq!(t["cloud"], "aws");
            assert_eq!(t["region"], "us-east-1");
            assert_eq!(t["accelerators"], json!({"A10G": 1}));
            assert_eq!(t["use_spot"], true);
            assert_eq!(t["envs"]["MODEL_SOURCE"], "meta-llama/Meta-Llama-3-8B-Instruct");
        } else {
            assert_eq!(t["cloud"], "gcp");
            assert_eq!(t["region"], Value::Null);
            assert_eq!(t["accelerators"], json!({"A100-80GB": 2}));
            assert_eq!(t["use_spot"], false);
        }
        let mut names = t["secrets"].as_array().unwrap().clone();
        names.extend(t["managed"].as_array().unwrap().iter().cloned());
        assert!(names.contains(&json!("CROSSLOGIC_NODE_TOKEN")), "{t}");
        if with_secrets {
            assert!(
                t["secrets"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("CROSSLOGIC_NODE_TOKEN")),
                "{t}"
            );
        }
        if aws {
            assert!(names.contains(&json!("JUICEFS_META_URL")), "{t}");
        }
    }
}

// ---------------------------------------------------------------- CLI mode

/// A stand-in `sky` that records what it was given.
struct FakeSky {
    dir: tempfile::TempDir,
}

impl FakeSky {
    fn new() -> FakeSky {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let script = format!(
            r#"#!/bin/bash
D='{d}'
{{ printf 'ARGV'; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; }} >> "$D/record"
printf 'TOKEN\t%s\n' "${{CROSSLOGIC_NODE_TOKEN:-<unset>}}" >> "$D/record"
printf 'JUICEFS\t%s\n' "${{JUICEFS_META_URL:-<unset>}}" >> "$D/record"
case "$1" in
  launch)
    last="${{@: -1}}"
    cp "$last" "$D/launched.yaml"
    echo "Considered resources (1 node):"
    echo "Launching a new cluster '$3'."
    echo "  Provisioning instances ..." >&2
    if [ -f "$D/fail" ]; then
      echo "sky.exceptions.ResourcesUnavailableError: Failed to acquire resources in all zones in us-east-1." >&2
      exit 3
    fi
    printf '\033[32mJob submitted\033[0m, ID: 1\n'
    ;;
  down)
    if [ -f "$D/missing" ]; then
      echo "sky.exceptions.ClusterDoesNotExist: Cluster '$3' does not exist." >&2
      exit 1
    fi
    if [ -f "$D/broken" ]; then
      echo "RuntimeError: failed to terminate instances" >&2
      exit 1
    fi
    echo "Terminating cluster $3...done."
    ;;
  status)
    cat "$D/status.txt"
    ;;
esac
"#
        );
        let sky = dir.path().join("sky");
        std::fs::write(&sky, script).unwrap();
        std::fs::set_permissions(&sky, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeSky { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.path(name), "").unwrap();
    }

    fn provisioner(&self, juicefs: bool) -> SkyPilotProvisioner {
        let mut cfg = SkyPilotConfig::new(self.path("work"), "/usr/local/bin/crosslogic");
        cfg.sky_binary = self.path("sky");
        if juicefs {
            cfg.juicefs_meta_url = Some(SecretString::from(JUICEFS_URL));
        }
        SkyPilotProvisioner::new(cfg).unwrap()
    }

    /// Recorded invocations: (argv, token env, juicefs env).
    fn calls(&self) -> Vec<(Vec<String>, String, String)> {
        let text = std::fs::read_to_string(self.path("record")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(3)
            .map(|c| {
                let argv = c[0].split('\t').skip(1).map(str::to_string).collect();
                let token = c[1].strip_prefix("TOKEN\t").unwrap().to_string();
                let jfs = c[2].strip_prefix("JUICEFS\t").unwrap().to_string();
                (argv, token, jfs)
            })
            .collect()
    }
}

#[tokio::test]
async fn cli_launch_passes_secrets_by_environment_and_streams_output() {
    let sky = FakeSky::new();
    let p = sky.provisioner(true);
    let (log, mut rx) = JobLog::channel();
    let handle = p.launch(aws_spec(), log).await.unwrap();
    assert_eq!(handle.cluster_name, "cic-aws-us-east-1-a10g-spot-7f3a");
    assert_eq!(handle.endpoint_url, None);

    let yaml_path = sky.path("work/cic-aws-us-east-1-a10g-spot-7f3a.yaml");
    let calls = sky.calls();
    assert_eq!(calls.len(), 1);
    let (argv, token, jfs) = &calls[0];
    let expected: Vec<String> = [
        "launch",
        "-c",
        "cic-aws-us-east-1-a10g-spot-7f3a",
        "-y",
        "-d",
        "--secret",
        "CROSSLOGIC_NODE_TOKEN",
        "--secret",
        "JUICEFS_META_URL",
        yaml_path.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(argv, &expected);
    assert_eq!(token, TOKEN);
    assert_eq!(jfs, JUICEFS_URL);
    assert!(!argv.iter().any(|a| a.contains(TOKEN) || a.contains("jfs-pass")));

    // The task file: what `sky` read, no secret values, owner-only.
    let launched = std::fs::read_to_string(sky.path("launched.yaml")).unwrap();
    assert_eq!(launched, render_task(&aws_spec(), &aws_config(), false).unwrap());
    assert!(!launched.contains(TOKEN) && !launched.contains("jfs-pass"));
    let mode = std::fs::metadata(&yaml_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let lines = drain(&mut rx);
    for want in [
        "Considered resources (1 node):",
        "Launching a new cluster 'cic-aws-us-east-1-a10g-spot-7f3a'.",
        "  Provisioning instances ...",
        "Job submitted, ID: 1",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want:?} not in {lines:?}");
    }
    assert!(!lines.iter().any(|l| l.contains(TOKEN)));
}

#[tokio::test]
async fn cli_launch_without_juicefs_names_only_the_token() {
    let sky = FakeSky::new();
    let p = sky.provisioner(false);
    p.launch(gcp_spec(), JobLog::discard()).await.unwrap();
    let calls = sky.calls();
    let (argv, token, jfs) = &calls[0];
    assert_eq!(
        argv[..7],
        [
            "launch",
            "-c",
            "cic-gcp-a100-80gb-od-19c0",
            "-y",
            "-d",
            "--secret",
            "CROSSLOGIC_NODE_TOKEN"
        ]
    );
    assert_eq!(argv.len(), 8);
    assert_eq!(token, TOKEN);
    assert_eq!(jfs, "<unset>");
}

#[tokio::test]
async fn cli_launch_failure_reports_the_output_tail() {
    let sky = FakeSky::new();
    sky.touch("fail");
    let p = sky.provisioner(false);
    let (log, mut rx) = JobLog::channel();
    let err = p.launch(aws_spec(), log).await.unwrap_err();
    let ProvisionError::Failed(msg) = err else {
        panic!("{err:?}")
    };
    assert!(msg.contains("Failed to acquire resources in all zones"), "{msg}");
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(!msg.contains(TOKEN));
    assert!(drain(&mut rx).iter().any(|l| l.contains("ResourcesUnavailableError")));
}

#[tokio::test]
async fn cli_down_and_idempotence() {
    let sky = FakeSky::new();
    let p = sky.provisioner(false);
    let (log, mut rx) = JobLog::channel();
    p.terminate("cic-aws-us-east-1-a10g-spot-7f3a", log).await.unwrap();
    assert!(drain(&mut rx).iter().any(|l| l.contains("Terminating cluster")));

    sky.touch("missing");
    p.terminate("cic-gone-1", JobLog::discard()).await.unwrap();

    let calls = sky.calls();
    assert_eq!(calls[0].0, ["down", "-y", "cic-aws-us-east-1-a10g-spot-7f3a"]);
    assert_eq!(calls[0].1, "<unset>");
    assert_eq!(calls[1].0, ["down", "-y", "cic-gone-1"]);

    std::fs::remove_file(sky.path("missing")).unwrap();
    sky.touch("broken");
    let err = p.terminate("cic-stuck-1", JobLog::discard()).await.unwrap_err();
    assert!(err.to_string().contains("failed to terminate instances"), "{err}");

    // Names that could be options or paths never reach `sky`.
    assert!(p.terminate("-y", JobLog::discard()).await.is_err());
    assert_eq!(sky.calls().len(), 3);
}

#[tokio::test]
async fn cli_list_parses_sky_status() {
    let sky = FakeSky::new();
    std::fs::write(
        sky.path("status.txt"),
        "Clusters\n\
NAME                              INFRA              RESOURCES                               STATUS   AUTOSTOP  LAUNCHED\n\
dev-box                           AWS (us-west-2)    1x(cpus=8, mem=32, m6i.2xlarge, ...)    STOPPED  -         2 days ago\n\
cic-gcp-a100-80gb-od-19c0         GCP (us-west1)     1x(gpus=A100-80GB:2, ...)               INIT     -         1 min ago\n\
cic-aws-us-east-1-a10g-spot-7f3a  AWS (us-east-1)    1x(gpus=A10G:1, g5.xlarge, ...)         UP       -         5 mins ago\n\
\n\
Managed jobs\n\
No in-progress managed jobs.\n",
    )
    .unwrap();
    let p = sky.provisioner(false);
    assert_eq!(
        p.list().await.unwrap(),
        ["cic-aws-us-east-1-a10g-spot-7f3a", "cic-gcp-a100-80gb-od-19c0"]
    );
    assert_eq!(sky.calls()[0].0, ["status"]);

    std::fs::write(sky.path("status.txt"), "Clusters\nNo existing clusters.\n").unwrap();
    assert_eq!(p.list().await.unwrap(), Vec::<String>::new());

    std::fs::write(sky.path("status.txt"), "Error: something unexpected\n").unwrap();
    assert!(p.list().await.is_err());
}

#[tokio::test]
async fn cli_missing_binary_is_an_error() {
    let mut cfg = SkyPilotConfig::new(tempfile::tempdir().unwrap().path(), "/usr/local/bin/crosslogic");
    cfg.sky_binary = PathBuf::from("/nonexistent/sky");
    let p = SkyPilotProvisioner::new(cfg).unwrap();
    assert!(p.list().await.is_err());
}

// ---------------------------------------------------------------- REST mode

#[derive(Default)]
struct ApiState {
    /// (method path, JSON body or query, authorization header)
    calls: Mutex<Vec<(String, Value, Option<String>)>>,
}

type Shared = Arc<ApiState>;

fn record(state: &ApiState, what: &str, value: Value, headers: &HeaderMap) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state.calls.lock().unwrap().push((what.to_string(), value, auth));
}

fn with_id(id: &str) -> Response {
    ([("X-Skypilot-Request-ID", id.to_string())], Json(json!({}))).into_response()
}

async fn launch(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    record(&s, "POST /launch", body.clone(), &headers);
    if body["cluster_name"]
        .as_str()
        .unwrap_or_default()
        .starts_with("cic-fail")
    {
        with_id("req-launch-fail")
    } else {
        with_id("req-launch-ok")
    }
}

async fn down(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    record(&s, "POST /down", body.clone(), &headers);
    // No header here: the id comes in the body (the fallback).
    let id = if body["cluster_name"] == "cic-gone-1" {
        "req-down-missing"
    } else {
        "req-down-ok"
    };
    Json(json!({ "request_id": id })).into_response()
}

async fn status(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    record(&s, "POST /status", body, &headers);
    with_id("req-status")
}

fn payload(id: &str, status: &str, return_value: Value, error: Value) -> Value {
    json!({
        "request_id": id,
        "name": "sky.x",
        "entrypoint": "gAR=",
        "request_body": "gAR=",
        "status": status,
        "created_at": 1.0,
        "user_id": "u",
        "return_value": return_value.to_string(),
        "error": error.to_string(),
        "pid": null,
        "schedule_type": "long",
    })
}

async fn api_get(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let id = q.get("request_id").cloned().unwrap_or_default();
    record(&s, "GET /api/get", json!(q), &headers);
    // Let the log stream finish first most of the time, as a real launch does.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let failed = |kind: &str, message: &str| {
        let error = json!({"object": "gASVAAAA", "type": kind, "message": message});
        let detail = payload(&id, "FAILED", Value::Null, error);
        (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "detail": detail }))).into_response()
    };
    match id.as_str() {
        "req-launch-ok" => Json(payload(&id, "SUCCEEDED", json!([1, {"handle": "gAR="}]), Value::Null)).into_response(),
        "req-launch-fail" => failed(
            "ResourcesUnavailableError",
            "Failed to provision all possible launchable resources.",
        ),
        "req-down-ok" => Json(payload(&id, "SUCCEEDED", Value::Null, Value::Null)).into_response(),
        "req-down-missing" => failed("ClusterDoesNotExist", "Cluster 'cic-gone-1' does not exist."),
        "req-status" => Json(payload(
            &id,
            "SUCCEEDED",
            json!([
                {"name": "cic-aws-us-east-1-a10g-spot-7f3a", "status": "UP", "handle": "gAR="},
                {"name": "sky-jobs-controller-1a2b", "status": "UP"},
                {"name": "cic-gcp-a100-80gb-od-19c0", "status": "INIT"}
            ]),
            Value::Null,
        ))
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": format!("Request {id:?} not found")})),
        )
            .into_response(),
    }
}

async fn api_stream(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let id = q.get("request_id").cloned().unwrap_or_default();
    record(&s, "GET /api/stream", json!(q), &headers);
    let body = format!(
        "Waiting for 'sky.launch' request to be scheduled: {id}{}\n\
Considered resources (1 node):\r\n\
\u{1b}[32m⚙︎ Launching on AWS us-east-1\u{1b}[0m\n\
\n\
last line without newline",
        " ".repeat(4096)
    );
    ([("content-type", "text/plain")], body).into_response()
}

async fn api_server() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/launch", post(launch))
        .route("/down", post(down))
        .route("/status", post(status))
        .route("/api/get", get(api_get))
        .route("/api/stream", get(api_stream))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), state)
}

fn rest_provisioner(url: &str, token: Option<&str>) -> SkyPilotProvisioner {
    let mut cfg = aws_config();
    cfg.api_server_url = Some(url.to_string());
    cfg.api_server_token = token.map(SecretString::from);
    SkyPilotProvisioner::new(cfg).unwrap()
}

fn calls(state: &ApiState) -> Vec<(String, Value, Option<String>)> {
    state.calls.lock().unwrap().clone()
}

#[tokio::test]
async fn rest_launch_sends_the_task_and_streams_logs() {
    let (url, state) = api_server().await;
    let p = rest_provisioner(&url, Some("sky_service_token_1"));
    let (log, mut rx) = JobLog::channel();
    let handle = p.launch(aws_spec(), log).await.unwrap();
    assert_eq!(handle.cluster_name, "cic-aws-us-east-1-a10g-spot-7f3a");

    let calls = calls(&state);
    let (what, body, auth) = &calls[0];
    assert_eq!(what, "POST /launch");
    assert_eq!(auth.as_deref(), Some("Bearer sky_service_token_1"));
    let task = render_task(&aws_spec(), &aws_config(), true).unwrap();
    assert_eq!(
        body,
        &json!({
            "task": task,
            "cluster_name": "cic-aws-us-east-1-a10g-spot-7f3a",
            "retry_until_up": false,
        })
    );
    let task_doc: Value = serde_yaml_ng::from_str(body["task"].as_str().unwrap()).unwrap();
    assert_eq!(task_doc["secrets"]["CROSSLOGIC_NODE_TOKEN"], TOKEN);

    let mut rest: Vec<_> = calls[1..].iter().map(|(w, v, _)| (w.clone(), v.clone())).collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        rest,
        [
            ("GET /api/get".to_string(), json!({"request_id": "req-launch-ok"})),
            (
                "GET /api/stream".to_string(),
                json!({"request_id": "req-launch-ok", "follow": "true", "format": "plain"})
            ),
        ]
    );

    let lines = drain(&mut rx);
    for want in [
        "Waiting for 'sky.launch' request to be scheduled: req-launch-ok",
        "Considered resources (1 node):",
        "⚙︎ Launching on AWS us-east-1",
        "last line without newline",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want:?} not in {lines:?}");
    }
    assert!(!lines.iter().any(|l| l.contains(TOKEN) || l.is_empty()));
}

#[tokio::test]
async fn rest_launch_failure_carries_the_server_message() {
    let (url, _state) = api_server().await;
    let p = rest_provisioner(&url, None);
    let mut spec = aws_spec();
    spec.cluster_name = "cic-fail-1".into();
    let err = p.launch(spec, JobLog::discard()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ResourcesUnavailableError"), "{msg}");
    assert!(
        msg.contains("Failed to provision all possible launchable resources."),
        "{msg}"
    );
    assert!(!msg.contains(TOKEN));
}

#[tokio::test]
async fn rest_down_and_idempotence() {
    let (url, state) = api_server().await;
    let p = rest_provisioner(&url, None);
    p.terminate("cic-aws-us-east-1-a10g-spot-7f3a", JobLog::discard())
        .await
        .unwrap();
    p.terminate("cic-gone-1", JobLog::discard()).await.unwrap();
    let calls: Vec<_> = calls(&state).into_iter().map(|(w, v, a)| (w, v, a.is_some())).collect();
    assert_eq!(
        calls,
        [
            (
                "POST /down".to_string(),
                json!({"cluster_name": "cic-aws-us-east-1-a10g-spot-7f3a", "purge": false}),
                false
            ),
            ("GET /api/get".to_string(), json!({"request_id": "req-down-ok"}), false),
            (
                "POST /down".to_string(),
                json!({"cluster_name": "cic-gone-1", "purge": false}),
                false
            ),
            (
                "GET /api/get".to_string(),
                json!({"request_id": "req-down-missing"}),
                false
            ),
        ]
    );
}

#[tokio::test]
async fn rest_list_reads_the_status_result() {
    let (url, state) = api_server().await;
    let p = rest_provisioner(&url, None);
    assert_eq!(
        p.list().await.unwrap(),
        ["cic-aws-us-east-1-a10g-spot-7f3a", "cic-gcp-a100-80gb-od-19c0"]
    );
    let calls = calls(&state);
    assert_eq!(calls[0].0, "POST /status");
    assert_eq!(
        calls[0].1,
        json!({"cluster_names": null, "refresh": "NONE", "all_users": true})
    );
    assert_eq!(calls[1].1, json!({"request_id": "req-status"}));
}

#[tokio::test]
async fn rest_http_errors_are_reported() {
    let (url, _state) = api_server().await;
    // A path the stand-in does not serve: 404 from the submit call.
    let p = rest_provisioner(&format!("{url}nothing-here"), None);
    let err = p.list().await.unwrap_err().to_string();
    assert!(err.contains("404"), "{err}");

    // Nobody listening.
    let p = rest_provisioner("http://127.0.0.1:9", None);
    assert!(p.terminate("cic-x-1", JobLog::discard()).await.is_err());

    let mut cfg = aws_config();
    cfg.api_server_url = Some("not a url".into());
    assert!(SkyPilotProvisioner::new(cfg).is_err());
}

/// Against a real SkyPilot API server, when `CROSSLOGIC_SKYPILOT_API_URL`
/// names one: listing works, terminating an unknown cluster succeeds, and a
/// launch that no cloud can satisfy (a GPU that does not exist) fails with
/// SkyPilot's message while its log reaches the job log. Nothing is ever
/// provisioned.
#[tokio::test]
async fn real_api_server_round_trip() {
    let Some(url) = std::env::var("CROSSLOGIC_SKYPILOT_API_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: set CROSSLOGIC_SKYPILOT_API_URL to a SkyPilot API server");
        return;
    };
    let mut cfg = gcp_config();
    cfg.api_server_url = Some(url);
    // A file the (local) server can read, so validation reaches the GPU.
    cfg.agent_binary = std::env::current_exe().unwrap();
    let p = SkyPilotProvisioner::new(cfg).unwrap();
    let names = p.list().await.unwrap();
    assert!(names.iter().all(|n| n.starts_with("cic-")), "{names:?}");
    p.terminate("cic-crosslogic-test-missing-0", JobLog::discard())
        .await
        .unwrap();

    let mut spec = gcp_spec();
    spec.cluster_name = "cic-crosslogic-test-impossible-0".into();
    spec.gpu = Some("NO-SUCH-GPU-CROSSLOGIC".into());
    let (log, mut rx) = JobLog::channel();
    let err = p.launch(spec, log).await.unwrap_err().to_string();
    assert!(!err.contains(TOKEN), "{err}");
    let lines = drain(&mut rx);
    eprintln!("launch error: {err}\nlog:\n{}", lines.join("\n"));
    assert!(!lines.is_empty());
    assert!(!lines.iter().any(|l| l.contains(TOKEN)));
    assert!(!p
        .list()
        .await
        .unwrap()
        .contains(&"cic-crosslogic-test-impossible-0".to_string()));
}
