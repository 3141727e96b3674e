//! Tenant operations.

use crosslogic_core::events::{CreditGranted, TenantEvent};
use crosslogic_core::{Actor, BillingPlan, CreditType, Event, ServiceError, SuspensionReason, TenantStatus};
use crosslogic_db::changes;
use crosslogic_db::repo::billing::{credits, stripe as billing_stripe};
use crosslogic_db::repo::tenants::{self, NewTenant, Tenant, TenantPatch};
use crosslogic_db::PgPool;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::validate;

/// Body of "create tenant".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[serde(default)]
    pub billing_plan: Option<BillingPlan>,
    #[serde(default)]
    pub stripe_customer_id: Option<String>,
    #[serde(default)]
    pub region_preferences: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Body of "update tenant": only the given fields change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    pub billing_plan: Option<BillingPlan>,
    pub stripe_customer_id: Option<String>,
    #[schema(minimum = 0, maximum = 2147483647)]
    pub reserved_capacity_tokens_per_sec: Option<i64>,
    pub region_preferences: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_requests_per_min: Option<i64>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub rate_limit_tokens_per_min: Option<i64>,
    #[schema(minimum = 1, maximum = 2147483647)]
    pub concurrency_limit: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

fn metadata(field: &'static str, v: Option<Value>) -> Result<Option<Value>, ServiceError> {
    match v {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(Value::Object(m))),
        Some(_) => Err(ServiceError::invalid(field, "must be a JSON object")),
    }
}

/// The payload of a `tenant.*` event.
fn event(t: &Tenant) -> TenantEvent {
    TenantEvent {
        tenant_id: t.id,
        name: t.name.clone(),
        email: t.email.clone(),
        status: t.status,
        billing_plan: t.billing_plan,
        reason: t.suspension_reason(),
    }
}

/// A credit every new tenant receives (`BILLING_SIGNUP_CREDIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignupCredit {
    pub amount_microdollars: i64,
    /// `None`: it never expires.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Creates a tenant; publishes `tenant.created`, and with `signup` grants
/// the signup credit in the same transaction (`billing.credit_granted`).
pub async fn create_tenant(
    pool: &PgPool,
    actor: &Actor,
    input: CreateTenant,
    signup: Option<SignupCredit>,
) -> Result<Tenant, ServiceError> {
    let new = NewTenant {
        name: validate::name("name", &input.name, 200)?,
        email: validate::email(&input.email)?,
        billing_plan: input.billing_plan.unwrap_or(BillingPlan::Serverless),
        stripe_customer_id: input.stripe_customer_id.filter(|s| !s.trim().is_empty()),
        region_preferences: input.region_preferences.unwrap_or_default(),
        metadata: metadata("metadata", input.metadata)?.unwrap_or_else(|| json!({})),
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let tenant = tenants::create(&mut *tx, &new).await?;
    changes::record(&mut tx, actor, &Event::TenantCreated(event(&tenant))).await?;
    if let Some(s) = signup.filter(|s| s.amount_microdollars > 0) {
        let description = "signup credit";
        let credit = credits::grant(
            &mut *tx,
            tenant.id,
            CreditType::SignupBonus,
            s.amount_microdollars,
            Some(description),
            s.expires_at,
        )
        .await?;
        changes::record(
            &mut tx,
            actor,
            &Event::CreditGranted(CreditGranted {
                tenant_id: tenant.id,
                credit_id: credit.id,
                credit_type: CreditType::SignupBonus,
                amount_microdollars: s.amount_microdollars,
                expires_at: s.expires_at,
                description: Some(description.into()),
            }),
        )
        .await?;
    }
    crosslogic_db::commit(tx).await?;
    Ok(tenant)
}

/// One tenant.
pub async fn get_tenant(pool: &PgPool, id: Uuid) -> Result<Tenant, ServiceError> {
    Ok(tenants::get(pool, id).await?)
}

/// A page of tenants (newest first) and the cursor of the next page.
pub async fn list_tenants(
    pool: &PgPool,
    status: Option<TenantStatus>,
    search: Option<&str>,
    after: Option<Uuid>,
    limit: Option<i64>,
) -> Result<(Vec<Tenant>, Option<Uuid>), ServiceError> {
    let limit = crosslogic_db::repo::page_size(limit);
    if let Some(q) = search {
        validate::name("q", q, 255)?;
    }
    let page = tenants::list(pool, status, search, after, limit).await?;
    let next = if page.len() as i64 == limit {
        page.last().map(|t| t.id)
    } else {
        None
    };
    Ok((page, next))
}

/// Changes fields of a tenant; publishes `tenant.updated`.
pub async fn update_tenant(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    input: UpdateTenant,
) -> Result<Tenant, ServiceError> {
    let patch = TenantPatch {
        name: input
            .name
            .as_deref()
            .map(|n| validate::name("name", n, 200))
            .transpose()?,
        email: input.email.as_deref().map(validate::email).transpose()?,
        billing_plan: input.billing_plan,
        stripe_customer_id: input.stripe_customer_id,
        reserved_capacity_tokens_per_sec: validate::non_negative(
            "reserved_capacity_tokens_per_sec",
            input.reserved_capacity_tokens_per_sec,
        )?,
        region_preferences: input.region_preferences,
        rate_limit_requests_per_min: validate::positive(
            "rate_limit_requests_per_min",
            input.rate_limit_requests_per_min,
        )?,
        rate_limit_tokens_per_min: validate::positive("rate_limit_tokens_per_min", input.rate_limit_tokens_per_min)?,
        concurrency_limit: validate::positive("concurrency_limit", input.concurrency_limit)?,
        metadata: metadata("metadata", input.metadata)?,
    };
    let mut tx = crosslogic_db::begin(pool).await?;
    let tenant = tenants::update(&mut *tx, id, &patch).await?;
    changes::record(&mut tx, actor, &Event::TenantUpdated(event(&tenant))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(tenant)
}

/// Suspends, reactivates or (soft-)deletes a tenant; publishes
/// `tenant.suspended`, `tenant.activated` or `tenant.deleted`. A deleted
/// tenant cannot be reactivated.
pub async fn set_tenant_status(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    status: TenantStatus,
) -> Result<Tenant, ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let current = tenants::get(&mut *tx, id).await?;
    if current.status == TenantStatus::Deleted && status != TenantStatus::Deleted {
        return Err(ServiceError::State(
            "the tenant is deleted and cannot be changed".into(),
        ));
    }
    if current.status == status {
        return Ok(current);
    }
    let reason = (status == TenantStatus::Suspended).then_some(SuspensionReason::Operator);
    let tenant = tenants::set_status(&mut *tx, id, status, reason).await?;
    if current.suspension_reason() == Some(SuspensionReason::NonPayment) && status == TenantStatus::Active {
        // The operator lifted a suspension for non-payment: unpaid invoices
        // get a new grace period instead of suspending the tenant again at
        // the next dunning check.
        billing_stripe::restart_grace(&mut *tx, id).await?;
    }
    let payload = event(&tenant);
    let change = match status {
        TenantStatus::Active => Event::TenantActivated(payload),
        TenantStatus::Suspended => Event::TenantSuspended(payload),
        TenantStatus::Deleted => Event::TenantDeleted(payload),
    };
    changes::record(&mut tx, actor, &change).await?;
    crosslogic_db::commit(tx).await?;
    Ok(tenant)
}

/// Suspends an active tenant for non-payment (Stripe dunning), on `tx`;
/// publishes `tenant.suspended` with reason `non_payment`, audited as
/// `actor`. `None` when the tenant is not active (already suspended — by
/// the operator or for non-payment — or deleted): nothing changes.
pub async fn suspend_for_non_payment(
    tx: &mut crosslogic_db::PgConnection,
    actor: &Actor,
    id: Uuid,
) -> Result<Option<Tenant>, crosslogic_db::DbError> {
    let current = tenants::get_for_update(&mut *tx, id).await?;
    if current.status != TenantStatus::Active {
        return Ok(None);
    }
    let tenant = tenants::set_status(
        &mut *tx,
        id,
        TenantStatus::Suspended,
        Some(SuspensionReason::NonPayment),
    )
    .await?;
    changes::record(tx, actor, &Event::TenantSuspended(event(&tenant))).await?;
    Ok(Some(tenant))
}

/// Reactivates a tenant suspended for non-payment (not one the operator
/// suspended), on `tx`; publishes `tenant.activated`. `None` when there
/// was nothing to lift.
pub async fn reactivate_after_payment(
    tx: &mut crosslogic_db::PgConnection,
    actor: &Actor,
    id: Uuid,
) -> Result<Option<Tenant>, crosslogic_db::DbError> {
    let current = tenants::get_for_update(&mut *tx, id).await?;
    if current.status != TenantStatus::Suspended || current.suspension_reason() != Some(SuspensionReason::NonPayment) {
        return Ok(None);
    }
    let tenant = tenants::set_status(&mut *tx, id, TenantStatus::Active, None).await?;
    changes::record(tx, actor, &Event::TenantActivated(event(&tenant))).await?;
    Ok(Some(tenant))
}
