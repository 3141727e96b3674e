//! Repositories: one module per table family.
//!
//! Conventions: functions take `impl PgExecutor` (a pool, a connection or a
//! transaction) so a caller can make a change and, on the same transaction,
//! publish its event and write its audit entry through [`crate::changes`]. Status columns are read through the `crosslogic-core` enums
//! (`#[sqlx(try_from = "String")]`) and written with `.as_str()`.

pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod catalog;
pub mod console;
pub mod deployments;
pub mod environments;
pub mod events;
pub mod nodes;
pub mod notifications;
pub mod provision_jobs;
pub mod rollups;
pub mod tenants;
pub mod usage;

use sqlx::PgPool;

/// `SELECT 1`: the database answers.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .map(|_| ())
}

/// Page size bounds for list endpoints.
pub const MAX_PAGE: i64 = 500;

/// Clamps a requested page size to 1..=[`MAX_PAGE`] (default 50).
pub fn page_size(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, MAX_PAGE)
}
