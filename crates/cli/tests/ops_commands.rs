//! `crosslogic skypilot setup-state` and `crosslogic storage check` against
//! real PostgreSQL and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::run;
use crosslogic_testkit::TestDb;
use sqlx::Executor;

#[tokio::test]
async fn skypilot_setup_state_creates_the_database_writes_the_config_and_never_clobbers() {
    let db = TestDb::new().await;
    let state = format!("{}_sky", db.name);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sky/config.yaml");
    let env = [("DATABASE_URL", db.url.as_str())];
    let args = [
        "skypilot",
        "setup-state",
        "--database",
        &state,
        "--config",
        config.to_str().unwrap(),
    ];

    let (ok, out) = run(&env, &args);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("created database {state}")) && out.contains("verified"),
        "{out}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let db_line = text.lines().find(|l| l.starts_with("db: ")).unwrap();
    assert!(
        db_line.starts_with("db: postgresql://postgres@127.0.0.1:5432/"),
        "{text}"
    );
    assert!(db_line.ends_with(&state), "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        1,
        "SkyPilot allows no other key next to db:"
    );
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    // The URL SkyPilot will use really connects.
    let sky = sqlx::PgPool::connect(db_line.trim_start_matches("db: ")).await.unwrap();
    sky.execute("CREATE TABLE clusters (name text)").await.unwrap();
    sky.close().await;

    let (ok, out) = run(&env, &args);
    assert!(ok && out.contains("already points SkyPilot at it"), "{out}");

    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "allowed_clouds:\n  - aws\n").unwrap();
    let (ok, out) = run(
        &env,
        &[
            "skypilot",
            "setup-state",
            "--database",
            &state,
            "--config",
            other.to_str().unwrap(),
        ],
    );
    assert!(!ok && out.contains("SKYPILOT_DB_CONNECTION_URI"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        "allowed_clouds:\n  - aws\n",
        "an existing config was changed"
    );

    db.pool
        .execute(format!("DROP DATABASE {state} WITH (FORCE)").as_str())
        .await
        .unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn storage_check_finds_a_formatted_juicefs_volume_or_says_how_to_make_one() {
    let base = std::env::var("CROSSLOGIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    // A Redis database of its own, as JuiceFS uses (`redis://host:6379/1` in the seed).
    let url = format!("{}/13", base.trim_end_matches('/'));
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL").arg("setting").query_async(&mut conn).await.unwrap();

    let (ok, out) = run(&[("JUICEFS_REDIS_URL", url.as_str())], &["storage", "check"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("no JuiceFS volume is formatted") && out.contains("juicefs format"),
        "{out}"
    );

    // What `juicefs format` writes (trimmed).
    let setting = r#"{"Name":"crosslogic-models","UUID":"0f6e","Storage":"s3","Bucket":"https://models.s3.amazonaws.com","AccessKey":"AKIA","SecretKey":"removed","BlockSize":4096}"#;
    let _: () = redis::cmd("SET")
        .arg("setting")
        .arg(setting)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (ok, out) = run(&[("JUICEFS_REDIS_URL", url.as_str())], &["storage", "check"]);
    assert!(ok, "{out}");
    assert!(out.contains("crosslogic-models") && out.contains("s3"), "{out}");
    assert!(!out.contains("AKIA"), "credentials shown: {out}");
    let _: () = redis::cmd("DEL").arg("setting").query_async(&mut conn).await.unwrap();

    let (ok, out) = run(&[("JUICEFS_REDIS_URL", "redis://127.0.0.1:1/1")], &["storage", "check"]);
    assert!(!ok && out.contains("cannot reach Redis"), "{out}");
    let (ok, out) = run(&[], &["storage", "check"]);
    assert!(!ok && out.contains("JUICEFS_REDIS_URL is not set"), "{out}");
}

/// The seed's next step after `setup-state` is `sky status`: with a
/// SkyPilot whose Python lacks the PostgreSQL driver it would fail, so
/// `setup-state` says exactly what to install; with the real SkyPilot
/// (installed by `scripts/test.sh` with psycopg) it runs `sky status`
/// itself and lists the tables SkyPilot created.
#[tokio::test]
async fn skypilot_setup_state_checks_the_installation_and_runs_the_seeds_verification() {
    let Ok(sky_python) = std::env::var("CROSSLOGIC_SKYPILOT_PYTHON") else {
        eprintln!("skipped: no SkyPilot installation (CROSSLOGIC_SKYPILOT_PYTHON unset)");
        return;
    };
    let db = TestDb::new().await;
    let state = format!("{}_skyv", db.name);
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".sky/config.yaml");

    // A SkyPilot whose Python cannot import psycopg.
    let fake = home.path().join("sky");
    std::fs::write(&fake, "#!/usr/bin/python3\nimport sys\nsys.exit(3)\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let system_has_it = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import psycopg"])
        .status()
        .is_ok_and(|s| s.success());
    if !system_has_it {
        let (ok, out) = run(
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("HOME", home.path().to_str().unwrap()),
            ],
            &[
                "skypilot",
                "setup-state",
                "--database",
                &state,
                "--config",
                config.to_str().unwrap(),
                "--sky",
                fake.to_str().unwrap(),
            ],
        );
        assert!(!ok, "{out}");
        assert!(
            out.contains("/usr/bin/python3 -m pip install 'psycopg[binary]'"),
            "{out}"
        );
    }

    // The real one, with its own HOME and API server port.
    let sky = std::path::Path::new(&sky_python).with_file_name("sky");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("HOME", home.path().to_str().unwrap()),
        ("SKYPILOT_API_SERVER_LOCAL_PORT", port.as_str()),
    ];
    let (ok, out) = run(
        &env,
        &[
            "skypilot",
            "setup-state",
            "--database",
            &state,
            "--config",
            config.to_str().unwrap(),
            "--sky",
            sky.to_str().unwrap(),
        ],
    );
    let _ = std::process::Command::new(&sky)
        .args(["api", "stop"])
        .env("HOME", home.path())
        .env("SKYPILOT_API_SERVER_LOCAL_PORT", &port)
        .output();
    assert!(ok, "{out}");
    assert!(out.contains("has the psycopg driver"), "{out}");
    assert!(
        out.contains("SkyPilot created its tables") && out.contains("clusters") && out.contains("cluster_history"),
        "{out}"
    );
    db.pool
        .execute(format!("DROP DATABASE {state} WITH (FORCE)").as_str())
        .await
        .unwrap();
    db.drop_db().await;
}
