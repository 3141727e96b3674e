//! `GET /v1/billing`, `/v1/billing/costs` and `/v1/billing/credits`: the
//! tenant's own money — this month's cost, what credits covered, what is
//! payable, credit balance and expiry, budget, and cost series per model
//! for charts. Tenant-wide, so `admin`-role keys only; the same functions
//! answer the operator's admin API (`crosslogic_billing::account`).

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use crosslogic_billing::account::{self, Interval};
use crosslogic_billing::report::Scope;
use crosslogic_billing::views::{CostSeriesView, CreditView, SummaryView};
use crosslogic_http::{range, ApiError, List, Query};
use serde::Deserialize;

use crate::auth::{insufficient, Caller};
use crate::Gateway;

/// Query of `GET /v1/billing/costs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CostsQuery {
    from: Option<String>,
    to: Option<String>,
    #[param(inline)]
    interval: Option<Interval>,
}

fn admin_only(caller: &crate::auth::AuthedKey) -> Result<(), ApiError> {
    if caller.role != crosslogic_core::ApiKeyRole::Admin {
        return Err(insufficient(
            "Reading the account's billing requires an API key with the `admin` role",
            caller.role,
        ));
    }
    Ok(())
}

/// `GET /v1/billing`: the billing summary of the caller's tenant.
#[utoipa::path(
    get,
    operation_id = "get_billing",
    path = "/v1/billing",
    tag = "billing",
    responses((status = 200, description = "OK", body = SummaryView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn summary(State(gw): State<Gateway>, Caller(caller): Caller) -> Result<Json<SummaryView>, ApiError> {
    admin_only(&caller)?;
    Ok(Json(
        account::summary(gw.keys.pool(), caller.tenant_id, gw.billing.grace_period, Utc::now()).await?,
    ))
}

/// `GET /v1/billing/costs`: cost per day or hour and model.
#[utoipa::path(
    get,
    operation_id = "get_billing_costs",
    path = "/v1/billing/costs",
    tag = "billing",
    params(CostsQuery),
    responses((status = 200, description = "OK", body = CostSeriesView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn costs(
    State(gw): State<Gateway>,
    Caller(caller): Caller,
    Query(q): Query<CostsQuery>,
) -> Result<Json<CostSeriesView>, ApiError> {
    admin_only(&caller)?;
    let r = range::parse_within(q.from.as_deref(), q.to.as_deref(), Utc::now(), 30, 400)?;
    Ok(Json(
        account::cost_series(
            gw.keys.pool(),
            Scope::Tenant {
                tenant_id: caller.tenant_id,
                api_key_id: None,
            },
            r.from,
            r.to,
            q.interval.unwrap_or_default(),
        )
        .await?,
    ))
}

/// `GET /v1/billing/credits`: the account's credits.
#[utoipa::path(
    get,
    operation_id = "list_credits",
    path = "/v1/billing/credits",
    tag = "billing",
    responses((status = 200, description = "OK", body = List<CreditView>), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn credits(
    State(gw): State<Gateway>,
    Caller(caller): Caller,
) -> Result<Json<List<CreditView>>, ApiError> {
    admin_only(&caller)?;
    Ok(Json(List::of(
        account::list_credits(gw.keys.pool(), caller.tenant_id, Utc::now()).await?,
    )))
}
