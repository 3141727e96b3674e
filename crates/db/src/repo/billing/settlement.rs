//! Settling tenant-hours: `usage_hours.settle_pending` says an hour's
//! rollups changed since it was last settled; `billing_tenant_hours` holds
//! what each tenant-hour was billed, covered by credits and left payable.
//! Also the retention of raw usage rows, which waits for settlement.

use chrono::{DateTime, Utc};
use crosslogic_core::Femtos;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::DbResult;
use crate::money::{from_numeric, to_numeric};

/// A tenant-hour as settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantHour {
    pub tenant_id: Uuid,
    pub hour: DateTime<Utc>,
    /// Σ exact cost of the tenant's usage in the hour.
    pub cost_exact: Femtos,
    /// `cost_exact` rounded once.
    pub billed_microdollars: i64,
    /// The part credits covered.
    pub credit_microdollars: i64,
    /// `billed − credit`: what is sent to Stripe.
    pub payable_microdollars: i64,
    /// 0 for the first settlement, +1 per correction.
    pub revision: i32,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: Uuid,
    hour: DateTime<Utc>,
    cost_exact_microdollars: Decimal,
    billed_microdollars: i64,
    credit_microdollars: i64,
    payable_microdollars: i64,
    revision: i32,
}

impl From<Row> for TenantHour {
    fn from(r: Row) -> Self {
        TenantHour {
            tenant_id: r.tenant_id,
            hour: r.hour,
            cost_exact: from_numeric(r.cost_exact_microdollars),
            billed_microdollars: r.billed_microdollars,
            credit_microdollars: r.credit_microdollars,
            payable_microdollars: r.payable_microdollars,
            revision: r.revision,
        }
    }
}

/// Claims the oldest hour that needs settling and began before
/// `before` (locked until the transaction ends; replicas skip it), with
/// whether it predates billing (`not_billed`: finish it without billing).
pub async fn claim_hour(tx: &mut PgConnection, before: DateTime<Utc>) -> DbResult<Option<(DateTime<Utc>, bool)>> {
    Ok(sqlx::query_as(
        "SELECT hour, not_billed FROM usage_hours WHERE settle_pending AND hour <= $1
          ORDER BY hour LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(before)
    .fetch_optional(tx)
    .await?)
}

/// The settled tenant-hours of `hour`.
pub async fn tenant_hours(db: impl PgExecutor<'_>, hour: DateTime<Utc>) -> DbResult<Vec<TenantHour>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant_id, hour, cost_exact_microdollars, billed_microdollars, credit_microdollars,
                payable_microdollars, revision
           FROM billing_tenant_hours WHERE hour = $1",
    )
    .bind(hour)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// A tenant's settled hours in `[from, to)`, oldest first.
pub async fn tenant_hours_between(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<TenantHour>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant_id, hour, cost_exact_microdollars, billed_microdollars, credit_microdollars,
                payable_microdollars, revision
           FROM billing_tenant_hours WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Writes a tenant-hour's settlement (insert or replace).
pub async fn save_tenant_hour(tx: &mut PgConnection, h: &TenantHour) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO billing_tenant_hours (tenant_id, hour, cost_exact_microdollars, billed_microdollars,
                                           credit_microdollars, payable_microdollars, revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, hour) DO UPDATE
            SET cost_exact_microdollars = EXCLUDED.cost_exact_microdollars,
                billed_microdollars = EXCLUDED.billed_microdollars,
                credit_microdollars = EXCLUDED.credit_microdollars,
                payable_microdollars = EXCLUDED.payable_microdollars,
                revision = EXCLUDED.revision",
    )
    .bind(h.tenant_id)
    .bind(h.hour)
    .bind(to_numeric(h.cost_exact))
    .bind(h.billed_microdollars)
    .bind(h.credit_microdollars)
    .bind(h.payable_microdollars)
    .bind(h.revision)
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks `hour` settled (until its rollups change again).
pub async fn finish_hour(tx: &mut PgConnection, hour: DateTime<Utc>) -> DbResult<()> {
    sqlx::query("UPDATE usage_hours SET settle_pending = false, settled_at = now() WHERE hour = $1")
        .bind(hour)
        .execute(tx)
        .await?;
    Ok(())
}

/// Billed, credited and payable micro-dollars over settled hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SettledTotals {
    pub billed_microdollars: i64,
    pub credit_microdollars: i64,
    pub payable_microdollars: i64,
}

/// A tenant's settled totals over hours in `[from, to)`.
pub async fn tenant_totals(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<SettledTotals> {
    Ok(sqlx::query_as(
        "SELECT COALESCE(sum(billed_microdollars), 0)::bigint AS billed_microdollars,
                COALESCE(sum(credit_microdollars), 0)::bigint AS credit_microdollars,
                COALESCE(sum(payable_microdollars), 0)::bigint AS payable_microdollars
           FROM billing_tenant_hours WHERE tenant_id = $1 AND hour >= $2 AND hour < $3",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_one(db)
    .await?)
}

/// Platform revenue of one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DailyRevenue {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub tenants: i64,
    pub billed_microdollars: i64,
    pub credit_microdollars: i64,
    pub payable_microdollars: i64,
}

/// Settled revenue per UTC day over hours in `[from, to)`.
pub async fn revenue_by_day(
    db: impl PgExecutor<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<DailyRevenue>> {
    Ok(sqlx::query_as(
        "SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(DISTINCT tenant_id) AS tenants,
                sum(billed_microdollars)::bigint AS billed_microdollars,
                sum(credit_microdollars)::bigint AS credit_microdollars,
                sum(payable_microdollars)::bigint AS payable_microdollars
           FROM billing_tenant_hours WHERE hour >= $1 AND hour < $2
          GROUP BY 1 ORDER BY 1",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// Hours older than `before` whose raw rows may go: rolled up, settled,
/// nothing queued or pending export, not purged yet. Oldest first.
pub async fn purgeable_hours(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT h.hour FROM usage_hours h
          WHERE h.hour < $1 AND h.purged_at IS NULL AND h.rolled_up_at IS NOT NULL
            AND NOT h.settle_pending AND h.settled_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM usage_rollup_queue q WHERE q.hour = h.hour)
            AND NOT EXISTS (SELECT 1 FROM billing_events e
                             WHERE e.period_start = h.hour AND e.event_type = 'usage' AND e.status = 'pending')
          ORDER BY h.hour LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Starts purging `hour`: waits for usage inserts in flight to commit
/// (a SHARE lock on `usage_records`, held for this short transaction), so
/// every row of the hour that exists now has an id at or below the mark
/// it records and every later row one above it. Under that lock it checks
/// again that the hour is rolled up, settled and has nothing queued or
/// pending export (a row may have committed since the hour was listed);
/// `None` when it is not, and nothing changes.
pub async fn begin_purge(tx: &mut PgConnection, hour: DateTime<Utc>) -> DbResult<Option<i64>> {
    sqlx::query("LOCK TABLE usage_records IN SHARE MODE")
        .execute(&mut *tx)
        .await?;
    let still: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT h.hour FROM usage_hours h
          WHERE h.hour = $1 AND h.purged_at IS NULL AND h.rolled_up_at IS NOT NULL
            AND NOT h.settle_pending AND h.settled_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM usage_rollup_queue q WHERE q.hour = h.hour)
            AND NOT EXISTS (SELECT 1 FROM billing_events e
                             WHERE e.period_start = h.hour AND e.event_type = 'usage' AND e.status = 'pending')
          FOR UPDATE",
    )
    .bind(hour)
    .fetch_optional(&mut *tx)
    .await?;
    if still.is_none() {
        return Ok(None);
    }
    let max_id: i64 = sqlx::query_scalar(
        "SELECT COALESCE(max(id), 0) FROM usage_records
          WHERE \"timestamp\" >= $1 AND \"timestamp\" < $1 + interval '1 hour'",
    )
    .bind(hour)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE usage_hours SET purged_at = now(), purge_max_id = $2 WHERE hour = $1")
        .bind(hour)
        .bind(max_id)
        .execute(&mut *tx)
        .await?;
    Ok(Some(max_id))
}

/// Hours whose purge began and has not finished (a crash mid-purge), with
/// their marks.
pub async fn unfinished_purges(db: impl PgExecutor<'_>) -> DbResult<Vec<(DateTime<Utc>, i64)>> {
    Ok(sqlx::query_as(
        "SELECT hour, COALESCE(purge_max_id, 0) FROM usage_hours
          WHERE purged_at IS NOT NULL AND NOT purge_done ORDER BY hour",
    )
    .fetch_all(db)
    .await?)
}

/// Deletes up to `batch` raw rows of `hour` at or below `max_id`; returns
/// how many went.
pub async fn purge_batch(db: impl PgExecutor<'_>, hour: DateTime<Utc>, max_id: i64, batch: i64) -> DbResult<u64> {
    Ok(sqlx::query(
        "DELETE FROM usage_records WHERE id IN (
             SELECT id FROM usage_records
              WHERE \"timestamp\" >= $1 AND \"timestamp\" < $1 + interval '1 hour' AND id <= $2
              LIMIT $3)",
    )
    .bind(hour)
    .bind(max_id)
    .bind(batch)
    .execute(db)
    .await?
    .rows_affected())
}

/// Marks a purge finished.
pub async fn finish_purge(db: impl PgExecutor<'_>, hour: DateTime<Utc>) -> DbResult<()> {
    sqlx::query("UPDATE usage_hours SET purge_done = true WHERE hour = $1")
        .bind(hour)
        .execute(db)
        .await?;
    Ok(())
}
