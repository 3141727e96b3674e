//! `/v1/notifications`: an admin key manages its tenant's notification
//! channels, sends test messages and reads its delivery log — the same
//! functions as the operator's admin API, scoped to the caller's tenant
//! (another tenant's channel or delivery looks absent).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use crosslogic_http::{ApiError, Body, Id, List, Query};
use crosslogic_notify::channels::{self as ops, CreateChannel, DeliveryQuery, Scope, UpdateChannel};
use crosslogic_notify::views::{ChannelView, ChannelWithSecret, DeliveryDetail, DeliveryView};

use super::actor;
use crate::auth::AdminCaller;
use crate::Gateway;

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /v1/notifications/channels`.
#[utoipa::path(
    get,
    path = "/v1/notifications/channels",
    tag = "notifications",
    responses((status = 200, description = "OK", body = List<ChannelView>), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn list_channels(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<List<ChannelView>>> {
    Ok(Json(List::of(
        ops::list_channels(gw.keys.pool(), Some(caller.tenant_id)).await?,
    )))
}

/// `POST /v1/notifications/channels`: a webhook channel's signing secret
/// is in this answer only.
#[utoipa::path(
    post,
    path = "/v1/notifications/channels",
    tag = "notifications",
    request_body = CreateChannel,
    responses((status = 201, description = "Created", body = ChannelWithSecret), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn create_channel(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Body(input): Body<CreateChannel>,
) -> Result<(StatusCode, Json<ChannelWithSecret>)> {
    let (c, secret) = ops::create_channel(
        gw.keys.pool(),
        &actor(&caller),
        caller.tenant_id,
        input,
        gw.notify.policy,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelWithSecret {
            channel: c.into(),
            signing_secret: secret,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/notifications/channels/{id}",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ChannelView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn get_channel(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<Json<ChannelView>> {
    let c = ops::get_channel(gw.keys.pool(), Scope::Tenant(caller.tenant_id), id).await?;
    Ok(Json(c.into()))
}

#[utoipa::path(
    patch,
    path = "/v1/notifications/channels/{id}",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = UpdateChannel,
    responses((status = 200, description = "OK", body = ChannelView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn update_channel(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
    Body(input): Body<UpdateChannel>,
) -> Result<Json<ChannelView>> {
    let scope = Scope::Tenant(caller.tenant_id);
    let c = ops::update_channel(gw.keys.pool(), &actor(&caller), scope, id, input, gw.notify.policy).await?;
    Ok(Json(c.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/notifications/channels/{id}",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 204, description = "Done; no body"), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn delete_channel(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<StatusCode> {
    ops::delete_channel(gw.keys.pool(), &actor(&caller), Scope::Tenant(caller.tenant_id), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/notifications/channels/{id}/rotate-secret",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ChannelWithSecret), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn rotate_secret(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<Json<ChannelWithSecret>> {
    let (c, secret) = ops::rotate_secret(gw.keys.pool(), &actor(&caller), Scope::Tenant(caller.tenant_id), id).await?;
    Ok(Json(ChannelWithSecret {
        channel: c.into(),
        signing_secret: Some(secret),
    }))
}

/// `POST /v1/notifications/channels/{id}/test`.
#[utoipa::path(
    post,
    path = "/v1/notifications/channels/{id}/test",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeliveryDetail), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn test_channel(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<Json<DeliveryDetail>> {
    let scope = Scope::Tenant(caller.tenant_id);
    let (d, attempts) = ops::send_test(gw.keys.pool(), &gw.notify.transport, scope, id).await?;
    Ok(Json(DeliveryDetail {
        delivery: d.into(),
        attempt_log: attempts.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /v1/notifications/deliveries`.
#[utoipa::path(
    get,
    path = "/v1/notifications/deliveries",
    tag = "notifications",
    params(DeliveryQuery),
    responses((status = 200, description = "OK", body = List<DeliveryView>), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn list_deliveries(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<List<DeliveryView>>> {
    let rows = ops::query_deliveries(gw.keys.pool(), Scope::Tenant(caller.tenant_id), q).await?;
    Ok(Json(List::of(rows)))
}

#[utoipa::path(
    get,
    path = "/v1/notifications/deliveries/{id}",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeliveryDetail), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn get_delivery(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<Json<DeliveryDetail>> {
    let (d, attempts) = ops::get_delivery(gw.keys.pool(), Scope::Tenant(caller.tenant_id), id).await?;
    Ok(Json(DeliveryDetail {
        delivery: d.into(),
        attempt_log: attempts.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/notifications/deliveries/{id}/redeliver",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 202, description = "Accepted", body = DeliveryView), crosslogic_http::docs::Errors),
    security(("tenant_key" = []))
)]
pub(crate) async fn redeliver(
    State(gw): State<Gateway>,
    AdminCaller(caller): AdminCaller,
    Id(id): Id,
) -> Result<(StatusCode, Json<DeliveryView>)> {
    let d = ops::redeliver(gw.keys.pool(), Scope::Tenant(caller.tenant_id), id).await?;
    Ok((StatusCode::ACCEPTED, Json(d.into())))
}
