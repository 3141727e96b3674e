//! Usage reports over any range: whole hours that are rolled up come from
//! `usage_hourly`, the rest (the open hour, partial edge hours, hours not
//! rolled up yet) from raw `usage_records` — so a month answers from a few
//! hundred rollup rows plus at most an hour or two of raw rows, at any
//! table size.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crosslogic_core::billing::split_range;
use crosslogic_core::Femtos;
use crosslogic_db::repo::rollups;
use crosslogic_db::{DbError, PgPool};
use uuid::Uuid;

pub use crosslogic_db::repo::rollups::{Scope, UsageGroup, UsageTotals};

/// `group_by` of the usage report routes, as the query says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// UTC calendar day (the default).
    #[default]
    Day,
    Hour,
    Model,
    Key,
}

impl From<GroupBy> for UsageGroup {
    fn from(g: GroupBy) -> Self {
        match g {
            GroupBy::Day => UsageGroup::Day,
            GroupBy::Hour => UsageGroup::Hour,
            GroupBy::Model => UsageGroup::Model,
            GroupBy::Key => UsageGroup::Key,
        }
    }
}

/// Usage over `[from, to)` for `scope`, grouped by `group` (and by model
/// too when `by_model`).
pub async fn usage(
    pool: &PgPool,
    scope: Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: UsageGroup,
    by_model: bool,
) -> Result<Vec<UsageTotals>, DbError> {
    let rolled = rollups::rolled_hours(pool, from, to).await?;
    let split = split_range(from, to, &rolled);
    rollups::totals(pool, scope, &split.rolled, &split.raw, group, by_model).await
}

/// Exact spend of each of `tenants` over `[from, to)` (tenants without
/// usage are absent).
pub async fn spend(
    pool: &PgPool,
    tenants: &[Uuid],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<Uuid, Femtos>, DbError> {
    if tenants.is_empty() {
        return Ok(HashMap::new());
    }
    let rolled = rollups::rolled_hours(pool, from, to).await?;
    let split = split_range(from, to, &rolled);
    Ok(rollups::spend_by_tenant(pool, tenants, &split.rolled, &split.raw)
        .await?
        .into_iter()
        .collect())
}
