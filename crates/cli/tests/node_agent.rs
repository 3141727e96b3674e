//! The GPU node journey end to end with real processes: `engine-sim` as the
//! engine, `crosslogic node-agent` registering it (on-prem registration
//! token) with a real `crosslogic serve`, the gateway routing a tenant's
//! requests to it, and the agent's SIGTERM taking the node out of rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, Server, BIN};
use crosslogic_core::NodeStatus;
use crosslogic_db::repo::nodes;
use crosslogic_testkit::TestDb;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

const TOKEN: &str = "agent-e2e-admin-token-0123456789";
const REGISTRATION: &str = "agent-e2e-registration-0123456789";

#[tokio::test]
async fn a_node_agent_makes_its_engine_routable_and_takes_it_out_on_sigterm() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("NODE_REGISTRATION_TOKEN", REGISTRATION),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[],
    )
    .unwrap();
    let (_sim, sim_url) = common::start_engine_sim("llama-3-8b").await;
    let mut agent = Proc(
        Command::new(BIN)
            .args(["node-agent", "--control-url", &server.url(""), "--engine-url", &sim_url])
            .args(["--advertise-url", &sim_url, "--region", "us-east", "--gpu-type", "L4"])
            .env("CROSSLOGIC_NODE_TOKEN", REGISTRATION)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let (_, _, secret, _) = common::tenant_with_key(&server, TOKEN, "us-east", json!({})).await;
    let http = reqwest::Client::new();
    let chat =
        json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hello node" }], "max_tokens": 3 });
    let call = || {
        let http = http.clone();
        let (url, secret, chat) = (server.url("/v1/chat/completions"), secret.clone(), chat.clone());
        async move {
            http.post(url)
                .bearer_auth(secret)
                .json(&chat)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    // Agent registers, heartbeats a healthy engine; the gateway routes to it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while call().await != 200 {
        assert!(Instant::now() < deadline, "the node never became routable");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = nodes::list(&db.pool, &nodes::NodeFilter::default(), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let node = &listed[0];
    assert_eq!(
        node.endpoint_url.as_deref(),
        Some(sim_url.as_str()),
        "the registered endpoint is the advertised one"
    );
    assert_eq!(
        (node.status, node.model_name.as_deref()),
        (NodeStatus::Active, Some("llama-3-8b"))
    );

    // SIGTERM: the agent deregisters and the node leaves rotation.
    kill(Pid::from_raw(agent.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "agent exited with {status}");
    assert_eq!(
        nodes::get(&db.pool, node.id).await.unwrap().status,
        NodeStatus::Terminated
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while call().await != 503 {
        assert!(Instant::now() < deadline, "a terminated node still gets traffic");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM events WHERE event_type LIKE 'node.%' ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(events, ["node.registered", "node.active", "node.terminated"]);
    assert!(server.signal_and_wait(Signal::SIGTERM).success());
    db.drop_db().await;
}
