//! The official `openai` Python SDK against the real `crosslogic` binary,
//! with real simulator node processes (`crosslogic engine-sim`): every
//! endpoint, streaming with and without usage, and the usage rows in
//! PostgreSQL equal to what the client saw.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Server;
use crosslogic_testkit::{fixtures, TestDb};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const TOKEN: &str = "e2e-admin-token-0123456789";

fn python() -> String {
    std::env::var("CROSSLOGIC_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test]
async fn the_official_openai_sdk_works_end_to_end_and_every_token_is_metered() {
    let db = TestDb::new().await;
    let (_chat_sim, chat_url) = common::start_engine_sim("llama-3-8b").await;
    let (_emb_sim, emb_url) = common::start_engine_sim("bge-large-en").await;
    let data = common::data_dir();
    let server = Server::start(
        &[
            ("DATABASE_URL", &db.url),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[],
    )
    .unwrap();
    fixtures::active_node(&db.pool, &chat_url, "llama-3-8b", "us-east").await;
    fixtures::active_node(&db.pool, &emb_url, "bge-large-en", "us-east").await;

    // Operator journey: tenant, environment, key through the admin API.
    let (tid, _, secret, _) = common::tenant_with_key(&server, TOKEN, "us-east", json!({ "name": "sdk" })).await;
    let tid = tid.as_str();
    let secret = secret.as_str();
    tokio::time::sleep(Duration::from_millis(1500)).await; // the gateway's next route refresh sees the nodes

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/openai_sdk_check.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .env("OPENAI_BASE_URL", server.url("/v1"))
        .env("OPENAI_API_KEY", secret)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or_else(|| panic!("no case {name}"))
            .clone()
    };

    let chat = case("chat");
    let stream = case("chat_stream");
    assert_eq!(
        stream["saw_usage"], false,
        "usage chunk leaked to a client that did not ask"
    );
    assert_eq!(
        stream["text"], chat["text"],
        "streamed text differs from the non-streamed one"
    );
    assert_eq!(case("chat_stream_usage")["usage"], chat["usage"]);
    assert_eq!(case("embeddings")["count"], 2);
    assert_eq!(case("models")["ids"], json!(["bge-large-en", "llama-3-8b"]));
    assert_eq!(case("error_model")["code"], "model_not_found");
    assert_eq!(case("error_model")["status"], 404);

    // Prometheus metrics with bounded labels.
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "crosslogic_gateway_requests_total{endpoint=\"chat_completions\",status=\"2xx\"} 3",
        "crosslogic_gateway_requests_total{endpoint=\"chat_completions\",status=\"4xx\"} 1",
        "crosslogic_gateway_overhead_seconds_bucket",
        "crosslogic_gateway_tokens_total{model=\"llama-3-8b\",kind=\"completion\"}",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}:\n{metrics}");
    }
    assert!(!metrics.contains(tid), "a tenant id leaked into metric labels");

    // Every request the client saw has exactly one usage row with its tokens;
    // the stream that hid usage from the client is metered like the others.
    let status = server.signal_and_wait(Signal::SIGTERM); // drains the usage writer
    assert!(status.success());
    for (name, expected) in [
        ("chat", chat["usage"].clone()),
        ("chat_stream", chat["usage"].clone()),
        ("chat_stream_usage", chat["usage"].clone()),
        ("completion", case("completion")["usage"].clone()),
        ("embeddings", case("embeddings")["usage"].clone()),
    ] {
        let rid = case(name)["request_id"].as_str().unwrap().to_owned();
        let row: (i32, i32, String) =
            sqlx::query_as("SELECT prompt_tokens, completion_tokens, status FROM usage_records WHERE request_id = $1")
                .bind(&rid)
                .fetch_one(&db.pool)
                .await
                .unwrap_or_else(|e| panic!("{name}: no usage row for {rid}: {e}"));
        assert_eq!(
            i64::from(row.0),
            expected["prompt_tokens"].as_i64().unwrap(),
            "{name} prompt tokens"
        );
        assert_eq!(
            i64::from(row.1),
            expected["completion_tokens"].as_i64().unwrap(),
            "{name} completion tokens"
        );
        assert_eq!(row.2, "completed", "{name}");
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, 5, "one row per served request, none for the failed one");
    db.drop_db().await;
}
