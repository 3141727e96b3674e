//! `crosslogic serve` end to end: the embedded default, health endpoints,
//! graceful shutdown, restart persistence, crash recovery, external database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{data_dir, run, Server};
use nix::sys::signal::Signal;

async fn get(url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn serve_runs_on_the_embedded_database_and_shuts_down_cleanly() {
    let dir = data_dir();
    let data = dir.path().to_str().unwrap();
    let env = [("CROSSLOGIC_DATA_DIR", data)];

    let server = Server::start(&env, &[]).unwrap();
    assert_eq!(
        get(&server.url("/healthz")).await,
        (200, serde_json::json!({ "status": "ok" }))
    );
    let (status, body) = get(&server.url("/readyz")).await;
    assert_eq!((status, body["database"].as_str()), (200, Some("ok")));

    // A second server on the same data directory is refused, clearly.
    let err = Server::start(&env, &[]).err().expect("second serve must fail");
    assert!(err.contains("in use by another crosslogic process"), "{err}");

    let status = server.signal_and_wait(Signal::SIGTERM);
    assert!(status.success(), "serve exited with {status}");
    let socket = dir.path().join("run/.s.PGSQL.5432");
    assert!(!socket.exists(), "embedded PostgreSQL still running after shutdown");

    // Data written while stopped (through `db` commands on the same directory) survives.
    let out = common::crosslogic(&env)
        .args(["db", "status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let regions = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table_name"] == "regions")
        .unwrap();
    assert_eq!(regions["row_count"], 4);

    // Restart: same data, ready again; SIGINT also shuts down cleanly.
    let server = Server::start(&env, &[]).unwrap();
    assert_eq!(get(&server.url("/readyz")).await.0, 200);
    assert!(server.signal_and_wait(Signal::SIGINT).success());
}

#[tokio::test]
async fn serve_recovers_after_being_killed() {
    let dir = data_dir();
    let env = [("CROSSLOGIC_DATA_DIR", dir.path().to_str().unwrap())];
    let server = Server::start(&env, &[]).unwrap();
    let status = server.signal_and_wait(Signal::SIGKILL);
    assert!(!status.success());
    // The orphaned PostgreSQL is stopped and a new one started.
    let server = Server::start(&env, &[]).unwrap();
    assert_eq!(get(&server.url("/readyz")).await.0, 200);
    assert!(server.signal_and_wait(Signal::SIGTERM).success());
}

#[tokio::test]
async fn serve_migrates_an_external_database() {
    let db = crosslogic_testkit::TestDb::new().await;
    let server = Server::start(&[("DATABASE_URL", &db.url)], &[]).unwrap();
    assert_eq!(get(&server.url("/readyz")).await.0, 200);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM schema_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, crosslogic_db::migrate::MIGRATIONS.len() as i64);
    assert!(server.signal_and_wait(Signal::SIGTERM).success());
    db.drop_db().await;
}

#[test]
fn serve_reports_a_database_it_cannot_use_without_the_password() {
    let mut url = url::Url::parse(&crosslogic_testkit::admin_url()).unwrap();
    url.set_password(Some("sup3rs3cret")).unwrap();
    url.set_path("/clt_no_such_database");
    let (ok, out) = run(&[("DATABASE_URL", url.as_str())], &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(out.contains("cannot connect to postgresql://"), "{out}");
    assert!(out.contains(":****@"), "{out}");
    assert!(out.contains("clt_no_such_database"), "{out}");
    assert!(!out.contains("sup3rs3cret"), "{out}");
}
