//! `crosslogic serve --provisioner skypilot` end to end against a recording
//! stand-in for the SkyPilot API server: a cloud deployment is placed on the
//! cheapest GPU that fits, launched with a task whose credential matches the
//! node's stored hash (as a SkyPilot secret), its launch log streamed into
//! the admin API; deleting the deployment tears the cluster down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Json;
use common::Server;
use crosslogic_core::{NodeStatus, Provider};
use crosslogic_db::repo::nodes::{self, NodeFilter};
use crosslogic_testkit::TestDb;
use serde_json::{json, Value};

const TOKEN: &str = "skypilot-e2e-admin-token-0123456789";

#[derive(Default)]
struct Sky {
    /// (path, body) of every mutating call.
    calls: Mutex<Vec<(String, Value)>>,
    /// Clusters up.
    clusters: Mutex<Vec<String>>,
    /// Request id → (kind, cluster).
    requests: Mutex<Vec<(String, String, String)>>,
}

type S = State<Arc<Sky>>;

fn submit(sky: &Sky, kind: &str, cluster: &str) -> (HeaderMap, Json<Value>) {
    let mut reqs = sky.requests.lock().unwrap();
    let id = format!("req-{}", reqs.len() + 1);
    reqs.push((id.clone(), kind.into(), cluster.into()));
    let mut h = HeaderMap::new();
    h.insert("X-Skypilot-Request-ID", id.parse().unwrap());
    (h, Json(json!({ "request_id": id })))
}

async fn launch(State(sky): S, Json(body): Json<Value>) -> (HeaderMap, Json<Value>) {
    let cluster = body["cluster_name"].as_str().unwrap().to_owned();
    sky.calls.lock().unwrap().push(("/launch".into(), body));
    sky.clusters.lock().unwrap().push(cluster.clone());
    submit(&sky, "launch", &cluster)
}

async fn down(State(sky): S, Json(body): Json<Value>) -> (HeaderMap, Json<Value>) {
    let cluster = body["cluster_name"].as_str().unwrap().to_owned();
    sky.calls.lock().unwrap().push(("/down".into(), body));
    sky.clusters.lock().unwrap().retain(|c| *c != cluster);
    submit(&sky, "down", &cluster)
}

async fn status(State(sky): S, Json(_body): Json<Value>) -> (HeaderMap, Json<Value>) {
    submit(&sky, "status", "")
}

async fn api_get(State(sky): S, Query(q): Query<Vec<(String, String)>>) -> Json<Value> {
    let id = q
        .iter()
        .find(|(k, _)| k == "request_id")
        .map(|(_, v)| v.clone())
        .unwrap();
    let kind = sky
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.0 == id)
        .map(|r| r.1.clone())
        .unwrap();
    let value = if kind == "status" {
        let names: Vec<Value> = sky
            .clusters
            .lock()
            .unwrap()
            .iter()
            .map(|c| json!({ "name": c, "status": "UP" }))
            .collect();
        Value::Array(names)
    } else {
        Value::Null
    };
    Json(json!({ "request_id": id, "status": "SUCCEEDED", "return_value": value.to_string(), "error": "null" }))
}

async fn api_stream(Query(_q): Query<Vec<(String, String)>>) -> &'static str {
    "Considered resources (1 node): AWS g5.xlarge\nLaunching on AWS us-east-1\nCluster launched.\n"
}

#[tokio::test]
async fn a_cloud_deployment_is_launched_through_the_skypilot_api_server_and_torn_down_when_deleted() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let sky = Arc::new(Sky::default());
    let app = axum::Router::new()
        .route("/launch", post(launch))
        .route("/down", post(down))
        .route("/status", post(status))
        .route("/api/get", get(api_get))
        .route("/api/stream", get(api_stream))
        .with_state(sky.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sky_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
            ("SKYPILOT_API_SERVER_URL", sky_url.as_str()),
            ("SKYPILOT_CLOUDS", "aws,gcp"),
            ("CONTROL_PLANE_URL", "https://control.example.com"),
            ("RECONCILE_INTERVAL", "300ms"),
        ],
        &["--provisioner", "skypilot"],
    )
    .unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/admin/v1/deployments"))
        .bearer_auth(TOKEN)
        .json(
            &json!({ "name": "llama-aws", "model_name": "llama-3-8b", "min_replicas": 1, "max_replicas": 2,
                       "provider": "aws", "region": "us-east", "use_spot": true }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let dep: Value = resp.json().await.unwrap();

    // The launch reaches the API server (in the background) with a valid task.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Some((_, b)) = sky.calls.lock().unwrap().iter().find(|c| c.0 == "/launch") {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no launch reached the SkyPilot API server");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let node = nodes::list(&db.pool, &NodeFilter::default(), 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(node.provider, Provider::Aws);
    assert_eq!(node.region_code.as_deref(), Some("us-east"));
    assert!(node.spot_instance, "spot first");
    assert_eq!(
        node.status,
        NodeStatus::Launching,
        "launching until its agent registers"
    );
    let cluster = node.cluster_name.clone().unwrap();
    let gpu = node.gpu_type.clone().unwrap();
    assert!(
        cluster.starts_with(&format!("cic-aws-us-east-{}-spot-", gpu.to_lowercase())),
        "{cluster}"
    );
    assert_eq!(body["cluster_name"], cluster.as_str());
    let task: Value = serde_json::to_value(serde_yaml_task(body["task"].as_str().unwrap())).unwrap();
    assert_eq!(
        task["resources"]["infra"], "aws/us-east-1",
        "the provider's own region name"
    );
    assert_eq!(task["resources"]["accelerators"], format!("{gpu}:1"));
    assert_eq!(task["resources"]["use_spot"], true);
    assert_eq!(task["envs"]["MODEL_NAME"], "llama-3-8b");
    assert_eq!(task["envs"]["CROSSLOGIC_CONTROL_URL"], "https://control.example.com");
    assert_eq!(task["envs"]["CROSSLOGIC_NODE_ID"], node.id.to_string());
    // The credential travels as a secret and is the one whose hash is stored.
    let secret = task["secrets"]["CROSSLOGIC_NODE_TOKEN"].as_str().unwrap();
    assert!(
        !task["run"].as_str().unwrap().contains(secret),
        "never inlined in the script"
    );
    let stored = nodes::agent_token_hash(&db.pool, node.id).await.unwrap().unwrap();
    assert_eq!(crosslogic_core::keys::hash(secret), stored);

    // The API server's log stream is the node's launch log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (logs, lines) = common::node_logs(&server, TOKEN, node.id).await;
        if logs["jobs"][0]["status"] == "succeeded" {
            assert!(
                lines.iter().any(|l| l.contains("Launching on AWS us-east-1")),
                "{lines:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the launch job never finished: {logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Launching counts: no second launch while the first node boots.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let launches = sky.calls.lock().unwrap().iter().filter(|c| c.0 == "/launch").count();
    assert_eq!(launches, 1);

    // Deleting the deployment tears the cluster down through `/down`.
    let resp = http
        .delete(server.url(&format!("/admin/v1/deployments/{}", dep["id"].as_str().unwrap())))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = nodes::get(&db.pool, node.id).await.unwrap();
        if n.status == NodeStatus::Terminated {
            break;
        }
        assert!(Instant::now() < deadline, "the node was not terminated: {:?}", n.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let downs: Vec<Value> = sky
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.0 == "/down")
        .map(|c| c.1.clone())
        .collect();
    assert_eq!(downs, [json!({ "cluster_name": cluster, "purge": false })]);
    assert!(sky.clusters.lock().unwrap().is_empty());
    assert!(server.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}

/// The task YAML as JSON.
fn serde_yaml_task(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).unwrap()
}
