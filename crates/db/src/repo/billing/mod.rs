//! Billing tables: `billing_events` (the Stripe export outbox and the
//! credit ledger, [`events`]), `credits` ([`credits`]), the settlement of
//! tenant-hours (`billing_tenant_hours`, `usage_hours`: [`settlement`]),
//! inbound Stripe webhooks and invoices ([`stripe`]), and `reservations`.

pub mod credits;
pub mod events;
pub mod settlement;
pub mod stripe;

use chrono::{DateTime, Utc};
use crosslogic_core::ReservationStatus;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::DbResult;

/// A row of `reservations`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Reservation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub model_id: Uuid,
    pub region_id: Option<Uuid>,
    pub tokens_per_second: i32,
    pub price_microdollars_per_hour: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: ReservationStatus,
}

/// Reserves capacity for a tenant.
#[allow(clippy::too_many_arguments)]
pub async fn create_reservation(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    model_id: Uuid,
    region_id: Option<Uuid>,
    tokens_per_second: i32,
    price_microdollars_per_hour: i64,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: ReservationStatus,
) -> DbResult<Reservation> {
    Ok(sqlx::query_as(
        "INSERT INTO reservations (tenant_id, model_id, region_id, tokens_per_second, price_microdollars_per_hour,
                                   starts_at, ends_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, tenant_id, model_id, region_id, tokens_per_second, price_microdollars_per_hour, starts_at, ends_at, status",
    )
    .bind(tenant_id)
    .bind(model_id)
    .bind(region_id)
    .bind(tokens_per_second)
    .bind(price_microdollars_per_hour)
    .bind(starts_at)
    .bind(ends_at)
    .bind(status.as_str())
    .fetch_one(db)
    .await?)
}
