//! The embedded PostgreSQL: start, migrate, stop, restart with the data
//! intact, refuse a second owner, explain a missing installation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use crosslogic_db::embedded::{EmbeddedError, EmbeddedPostgres};
use crosslogic_db::{maintenance, migrate, pool};

fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // When tests run as root, PostgreSQL runs as `postgres` and must reach it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test]
async fn embedded_database_keeps_data_across_restarts_and_refuses_a_second_owner() {
    let dir = data_dir();
    let pg = EmbeddedPostgres::start(dir.path(), None).await.unwrap();
    let conn = pg.connection();
    assert!(
        conn.host.starts_with('/'),
        "embedded uses a Unix socket, got {}",
        conn.host
    );
    let p = pool::connect(&conn, &Default::default()).await.unwrap();
    migrate::migrate(&p).await.unwrap();
    sqlx::query("INSERT INTO tenants (name, email) VALUES ('Persisted', 'persist@x.test')")
        .execute(&p)
        .await
        .unwrap();
    // pg_stat_statements is preloaded, so `db stats` works out of the box.
    maintenance::slow_queries(&p, 5).await.unwrap();

    // A second owner of the same directory gets a clear error.
    let err = EmbeddedPostgres::start(dir.path(), None).await.unwrap_err();
    assert!(matches!(err, EmbeddedError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("in use by another crosslogic process"),
        "{err}"
    );

    p.close().await;
    let socket = std::path::PathBuf::from(&conn.host).join(".s.PGSQL.5432");
    pg.stop().await.unwrap();
    assert!(!socket.exists(), "server still listening after stop");

    let pg = EmbeddedPostgres::start(dir.path(), None).await.unwrap();
    let p = pool::connect(&pg.connection(), &Default::default()).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE email = 'persist@x.test'")
        .fetch_one(&p)
        .await
        .unwrap();
    assert_eq!(name, "Persisted");
    assert!(migrate::migrate(&p).await.unwrap().is_empty());
    p.close().await;
    pg.stop().await.unwrap();
}

#[tokio::test]
async fn missing_postgres_installation_says_how_to_install_it() {
    let dir = data_dir();
    let empty = tempfile::tempdir().unwrap();
    let err = EmbeddedPostgres::start(dir.path(), Some(empty.path()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("apt-get install -y postgresql"), "{msg}");
    assert!(msg.contains("DATABASE_URL"), "{msg}");
}
