//! Retention of raw usage rows: rows of hours older than `USAGE_RETENTION`
//! are deleted once the hour is rolled up, settled and has nothing waiting
//! for export, in bounded batches (one short statement each, so the table
//! stays writable and the WAL grows evenly).
//!
//! Why batched deletes rather than partitions: `usage_records.request_id`
//! is unique (the guarantee that a replayed batch never bills twice), and a
//! partitioned table can only enforce uniqueness on keys that include the
//! partition column; partitioning by time would give that up. Rows that
//! arrive for a purged hour later still count: the rollup adds them (see
//! `crosslogic_db::repo::rollups`).

use chrono::{DateTime, Utc};
use crosslogic_db::repo::billing::settlement;
use crosslogic_db::{DbError, PgPool};

use crate::BillingConfig;

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgePass {
    pub hours: usize,
    pub rows: u64,
}

/// Purges what is due as of `now` (at most a day of hours per pass).
pub async fn purge_once(pool: &PgPool, cfg: &BillingConfig, now: DateTime<Utc>) -> Result<PurgePass, DbError> {
    let mut pass = PurgePass::default();
    let retention = chrono::Duration::from_std(cfg.settings.usage_retention).unwrap_or(chrono::Duration::MAX);
    for hour in settlement::purgeable_hours(pool, now - retention, 24).await? {
        let mut tx = crosslogic_db::begin(pool).await?;
        // None: the hour changed since it was listed; a later pass retries.
        let _mark = settlement::begin_purge(&mut tx, hour).await?;
        crosslogic_db::commit(tx).await?;
    }
    for (hour, max_id) in settlement::unfinished_purges(pool).await? {
        loop {
            let n = settlement::purge_batch(pool, hour, max_id, cfg.purge_batch).await?;
            pass.rows += n;
            if n < cfg.purge_batch as u64 {
                break;
            }
        }
        settlement::finish_purge(pool, hour).await?;
        pass.hours += 1;
        tracing::info!(hour = %hour, "raw usage rows past retention deleted");
    }
    Ok(pass)
}
