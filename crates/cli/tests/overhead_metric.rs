//! `crosslogic_gateway_overhead_seconds` means the latency the gateway adds
//! to a served request, not the node's time: with a node that takes ~25 ms
//! per token, streamed and non-streamed requests are each observed once,
//! and their observed overhead is a small fraction of the node's time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, Server};
use crosslogic_testkit::{fixtures, TestDb};
use serde_json::json;

const TOKEN: &str = "overhead-admin-token-0123456789";
const ITL_MS: u64 = 25;
const TOKENS: u64 = 8;

/// The value of the metric line starting with `name` (a `_sum` or `_count`).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn the_overhead_histogram_excludes_the_nodes_time_for_streams_and_bodies() {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = Proc(
        Command::new(common::BIN)
            .args([
                "engine-sim",
                "--served-model-name",
                "llama-3-8b",
                "--port",
                &port.to_string(),
            ])
            .args(["--itl-ms", &ITL_MS.to_string(), "--output-tokens", &TOKENS.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sim_url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{sim_url}/health")).await.is_err() {
        assert!(Instant::now() < deadline, "engine-sim did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data = common::data_dir();
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[],
    )
    .unwrap();
    fixtures::active_node(&db.pool, &sim_url, "llama-3-8b", "us-east").await;
    let (_, _, key, _) = common::tenant_with_key(&server, TOKEN, "us-east", json!({})).await;
    let http = reqwest::Client::new();
    let mut node_time = Duration::ZERO;
    for stream in [true, false, true, false] {
        let body = json!({ "model": "llama-3-8b", "stream": stream, "max_tokens": TOKENS,
                           "messages": [{ "role": "user", "content": "hi" }] });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let started = Instant::now();
            let resp = http
                .post(server.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .unwrap();
            if resp.status() == 503 && Instant::now() < deadline {
                // The routing table has not picked the node up yet (≤ 1 s).
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert_eq!(resp.status(), 200);
            let text = resp.text().await.unwrap();
            assert!(!stream || text.contains("[DONE]"), "{text}");
            let whole = started.elapsed();
            // The node spends (TOKENS - 1) inter-token gaps on each request.
            assert!(whole >= Duration::from_millis(ITL_MS * (TOKENS - 1)), "{whole:?}");
            node_time += Duration::from_millis(ITL_MS * (TOKENS - 1));
            break;
        }
    }
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = metric(
        &text,
        "crosslogic_gateway_overhead_seconds_count{endpoint=\"chat_completions\"}",
    );
    let sum = metric(
        &text,
        "crosslogic_gateway_overhead_seconds_sum{endpoint=\"chat_completions\"}",
    );
    assert_eq!(count, 4.0, "one observation per served request:\n{text}");
    // The node's deliberate 175 ms per request is not counted: what is left
    // is the gateway's own work (far less than the node's time).
    assert!(
        sum < node_time.as_secs_f64() / 2.0,
        "overhead {sum} s for {:?} of node time",
        node_time
    );
    drop((server, sim));
    db.drop_db().await;
}
