//! Operator maintenance queries against a migrated database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosslogic_db::maintenance::{self, SlowQueriesError};
use crosslogic_db::migrate;
use crosslogic_testkit::TestDb;

#[tokio::test]
async fn status_tables_report_exact_row_counts_and_sizes() {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    let tables = maintenance::tables(&db.pool).await.unwrap();
    let regions = tables.iter().find(|t| t.table_name == "regions").unwrap();
    assert_eq!(regions.row_count, 4);
    assert!(regions.total_bytes > 0);
    assert!(!maintenance::database_size(&db.pool).await.unwrap().is_empty());
    maintenance::vacuum_analyze(&db.pool).await.unwrap();
    let idx = maintenance::index_usage(&db.pool).await.unwrap();
    assert!(idx.iter().any(|i| i.index_name == "regions_code_key"), "{idx:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn slow_queries_either_list_statements_or_explain_how_to_enable_the_extension() {
    let db = TestDb::new().await;
    let preloaded: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    match maintenance::slow_queries(&db.pool, 5).await {
        Ok(rows) => assert!(
            preloaded.contains("pg_stat_statements"),
            "listed {} rows without the library",
            rows.len()
        ),
        Err(SlowQueriesError::Unavailable(hint)) => {
            assert!(!preloaded.contains("pg_stat_statements"));
            assert!(
                hint.contains("shared_preload_libraries") && hint.contains("CREATE EXTENSION"),
                "{hint}"
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
    db.drop_db().await;
}
