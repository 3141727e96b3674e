//! Two real `crosslogic serve` processes on one database and one Redis:
//! limits are shared (not multiplied by the number of replicas), and a key
//! revoked through one is refused by the other without waiting for a TTL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use crosslogic_testkit::{fixtures, TestDb};
use serde_json::{json, Value};

const TOKEN: &str = "two-gateways-token-0123456789";

#[tokio::test]
async fn two_gateways_share_limits_through_redis_and_see_revocations_at_once() {
    let db = TestDb::new().await;
    let redis = std::env::var("CROSSLOGIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let (_sim, sim_url) = common::start_engine_sim("llama-3-8b").await;

    let (dir_a, dir_b) = (common::data_dir(), common::data_dir());
    let start = |dir: &tempfile::TempDir| {
        Server::start(
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("REDIS_URL", redis.as_str()),
                ("ADMIN_API_TOKEN", TOKEN),
                ("CROSSLOGIC_DATA_DIR", dir.path().to_str().unwrap()),
            ],
            &[],
        )
        .unwrap()
    };
    // Both migrate the same database at start (advisory lock).
    let (a, b) = (start(&dir_a), start(&dir_b));

    fixtures::active_node(&db.pool, &sim_url, "llama-3-8b", "us-east").await;

    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/admin/v1{path}", a.url(""));
    let post = |url: String, body: Value| {
        let http = http.clone();
        async move {
            http.post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let (tid, eid, limited, _) =
        common::tenant_with_key(&a, TOKEN, "us-east", json!({ "rate_limit_requests_per_min": 4 })).await;

    let chat = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 2 });
    let call = |base: String, key: String| {
        let http = http.clone();
        let chat = chat.clone();
        async move {
            http.post(format!("{base}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&chat)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // An unlimited key warms both gateways up (their route refresh sees the
    // node, the key gets cached) without touching the limited key's budget.
    let key = post(admin(&format!("/tenants/{tid}/keys")), json!({ "environment_id": eid })).await;
    let (secret, kid) = (
        key["key_secret"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
    );
    let mut served = 0;
    for gw in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while call(gw.url(""), secret.clone()).await != 200 {
            assert!(Instant::now() < deadline, "gateway never routed to the node");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        served += 1;
    }
    let mut statuses = Vec::new();
    for gw in [&a, &b, &a, &b, &b] {
        statuses.push(call(gw.url(""), limited.clone()).await);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429],
        "4 requests/min shared by both gateways"
    );

    served += 4;
    // Revocation through A reaches B (which has the key cached) without a TTL.
    post(admin(&format!("/keys/{kid}/revoke")), json!({})).await;
    let revoked = Instant::now();
    loop {
        let status = call(b.url(""), secret.clone()).await;
        if status == 401 {
            break;
        }
        if status == 200 {
            served += 1; // served before the revocation reached B
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(10),
            "gateway B still accepts a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "gateway B refused the revoked key {:?} after revocation on A",
        revoked.elapsed()
    );
    assert!(a.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    assert!(b.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, served, "one usage row per served request across both gateways");
    db.drop_db().await;
}
