//! `crosslogic regions|models|gpus|deployments|nodes …` end to end: the real
//! binary as an HTTP client of a real `crosslogic serve` (no provisioner, so
//! no node is launched), and the API's errors as the operator sees them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{data_dir, Server};
use crosslogic_core::{Provider, ProvisionJobKind};
use crosslogic_db::repo::{nodes, provision_jobs};
use crosslogic_testkit::TestDb;
use serde_json::{json, Value};

const TOKEN: &str = "fleet-cli-admin-token-0123456789";

struct Out {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        assert!(self.ok, "command failed: {}{}", self.stdout, self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// The value of a `label:  value` line of a detail view.
    fn field(&self, label: &str) -> String {
        assert!(self.ok, "command failed: {}{}", self.stdout, self.stderr);
        let prefix = format!("{label}:");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {label:?} line in {}", self.stdout))
            .trim()
            .to_owned()
    }

    /// The table's header cells and its rows (after the `---` line).
    fn table(&self) -> (Vec<String>, Vec<String>) {
        assert!(self.ok, "command failed: {}{}", self.stdout, self.stderr);
        let mut lines = self.stdout.lines();
        let header = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let sep = lines.next().unwrap_or_default();
        assert!(sep.starts_with("---"), "no table in {}", self.stdout);
        (header, lines.map(str::to_owned).collect())
    }

    /// Failed with exit code 1 and `error: <message>` on stderr, nothing on stdout.
    fn assert_error(&self, message: &str) {
        assert!(
            !self.ok && self.code == Some(1),
            "expected a failure: {:?} {}{}",
            self.code,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains(&format!("error: {message}")),
            "{message:?} not in {}",
            self.stderr
        );
        assert!(self.stdout.is_empty(), "{}", self.stdout);
    }
}

/// A client command with only the operator token (no database variables),
/// stdin not a terminal.
fn command(url: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = common::crosslogic(&[]);
    cmd.env_remove("CROSSLOGIC_URL")
        .env("ADMIN_API_TOKEN", TOKEN)
        .args(args)
        .args(["--url", url]);
    cmd
}

fn admin(url: &str, args: &[&str]) -> Out {
    let out = command(url, args).output().unwrap();
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn start(db: &TestDb, data: &tempfile::TempDir) -> Server {
    Server::start(
        &[
            ("DATABASE_URL", &db.url),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[],
    )
    .unwrap()
}

fn count(list: &Value) -> usize {
    list["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_operator_manages_the_catalog_and_deployments_from_the_command_line() {
    let db = TestDb::new().await;
    let data = data_dir();
    let server = start(&db, &data);
    // Only the deployments this test creates (not the seeded paused example).
    sqlx::query("DELETE FROM deployments WHERE metadata->>'example' = 'true'")
        .execute(&db.pool)
        .await
        .unwrap();
    let url = server.url("");
    let admin = |args: &[&str]| admin(&url, args);

    // Regions: the four seeded ones, as a table and as the API's JSON.
    let (header, rows) = admin(&["regions", "list"]).table();
    assert_eq!(
        header,
        ["code", "name", "country", "city", "providers", "cost", "status"]
    );
    let codes: Vec<&str> = rows.iter().filter_map(|r| r.split_whitespace().next()).collect();
    assert_eq!(codes, ["ap-southeast", "eu-west", "in-mumbai", "us-east"]);
    assert_eq!(count(&admin(&["regions", "list", "--json"]).json()), 4);
    let out = admin(&["regions", "get", "in-mumbai"]);
    assert_eq!(out.field("cost multiplier"), "0.7");
    assert_eq!(
        out.field("provider regions"),
        "aws=ap-south-1,azure=centralindia,gcp=asia-south1"
    );

    let region = admin(&[
        "regions",
        "put",
        "sa-east",
        "--name",
        "South America (São Paulo)",
        "--country",
        "Brazil",
        "--city",
        "Sao Paulo",
        "--cloud-providers",
        "aws,gcp",
        "--provider-regions",
        "aws=sa-east-1,gcp=southamerica-east1",
        "--cost-multiplier",
        "1.25",
        "--json",
    ])
    .json();
    assert_eq!(region["code"], "sa-east");
    assert_eq!(region["cost_multiplier"], 1.25);
    assert_eq!(region["cloud_providers"], json!(["aws", "gcp"]));
    assert_eq!(
        region["provider_regions"],
        json!({ "aws": "sa-east-1", "gcp": "southamerica-east1" })
    );
    assert_eq!(region["status"], "active");
    assert_eq!(
        admin(&["regions", "get", "sa-east"]).field("name"),
        "South America (São Paulo)"
    );
    assert_eq!(count(&admin(&["regions", "list", "--json"]).json()), 5);
    // Put replaces: a new status and multiplier, the same code.
    let out = admin(&[
        "regions",
        "put",
        "sa-east",
        "--name",
        "South America",
        "--country",
        "Brazil",
        "--city",
        "Sao Paulo",
        "--cloud-providers",
        "aws",
        "--cost-multiplier",
        "0.95",
        "--status",
        "maintenance",
    ]);
    assert_eq!(
        (
            out.field("status"),
            out.field("cost multiplier"),
            out.field("provider regions")
        ),
        ("maintenance".into(), "0.95".into(), "-".into())
    );
    admin(&[
        "regions",
        "put",
        "sa-east",
        "--name",
        "x",
        "--country",
        "x",
        "--city",
        "x",
        "--cloud-providers",
        "aws",
        "--provider-regions",
        "gcp=southamerica-east1",
        "--cost-multiplier",
        "1",
    ])
    .assert_error("provider_regions: names a region for gcp, which is not in cloud_providers");
    admin(&["regions", "get", "atlantis"]).assert_error("region not found");

    // Models: the seeded catalog, a new model, its deprecation.
    let out = admin(&["models", "list"]);
    let (header, rows) = out.table();
    assert_eq!(header[..3], ["name", "type", "family"]);
    let llama = rows
        .iter()
        .find(|r| r.starts_with("llama-3-8b "))
        .expect("llama-3-8b row");
    for cell in ["chat", "llama", "8B", "8192", "0.05", "active"] {
        assert!(
            llama.split_whitespace().any(|c| c == cell),
            "{cell} missing from {llama}"
        );
    }
    let models = admin(&["models", "list", "--json"]).json();
    assert_eq!(count(&models), 6);
    assert_eq!(admin(&["models", "get", "bge-large-en"]).field("type"), "embedding");
    let model = admin(&[
        "models",
        "put",
        "tiny-1b",
        "--family",
        "tiny",
        "--size",
        "1B",
        "--type",
        "chat",
        "--context-length",
        "4096",
        "--vram-required-gb",
        "4",
        "--price-input-per-million",
        "0.123456",
        "--price-output-per-million",
        "0.2",
        "--tokens-per-second-capacity",
        "300",
        "--metadata",
        r#"{"hf_model":"acme/tiny-1b"}"#,
        "--json",
    ])
    .json();
    assert_eq!(model["price_input_microdollars_per_million"], 123_456);
    assert_eq!(model["price_output_per_million"], 0.2);
    assert_eq!(model["metadata"], json!({ "hf_model": "acme/tiny-1b" }));
    assert_eq!(model["status"], "active");
    let out = admin(&["models", "deprecate", "tiny-1b"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "model tiny-1b is deprecated");
    assert_eq!(admin(&["models", "get", "tiny-1b"]).field("status"), "deprecated");
    admin(&["models", "get", "no-such-model"]).assert_error("model not found");
    // The metadata flag must be a JSON object (refused before any request).
    let out = admin(&["models", "put", "x", "--metadata", "[1]"]);
    assert!(!out.ok && out.stderr.contains("--metadata"), "{}", out.stderr);

    // GPUs: five types at three clouds, cheapest first; a new offer.
    let (header, rows) = admin(&["gpus", "list"]).table();
    assert_eq!(
        header,
        [
            "gpu",
            "provider",
            "vram_gb",
            "on_demand_usd/h",
            "spot_usd/h",
            "available"
        ]
    );
    assert_eq!(rows.len(), 15);
    assert!(rows[0].starts_with("L4 "), "cheapest first: {rows:?}");
    let out = admin(&[
        "gpus",
        "put",
        "L4",
        "local",
        "--vram-gb",
        "24",
        "--on-demand-usd-per-hour",
        "0.0500",
    ]);
    assert_eq!(
        (
            out.field("provider"),
            out.field("on-demand USD/h"),
            out.field("spot USD/h"),
            out.field("available")
        ),
        ("local".into(), "0.05".into(), "no spot offer".into(), "true".into())
    );
    let gpus = admin(&["gpus", "list", "--json"]).json();
    assert_eq!(count(&gpus), 16);
    assert_eq!(gpus["data"][0]["provider"], "local", "the new offer is the cheapest");
    admin(&[
        "gpus",
        "put",
        "L4",
        "local",
        "--vram-gb",
        "24",
        "--on-demand-usd-per-hour",
        "0.12345",
    ])
    .assert_error("on_demand_usd_per_hour: must be a decimal number from 0 to");

    // Deployments: create, and the API's refusals naming the field.
    let created = admin(&[
        "deployments",
        "create",
        "--name",
        "llama-prod",
        "--model",
        "llama-3-8b",
        "--min",
        "1",
        "--max",
        "3",
        "--strategy",
        "packed",
        "--provider",
        "aws",
        "--region",
        "us-east",
        "--gpu-type",
        "auto",
        "--no-spot",
        "--json",
    ])
    .json();
    assert_eq!(
        (
            &created["name"],
            &created["model_name"],
            &created["min_replicas"],
            &created["max_replicas"]
        ),
        (&json!("llama-prod"), &json!("llama-3-8b"), &json!(1), &json!(3))
    );
    assert_eq!(
        (
            &created["strategy"],
            &created["provider"],
            &created["region"],
            &created["use_spot"],
            &created["status"]
        ),
        (
            &json!("packed"),
            &json!("aws"),
            &json!("us-east"),
            &json!(false),
            &json!("active")
        )
    );
    let id = created["id"].as_str().unwrap().to_owned();

    let min_over_max = [
        "deployments",
        "create",
        "--name",
        "llama-bad",
        "--model",
        "llama-3-8b",
        "--min",
        "5",
        "--max",
        "2",
    ];
    admin(&min_over_max).assert_error("min_replicas: must not exceed max_replicas (2), got 5");
    admin(&["deployments", "create", "--name", "tiny", "--model", "tiny-1b"])
        .assert_error("model_name: tiny-1b is deprecated");
    admin(&["deployments", "create", "--name", "llama-prod", "--model", "llama-3-8b"])
        .assert_error("llama-prod: a deployment with this name exists; choose another name");
    // A flag value outside the choices is refused by the parser (usage error, exit 2).
    let out = admin(&[
        "deployments",
        "create",
        "--name",
        "x",
        "--model",
        "llama-3-8b",
        "--strategy",
        "random",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("spread") && out.stderr.contains("packed"),
        "{}",
        out.stderr
    );

    let out = admin(&["deployments", "list"]);
    let (header, rows) = out.table();
    assert_eq!(
        header,
        [
            "id", "name", "model", "status", "current", "min", "max", "strategy", "provider", "region", "gpu",
            "capacity"
        ]
    );
    assert_eq!(rows.len(), 1, "only the created deployment: {rows:?}");
    let cells: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        cells[..8],
        [
            id.as_str(),
            "llama-prod",
            "llama-3-8b",
            "active",
            "0",
            "1",
            "3",
            "packed"
        ]
    );
    assert_eq!(admin(&["deployments", "get", &id]).field("region"), "us-east");

    let out = admin(&["deployments", "update", &id, "--max", "5", "--spot"]);
    assert_eq!(
        (
            out.field("max replicas"),
            out.field("min replicas"),
            out.field("capacity policy")
        ),
        ("5".into(), "1".into(), "spot".into())
    );
    let out = admin(&[
        "deployments",
        "update",
        &id,
        "--capacity-policy",
        "hedged",
        "--on-demand-base",
        "1",
        "--spot-overprovision",
        "2",
    ]);
    assert_eq!(
        (
            out.field("capacity policy"),
            out.field("on-demand base"),
            out.field("spot over-provision")
        ),
        ("hedged".into(), "1".into(), "2".into())
    );
    admin(&[
        "deployments",
        "update",
        &id,
        "--capacity-policy",
        "spot",
        "--on-demand-base",
        "0",
    ])
    .assert_error("on_demand_base: only applies to capacity_policy hedged (this deployment is spot)");
    admin(&["deployments", "update", &id, "--min", "9"])
        .assert_error("min_replicas: must not exceed max_replicas (5), got 9");
    admin(&["deployments", "update", &id]).assert_error("nothing to change");

    let out = admin(&["deployments", "pause", &id]);
    assert_eq!(out.stdout.trim(), format!("deployment {id} (llama-prod) is paused"));
    assert_eq!(admin(&["deployments", "get", &id, "--json"]).json()["status"], "paused");
    let out = admin(&["deployments", "list", "--status", "paused", "--json"]).json();
    assert_eq!(out["data"][0]["id"].as_str(), Some(id.as_str()));
    let out = admin(&["deployments", "resume", &id]);
    assert_eq!(out.stdout.trim(), format!("deployment {id} (llama-prod) is active"));

    // Deleting asks for confirmation; without a terminal it refuses.
    let out = admin(&["deployments", "delete", &id]);
    assert!(!out.ok && out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(admin(&["deployments", "get", &id]).field("status"), "active");
    let out = admin(&["deployments", "delete", &id, "--yes"]);
    assert_eq!(out.stdout.trim(), format!("deployment {id} (llama-prod) is deleted"));
    assert_eq!(admin(&["deployments", "list"]).stdout.trim(), "no deployments");
    let deleted = admin(&["deployments", "list", "--status", "deleted", "--json"]).json();
    assert_eq!(deleted["data"][0]["id"].as_str(), Some(id.as_str()));
    admin(&["deployments", "resume", &id]).assert_error("the deployment is deleted; create a new one");
    admin(&["deployments", "get", &uuid::Uuid::new_v4().to_string()]).assert_error("deployment not found");

    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn an_operator_inspects_drains_and_reads_the_logs_of_nodes() {
    let db = TestDb::new().await;
    let data = data_dir();
    let server = start(&db, &data);
    let url = server.url("");
    let admin = |args: &[&str]| admin(&url, args);

    // No provisioner: no nodes.
    assert_eq!(admin(&["nodes", "list"]).stdout.trim(), "no nodes");
    assert_eq!(count(&admin(&["nodes", "list", "--json"]).json()), 0);
    admin(&["nodes", "get", &uuid::Uuid::new_v4().to_string()]).assert_error("node not found");
    let out = admin(&["nodes", "get", "not-a-uuid"]);
    assert!(
        out.code == Some(2) && out.stderr.contains("invalid value 'not-a-uuid'"),
        "{}",
        out.stderr
    );

    // A node as a provisioner would record it, launching.
    let node = nodes::create(
        &db.pool,
        &nodes::NewNode {
            cluster_name: "cic-cli-test-1".into(),
            provider: Provider::Local,
            region_code: Some("us-east".into()),
            instance_type: None,
            gpu_type: Some("L4".into()),
            gpu_count: 1,
            vram_total_gb: Some(24),
            model_name: "llama-3-8b".into(),
            deployment_id: None,
            spot_instance: false,
            agent_token_hash: None,
            metadata: json!({}),
        },
    )
    .await
    .unwrap();
    let id = node.id.to_string();

    let (header, rows) = admin(&["nodes", "list"]).table();
    assert_eq!(header[..6], ["id", "status", "provider", "region", "gpu", "model"]);
    let cells: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [id.as_str(), "launching", "local", "us-east", "1xL4", "llama-3-8b"]
    );
    let filtered = |args: &[&str]| count(&admin(&[&["nodes", "list", "--json"], args].concat()).json());
    assert_eq!(
        filtered(&["--model", "llama-3-8b", "--status", "launching", "--provider", "local"]),
        1
    );
    assert_eq!(filtered(&["--region", "eu-west"]), 0);
    assert_eq!(filtered(&["--status", "active"]), 0);
    assert_eq!(filtered(&["--deployment", &uuid::Uuid::new_v4().to_string()]), 0);
    let out = admin(&["nodes", "get", &id]);
    assert_eq!(
        (out.field("status"), out.field("cluster"), out.field("region")),
        ("launching".into(), "cic-cli-test-1".into(), "us-east".into())
    );
    assert!(out.stdout.contains("no health checks yet"), "{}", out.stdout);

    // Logs: none yet, then a launch job's lines.
    let out = admin(&["nodes", "logs", &id]);
    assert!(out.ok && out.stdout.is_empty(), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("no launch or terminate jobs"), "{}", out.stderr);
    let job = provision_jobs::start(&db.pool, Some(node.id), "cic-cli-test-1", ProvisionJobKind::Launch)
        .await
        .unwrap();
    provision_jobs::append_lines(&db.pool, job.id, &["pulling image".into(), "engine starting".into()])
        .await
        .unwrap();
    let out = admin(&["nodes", "logs", &id]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].ends_with("Z [launch] pulling image"), "{}", lines[0]);
    assert!(lines[1].ends_with("Z [launch] engine starting"), "{}", lines[1]);
    assert!(out.stderr.contains("a job is still running"), "{}", out.stderr);
    let page = admin(&["nodes", "logs", &id, "--json"]).json();
    assert_eq!(page["running"], true);
    assert_eq!(page["lines"][1]["line"], "engine starting");
    let out = admin(&["nodes", "logs", &id, "--limit", "1"]);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let cursor = page["lines"][0]["id"].to_string();
    assert!(
        out.stderr.contains(&format!("more lines: add --after {cursor}")),
        "{}",
        out.stderr
    );
    let out = admin(&["nodes", "logs", &id, "--after", &cursor]);
    assert!(
        out.stdout.trim_end().ends_with("[launch] engine starting") && out.stdout.lines().count() == 1,
        "{}",
        out.stdout
    );

    // --follow prints what is there, then each new line as it is written,
    // and ends when the job does.
    let mut follower = command(&url, &["nodes", "logs", &id, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("a followed line");
    assert!(next().ends_with("[launch] pulling image"));
    assert!(next().ends_with("[launch] engine starting"));
    provision_jobs::append_lines(&db.pool, job.id, &["node registered".into()])
        .await
        .unwrap();
    assert!(next().ends_with("[launch] node registered"));
    provision_jobs::finish(&db.pool, job.id, None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the follower did not end with the job"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(
        rx.recv_timeout(Duration::from_secs(1)).is_err(),
        "no line after the job ended"
    );
    let out = admin(&["nodes", "logs", &id, "--follow", "--json"]);
    assert!(!out.ok && out.stderr.contains("leave out --json"), "{}", out.stderr);

    // Drain; terminate needs a provisioner to tear a cluster down.
    let out = admin(&["nodes", "drain", &id]);
    assert_eq!(out.stdout.trim(), format!("node {id} is draining"));
    assert_eq!(admin(&["nodes", "get", &id, "--json"]).json()["status"], "draining");
    let out = admin(&["nodes", "terminate", &id]);
    assert!(!out.ok && out.stderr.contains("--yes"), "{}", out.stderr);
    admin(&["nodes", "terminate", &id, "--yes"]).assert_error("this control plane runs no provisioner");
    assert_eq!(admin(&["nodes", "get", &id]).field("status"), "draining");

    drop(server);
    db.drop_db().await;
}
