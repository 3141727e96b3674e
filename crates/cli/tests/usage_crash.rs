//! Nothing billable is lost when a gateway dies: the real binary under 32
//! concurrent clients (streamed and not) is SIGKILLed at an arbitrary
//! instant, three times; after each restart every request a client saw
//! complete (its whole body, `[DONE]` included) has its usage row — the
//! journal written before the last byte is replayed at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use crosslogic_testkit::{fixtures, TestDb};
use nix::sys::signal::Signal;
use serde_json::json;

const TOKEN: &str = "usage-crash-admin-token-0123456789";

/// One client's loop: requests until the server is gone; returns the
/// request ids whose response it received completely.
async fn client(base: String, key: String, n: usize, done: Arc<Mutex<Vec<String>>>) {
    let http = reqwest::Client::new();
    for i in 0.. {
        let stream = (i + n).is_multiple_of(2);
        let resp = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "llama-3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": stream}))
            .send()
            .await;
        let Ok(resp) = resp else { return };
        if resp.status() != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let Ok(body) = resp.bytes().await else { return };
        let complete = if stream {
            body.windows(6).any(|w| w == b"[DONE]")
        } else {
            serde_json::from_slice::<serde_json::Value>(&body).is_ok()
        };
        if complete {
            done.lock().unwrap().push(id);
        }
    }
}

#[tokio::test]
async fn a_gateway_killed_under_load_keeps_the_usage_of_every_completed_request() {
    let db = TestDb::new().await;
    let (_sim, sim_url) = common::start_engine_sim("llama-3-8b").await;
    let data = common::data_dir();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("ADMIN_API_TOKEN", TOKEN),
        ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
    ];
    let mut server = Server::start(&env, &[]).unwrap();
    fixtures::active_node(&db.pool, &sim_url, "llama-3-8b", "us-east").await;
    let (_, _, key, _) = common::tenant_with_key(
        &server,
        TOKEN,
        "us-east",
        json!({"rate_limit_requests_per_min": 1_000_000, "concurrency_limit": 1000}),
    )
    .await;
    let mut completed: HashSet<String> = HashSet::new();
    for round in 0..3 {
        // Wait until this server routes to the node.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = http
                .post(server.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "llama-3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                completed.insert(r.headers()["x-request-id"].to_str().unwrap().to_owned());
                let _ = r.bytes().await;
                break;
            }
            assert!(Instant::now() < deadline, "the node never became routable");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let done = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..32)
            .map(|n| tokio::spawn(client(server.url(""), key.clone(), n, done.clone())))
            .collect();
        // An arbitrary instant under load.
        tokio::time::sleep(Duration::from_millis(600 + 250 * round)).await;
        assert!(!server.signal_and_wait(Signal::SIGKILL).success());
        for c in clients {
            c.await.unwrap();
        }
        let seen = done.lock().unwrap().clone();
        assert!(
            seen.len() > 50,
            "round {round}: the load barely ran ({} requests)",
            seen.len()
        );
        completed.extend(seen);
        server = Server::start(&env, &[]).unwrap();
        // The restarted gateway replays the journal at start.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ids: Vec<String> = sqlx::query_scalar("SELECT request_id FROM usage_records")
                .fetch_all(&db.pool)
                .await
                .unwrap();
            let have: HashSet<String> = ids.into_iter().collect();
            let missing: Vec<&String> = completed.iter().filter(|id| !have.contains(*id)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {} of {} completed requests have no usage row, e.g. {:?}",
                missing.len(),
                completed.len(),
                &missing[..missing.len().min(3)]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(rows as usize >= completed.len());
    drop(server);
    db.drop_db().await;
}
