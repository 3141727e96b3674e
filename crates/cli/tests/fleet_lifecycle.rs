//! Fleet lifecycle end to end with the `local` provisioner and real
//! processes: a spot-preemption notice drains and replaces a node; two
//! control planes on one database never double-launch; a restarted control
//! plane adopts the nodes still running; an operator terminates a node
//! through the admin API and reads its launch log; a hedged deployment keeps
//! its spot/on-demand composition through a correlated preemption.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, put};
use common::Server;
use crosslogic_core::NodeStatus;
use crosslogic_db::repo::nodes::{self, Node, NodeFilter};
use crosslogic_testkit::TestDb;
use serde_json::{json, Value};

const TOKEN: &str = "fleet-e2e-admin-token-0123456789";

/// Kills the recorded node processes when dropped (also on panic).
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::kill_local_nodes(&self.0);
    }
}

async fn all_nodes(db: &TestDb) -> Vec<Node> {
    let f = NodeFilter {
        include_terminated: true,
        ..NodeFilter::default()
    };
    nodes::list(&db.pool, &f, 100).await.unwrap()
}

/// Polls until `done` holds for the node list, or panics with `what`.
async fn wait_nodes(db: &TestDb, secs: u64, what: &str, done: impl Fn(&[Node]) -> bool) -> Vec<Node> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let all = all_nodes(db).await;
        if done(&all) {
            return all;
        }
        assert!(Instant::now() < deadline, "{what}: {all:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn active(all: &[Node]) -> Vec<&Node> {
    all.iter().filter(|n| n.status == NodeStatus::Active).collect()
}

async fn create_deployment(server: &Server, name: &str, min: u32) {
    let resp = reqwest::Client::new()
        .post(server.url("/admin/v1/deployments"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": name, "model_name": "llama-3-8b", "min_replicas": min, "max_replicas": min, "provider": "local" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// A stand-in for the AWS instance metadata service (IMDSv2): no spot
/// notice until `preempt` is set.
async fn fake_imds(preempt: Arc<AtomicBool>) -> String {
    let app = axum::Router::new()
        .route("/latest/api/token", put(|| async { "imds-token" }))
        .route(
            "/latest/meta-data/spot/instance-action",
            get(move || {
                let preempt = preempt.clone();
                async move {
                    if preempt.load(Ordering::SeqCst) {
                        (
                            axum::http::StatusCode::OK,
                            r#"{"action": "terminate", "time": "2026-11-25T12:00:00Z"}"#,
                        )
                    } else {
                        (axum::http::StatusCode::NOT_FOUND, "")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_preempted_node_is_drained_and_replaced() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let _cleanup = Cleanup(data.path().join("nodes"));
    let preempt = Arc::new(AtomicBool::new(false));
    let imds = fake_imds(preempt.clone()).await;
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[
            "--provisioner",
            "local",
            "--node-agent-arg=--cloud",
            "--node-agent-arg=aws",
            "--node-agent-arg=--metadata-url",
            &format!("--node-agent-arg={imds}"),
        ],
    )
    .unwrap();
    create_deployment(&server, "llama-spot", 1).await;
    let all = wait_nodes(&db, 90, "the node never became active", |a| active(a).len() == 1).await;
    let first = active(&all)[0].id;

    // The cloud announces the reclaim: the agent reports it, the node drains
    // (leaves routing), a replacement is launched, and the old one goes.
    preempt.store(true, Ordering::SeqCst);
    let all = wait_nodes(&db, 60, "the preempted node was not drained", |a| {
        a.iter()
            .any(|n| n.id == first && matches!(n.status, NodeStatus::Draining | NodeStatus::Terminated))
    })
    .await;
    assert!(all.iter().all(|n| n.id == first || n.status != NodeStatus::Draining));
    // The replacement is on the same (simulated) spot market, so it would be
    // preempted too: take the notice away before it comes up.
    preempt.store(false, Ordering::SeqCst);
    wait_nodes(&db, 90, "the preempted node was not replaced and terminated", |a| {
        a.iter().any(|n| n.id != first && n.status == NodeStatus::Active)
            && a.iter().any(|n| n.id == first && n.status == NodeStatus::Terminated)
    })
    .await;
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM events WHERE event_type LIKE 'node.%' ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(events.iter().any(|e| e == "node.preempted"), "{events:?}");
    for lifecycle in ["node.launched", "node.registered", "node.active", "node.terminated"] {
        assert!(events.iter().any(|e| e == lifecycle), "no {lifecycle}: {events:?}");
    }
    assert!(server.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}

#[tokio::test]
async fn two_control_planes_never_double_launch_a_restart_adopts_and_an_operator_terminates() {
    let db = TestDb::new().await;
    let nodes_dir = common::data_dir();
    let _cleanup = Cleanup(nodes_dir.path().to_path_buf());
    let (data_a, data_b) = (common::data_dir(), common::data_dir());
    let env = |data: &tempfile::TempDir| {
        vec![
            ("DATABASE_URL".to_string(), db.url.clone()),
            ("ADMIN_API_TOKEN".to_string(), TOKEN.to_string()),
            (
                "CROSSLOGIC_DATA_DIR".to_string(),
                data.path().to_str().unwrap().to_string(),
            ),
        ]
    };
    let start = |data: &tempfile::TempDir| {
        let env = env(data);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start(
            &env,
            &[
                "--provisioner",
                "local",
                "--nodes-dir",
                nodes_dir.path().to_str().unwrap(),
            ],
        )
        .unwrap()
    };
    let a = start(&data_a);
    let b = start(&data_b);
    create_deployment(&a, "llama-pair", 2).await;
    let all = wait_nodes(&db, 120, "two nodes never became active", |x| active(x).len() == 2).await;
    let ids: Vec<_> = active(&all).iter().map(|n| n.id).collect();
    // Several more passes of both reconcilers: still exactly two nodes ever.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let all = all_nodes(&db).await;
    assert_eq!(all.len(), 2, "no double launch: {all:#?}");

    // Both control planes stop (nodes keep running); one comes back.
    assert!(b.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    assert!(a.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    let a = start(&data_a);
    // Its sweep lists the clusters (first pass) and a few passes run.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let all = all_nodes(&db).await;
    assert_eq!(all.len(), 2, "adopted, nothing relaunched: {all:#?}");
    assert!(all
        .iter()
        .all(|n| n.status == NodeStatus::Active && ids.contains(&n.id)));
    let (_, _, secret, _) = common::tenant_with_key(&a, TOKEN, "us-east", json!({})).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(a.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "adopted nodes serve");

    // The operator reads a node's launch log, then terminates it.
    let victim = ids[0];
    let (logs, lines) = common::node_logs(&a, TOKEN, victim).await;
    assert!(lines.iter().any(|l| l.contains("starting engine")), "{logs}");
    assert_eq!(logs["jobs"][0]["kind"], "launch");
    assert_eq!(logs["jobs"][0]["status"], "succeeded");
    let resp = http
        .post(a.url(&format!("/admin/v1/nodes/{victim}/terminate")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert!(body["job_id"].is_string(), "{body}");
    assert_ne!(body["node"]["status"], "active", "out of routing at once: {body}");
    // Followed as text, the log ends once the terminate job is done.
    let followed = tokio::time::timeout(
        Duration::from_secs(60),
        http.get(a.url(&format!("/admin/v1/nodes/{victim}/logs?follow=true")))
            .bearer_auth(TOKEN)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(followed.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(60), followed.text())
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.contains("[launch] ") && text.contains("[terminate] terminated"),
        "{text}"
    );
    wait_nodes(&db, 60, "the terminated node was not replaced", |x| {
        x.iter().any(|n| n.id == victim && n.status == NodeStatus::Terminated) && active(x).len() == 2
    })
    .await;
    // Bad input is refused with a clear message.
    let resp = http
        .get(a.url(&format!("/admin/v1/nodes/{victim}/logs?follow=maybe")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "a bad query value names its parameter");
    assert!(a.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}

#[tokio::test]
async fn load_scales_a_deployment_up_and_its_end_scales_it_back_down_to_min() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let _cleanup = Cleanup(data.path().join("nodes"));
    // Slow simulated engines: each request stays in flight for ~30 s.
    let engine = format!(
        "{} engine-sim --served-model-name {{model}} --port {{port}} --itl-ms 100 --output-tokens 300",
        common::BIN
    );
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
            ("AUTOSCALE_TARGET_IN_FLIGHT", "2"),
            ("AUTOSCALE_UPSCALE_DELAY", "1s"),
            ("AUTOSCALE_DOWNSCALE_DELAY", "3s"),
            ("RECONCILE_INTERVAL", "500ms"),
        ],
        &["--provisioner", "local", "--engine-command", &engine],
    )
    .unwrap();
    let resp = reqwest::Client::new()
        .post(server.url("/admin/v1/deployments"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "llama-elastic", "model_name": "llama-3-8b", "min_replicas": 1, "max_replicas": 3, "provider": "local" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    wait_nodes(&db, 90, "the first node never became active", |a| active(a).len() == 1).await;
    let (_, _, secret, _) =
        common::tenant_with_key(&server, TOKEN, "us-east", json!({ "concurrency_limit": 20 })).await;

    let http = reqwest::Client::new();
    let quick = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 2 });
    // The gateways pick the new node up within their route refresh.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&secret)
            .json(&quick)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never routable: {}", r.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Eight long requests: 8 in flight / 2 per replica → 4, clamped to max 3.
    let mut load = Vec::new();
    for i in 0..8 {
        let (http, url, secret) = (http.clone(), server.url("/v1/chat/completions"), secret.clone());
        load.push(tokio::spawn(async move {
            let body = json!({ "model": "llama-3-8b", "max_tokens": 300,
                "messages": [{ "role": "user", "content": format!("load {i}") }] });
            http.post(url)
                .bearer_auth(secret)
                .json(&body)
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for task in &mut load {
        if task.is_finished() {
            panic!("a load request ended early: {:?}", task.await);
        }
    }
    wait_nodes(&db, 90, "load did not scale the deployment up to max", |a| {
        active(a).len() == 3
    })
    .await;
    let all = all_nodes(&db).await;
    assert_eq!(all.len(), 3, "never more than max: {all:#?}");

    // The load goes away (clients disconnect; the engines stop the work):
    // after the downscale delay the excess drains and is terminated.
    for task in &load {
        task.abort();
    }
    let all = wait_nodes(&db, 90, "the deployment did not scale back down to min", |a| {
        active(a).len() == 1 && a.iter().filter(|n| n.status == NodeStatus::Terminated).count() == 2
    })
    .await;
    assert_eq!(all.len(), 3, "nothing relaunched on the way down");
    let scaled: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM events WHERE event_type = 'deployment.scaled' ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let launched: u64 = scaled
        .iter()
        .filter(|p| p["action"] == "launch")
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert_eq!(launched, 3, "min 1, then 2 more for the load: {scaled:?}");
    assert!(scaled.iter().any(|p| p["action"] == "drain"), "{scaled:?}");
    assert!(server.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}

/// The `hedged` capacity policy end to end with the local provisioner (its
/// spot nodes are local processes marked spot): an on-demand base, spot with
/// one extra replica, the on-demand fallback drained once spot serves; a
/// correlated preemption of every spot node launches their replacements on
/// the notice, with on-demand covering until they serve.
#[tokio::test]
async fn a_hedged_deployment_keeps_its_composition_through_a_correlated_preemption() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let _cleanup = Cleanup(data.path().join("nodes"));
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &["--provisioner", "local"],
    )
    .unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/admin/v1/deployments"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "llama-hedged", "model_name": "llama-3-8b", "min_replicas": 2, "max_replicas": 2,
                       "provider": "local", "capacity_policy": "hedged", "on_demand_base": 1, "spot_overprovision": 1 }))
        .send()
        .await
        .unwrap();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            &created["capacity_policy"],
            &created["use_spot"],
            &created["on_demand_base"],
            &created["spot_overprovision"]
        ),
        (&json!("hedged"), &json!(true), &json!(1), &json!(1)),
        "{created}"
    );
    // Target 2 = 1 on-demand base + 1 spot, plus 1 extra spot; while no spot
    // replica serves, one more on-demand covers. Steady: 2 spot + 1 on-demand.
    let steady = |a: &[Node]| {
        let act = active(a);
        act.iter().filter(|n| n.spot_instance).count() == 2
            && act.iter().filter(|n| !n.spot_instance).count() == 1
            && a.iter().all(|n| {
                matches!(
                    n.status,
                    NodeStatus::Active | NodeStatus::Terminated | NodeStatus::Draining
                )
            })
    };
    let all = wait_nodes(&db, 120, "never reached 2 spot + 1 on-demand", steady).await;
    let spot: Vec<_> = active(&all).iter().filter(|n| n.spot_instance).map(|n| n.id).collect();
    let launched_before = all.len();

    // One zone reclaimed: both spot replicas get their notice at once.
    for id in &spot {
        crosslogic_control::agent::preempted(&db.pool, *id, "spot interruption notice (test)")
            .await
            .unwrap();
    }
    // Replacements are launched on the notice: new spot nodes exist while
    // the preempted ones are still draining or just gone, and on-demand
    // covers the gap (a second on-demand node).
    let all = wait_nodes(&db, 30, "no replacement on the notice", |a| {
        a.iter().filter(|n| n.spot_instance && !spot.contains(&n.id)).count() >= 2
            && a.iter().filter(|n| !n.spot_instance).count() >= 3
    })
    .await;
    assert!(all.len() >= launched_before + 3, "{all:#?}");
    // Back to the composition: the new spot replicas serve, the fallback
    // on-demand replica is drained, the preempted ones are terminated.
    let all = wait_nodes(&db, 120, "did not return to 2 spot + 1 on-demand", |a| {
        steady(a)
            && spot
                .iter()
                .all(|id| a.iter().any(|n| n.id == *id && n.status == NodeStatus::Terminated))
    })
    .await;
    assert!(active(&all).iter().all(|n| !spot.contains(&n.id)));
    let scaled: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'deployment.scaled'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(scaled >= 3, "launches and drains are evented: {scaled}");

    // The policy's settings are validated and changed through the API.
    let id = created["id"].as_str().unwrap();
    let resp = http
        .patch(server.url(&format!("/admin/v1/deployments/{id}")))
        .bearer_auth(TOKEN)
        .json(&json!({ "capacity_policy": "spot", "on_demand_base": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "on_demand_base", "{body}");
    let resp = http
        .patch(server.url(&format!("/admin/v1/deployments/{id}")))
        .bearer_auth(TOKEN)
        .json(&json!({ "use_spot": false }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (&body["capacity_policy"], &body["use_spot"]),
        (&json!("on_demand"), &json!(false)),
        "{body}"
    );
    assert!(server.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}
