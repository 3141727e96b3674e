//! Admin handlers for billing and usage: extract, call
//! [`crosslogic_billing::account`] or [`crosslogic_billing::report`],
//! answer the view.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use crosslogic_billing::account::{self, GrantCredit, Interval, SetBudget};
use crosslogic_billing::report::{self, GroupBy, Scope};
use crosslogic_billing::views::{
    CostSeriesView, CreditView, ExportView, RevenueDayView, RevenueModelView, SummaryView, UsageRowView,
};
use crosslogic_core::BillingEventStatus;
use crosslogic_db::repo::billing::events::EventFilter;
use crosslogic_db::repo::billing::stripe as stripe_repo;
use crosslogic_http::{range, ApiError, Body, Id, List, Query};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AdminActor, AdminState};

type Result<T> = std::result::Result<T, ApiError>;

/// Reports over rollups may span up to this many days.
const MAX_REPORT_DAYS: i64 = 400;

#[utoipa::path(
    get,
    operation_id = "get_tenant_billing",
    path = "/admin/v1/tenants/{id}/billing",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = SummaryView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn summary(State(s): State<AdminState>, Id(id): Id) -> Result<Json<SummaryView>> {
    Ok(Json(
        account::summary(&s.pool, id, s.billing.grace_period, Utc::now()).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct CostsQuery {
    from: Option<String>,
    to: Option<String>,
    #[param(inline)]
    interval: Option<Interval>,
}

#[utoipa::path(
    get,
    operation_id = "get_tenant_billing_costs",
    path = "/admin/v1/tenants/{id}/billing/costs",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id."), CostsQuery),
    responses((status = 200, description = "OK", body = CostSeriesView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn costs(
    State(s): State<AdminState>,
    Id(id): Id,
    Query(q): Query<CostsQuery>,
) -> Result<Json<CostSeriesView>> {
    crosslogic_tenancy::get_tenant(&s.pool, id).await?;
    let r = range::parse_within(q.from.as_deref(), q.to.as_deref(), Utc::now(), 30, MAX_REPORT_DAYS)?;
    Ok(Json(
        account::cost_series(
            &s.pool,
            Scope::Tenant {
                tenant_id: id,
                api_key_id: None,
            },
            r.from,
            r.to,
            q.interval.unwrap_or_default(),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<GroupBy>,
    key_id: Option<Uuid>,
}

/// A usage report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct UsageReport {
    /// Always `list`.
    object: &'static str,
    from: String,
    to: String,
    group_by: GroupBy,
    /// The tenant covered; `null` = every tenant.
    tenant_id: Option<Uuid>,
    key_id: Option<Uuid>,
    data: Vec<UsageRowView>,
}

async fn usage_report(s: &AdminState, tenant: Option<Uuid>, q: UsageQuery) -> Result<Json<UsageReport>> {
    let r = range::parse_within(q.from.as_deref(), q.to.as_deref(), Utc::now(), 7, MAX_REPORT_DAYS)?;
    let group_by = q.group_by.unwrap_or_default();
    let scope = match tenant {
        Some(tenant_id) => {
            if let Some(key) = q.key_id {
                let k = crosslogic_tenancy::get_key(&s.pool, key).await?;
                if k.tenant_id != tenant_id {
                    return Err(ApiError::invalid_value("key_id", "the key belongs to another tenant"));
                }
            }
            Scope::Tenant {
                tenant_id,
                api_key_id: q.key_id,
            }
        }
        None if q.key_id.is_some() => {
            return Err(ApiError::invalid_value(
                "key_id",
                "filter by key under /admin/v1/tenants/{id}/usage",
            ))
        }
        None => Scope::Platform,
    };
    let rows = report::usage(&s.pool, scope, r.from, r.to, group_by.into(), false)
        .await
        .map_err(crosslogic_core::ServiceError::from)?;
    Ok(Json(UsageReport {
        object: "list",
        from: range::rfc3339(r.from),
        to: range::rfc3339(r.to),
        group_by,
        tenant_id: tenant,
        key_id: q.key_id,
        data: rows.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    get,
    operation_id = "get_tenant_usage",
    path = "/admin/v1/tenants/{id}/usage",
    tag = "admin: usage",
    params(("id" = Uuid, Path, description = "The id."), UsageQuery),
    responses((status = 200, description = "OK", body = UsageReport), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn tenant_usage(
    State(s): State<AdminState>,
    Id(id): Id,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>> {
    crosslogic_tenancy::get_tenant(&s.pool, id).await?;
    usage_report(&s, Some(id), q).await
}

#[utoipa::path(
    get,
    operation_id = "get_platform_usage",
    path = "/admin/v1/usage",
    tag = "admin: usage",
    params(UsageQuery),
    responses((status = 200, description = "OK", body = UsageReport), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn platform_usage(
    State(s): State<AdminState>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>> {
    usage_report(&s, None, q).await
}

#[utoipa::path(
    get,
    operation_id = "list_tenant_credits",
    path = "/admin/v1/tenants/{id}/credits",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = List<CreditView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_credits(State(s): State<AdminState>, Id(id): Id) -> Result<Json<List<CreditView>>> {
    Ok(Json(List::of(account::list_credits(&s.pool, id, Utc::now()).await?)))
}

#[utoipa::path(
    post,
    operation_id = "grant_tenant_credit",
    path = "/admin/v1/tenants/{id}/credits",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = GrantCredit,
    responses((status = 201, description = "Created", body = CreditView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn grant_credit(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<GrantCredit>,
) -> Result<(StatusCode, Json<CreditView>)> {
    let c = account::grant_credit(&s.pool, &actor, id, input, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(
    put,
    operation_id = "set_tenant_budget",
    path = "/admin/v1/tenants/{id}/budget",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = SetBudget,
    responses((status = 200, description = "OK", body = SummaryView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn set_budget(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<SetBudget>,
) -> Result<Json<SummaryView>> {
    Ok(Json(
        account::set_budget(&s.pool, &actor, id, Some(input), Utc::now()).await?,
    ))
}

#[utoipa::path(
    delete,
    operation_id = "clear_tenant_budget",
    path = "/admin/v1/tenants/{id}/budget",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = SummaryView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn clear_budget(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<Json<SummaryView>> {
    Ok(Json(account::set_budget(&s.pool, &actor, id, None, Utc::now()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportsQuery {
    tenant_id: Option<Uuid>,
    status: Option<BillingEventStatus>,
    /// Hours from (RFC 3339 or a date).
    from: Option<String>,
    to: Option<String>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/billing/exports",
    tag = "admin: billing",
    params(ExportsQuery),
    responses((status = 200, description = "OK", body = List<ExportView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_exports(
    State(s): State<AdminState>,
    Query(q): Query<ExportsQuery>,
) -> Result<Json<List<ExportView>>> {
    let (from, to) = match (&q.from, &q.to) {
        (None, None) => (None, None),
        _ => {
            let r = range::parse_within(q.from.as_deref(), q.to.as_deref(), Utc::now(), 30, MAX_REPORT_DAYS)?;
            (Some(r.from), Some(r.to))
        }
    };
    let filter = EventFilter {
        tenant_id: q.tenant_id,
        event_type: None,
        status: q.status,
        from,
        to,
        after: q.after,
    };
    let (data, next) = account::exports(&s.pool, filter, crosslogic_db::repo::page_size(q.limit)).await?;
    Ok(Json(List::page(data, next)))
}

#[utoipa::path(
    get,
    path = "/admin/v1/billing/exports/{id}",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ExportView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_export(State(s): State<AdminState>, Id(id): Id) -> Result<Json<ExportView>> {
    Ok(Json(account::export(&s.pool, id).await?))
}

#[utoipa::path(
    post,
    path = "/admin/v1/billing/exports/{id}/retry",
    tag = "admin: billing",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ExportView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn retry_export(State(s): State<AdminState>, Id(id): Id) -> Result<Json<ExportView>> {
    Ok(Json(account::retry_export(&s.pool, id).await?))
}

/// `group_by` of the revenue report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum RevenueBy {
    #[default]
    Day,
    Model,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct RevenueQuery {
    from: Option<String>,
    to: Option<String>,
    #[param(inline)]
    group_by: Option<RevenueBy>,
}

/// A day's revenue (settled: billed, credited, payable) or a model's (usage cost).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum RevenueRow {
    Day(RevenueDayView),
    Model(RevenueModelView),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RevenueReport {
    object: &'static str,
    from: String,
    to: String,
    group_by: &'static str,
    /// By day or by model, as `group_by` says.
    data: Vec<RevenueRow>,
}

#[utoipa::path(
    get,
    operation_id = "get_revenue",
    path = "/admin/v1/billing/revenue",
    tag = "admin: billing",
    params(RevenueQuery),
    responses((status = 200, description = "OK", body = RevenueReport), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn revenue(State(s): State<AdminState>, Query(q): Query<RevenueQuery>) -> Result<Json<RevenueReport>> {
    let r = range::parse_within(q.from.as_deref(), q.to.as_deref(), Utc::now(), 30, MAX_REPORT_DAYS)?;
    let (group_by, data) = match q.group_by.unwrap_or_default() {
        RevenueBy::Day => (
            "day",
            account::revenue_by_day(&s.pool, r.from, r.to)
                .await?
                .into_iter()
                .map(RevenueRow::Day)
                .collect(),
        ),
        RevenueBy::Model => (
            "model",
            account::revenue_by_model(&s.pool, r.from, r.to)
                .await?
                .into_iter()
                .map(RevenueRow::Model)
                .collect(),
        ),
    };
    Ok(Json(RevenueReport {
        object: "list",
        from: range::rfc3339(r.from),
        to: range::rfc3339(r.to),
        group_by,
        data,
    }))
}

/// A received Stripe webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct WebhookView {
    object: &'static str,
    event_id: String,
    event_type: String,
    processed: bool,
    processed_at: Option<chrono::DateTime<Utc>>,
    /// Why it could not be acted on (an unknown customer…).
    error: Option<String>,
    received_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhooksQuery {
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/billing/webhooks",
    tag = "admin: billing",
    params(WebhooksQuery),
    responses((status = 200, description = "OK", body = List<WebhookView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_webhooks(
    State(s): State<AdminState>,
    Query(q): Query<WebhooksQuery>,
) -> Result<Json<List<WebhookView>>> {
    let rows = stripe_repo::list_webhooks(&s.pool, crosslogic_db::repo::page_size(q.limit))
        .await
        .map_err(crosslogic_core::ServiceError::from)?;
    Ok(Json(List::of(
        rows.into_iter()
            .map(|w| WebhookView {
                object: "billing.webhook",
                event_id: w.event_id,
                event_type: w.event_type,
                processed: w.processed,
                processed_at: w.processed_at,
                error: w.error,
                received_at: w.received_at,
            })
            .collect::<Vec<_>>(),
    )))
}
