//! `credits`: grants and what remains of them.

use chrono::{DateTime, Utc};
use crosslogic_core::CreditType;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `credits`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credit {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub credit_type: CreditType,
    pub amount_microdollars: i64,
    pub remaining_microdollars: i64,
    pub description: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, credit_type, amount_microdollars, remaining_microdollars, description, expires_at, created_at"
    };
}

/// Grants a credit (remaining = amount).
pub async fn grant(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    credit_type: CreditType,
    amount_microdollars: i64,
    description: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> DbResult<Credit> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO credits (tenant_id, credit_type, amount_microdollars, remaining_microdollars, description, expires_at)
         VALUES ($1, $2, $3, $3, $4, $5) RETURNING ",
        columns!()
    ))
    .bind(tenant_id)
    .bind(credit_type.as_str())
    .bind(amount_microdollars)
    .bind(description)
    .bind(expires_at)
    .fetch_one(db)
    .await?)
}

/// One credit.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Credit> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM credits WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("credit")
}

/// A tenant's credits, newest grant first.
pub async fn list(db: impl PgExecutor<'_>, tenant_id: Uuid) -> DbResult<Vec<Credit>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM credits WHERE tenant_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(tenant_id)
    .fetch_all(db)
    .await?)
}

/// A tenant's credits with something left that are unexpired at `at`,
/// locked until the transaction ends (soonest-expiring first).
pub async fn usable_for_update(tx: &mut PgConnection, tenant_id: Uuid, at: DateTime<Utc>) -> DbResult<Vec<Credit>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM credits
          WHERE tenant_id = $1 AND remaining_microdollars > 0 AND (expires_at IS NULL OR expires_at > $2)
          ORDER BY expires_at NULLS LAST, created_at FOR UPDATE"
    ))
    .bind(tenant_id)
    .bind(at)
    .fetch_all(tx)
    .await?)
}

/// Takes `amount` from a credit (which must have it).
pub async fn take(tx: &mut PgConnection, id: Uuid, amount: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE credits SET remaining_microdollars = remaining_microdollars - $2
          WHERE id = $1 AND remaining_microdollars >= $2 RETURNING id",
    )
    .bind(id)
    .bind(amount)
    .fetch_optional(tx)
    .await
    .or_not_found("credit")
    .map(|_: sqlx::postgres::PgRow| ())
}

/// What a tenant's credits hold at `at`: the remaining total and the
/// soonest expiry among them.
pub async fn balance(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    at: DateTime<Utc>,
) -> DbResult<(i64, Option<DateTime<Utc>>)> {
    Ok(sqlx::query_as(
        "SELECT COALESCE(sum(remaining_microdollars), 0)::bigint, min(expires_at) FROM credits
          WHERE tenant_id = $1 AND remaining_microdollars > 0 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(tenant_id)
    .bind(at)
    .fetch_one(db)
    .await?)
}
