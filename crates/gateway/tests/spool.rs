//! Usage survives a PostgreSQL outage: requests keep being served from the
//! cached key and routes, their usage is spooled to disk, and replayed
//! without loss or duplicates when the database is back. Uses a private
//! PostgreSQL (the embedded supervisor) so the test can stop and restart it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crosslogic_core::ApiKeyRole;
use crosslogic_db::embedded::EmbeddedPostgres;
use crosslogic_db::repo::api_keys::KeyLimits;
use crosslogic_db::repo::environments::NewEnvironment;
use crosslogic_gateway::GatewayConfig;
use crosslogic_node::sim::{self, SimConfig};
use crosslogic_testkit::fixtures;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn spooled_records(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn usage_is_spooled_while_postgres_is_down_and_replayed_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pg = EmbeddedPostgres::start(data.path(), None).await.unwrap();
    let target = pg.connection();
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(crosslogic_db::pool::connect_options(&target))
        .await
        .unwrap();
    crosslogic_db::migrate::migrate(&pool).await.unwrap();

    let t = fixtures::tenant(&pool, "spool@x.test").await;
    let env = fixtures::environment(
        &pool,
        NewEnvironment {
            tenant_id: t.id,
            name: "prod".into(),
            ..Default::default()
        },
    )
    .await;
    let limits = KeyLimits {
        rate_limit_requests_per_min: Some(10_000),
        ..Default::default()
    };
    let (key, _) = fixtures::api_key(&pool, t.id, env.id, ApiKeyRole::Developer, limits).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim::serve(
        listener,
        SimConfig {
            served_model_name: "llama-3-8b".into(),
            ..SimConfig::default()
        },
        CancellationToken::new(),
    ));
    fixtures::active_node(&pool, &sim_url, "llama-3-8b", "us-east").await;

    let spool = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(spool.path());
    cfg.spool_dir = spool.path().to_path_buf();
    cfg.refresh_interval = Duration::from_millis(200);
    let tasks = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let app = crosslogic_gateway::start(pool.clone(), &cfg, &tasks, shutdown.clone())
        .await
        .unwrap();
    let app = axum::Router::from(app);
    let gw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", gw.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(gw, app).await });
    let http = reqwest::Client::new();
    let body = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 4 });
    let mut request_ids = Vec::new();
    let send = |http: reqwest::Client, base: String, body: serde_json::Value, key: String| async move {
        let r = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        r.headers()["x-request-id"].to_str().unwrap().to_owned()
    };
    for _ in 0..3 {
        request_ids.push(send(http.clone(), base.clone(), body.clone(), key.clone()).await);
    }

    // PostgreSQL goes away; the gateway keeps serving from memory.
    pg.stop().await.unwrap();
    for _ in 0..10 {
        request_ids.push(send(http.clone(), base.clone(), body.clone(), key.clone()).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while spooled_records(spool.path()) < 10 {
        assert!(
            Instant::now() < deadline,
            "usage was not spooled: {} records",
            spooled_records(spool.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // PostgreSQL is back: the spool is replayed and emptied.
    let pg = EmbeddedPostgres::start(data.path(), None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM usage_records")
            .fetch_one(&pool)
            .await;
        if n.as_ref().is_ok_and(|n| *n >= 13) && spooled_records(spool.path()) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spool not replayed: {n:?} rows, {} spooled",
            spooled_records(spool.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids: Vec<String> = sqlx::query_scalar("SELECT request_id FROM usage_records ORDER BY request_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut expected = request_ids.clone();
    expected.sort();
    assert_eq!(ids, expected, "every served request exactly once");

    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    pool.close().await;
    pg.stop().await.unwrap();
}
