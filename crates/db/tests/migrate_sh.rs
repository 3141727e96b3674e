//! `database/migrate.sh` as the seed describes it: up, status, down, the
//! connection variables, and its bookkeeping shared with the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crosslogic_db::migrate;
use crosslogic_testkit::TestDb;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../database/migrate.sh")
        .canonicalize()
        .unwrap()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args).stdin(Stdio::null());
    for var in [
        "DATABASE_URL",
        "DB_HOST",
        "DB_PORT",
        "DB_USER",
        "DB_PASSWORD",
        "DB_NAME",
        "DB_SSL_MODE",
        "MIGRATE_ASSUME_YES",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Run from an unrelated directory: the script finds its files itself.
    cmd.current_dir(std::env::temp_dir());
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn up_status_down_work_and_share_bookkeeping_with_the_binary() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];

    let up = run(&["up"], &env);
    assert!(up.status.success(), "{}", text(&up));
    // The binary sees the script's bookkeeping: nothing left to apply.
    assert!(migrate::migrate(&db.pool).await.unwrap().is_empty());

    let again = run(&[], &env);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already applied"), "{}", text(&again));

    let status = run(&["status"], &env);
    assert!(status.status.success(), "{}", text(&status));
    let s = text(&status);
    for needle in ["01_core_tables", "03_notifications", "regions", "tenants"] {
        assert!(s.contains(needle), "status lacks {needle}: {s}");
    }
    assert!(s.to_lowercase().contains("size"), "status lacks the database size: {s}");

    // down without a terminal and without --yes refuses and changes nothing.
    let refused = run(&["down"], &env);
    assert!(!refused.status.success());
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(n > 10);

    let down = run(&["down", "--yes"], &env);
    assert!(down.status.success(), "{}", text(&down));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "down left tables behind");

    // The binary migrates what the script took down.
    assert_eq!(
        migrate::migrate(&db.pool).await.unwrap(),
        migrate::MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    db.drop_db().await;
}

#[tokio::test]
async fn db_variables_work_in_place_of_a_url() {
    let db = TestDb::new().await;
    let url = url::Url::parse(&db.url).unwrap();
    let port = url.port().unwrap_or(5432).to_string();
    let env = [
        ("DB_HOST", url.host_str().unwrap()),
        ("DB_PORT", port.as_str()),
        ("DB_USER", url.username()),
        ("DB_PASSWORD", "unused-with-trust-auth"),
        ("DB_NAME", db.name.as_str()),
        ("DB_SSL_MODE", "disable"),
    ];
    let up = run(&["up"], &env);
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        !text(&up).contains("unused-with-trust-auth"),
        "the password was printed"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM schema_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, migrate::MIGRATIONS.len() as i64);
    db.drop_db().await;
}

#[test]
fn missing_connection_settings_are_a_clear_error() {
    let out = run(&["status"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("DATABASE_URL") && t.contains("DB_PASSWORD"), "{t}");
}

#[tokio::test]
async fn a_changed_file_is_refused_naming_it() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    assert!(run(&["up"], &env).status.success());
    sqlx::query("UPDATE schema_migrations SET checksum = 'bad' WHERE version = 1")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = run(&["up"], &env);
    assert!(!out.status.success());
    assert!(text(&out).contains("01_core_tables"), "{}", text(&out));
    db.drop_db().await;
}

/// The earlier 02_deployments.sql (before it carried the example row), as
/// `database/superseded.tsv` lists it.
fn earlier_02() -> String {
    let list =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database/superseded.tsv")).unwrap();
    list.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("2\t"))
        .and_then(|rest| rest.split('\t').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_database_that_applied_the_earlier_02_is_accepted_by_both_migrators() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    assert!(run(&["up"], &env).status.success());
    // As a database migrated before 02 carried the example row (and before 08).
    sqlx::query("UPDATE schema_migrations SET checksum = $1 WHERE version = 2")
        .bind(earlier_02())
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM schema_migrations WHERE version = 8")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM deployments").execute(&db.pool).await.unwrap();
    let status = run(&["status"], &env);
    assert!(status.status.success(), "{}", text(&status));
    assert!(!text(&status).contains("MISMATCH"), "{}", text(&status));
    let up = run(&["up"], &env);
    assert!(up.status.success(), "{}", text(&up));
    let examples: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments WHERE name = 'example-llama-3-8b-paused'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(examples, 1, "08 brings the example to a database whose 02 predates it");
    // The binary agrees: nothing to apply, nothing changed.
    assert!(migrate::migrate(&db.pool).await.unwrap().is_empty());
    assert!(migrate::status(&db.pool).await.unwrap().iter().all(|s| s.checksum_ok));
    // Any other checksum is still refused.
    sqlx::query("UPDATE schema_migrations SET checksum = 'bad' WHERE version = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(migrate::migrate(&db.pool).await.is_err());
    assert!(!run(&["up"], &env).status.success());
    db.drop_db().await;
}
