//! `tenants`: the organisations that buy inference.

use chrono::{DateTime, NaiveDate, Utc};
use crosslogic_core::{BillingPlan, SuspensionReason, TenantStatus};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `tenants`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub stripe_customer_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: TenantStatus,
    #[sqlx(try_from = "String")]
    pub billing_plan: BillingPlan,
    pub reserved_capacity_tokens_per_sec: i32,
    /// Preferred region codes, most preferred first.
    #[sqlx(json)]
    pub region_preferences: Vec<String>,
    /// Tenant-wide limits; `None` = the platform default applies.
    pub rate_limit_requests_per_min: Option<i32>,
    pub rate_limit_tokens_per_min: Option<i32>,
    pub concurrency_limit: Option<i32>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Why a suspended tenant is suspended (see [`Tenant::suspension_reason`]).
    #[sqlx(rename = "suspension_reason")]
    pub suspension_reason_text: Option<String>,
    /// Monthly budget; `None` = no budget.
    pub monthly_budget_microdollars: Option<i64>,
    /// Whether reaching the budget stops requests.
    pub budget_hard_stop: bool,
    /// The month (its first day) whose budget stopped requests.
    pub spend_blocked_month: Option<NaiveDate>,
}

impl Tenant {
    /// Why a suspended tenant is suspended (`None` when it is not).
    pub fn suspension_reason(&self) -> Option<SuspensionReason> {
        self.suspension_reason_text.as_deref().and_then(|r| r.parse().ok())
    }
}

/// The column list, as a literal so queries are built with `concat!`, not `format!`.
macro_rules! columns {
    () => {
        "id, name, email, stripe_customer_id, status, billing_plan, reserved_capacity_tokens_per_sec, \
     region_preferences, rate_limit_requests_per_min, rate_limit_tokens_per_min, concurrency_limit, metadata, \
     created_at, updated_at, deleted_at, suspension_reason, monthly_budget_microdollars, budget_hard_stop, \
     spend_blocked_month"
    };
}

/// Fields of a new tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub email: String,
    pub billing_plan: BillingPlan,
    pub stripe_customer_id: Option<String>,
    pub region_preferences: Vec<String>,
    pub metadata: Value,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub billing_plan: Option<BillingPlan>,
    pub stripe_customer_id: Option<String>,
    pub reserved_capacity_tokens_per_sec: Option<i32>,
    pub region_preferences: Option<Vec<String>>,
    pub rate_limit_requests_per_min: Option<i32>,
    pub rate_limit_tokens_per_min: Option<i32>,
    pub concurrency_limit: Option<i32>,
    pub metadata: Option<Value>,
}

/// Inserts a tenant. A taken email is `DbError::Conflict { constraint: "tenants_email_key" }`.
pub async fn create(db: impl PgExecutor<'_>, new: &NewTenant) -> DbResult<Tenant> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO tenants (name, email, billing_plan, stripe_customer_id, region_preferences, metadata)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        columns!(),
        ""
    ))
    .bind(&new.name)
    .bind(&new.email)
    .bind(new.billing_plan.as_str())
    .bind(&new.stripe_customer_id)
    .bind(Json(&new.region_preferences))
    .bind(&new.metadata)
    .fetch_one(db)
    .await?)
}

/// One tenant by id (deleted ones included; check `status`).
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Tenant> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM tenants WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("tenant")
}

/// One tenant by Stripe customer id (webhooks).
pub async fn get_by_stripe_customer(db: impl PgExecutor<'_>, customer: &str) -> DbResult<Tenant> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants WHERE stripe_customer_id = $1"
    ))
    .bind(customer)
    .fetch_optional(db)
    .await
    .or_not_found("tenant")
}

/// Newest first, `limit` rows after the tenant `after` (keyset pagination);
/// optionally only one status and only those whose name or email contains
/// `search` (case-insensitive). Deleted tenants only when asked for.
pub async fn list(
    db: impl PgExecutor<'_>,
    status: Option<TenantStatus>,
    search: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> DbResult<Vec<Tenant>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants
          WHERE ($1::text IS NULL AND status <> 'deleted' OR status = $1)
            AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM tenants WHERE id = $2))
            AND ($4::text IS NULL OR strpos(lower(name), lower($4)) > 0 OR strpos(lower(email), lower($4)) > 0)
          ORDER BY created_at DESC, id DESC
          LIMIT $3"
    ))
    .bind(status.map(|s| s.as_str()))
    .bind(after)
    .bind(limit)
    .bind(search)
    .fetch_all(db)
    .await?)
}

/// Applies a patch and returns the new row.
pub async fn update(db: impl PgExecutor<'_>, id: Uuid, patch: &TenantPatch) -> DbResult<Tenant> {
    sqlx::query_as(concat!(
        "UPDATE tenants SET
            name = COALESCE($2, name),
            email = COALESCE($3, email),
            billing_plan = COALESCE($4, billing_plan),
            stripe_customer_id = COALESCE($5, stripe_customer_id),
            reserved_capacity_tokens_per_sec = COALESCE($6, reserved_capacity_tokens_per_sec),
            region_preferences = COALESCE($7, region_preferences),
            rate_limit_requests_per_min = COALESCE($8, rate_limit_requests_per_min),
            rate_limit_tokens_per_min = COALESCE($9, rate_limit_tokens_per_min),
            concurrency_limit = COALESCE($10, concurrency_limit),
            metadata = COALESCE($11, metadata)
          WHERE id = $1 RETURNING ",
        columns!(),
        ""
    ))
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.email)
    .bind(patch.billing_plan.map(|p| p.as_str()))
    .bind(&patch.stripe_customer_id)
    .bind(patch.reserved_capacity_tokens_per_sec)
    .bind(patch.region_preferences.as_ref().map(Json))
    .bind(patch.rate_limit_requests_per_min)
    .bind(patch.rate_limit_tokens_per_min)
    .bind(patch.concurrency_limit)
    .bind(&patch.metadata)
    .fetch_optional(db)
    .await
    .or_not_found("tenant")
}

/// Sets the status (`deleted` also stamps `deleted_at`) and, for a
/// suspension, its reason (cleared otherwise). Returns the row.
pub async fn set_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: TenantStatus,
    reason: Option<SuspensionReason>,
) -> DbResult<Tenant> {
    sqlx::query_as(concat!(
        "UPDATE tenants SET status = $2,
                deleted_at = CASE WHEN $2 = 'deleted' THEN COALESCE(deleted_at, now()) ELSE NULL END,
                suspension_reason = CASE WHEN $2 = 'suspended' THEN $3 ELSE NULL END
          WHERE id = $1 RETURNING ",
        columns!(),
        ""
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(reason.map(|r| r.as_str()))
    .fetch_optional(db)
    .await
    .or_not_found("tenant")
}

/// One tenant, locked for the rest of the transaction.
pub async fn get_for_update(db: impl PgExecutor<'_>, id: Uuid) -> DbResult<Tenant> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM tenants WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(db)
        .await
        .or_not_found("tenant")
}

/// Records the tenant's Stripe customer unless it has one; returns the
/// customer id the tenant has afterwards.
pub async fn set_stripe_customer(db: impl PgExecutor<'_>, id: Uuid, customer: &str) -> DbResult<String> {
    sqlx::query_scalar(
        "UPDATE tenants SET stripe_customer_id = COALESCE(stripe_customer_id, $2) WHERE id = $1
         RETURNING stripe_customer_id",
    )
    .bind(id)
    .bind(customer)
    .fetch_optional(db)
    .await
    .or_not_found("tenant")
}

/// Sets (or with `None` removes) the monthly budget. Returns the row.
pub async fn set_budget(
    db: impl PgExecutor<'_>,
    id: Uuid,
    budget_microdollars: Option<i64>,
    hard_stop: bool,
) -> DbResult<Tenant> {
    sqlx::query_as(concat!(
        "UPDATE tenants SET monthly_budget_microdollars = $2, budget_hard_stop = $3 WHERE id = $1 RETURNING ",
        columns!(),
        ""
    ))
    .bind(id)
    .bind(budget_microdollars)
    .bind(hard_stop)
    .fetch_optional(db)
    .await
    .or_not_found("tenant")
}

/// Stops (`Some(month)`) or resumes (`None`) a tenant's requests for its
/// budget; `true` when this changed anything (gateways are told by
/// trigger).
pub async fn set_spend_blocked(db: impl PgExecutor<'_>, id: Uuid, month: Option<NaiveDate>) -> DbResult<bool> {
    Ok(sqlx::query(
        "UPDATE tenants SET spend_blocked_month = $2 WHERE id = $1 AND spend_blocked_month IS DISTINCT FROM $2",
    )
    .bind(id)
    .bind(month)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Tenants with a monthly budget or a request stop in place (not deleted).
pub async fn with_budgets(db: impl PgExecutor<'_>) -> DbResult<Vec<Tenant>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants
          WHERE status <> 'deleted' AND (monthly_budget_microdollars IS NOT NULL OR spend_blocked_month IS NOT NULL)
          ORDER BY id"
    ))
    .fetch_all(db)
    .await?)
}
