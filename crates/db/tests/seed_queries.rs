//! Every SQL snippet of the seed guide (`DATABASE_SETUP_GUIDE.md`, quoted
//! here verbatim with the section it comes from) against the test server
//! after `migrate`: the ones that work, and exactly the ones that fail on
//! current PostgreSQL — each with the corrected form docs/DATABASE.md gives
//! (and `crosslogic db stats` runs), which is checked to work. If
//! PostgreSQL changes again, this test names the snippet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosslogic_db::migrate;
use crosslogic_testkit::TestDb;

/// (seed section, snippet, `None` = works as written, `Some((error the
/// server gives, corrected form))`).
type Snippet = (&'static str, &'static str, Option<(&'static str, &'static str)>);

fn snippets() -> Vec<Snippet> {
    vec![
        ("Verify Installation", "SELECT * FROM deployments LIMIT 1;", None),
        ("Troubleshooting: Missing Tables", "SELECT tablename FROM pg_tables WHERE schemaname = 'public';", None),
        ("Maintenance: Vacuum and Analyze", "VACUUM ANALYZE;", None),
        (
            "Monitoring: Check table sizes",
            "SELECT schemaname, tablename, pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename)) AS size
               FROM pg_tables WHERE schemaname = 'public'
              ORDER BY pg_total_relation_size(schemaname||'.'||tablename) DESC;",
            None,
        ),
        (
            "Monitoring: Check index usage",
            "SELECT schemaname, tablename, indexname, idx_scan, idx_tup_read, idx_tup_fetch
               FROM pg_stat_user_indexes ORDER BY idx_scan DESC;",
            Some((
                "column \"tablename\" does not exist",
                "SELECT schemaname, relname, indexrelname, idx_scan, idx_tup_read, idx_tup_fetch
                   FROM pg_stat_user_indexes ORDER BY idx_scan DESC;",
            )),
        ),
        (
            "Monitoring: Check slow queries",
            "SELECT query, calls, total_time, mean_time, max_time FROM pg_stat_statements ORDER BY mean_time DESC LIMIT 10;",
            Some((
                "column \"total_time\" does not exist",
                "SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time FROM pg_stat_statements
                  ORDER BY mean_exec_time DESC LIMIT 10;",
            )),
        ),
        (
            "Performance: Find slow queries",
            "SELECT * FROM pg_stat_activity WHERE state = 'active' AND now() - query_start > interval '1 second';",
            None,
        ),
        (
            "Performance: Kill long-running query (with its <pid> placeholder filled)",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = -1;",
            None,
        ),
        ("Performance: Analyze query plan", "EXPLAIN ANALYZE SELECT * FROM nodes WHERE status = 'active';", None),
    ]
}

#[tokio::test]
async fn the_seeds_sql_works_except_the_snippets_the_readme_corrects() {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    // The slow-query view needs its extension (the seed's own prerequisite);
    // reading it needs shared_preload_libraries, so statements on it are
    // checked with EXPLAIN (parsed and planned against the real columns).
    sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&db.pool)
        .await
        .unwrap();
    let run = |sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            let sql = if sql.contains("pg_stat_statements") {
                format!("EXPLAIN {sql}")
            } else {
                sql.to_owned()
            };
            sqlx::raw_sql(&sql)
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    for (section, sql, correction) in snippets() {
        match (run(sql).await, correction) {
            (Ok(()), None) => {}
            (Err(e), None) => panic!("the seed's {section} snippet fails and docs/DATABASE.md does not say so: {e}"),
            (Ok(()), Some(_)) => {
                panic!("the seed's {section} snippet works now: drop its correction from docs/DATABASE.md")
            }
            (Err(e), Some((expected, fixed))) => {
                assert!(e.contains(expected), "{section}: {e}");
                let fixed_run = run(fixed).await;
                assert!(fixed_run.is_ok(), "the correction of {section} fails: {fixed_run:?}");
            }
        }
    }
    db.drop_db().await;
}

/// The seed's Quick Start step 2 by hand (`psql $DATABASE_URL -f` the first
/// three files), then its "Verify Installation" step: the sample row shows,
/// and it is the paused example that cannot launch anything.
#[tokio::test]
async fn the_seeds_psql_steps_show_the_paused_example_deployment() {
    let db = TestDb::new().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database/schemas");
    let psql = |args: &[&str]| {
        let out = std::process::Command::new("psql")
            .arg(&db.url)
            .args(["-X", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "psql {args:?}: {text}");
        text
    };
    for file in ["01_core_tables.sql", "02_deployments.sql", "03_notifications.sql"] {
        psql(&["-f", root.join(file).to_str().unwrap()]);
    }
    let shown = psql(&["-c", "SELECT * FROM deployments LIMIT 1;"]);
    assert!(shown.contains("example-llama-3-8b-paused"), "{shown}");
    assert!(shown.contains("paused") && shown.contains("(1 row)"), "{shown}");
    // The binary takes over from there without complaint.
    migrate::migrate(&db.pool).await.unwrap();
    db.drop_db().await;
}
