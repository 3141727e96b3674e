//! Operator maintenance: table and database statistics, VACUUM, slow queries.

use serde::Serialize;
use sqlx::PgPool;

/// A public table with its exact row count and total size.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TableInfo {
    /// Table name.
    pub table_name: String,
    /// Exact `count(*)`.
    pub row_count: i64,
    /// `pg_total_relation_size` (table + indexes + TOAST), bytes.
    pub total_bytes: i64,
    /// Human-readable size.
    pub size: String,
}

/// Every table of the `public` schema, largest first.
pub async fn tables(pool: &PgPool) -> Result<Vec<TableInfo>, sqlx::Error> {
    // query_to_xml counts rows of each table server-side with a quoted
    // identifier (format %I), so no SQL is assembled in Rust.
    sqlx::query_as(
        "SELECT t.tablename::text AS table_name,
                (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', t.schemaname, t.tablename), false, true, '')))[1]::text::bigint AS row_count,
                pg_total_relation_size(format('%I.%I', t.schemaname, t.tablename)) AS total_bytes,
                pg_size_pretty(pg_total_relation_size(format('%I.%I', t.schemaname, t.tablename))) AS size
           FROM pg_tables t
          WHERE t.schemaname = 'public'
          ORDER BY total_bytes DESC, t.tablename",
    )
    .fetch_all(pool)
    .await
}

/// `pg_size_pretty(pg_database_size(current_database()))`.
pub async fn database_size(pool: &PgPool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
        .fetch_one(pool)
        .await
}

/// `VACUUM ANALYZE` of the whole database (cannot run inside a transaction).
pub async fn vacuum_analyze(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("VACUUM ANALYZE").execute(pool).await.map(|_| ())
}

/// One index and how often it was used (the seed's monitoring query).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IndexUsage {
    /// Table.
    pub table_name: String,
    /// Index.
    pub index_name: String,
    /// Scans using the index.
    pub idx_scan: i64,
    /// Index entries returned.
    pub idx_tup_read: i64,
    /// Live rows fetched.
    pub idx_tup_fetch: i64,
}

/// Index usage, most used first.
pub async fn index_usage(pool: &PgPool) -> Result<Vec<IndexUsage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT relname::text AS table_name, indexrelname::text AS index_name,
                COALESCE(idx_scan, 0) AS idx_scan, COALESCE(idx_tup_read, 0) AS idx_tup_read,
                COALESCE(idx_tup_fetch, 0) AS idx_tup_fetch
           FROM pg_stat_user_indexes
          WHERE schemaname = 'public'
          ORDER BY idx_scan DESC, relname, indexrelname",
    )
    .fetch_all(pool)
    .await
}

/// A statement from `pg_stat_statements`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SlowQuery {
    /// Normalised statement text.
    pub query: String,
    /// Times executed.
    pub calls: i64,
    /// Total execution time, ms.
    pub total_exec_time: f64,
    /// Mean execution time, ms.
    pub mean_exec_time: f64,
    /// Longest execution, ms.
    pub max_exec_time: f64,
}

/// Why slow queries are not available.
#[derive(Debug, thiserror::Error)]
pub enum SlowQueriesError {
    /// The extension is missing or not preloaded; the message says how to enable it.
    #[error("{0}")]
    Unavailable(String),
    /// Another database error.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const ENABLE_HINT: &str = "pg_stat_statements is not available, so slow queries cannot be listed. To enable it:\n\
  1. in postgresql.conf: shared_preload_libraries = 'pg_stat_statements' (Debian: the postgresql package ships it)\n\
  2. restart PostgreSQL (sudo systemctl restart postgresql)\n\
  3. in this database: CREATE EXTENSION pg_stat_statements;\n\
  (The embedded database enables it automatically.)";

/// The slowest statements by mean time (PostgreSQL 13+ column names
/// `total_exec_time`/`mean_exec_time`/`max_exec_time`; the seed's
/// `total_time`/`mean_time` were renamed in 13). Creates the extension when
/// the library is preloaded but the extension was not yet created.
pub async fn slow_queries(pool: &PgPool, limit: i64) -> Result<Vec<SlowQuery>, SlowQueriesError> {
    let preloaded: bool = sqlx::query_scalar(
        "SELECT 'pg_stat_statements' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))",
    )
    .fetch_one(pool)
    .await?;
    if !preloaded {
        return Err(SlowQueriesError::Unavailable(ENABLE_HINT.to_owned()));
    }
    let installed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
            .fetch_one(pool)
            .await?;
    if !installed {
        if let Err(e) = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await
        {
            return Err(SlowQueriesError::Unavailable(format!(
                "{ENABLE_HINT}\n(creating the extension failed: {e})"
            )));
        }
    }
    Ok(sqlx::query_as(
        "SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time
           FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY mean_exec_time DESC
          LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Grants `role` every privilege on database `dbname` (the seed's
/// `GRANT ALL PRIVILEGES ON DATABASE`); identifiers are quoted by the server.
pub async fn grant_all_on_database(pool: &PgPool, dbname: &str, role: &str) -> Result<(), sqlx::Error> {
    let stmt: String =
        sqlx::query_scalar("SELECT format('GRANT ALL PRIVILEGES ON DATABASE %I TO %I', $1::text, $2::text)")
            .bind(dbname)
            .bind(role)
            .fetch_one(pool)
            .await?;
    sqlx::raw_sql(&stmt).execute(pool).await.map(|_| ())
}

/// Lets `role` create tables in the `public` schema of the database `pool`
/// is connected to (needed since PostgreSQL 15 for non-owners).
pub async fn grant_schema_create(pool: &PgPool, role: &str) -> Result<(), sqlx::Error> {
    let stmt: String = sqlx::query_scalar("SELECT format('GRANT ALL ON SCHEMA public TO %I', $1::text)")
        .bind(role)
        .fetch_one(pool)
        .await?;
    sqlx::raw_sql(&stmt).execute(pool).await.map(|_| ())
}

/// Checks that the connected role can create (and drop) a table, in a
/// transaction that is rolled back.
pub async fn can_create_tables(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql("CREATE TABLE crosslogic_permission_probe (id integer)")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await
}
