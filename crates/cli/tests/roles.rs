//! The scale-out layout: two `crosslogic serve --role gateway` processes and
//! one `--role control`, on one database and one Redis. The control process
//! serves the admin API and the console, the gateways serve `/v1`; limits
//! hold across both gateways, a key revoked on the control plane is refused
//! by both at once, usage from both is metered, and each process answers
//! only its own routes (and documents only those).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use crosslogic_testkit::{fixtures, TestDb};
use serde_json::{json, Value};

const TOKEN: &str = "roles-admin-token-0123456789";

#[tokio::test]
async fn gateways_and_a_control_plane_split_the_work_on_one_database_and_redis() {
    let db = TestDb::new().await;
    let redis = std::env::var("CROSSLOGIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let (_sim, sim_url) = common::start_engine_sim("llama-3-8b").await;
    let dirs = [common::data_dir(), common::data_dir(), common::data_dir()];
    let start = |dir: &tempfile::TempDir, role: &str| {
        Server::start(
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("REDIS_URL", redis.as_str()),
                ("ADMIN_API_TOKEN", TOKEN),
                ("CROSSLOGIC_DATA_DIR", dir.path().to_str().unwrap()),
            ],
            &["--role", role],
        )
        .unwrap()
    };
    let control = start(&dirs[0], "control");
    let (g1, g2) = (start(&dirs[1], "gateway"), start(&dirs[2], "gateway"));
    fixtures::active_node(&db.pool, &sim_url, "llama-3-8b", "us-east").await;

    // The operator works on the control plane.
    let (_, _, key, key_id) =
        common::tenant_with_key(&control, TOKEN, "us-east", json!({ "rate_limit_requests_per_min": 4 })).await;
    let http = reqwest::Client::new();
    let chat = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 2 });
    let send = |server: &Server| {
        http.post(server.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat)
            .send()
    };

    // Each process answers its own routes only.
    let r = http
        .post(control.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the control plane serves no inference");
    let r = http
        .get(g1.url("/admin/v1/tenants"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a gateway serves no admin API");
    assert_eq!(http.get(g1.url("/console/login")).send().await.unwrap().status(), 404);
    assert_eq!(
        http.get(control.url("/console/login")).send().await.unwrap().status(),
        200
    );
    for (server, has, lacks) in [
        (&g1, "/v1/chat/completions", "/admin/v1/tenants"),
        (&control, "/admin/v1/tenants", "/v1/chat/completions"),
    ] {
        let doc: Value = http
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            doc["paths"].get(has).is_some() && doc["paths"].get(lacks).is_none(),
            "{has} / {lacks}"
        );
    }
    for server in [&control, &g1, &g2] {
        assert_eq!(http.get(server.url("/readyz")).send().await.unwrap().status(), 200);
    }

    // Each gateway's routing table picks the node up within a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    for server in [&g1, &g2] {
        loop {
            let models: Value = http
                .get(server.url("/v1/models"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if models["data"].as_array().is_some_and(|d| !d.is_empty()) {
                break;
            }
            assert!(Instant::now() < deadline, "the node is not routed: {models}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Four requests a minute across both gateways, not four each.
    let mut codes = Vec::new();
    for server in [&g1, &g2, &g1, &g2, &g1, &g2] {
        codes.push(send(server).await.unwrap().status().as_u16());
    }
    assert_eq!(codes, [200, 200, 200, 200, 429, 429], "{codes:?}");

    // Usage from both gateways lands in PostgreSQL.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records WHERE status = 'completed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if n == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} usage rows, expected 4");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A key revoked on the control plane is refused by both gateways at once.
    let r = http
        .post(control.url(&format!("/admin/v1/keys/{key_id}/revoke")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(2);
    for server in [&g1, &g2] {
        loop {
            let status = http
                .get(server.url("/v1/models"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .status();
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a revoked key still works on a gateway: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop((control, g1, g2));
    db.drop_db().await;
}

#[test]
fn a_gateway_refuses_to_launch_nodes_and_demo_mode_runs_everything() {
    let (ok, out) = common::run(&[], &["serve", "--role", "gateway", "--provisioner", "local"]);
    assert!(!ok && out.contains("--role control"), "{out}");
    let (ok, out) = common::run(&[], &["serve", "--role", "control", "--demo"]);
    assert!(!ok && out.contains("drop --role control"), "{out}");
    let (ok, out) = common::run(&[], &["serve", "--role", "edge"]);
    assert!(!ok && out.contains("gateway"), "{out}");
}
