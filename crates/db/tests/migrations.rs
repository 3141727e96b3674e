//! Migrations against a real PostgreSQL: empty database, double apply,
//! parity with `psql -f` in either order, rollback and re-migrate,
//! concurrent migrators, and changed files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crosslogic_db::migrate::{self, MigrateError, MIGRATIONS};
use crosslogic_testkit::TestDb;
use sqlx::PgPool;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `pg_dump --schema-only` without the bookkeeping table and without the
/// per-dump random `\restrict` keys, so two equal schemas compare equal.
fn schema_dump(url: &str) -> String {
    let out = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=schema_migrations",
            "--dbname",
            url,
        ])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn psql_apply(url: &str) {
    for m in MIGRATIONS {
        let file = repo_root().join(m.path());
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
            .arg(&file)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql -f {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn public_tables(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrating_an_empty_database_creates_every_table_and_the_seed_rows() {
    let db = TestDb::new().await;
    let applied = migrate::migrate(&db.pool).await.unwrap();
    assert_eq!(applied, all_versions());
    let tables = public_tables(&db.pool).await;
    for t in [
        "tenants",
        "environments",
        "api_keys",
        "regions",
        "models",
        "gpu_types",
        "gpu_prices",
        "nodes",
        "usage_records",
        "usage_hourly",
        "billing_events",
        "credits",
        "reservations",
        "audit_logs",
        "health_checks",
        "webhook_events",
        "events",
        "deployments",
        "deployment_nodes",
        "notification_deliveries",
        "notification_config",
        "schema_migrations",
    ] {
        assert!(tables.contains(&t.to_owned()), "missing table {t}; have {tables:?}");
    }
    assert_eq!(count(&db.pool, "SELECT count(*) FROM regions").await, 4);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM models WHERE type = 'chat'").await,
        5
    );
    assert!(count(&db.pool, "SELECT count(*) FROM models WHERE type = 'embedding'").await >= 1);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM gpu_types").await, 5);
    let mumbai: String = sqlx::query_scalar("SELECT cost_multiplier::text FROM regions WHERE code = 'in-mumbai'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(mumbai, "0.700");
    // The seed's "Verify Installation" query works.
    sqlx::query("SELECT * FROM deployments LIMIT 1")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time() {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    let before = schema_dump(&db.url);
    assert_eq!(migrate::migrate(&db.pool).await.unwrap(), Vec::<i32>::new());
    assert_eq!(schema_dump(&db.url), before);
    let states = migrate::status(&db.pool).await.unwrap();
    assert!(states.iter().all(|s| s.applied_at.is_some() && s.checksum_ok));
    db.drop_db().await;
}

#[tokio::test]
async fn psql_files_applied_twice_are_harmless_and_keep_seed_rows_single() {
    let db = TestDb::new().await;
    psql_apply(&db.url);
    let once = schema_dump(&db.url);
    let rows = count(
        &db.pool,
        "SELECT (SELECT count(*) FROM regions) + (SELECT count(*) FROM models) + (SELECT count(*) FROM gpu_prices)",
    )
    .await;
    psql_apply(&db.url);
    assert_eq!(schema_dump(&db.url), once);
    assert_eq!(
        count(
            &db.pool,
            "SELECT (SELECT count(*) FROM regions) + (SELECT count(*) FROM models) + (SELECT count(*) FROM gpu_prices)"
        )
        .await,
        rows
    );
    db.drop_db().await;
}

#[tokio::test]
async fn psql_and_the_binary_produce_the_same_schema_in_either_order() {
    let by_psql = TestDb::new().await;
    let by_binary = TestDb::new().await;
    psql_apply(&by_psql.url);
    migrate::migrate(&by_binary.pool).await.unwrap();
    let reference = schema_dump(&by_psql.url);
    assert!(
        reference.contains("CREATE TABLE public.deployments"),
        "dump looks empty"
    );
    assert_eq!(
        schema_dump(&by_binary.url),
        reference,
        "psql -f and crosslogic db migrate differ"
    );

    // psql first, then the binary: it records the files and changes nothing.
    assert_eq!(migrate::migrate(&by_psql.pool).await.unwrap(), all_versions());
    assert_eq!(schema_dump(&by_psql.url), reference);
    // binary first, then psql: still the same.
    psql_apply(&by_binary.url);
    assert_eq!(schema_dump(&by_binary.url), reference);
    by_psql.drop_db().await;
    by_binary.drop_db().await;
}

#[tokio::test]
async fn rollback_to_1_drops_deployments_and_remigrating_restores_the_same_schema() {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    let original = schema_dump(&db.url);

    assert_eq!(
        migrate::rollback_to(&db.pool, 1).await.unwrap(),
        all_versions()[1..].iter().rev().copied().collect::<Vec<_>>()
    );
    let tables = public_tables(&db.pool).await;
    for gone in [
        "deployments",
        "deployment_nodes",
        "notification_deliveries",
        "notification_config",
    ] {
        assert!(!tables.contains(&gone.to_owned()), "{gone} still exists");
    }
    let node_cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'nodes' AND column_name IN ('cluster_name', 'model_name', 'deployment_id')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(node_cols.is_empty(), "02's columns left on nodes: {node_cols:?}");
    assert!(tables.contains(&"tenants".to_owned()));

    assert_eq!(migrate::migrate(&db.pool).await.unwrap(), all_versions()[1..].to_vec());
    assert_eq!(schema_dump(&db.url), original);

    assert_eq!(
        migrate::rollback_to(&db.pool, 0).await.unwrap(),
        all_versions().into_iter().rev().collect::<Vec<_>>()
    );
    assert!(public_tables(&db.pool).await.is_empty(), "rollback --to 0 left tables");
    assert_eq!(migrate::migrate(&db.pool).await.unwrap(), all_versions());
    assert_eq!(schema_dump(&db.url), original);
    db.drop_db().await;
}

#[tokio::test]
async fn concurrent_migrators_all_succeed_and_apply_each_file_once() {
    let db = TestDb::new().await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        handles.push(tokio::spawn(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .unwrap();
            let r = migrate::migrate(&pool).await;
            pool.close().await;
            r
        }));
    }
    let mut applied_total = Vec::new();
    for h in handles {
        applied_total.extend(h.await.unwrap().expect("a concurrent migrate failed"));
    }
    applied_total.sort_unstable();
    assert_eq!(
        applied_total,
        all_versions(),
        "each file must be applied by exactly one migrator"
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM schema_migrations").await,
        MIGRATIONS.len() as i64
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM regions").await, 4);
    db.drop_db().await;
}

#[tokio::test]
async fn a_changed_file_is_an_error_naming_the_file() {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    sqlx::query("UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    let err = migrate::migrate(&db.pool).await.unwrap_err();
    assert!(matches!(err, MigrateError::ChecksumMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("database/schemas/02_deployments.sql"), "{err}");
    let states = migrate::status(&db.pool).await.unwrap();
    assert!(!states.iter().find(|s| s.version == 2).unwrap().checksum_ok);
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    sqlx::query("INSERT INTO schema_migrations (version, name, checksum) VALUES (99, '99_future', 'x')")
        .execute(&db.pool)
        .await
        .unwrap();
    let err = migrate::migrate(&db.pool).await.unwrap_err();
    assert!(err.to_string().contains("99_future"), "{err}");
    db.drop_db().await;
}

#[test]
fn checksums_are_the_sha256_that_sha256sum_prints() {
    for m in MIGRATIONS {
        let out = Command::new("sha256sum")
            .arg(repo_root().join(m.path()))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.split_whitespace().next().unwrap(), m.checksum(), "{}", m.name);
    }
}

/// Databases record each file's checksum when they apply it, so a released
/// file must never change: this list pins them. A new file adds its line.
/// A change that earlier files plus later ones already cover (a seed row)
/// keeps its old checksum accepted in `database/superseded.tsv` and updates
/// the line here; any other change belongs in a new numbered file.
#[test]
fn released_migration_files_never_change() {
    let pinned = [
        (1, "c8980766594db24123f3720d312d5b08e1a434e7a28a1d2f346a7bf7217108cc"),
        (2, "44a3f964f3470fb38c71fd8930331dca07b64fbc1f611ae378655f8169aeeb78"),
        (3, "8bd2cce8507af12da4817606bfb011edb9db28763e6ca00df11be308860b0612"),
        (4, "c64ba10e8083c6edfd2ed70aa25d551b0b26c3c9b93bfc0d4e03a630913a6628"),
        (5, "b619f545ae47536873b897347a299f53dfc38d5fb50e0aaac660338eb8087515"),
        (6, "f29b2d37b06d77805f497551150704295e64347009ab7b202edf3e7c016d89be"),
        (7, "482df062ae391b0593f259f3a20b8f481c80988cfa45962aa6b7cb2661d444ae"),
        (8, "4210c60e6748c5bd53066cc5bc99d3b47b560f7d8b3b2468d0a6706822161318"),
        (9, "8a0d26fc942ab788343b35bb7a8d1dc0eced959451853916c387781019972c3c"),
        (10, "3845f82338d17d8e096c23de905501a150acec8ef1172b5ce171e65b23598232"),
        (11, "cdf30fa0f754dcc64cd3c9ba7b753ad4196bbe78682ece4286aee309b0d41ef1"),
    ];
    assert_eq!(
        MIGRATIONS.len(),
        pinned.len(),
        "a new migration file: pin its checksum here"
    );
    for (m, (version, sum)) in MIGRATIONS.iter().zip(pinned) {
        assert_eq!(m.version, version);
        assert_eq!(
            m.checksum(),
            sum,
            "{} changed after release: databases that applied it will refuse to migrate; \
             put the change in a new numbered file",
            m.path()
        );
    }
}
