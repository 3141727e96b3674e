//! Admin handlers for notification channels (any tenant's, and the
//! operator's own), test sends and the delivery log: extract, call
//! [`crosslogic_notify::channels`], answer the view.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use crosslogic_http::{ApiError, Body, Id, List, Query};
use crosslogic_notify::channels::{self as ops, CreateChannel, DeliveryQuery, Scope, UpdateChannel};
use crosslogic_notify::views::{ChannelView, ChannelWithSecret, DeliveryDetail, DeliveryView};
use crosslogic_notify::NotifyApi;

use super::{AdminActor, AdminState};

type Result<T> = std::result::Result<T, ApiError>;

fn api(s: &AdminState) -> Result<&NotifyApi> {
    s.notify.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            Some("notifications_unavailable"),
            "notifications are not available on this server",
        )
    })
}

/// `GET /admin/v1/notifications/channels`: the operator's channels.
#[utoipa::path(
    get,
    path = "/admin/v1/notifications/channels",
    tag = "admin: notifications",
    responses((status = 200, description = "OK", body = List<ChannelView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_operator_channels(State(s): State<AdminState>) -> Result<Json<List<ChannelView>>> {
    Ok(Json(List::of(ops::list_channels(&s.pool, None).await?)))
}

/// `GET /admin/v1/tenants/{id}/notifications/channels`.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{id}/notifications/channels",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = List<ChannelView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_tenant_channels(
    State(s): State<AdminState>,
    Id(tenant_id): Id,
) -> Result<Json<List<ChannelView>>> {
    crosslogic_tenancy::get_tenant(&s.pool, tenant_id).await?;
    Ok(Json(List::of(ops::list_channels(&s.pool, Some(tenant_id)).await?)))
}

/// `POST /admin/v1/tenants/{id}/notifications/channels`.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{id}/notifications/channels",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = CreateChannel,
    responses((status = 201, description = "Created", body = ChannelWithSecret), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn create_channel(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(tenant_id): Id,
    Body(input): Body<CreateChannel>,
) -> Result<(StatusCode, Json<ChannelWithSecret>)> {
    let policy = api(&s)?.policy;
    let (c, secret) = ops::create_channel(&s.pool, &actor, tenant_id, input, policy).await?;
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
    path = "/admin/v1/notifications/channels/{id}",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ChannelView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_channel(State(s): State<AdminState>, Id(id): Id) -> Result<Json<ChannelView>> {
    Ok(Json(ops::get_channel(&s.pool, Scope::Operator, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/admin/v1/notifications/channels/{id}",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    request_body = UpdateChannel,
    responses((status = 200, description = "OK", body = ChannelView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn update_channel(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
    Body(input): Body<UpdateChannel>,
) -> Result<Json<ChannelView>> {
    let policy = api(&s)?.policy;
    let c = ops::update_channel(&s.pool, &actor, Scope::Operator, id, input, policy).await?;
    Ok(Json(c.into()))
}

#[utoipa::path(
    delete,
    path = "/admin/v1/notifications/channels/{id}",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 204, description = "Done; no body"), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn delete_channel(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<StatusCode> {
    ops::delete_channel(&s.pool, &actor, Scope::Operator, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/admin/v1/notifications/channels/{id}/rotate-secret",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = ChannelWithSecret), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn rotate_secret(
    State(s): State<AdminState>,
    AdminActor(actor): AdminActor,
    Id(id): Id,
) -> Result<Json<ChannelWithSecret>> {
    let (c, secret) = ops::rotate_secret(&s.pool, &actor, Scope::Operator, id).await?;
    Ok(Json(ChannelWithSecret {
        channel: c.into(),
        signing_secret: Some(secret),
    }))
}

/// `POST /admin/v1/notifications/channels/{id}/test`: sends now; the
/// delivery (with its one attempt) says how it went.
#[utoipa::path(
    post,
    path = "/admin/v1/notifications/channels/{id}/test",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeliveryDetail), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn test_channel(State(s): State<AdminState>, Id(id): Id) -> Result<Json<DeliveryDetail>> {
    let transport = &api(&s)?.transport;
    let (d, attempts) = ops::send_test(&s.pool, transport, Scope::Operator, id).await?;
    Ok(Json(DeliveryDetail {
        delivery: d.into(),
        attempt_log: attempts.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/admin/v1/notifications/deliveries",
    tag = "admin: notifications",
    params(DeliveryQuery),
    responses((status = 200, description = "OK", body = List<DeliveryView>), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn list_deliveries(
    State(s): State<AdminState>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<List<DeliveryView>>> {
    Ok(Json(List::of(
        ops::query_deliveries(&s.pool, Scope::Operator, q).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/admin/v1/notifications/deliveries/{id}",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 200, description = "OK", body = DeliveryDetail), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn get_delivery(State(s): State<AdminState>, Id(id): Id) -> Result<Json<DeliveryDetail>> {
    let (d, attempts) = ops::get_delivery(&s.pool, Scope::Operator, id).await?;
    Ok(Json(DeliveryDetail {
        delivery: d.into(),
        attempt_log: attempts.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/admin/v1/notifications/deliveries/{id}/redeliver",
    tag = "admin: notifications",
    params(("id" = Uuid, Path, description = "The id.")),
    responses((status = 202, description = "Accepted", body = DeliveryView), crosslogic_http::docs::Errors),
    security(("admin_token" = []))
)]
pub(super) async fn redeliver(State(s): State<AdminState>, Id(id): Id) -> Result<(StatusCode, Json<DeliveryView>)> {
    let d = ops::redeliver(&s.pool, Scope::Operator, id).await?;
    Ok((StatusCode::ACCEPTED, Json(d.into())))
}
