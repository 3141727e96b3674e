//! The node agent API and the health monitor against a real database:
//! per-node credentials, on-prem registration, status transitions with their
//! events, and missed heartbeats turning nodes unhealthy and then dead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use crosslogic_control::agent::{router, AgentState};
use crosslogic_control::health::{check_once, HealthConfig};
use crosslogic_core::{NodeStatus, Provider};
use crosslogic_db::repo::nodes;
use crosslogic_testkit::TestDb;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

const REGISTRATION: &str = "onprem-registration-token-0123";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start(db: &TestDb) -> Api {
        crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
        let app = router(AgentState::new(
            db.pool.clone(),
            Some(&SecretString::from(REGISTRATION.to_owned())),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, axum::Router::from(app)).await });
        Api {
            base: format!("http://{addr}/agent/v1"),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A node as the provisioner leaves it: launching, with a credential.
async fn launched_node(db: &TestDb) -> (Uuid, String) {
    let (token, hash) = crosslogic_core::keys::generate_node_token(&mut rand::rngs::OsRng);
    let n = nodes::create(
        &db.pool,
        &nodes::NewNode {
            cluster_name: format!("cic-aws-us-east-a10g-spot-{}", Uuid::new_v4().simple()),
            provider: Provider::Aws,
            region_code: Some("us-east".into()),
            instance_type: Some("g5.xlarge".into()),
            gpu_type: Some("A10G".into()),
            gpu_count: 1,
            vram_total_gb: Some(24),
            model_name: "llama-3-8b".into(),
            deployment_id: None,
            spot_instance: true,
            agent_token_hash: Some(hash),
            metadata: json!({}),
        },
    )
    .await
    .unwrap();
    (n.id, token)
}

async fn event_types(db: &TestDb, node_id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE payload->>'node_id' = $1 ORDER BY id")
        .bind(node_id.to_string())
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

fn beat(healthy: bool) -> Value {
    json!({ "running": 2, "waiting": 1, "tokens_per_second": 42.5, "kv_cache_usage": 0.25, "engine_healthy": healthy })
}

#[tokio::test]
async fn a_launched_node_registers_its_endpoint_and_becomes_active_on_a_healthy_heartbeat() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let (id, token) = launched_node(&db).await;
    let reg = json!({ "node_id": id, "endpoint_url": "http://10.0.0.7:8000", "internal_ip": "10.0.0.7", "external_id": "i-0abc" });

    let (status, body) = api.post("/register", "cln_wrong", reg.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = api.post("/register", &token, reg).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["node_token"], Value::Null);
    assert_eq!(body["heartbeat_interval_secs"], 5);
    let node = nodes::get(&db.pool, id).await.unwrap();
    assert_eq!(
        (node.status, node.endpoint_url.as_deref()),
        (NodeStatus::Initializing, Some("http://10.0.0.7:8000"))
    );
    assert_eq!(node.node_id_external.as_deref(), Some("i-0abc"));

    let (status, body) = api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    assert_eq!(
        (status, body["status"].as_str(), body["drain"].as_bool()),
        (StatusCode::OK, Some("active"), Some(false))
    );
    let node = nodes::get(&db.pool, id).await.unwrap();
    assert_eq!((node.running_requests, node.waiting_requests), (2, 1));
    assert_eq!(
        nodes::routable(&db.pool).await.unwrap().len(),
        1,
        "an active node with an endpoint is routable"
    );
    // Repeating a healthy heartbeat changes nothing and publishes nothing.
    api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    // The engine reports unhealthy, then recovers.
    let (_, body) = api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(false)).await;
    assert_eq!(body["status"], "unhealthy");
    let (_, body) = api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    assert_eq!(body["status"], "active");
    assert_eq!(
        event_types(&db, id).await,
        ["node.registered", "node.active", "node.unhealthy", "node.active"]
    );

    let (status, _) = api
        .post(&format!("/nodes/{id}/heartbeat"), &token, json!({ "running": 1 }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .post(&format!("/nodes/{}/heartbeat", Uuid::new_v4()), &token, beat(true))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    db.drop_db().await;
}

#[tokio::test]
async fn preemption_drains_and_deregistration_terminates() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let (id, token) = launched_node(&db).await;
    api.post(
        "/register",
        &token,
        json!({ "node_id": id, "endpoint_url": "http://10.0.0.8:8000" }),
    )
    .await;
    api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    let (status, _) = api
        .post(
            &format!("/nodes/{id}/preemption"),
            &token,
            json!({ "provider": "aws", "notice": "{\"action\":\"terminate\"}" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    assert_eq!(
        (body["status"].as_str(), body["drain"].as_bool()),
        (Some("draining"), Some(true))
    );
    assert!(
        nodes::routable(&db.pool).await.unwrap().is_empty(),
        "a draining node must not get new work"
    );
    let (status, _) = api.post(&format!("/nodes/{id}/deregister"), &token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let node = nodes::get(&db.pool, id).await.unwrap();
    assert_eq!(node.status, NodeStatus::Terminated);
    assert!(node.terminated_at.is_some());
    assert_eq!(
        event_types(&db, id).await,
        ["node.registered", "node.active", "node.preempted", "node.terminated"]
    );
    // A terminated node's heartbeats are refused.
    let (status, _) = api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    db.drop_db().await;
}

#[tokio::test]
async fn an_on_prem_node_registers_with_the_registration_token_and_gets_its_own_credential() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let reg = json!({ "endpoint_url": "http://192.0.2.10:8000", "model": "llama-3-8b", "region": "eu-west", "gpu_type": "L4", "gpu_count": 2 });
    let (status, _) = api.post("/register", "not-the-registration-token", reg.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api
        .post("/register", REGISTRATION, json!({ "endpoint_url": "http://x:1" }))
        .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("model"))
    );
    let (status, body) = api
        .post(
            "/register",
            REGISTRATION,
            json!({ "endpoint_url": "ftp://x", "model": "llama-3-8b" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("endpoint_url"))
    );

    let (status, body) = api.post("/register", REGISTRATION, reg).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id: Uuid = body["node_id"].as_str().unwrap().parse().unwrap();
    let node_token = body["node_token"].as_str().unwrap().to_owned();
    assert!(node_token.starts_with("cln_"));
    let node = nodes::get(&db.pool, id).await.unwrap();
    assert_eq!(
        (node.provider, node.region_code.as_deref(), node.gpu_count),
        (Provider::OnPrem, Some("eu-west"), 2)
    );
    // The registration token is not a node credential.
    let (status, _) = api
        .post(&format!("/nodes/{id}/heartbeat"), REGISTRATION, beat(true))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body) = api
        .post(&format!("/nodes/{id}/heartbeat"), &node_token, beat(true))
        .await;
    assert_eq!(body["status"], "active");
    db.drop_db().await;
}

#[tokio::test]
async fn silent_nodes_become_unhealthy_then_dead_once_each() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let (id, token) = launched_node(&db).await;
    api.post(
        "/register",
        &token,
        json!({ "node_id": id, "endpoint_url": "http://10.0.0.9:8000" }),
    )
    .await;
    api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    let (never, _) = launched_node(&db).await; // still launching: the reconciler's business, not the monitor's
    let cfg = HealthConfig::default();
    let now = Utc::now();
    assert_eq!(
        check_once(&db.pool, &cfg, now).await.unwrap().unhealthy,
        0,
        "a fresh heartbeat is healthy"
    );
    let later = now + chrono::Duration::seconds(30);
    let pass = check_once(&db.pool, &cfg, later).await.unwrap();
    assert_eq!((pass.unhealthy, pass.dead), (1, 0));
    assert_eq!(
        check_once(&db.pool, &cfg, later).await.unwrap(),
        Default::default(),
        "no repeated transition"
    );
    assert!(nodes::routable(&db.pool).await.unwrap().is_empty());
    let much_later = now + chrono::Duration::seconds(90);
    assert_eq!(check_once(&db.pool, &cfg, much_later).await.unwrap().dead, 1);
    assert_eq!(nodes::get(&db.pool, id).await.unwrap().status, NodeStatus::Dead);
    assert_eq!(nodes::get(&db.pool, never).await.unwrap().status, NodeStatus::Launching);
    assert_eq!(
        event_types(&db, id).await,
        ["node.registered", "node.active", "node.unhealthy", "node.dead"]
    );
    let checks = nodes::recent_health_checks(&db.pool, id, 10).await.unwrap();
    assert_eq!(checks.len(), 4);
    // A dead node cannot come back by heartbeating: the reconciler replaces it.
    let (status, _) = api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    db.drop_db().await;
}

#[tokio::test]
async fn an_operator_drain_reaches_the_agent_and_stops_routing() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let (id, token) = launched_node(&db).await;
    api.post(
        "/register",
        &token,
        json!({ "node_id": id, "endpoint_url": "http://10.0.0.11:8000" }),
    )
    .await;
    api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    let admin = crosslogic_core::Actor::admin(None);
    let node = crosslogic_control::fleet::drain_node(&db.pool, &admin, id)
        .await
        .unwrap();
    assert_eq!(node.status, NodeStatus::Draining);
    assert!(nodes::routable(&db.pool).await.unwrap().is_empty());
    let (_, body) = api.post(&format!("/nodes/{id}/heartbeat"), &token, beat(true)).await;
    assert_eq!(
        (body["status"].as_str(), body["drain"].as_bool()),
        (Some("draining"), Some(true))
    );
    // Draining twice is a no-op; a terminated node cannot be drained.
    crosslogic_control::fleet::drain_node(&db.pool, &admin, id)
        .await
        .unwrap();
    api.post(&format!("/nodes/{id}/deregister"), &token, json!({})).await;
    assert!(crosslogic_control::fleet::drain_node(&db.pool, &admin, id)
        .await
        .is_err());
    assert_eq!(
        event_types(&db, id).await,
        ["node.registered", "node.active", "node.draining", "node.terminated"]
    );
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'node.draining' AND actor = 'admin'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
    db.drop_db().await;
}
