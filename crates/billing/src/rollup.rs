//! The rollup worker: every UTC hour that has ended and has queued usage
//! is recomputed into `usage_hourly` (see `crosslogic_db::repo::rollups`
//! for why nothing can be missed). The hour still running is not rolled
//! up: reports read its raw rows.

use chrono::{DateTime, Utc};
use crosslogic_core::billing::hour_start;
use crosslogic_db::repo::rollups;
use crosslogic_db::{DbError, PgPool};

/// What one pass rolled up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RollupPass {
    /// Hours recomputed.
    pub hours: usize,
    /// `usage_hourly` rows written.
    pub rows: u64,
}

/// Rolls up every ended hour with queued usage as of `now`, oldest first,
/// one transaction per hour.
pub async fn rollup_pending(pool: &PgPool, now: DateTime<Utc>) -> Result<RollupPass, DbError> {
    let mut pass = RollupPass::default();
    let open_hour = hour_start(now);
    loop {
        let hours = rollups::queued_hours(pool, open_hour, 100).await?;
        if hours.is_empty() {
            return Ok(pass);
        }
        for hour in &hours {
            let started = std::time::Instant::now();
            let mut tx = crosslogic_db::begin(pool).await?;
            let done = rollups::rollup_hour(&mut tx, *hour).await?;
            crosslogic_db::commit(tx).await?;
            pass.hours += 1;
            pass.rows += done.rows;
            tracing::debug!(hour = %hour, rows = done.rows, queued = done.queued, folded = done.folded,
                            ms = started.elapsed().as_millis() as u64, "usage hour rolled up");
        }
        if hours.len() < 100 {
            return Ok(pass);
        }
    }
}
