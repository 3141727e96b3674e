//! `crosslogic db …` and `crosslogic config check` end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::run;
use crosslogic_testkit::TestDb;
use sqlx::Executor;

#[tokio::test]
async fn migrate_status_rollback_and_vacuum_work_against_an_external_database() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];

    let (ok, out) = run(&env, &["db", "migrate"]);
    assert!(ok, "{out}");
    assert!(out.contains("applied database/schemas/01_core_tables.sql"), "{out}");
    let (ok, out) = run(&env, &["db", "migrate"]);
    assert!(ok && out.contains("schema is up to date (version 11)"), "{out}");

    let (ok, out) = run(&env, &["db", "status"]);
    assert!(ok, "{out}");
    for needle in [
        "01_core_tables",
        "02_deployments",
        "03_notifications",
        "05_provision_jobs",
        "06_notification_delivery",
        "07_billing",
        "08_example_deployment",
        "09_console_sessions",
        "10_capacity_policy",
        "11_usage_reference_checks",
        "regions",
        "database size:",
    ] {
        assert!(out.contains(needle), "status lacks {needle}: {out}");
    }
    assert!(!out.contains("pending"), "{out}");

    // No terminal and no --yes: refuses, changes nothing.
    let (ok, out) = run(&env, &["db", "rollback", "--to", "1"]);
    assert!(!ok && out.contains("--yes"), "{out}");
    let (ok, out) = run(&env, &["db", "rollback", "--to", "1", "--yes"]);
    assert!(
        ok && out.contains("rolled back version 11") && out.contains("rolled back version 2"),
        "{out}"
    );
    let (ok, out) = run(&env, &["db", "status"]);
    assert!(ok && out.contains("pending"), "{out}");
    let (ok, out) = run(&env, &["db", "rollback", "--to", "12", "--yes"]);
    assert!(!ok && out.contains("--to must be between 0 and 11"), "{out}");
    let (ok, out) = run(&env, &["db", "migrate"]);
    assert!(ok && out.contains("02_deployments"), "{out}");

    let (ok, out) = run(&env, &["db", "vacuum"]);
    assert!(ok && out.contains("VACUUM ANALYZE done"), "{out}");
    let (ok, out) = run(&env, &["db", "stats"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Table sizes") && out.contains("Index usage") && out.contains("regions_code_key"),
        "{out}"
    );
    assert!(
        out.contains("mean_exec_time") || out.contains("shared_preload_libraries"),
        "{out}"
    );
    db.drop_db().await;
}

async fn rows(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn backup_and_restore_round_trip_plain_and_gzip() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    assert!(run(&env, &["db", "migrate"]).0);
    db.pool
        .execute("INSERT INTO tenants (name, email) VALUES ('Backed Up', 'b@x.test')")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    for name in ["backup.sql", "backup.sql.gz"] {
        let file = dir.path().join(name);
        let (ok, out) = run(&env, &["db", "backup", file.to_str().unwrap()]);
        assert!(ok, "{out}");
        let bytes = std::fs::read(&file).unwrap();
        if name.ends_with(".gz") {
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "not gzip");
        } else {
            assert!(String::from_utf8_lossy(&bytes).contains("CREATE TABLE public.tenants"));
        }
        // Damage the data, then restore.
        db.pool
            .execute("DELETE FROM tenants; DELETE FROM regions WHERE code = 'eu-west'")
            .await
            .unwrap();
        let (ok, out) = run(&env, &["db", "restore", file.to_str().unwrap(), "--yes"]);
        assert!(ok, "{out}");
        assert_eq!(
            rows(&db.pool, "SELECT count(*) FROM tenants WHERE email = 'b@x.test'").await,
            1,
            "{name}"
        );
        assert_eq!(rows(&db.pool, "SELECT count(*) FROM regions").await, 4, "{name}");
        assert_eq!(
            rows(&db.pool, "SELECT count(*) FROM schema_migrations").await,
            crosslogic_db::migrate::MIGRATIONS.len() as i64,
            "{name}"
        );
    }
    let (ok, out) = run(
        &env,
        &["db", "restore", dir.path().join("backup.sql").to_str().unwrap()],
    );
    assert!(!ok && out.contains("--yes"), "restore must ask for confirmation: {out}");
    let (ok, out) = run(&env, &["db", "restore", "/nonexistent/backup.sql", "--yes"]);
    assert!(!ok && out.contains("does not exist"), "{out}");
    db.drop_db().await;
}

#[tokio::test]
async fn backup_and_restore_another_database_on_the_same_server() {
    // As for SkyPilot's state database: `--database skypilot_state`.
    let db = TestDb::new().await;
    let state = format!("{}_skypilot_state", db.name);
    let copy = format!("{}_restored", db.name);
    db.pool
        .execute(format!("CREATE DATABASE {state}").as_str())
        .await
        .unwrap();
    let state_url = db.url.replace(&db.name, &state);
    let state_pool = sqlx::PgPool::connect(&state_url).await.unwrap();
    state_pool.execute("CREATE TABLE clusters (name text primary key); INSERT INTO clusters VALUES ('cic-aws-us-east-a10g-spot-1')").await.unwrap();
    state_pool.close().await;

    let env = [("DATABASE_URL", db.url.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skypilot_backup.sql.gz");
    let (ok, out) = run(&env, &["db", "backup", file.to_str().unwrap(), "--database", &state]);
    assert!(ok, "{out}");
    let (ok, out) = run(
        &env,
        &["db", "restore", file.to_str().unwrap(), "--database", &copy, "--yes"],
    );
    assert!(ok && out.contains(&format!("created database {copy}")), "{out}");
    let copy_pool = sqlx::PgPool::connect(&db.url.replace(&db.name, &copy)).await.unwrap();
    assert_eq!(rows(&copy_pool, "SELECT count(*) FROM clusters").await, 1);
    copy_pool.close().await;
    for extra in [&state, &copy] {
        db.pool
            .execute(format!("DROP DATABASE {extra} WITH (FORCE)").as_str())
            .await
            .unwrap();
    }
    db.drop_db().await;
}

#[test]
fn config_check_prints_effective_values_with_secrets_redacted() {
    let (ok, out) = run(
        &[
            (
                "DATABASE_URL",
                "postgresql://crosslogic:topsecretpw@db.internal:5432/crosslogic_iaas?sslmode=require",
            ),
            ("DB_MAX_OPEN_CONNS", "50"),
            ("DB_CONN_MAX_LIFETIME", "1h"),
            ("ADMIN_API_TOKEN", "admin-token-that-is-long-enough"),
        ],
        &["config", "check"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("postgresql://crosslogic:****@db.internal:5432/crosslogic_iaas?sslmode=require"),
        "{out}"
    );
    assert!(
        out.contains("DB_MAX_OPEN_CONNS") && out.contains("50") && out.contains("1h"),
        "{out}"
    );
    assert!(
        !out.contains("topsecretpw") && !out.contains("admin-token-that"),
        "{out}"
    );
}

#[test]
fn a_bad_value_stops_the_program_naming_the_variable() {
    for (var, value, needle) in [
        ("DB_MAX_OPEN_CONNS", "lots", "DB_MAX_OPEN_CONNS"),
        ("DB_SSL_MODE", "maybe", "disable, prefer, require or verify-full"),
        ("DB_CONN_MAX_LIFETIME", "10", "DB_CONN_MAX_LIFETIME"),
    ] {
        let (ok, out) = run(&[(var, value)], &["config", "check"]);
        assert!(!ok, "{var}={value} accepted");
        assert!(out.contains(needle), "{var}: {out}");
    }
}

#[test]
fn every_db_command_explains_itself_in_help() {
    let (ok, out) = run(&[], &["db", "--help"]);
    assert!(ok, "{out}");
    for cmd in ["migrate", "status", "rollback", "backup", "restore", "vacuum", "stats"] {
        assert!(out.contains(cmd), "db --help lacks {cmd}: {out}");
    }
    let (ok, out) = run(&[], &["db", "rollback", "--help"]);
    assert!(ok && out.contains("--to") && out.contains("--yes"), "{out}");
}

/// The seed's Quick Start step 1, literally, then step 2 with the binary
/// and with `migrate.sh`: on PostgreSQL 15+ both say exactly how to fix the
/// missing schema privilege; `crosslogic db create` (the fix) makes step 2
/// work.
#[tokio::test]
async fn the_seeds_step_one_on_postgresql_15_gets_the_exact_fix_and_db_create_repairs_it() {
    let admin = crosslogic_testkit::admin_url();
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&pool)
        .await
        .unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (dbname, user) = (format!("clt_seed_{suffix}"), format!("clt_seed_user_{suffix}"));
    // The seed, step 1 (names made unique for the test).
    for stmt in [
        format!("CREATE DATABASE {dbname};"),
        format!("CREATE USER {user} WITH PASSWORD 'your_secure_password';"),
        format!("GRANT ALL PRIVILEGES ON DATABASE {dbname} TO {user};"),
    ] {
        let out = std::process::Command::new("psql")
            .args([admin.as_str(), "-X", "-v", "ON_ERROR_STOP=1", "-c", &stmt])
            .output()
            .unwrap();
        assert!(out.status.success(), "{stmt}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_username(&user).unwrap();
    url.set_password(Some("your_secure_password")).unwrap();
    url.set_path(&dbname);
    let env = [("DATABASE_URL", url.as_str())];

    let (ok, out) = run(&env, &["db", "migrate"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../database/migrate.sh");
    let sh = std::process::Command::new("bash")
        .args([script, "up"])
        .env("DATABASE_URL", url.as_str())
        .output()
        .unwrap();
    let sh_out = format!(
        "{}{}",
        String::from_utf8_lossy(&sh.stdout),
        String::from_utf8_lossy(&sh.stderr)
    );
    if version >= 150_000 {
        assert!(!ok, "{out}");
        assert!(
            out.contains(&format!("ALTER DATABASE {dbname} OWNER TO {user};")),
            "{out}"
        );
        assert!(out.contains("42501") && out.contains("crosslogic db create"), "{out}");
        assert_eq!(
            out.matches("permission denied").count(),
            0,
            "said once, in our words: {out}"
        );
        assert!(!sh.status.success(), "{sh_out}");
        assert!(
            sh_out.contains(&format!("ALTER DATABASE {dbname} OWNER TO {user};")),
            "{sh_out}"
        );
        // The fix.
        let (ok, fixed) = run(
            &[("DATABASE_ADMIN_URL", admin.as_str())],
            &["db", "create", "--owner", &user, "--name", &dbname],
        );
        assert!(ok && fixed.contains(&format!("its owner is now {user}")), "{fixed}");
    }
    let (ok, out) = run(&env, &["db", "migrate"]);
    assert!(ok && out.contains("applied database/schemas/07_billing.sql"), "{out}");

    // `db create` from scratch: role and database.
    let (other_db, other_user) = (format!("clt_new_{suffix}"), format!("clt_new_user_{suffix}"));
    let (ok, out) = run(
        &[("DATABASE_ADMIN_URL", admin.as_str()), ("NEW_PW", "s3cret-pass")],
        &[
            "db",
            "create",
            "--owner",
            &other_user,
            "--name",
            &other_db,
            "--password-env",
            "NEW_PW",
        ],
    );
    assert!(
        ok && out.contains("created role") && out.contains(&format!("created database {other_db}")),
        "{out}"
    );
    url.set_username(&other_user).unwrap();
    url.set_password(Some("s3cret-pass")).unwrap();
    url.set_path(&other_db);
    let (ok, out) = run(&[("DATABASE_URL", url.as_str())], &["db", "migrate"]);
    assert!(ok, "{out}");

    for (d, u) in [(&dbname, &user), (&other_db, &other_user)] {
        pool.execute(format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)").as_str())
            .await
            .unwrap();
        pool.execute(format!("DROP ROLE IF EXISTS {u}").as_str()).await.unwrap();
    }
}

/// The seed's "Rollback if needed" run literally on a migrated database,
/// then its "Apply migrations" again: every tool names what is missing
/// instead of saying "up to date", `serve` refuses, and `--repair` brings
/// the schema back (foreign keys the CASCADE dropped included).
#[tokio::test]
async fn the_seeds_rollback_is_drift_every_tool_names_and_repair_fixes() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let (ok, out) = run(&env, &["db", "migrate"]);
    assert!(ok, "{out}");
    for stmt in [
        "DROP TABLE IF EXISTS deployments CASCADE;",
        "ALTER TABLE nodes DROP COLUMN IF EXISTS cluster_name CASCADE;",
    ] {
        let out = std::process::Command::new("psql")
            .args([db.url.as_str(), "-X", "-v", "ON_ERROR_STOP=1", "-c", stmt])
            .output()
            .unwrap();
        assert!(out.status.success(), "{stmt}: {}", String::from_utf8_lossy(&out.stderr));
    }

    let (ok, out) = run(&env, &["db", "migrate"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("table deployments (from database/schemas/02_deployments.sql)")
            && out.contains("column nodes.cluster_name")
            && out.contains("--repair"),
        "{out}"
    );
    let (ok, out) = run(&env, &["db", "status"]);
    assert!(
        ok && out.contains("SCHEMA DRIFT") && out.contains("table deployments"),
        "{out}"
    );
    let data = common::data_dir();
    let (ok, out) = run(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert!(!ok && out.contains("schema drift"), "serve refuses: {out}");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../database/migrate.sh");
    let sh = |args: &[&str]| {
        let o = std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .env("DATABASE_URL", db.url.as_str())
            .output()
            .unwrap();
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (ok, out) = sh(&["status"]);
    assert!(
        ok && out.contains("SCHEMA DRIFT") && out.contains("table deployments"),
        "{out}"
    );
    let (ok, out) = sh(&["up"]);
    assert!(!ok && out.contains("--repair"), "{out}");
    // migrate.sh re-applies the files; what they cannot re-create (the
    // foreign key the CASCADE dropped) it names.
    let (ok, out) = sh(&["up", "--repair"]);
    assert!(!ok && out.contains("deployment_nodes_deployment_id_fkey"), "{out}");

    let (ok, out) = run(&env, &["db", "migrate", "--repair"]);
    assert!(
        ok && out.contains("restored constraint deployment_nodes_deployment_id_fkey"),
        "{out}"
    );
    let (ok, out) = run(&env, &["db", "status"]);
    assert!(ok && out.contains("schema drift: none"), "{out}");
    let (ok, out) = sh(&["status"]);
    assert!(ok && out.contains("Schema drift: none"), "{out}");
    db.drop_db().await;
}
