//! Stripe webhooks: `POST /webhooks/stripe` verifies the signature over the
//! raw body, stores the event once (`webhook_events`, unique event id) and
//! answers 200 at once; [`run`] then acts on stored events — so a slow
//! database action never makes Stripe time out and retry, and an event
//! stored before a crash is still acted on.
//!
//! * `invoice.payment_failed` → `payment.failed`; the invoice is unpaid
//!   from then on, and a tenant with an invoice unpaid for longer than
//!   `BILLING_GRACE_PERIOD` is suspended for non-payment
//!   ([`suspend_past_grace`]): its keys are refused on every gateway within
//!   a second, like an operator's suspension.
//! * `invoice.paid` → `payment.succeeded`; a tenant suspended for
//!   non-payment with nothing left unpaid is reactivated (never one the
//!   operator suspended).
//! * `invoice.voided`, `invoice.marked_uncollectible`: nothing is owed on
//!   the invoice any more (a tenant suspended for it alone is reactivated).
//! * `customer.subscription.deleted` → `billing.subscription_deleted`.
//! * Anything else is stored and acknowledged.
//!
//! Invoices are tracked per id, so a `paid` that overtakes its
//! `payment_failed` (Stripe does not order deliveries) still counts.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use crosslogic_config::BillingSettings;
use crosslogic_core::events::{PaymentEvent, SubscriptionDeleted};
use crosslogic_core::{Actor, Event};
use crosslogic_db::repo::billing::stripe::{self as repo, InvoiceEvent, StoredWebhook};
use crosslogic_db::repo::tenants;
use crosslogic_db::{changes, DbError, PgConnection, PgPool};
use crosslogic_http::ApiError;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::stripe::signature;
use crate::{BillingConfig, Wake};

/// What the webhook route needs.
#[derive(Clone)]
pub struct WebhookState {
    pub pool: PgPool,
    pub secrets: Vec<SecretString>,
    pub wake: Wake,
}

/// `POST /webhooks/stripe`.
pub fn router(state: WebhookState) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(receive)).with_state(state)
}

/// The fields of a Stripe event that storing it needs (the whole event is
/// stored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = StripeEvent, example = json!({"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {"id": "in_1", "customer": "cus_1"}}}))]
struct Envelope {
    /// Stripe's event id (`evt_…`); a repeated id is acknowledged, not
    /// acted on twice.
    id: String,
    #[serde(rename = "type")]
    event_type: String,
}

/// The acknowledgement.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Received {
    /// Always `true`.
    received: bool,
    /// The event id was stored before (Stripe retried it).
    duplicate: bool,
}

/// Stores a Stripe event signed with a configured webhook secret and
/// answers at once; the event is acted on in the background.
#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    tag = "webhooks",
    request_body = Envelope,
    responses(
        (status = 200, description = "Stored (or a duplicate)", body = Received),
        (status = 400, description = "A missing, malformed, stale or wrong signature, or a body that is not a Stripe event", body = crosslogic_http::ErrorEnvelope),
        (status = 500, description = "The event could not be stored; Stripe retries", body = crosslogic_http::ErrorEnvelope),
        (status = 503, description = "`STRIPE_WEBHOOK_SECRET` is not set", body = crosslogic_http::ErrorEnvelope),
    ),
    security(("stripe_signature" = []))
)]
async fn receive(State(st): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Result<Json<Received>, ApiError> {
    if st.secrets.is_empty() {
        return Err(ApiError::unavailable(
            "Stripe webhooks are not configured on this platform (STRIPE_WEBHOOK_SECRET is unset).",
        ));
    }
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    signature::verify(&body, header, &st.secrets, Utc::now().timestamp()).map_err(|e| {
        tracing::warn!(error = %e, "Stripe webhook refused");
        ApiError::invalid_request(format!("Invalid Stripe signature: {e}."), None)
    })?;
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed(format!("The webhook body is not JSON: {e}.")))?;
    let env: Envelope = serde_json::from_value(payload.clone())
        .map_err(|e| ApiError::malformed(format!("The webhook body is not a Stripe event: {e}.")))?;
    let fresh = repo::record_webhook(&st.pool, "stripe", &env.id, &env.event_type, &payload)
        .await
        .map_err(crosslogic_core::ServiceError::from)?;
    if fresh {
        st.wake.notify();
    }
    tracing::info!(event_id = %env.id, event_type = %env.event_type, duplicate = !fresh, "Stripe webhook received");
    Ok(Json(Received {
        received: true,
        duplicate: !fresh,
    }))
}

/// Acts on stored webhook events until `shutdown`.
pub async fn run(pool: PgPool, cfg: BillingConfig, wake: Wake, shutdown: CancellationToken) {
    loop {
        match process_once(&pool, &cfg.settings, cfg.batch).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Stripe webhook processing failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.wait(cfg.settings.interval.max(Duration::from_millis(100))) => {}
        }
    }
}

/// Acts on up to `limit` stored events (each in the transaction that marks
/// it processed); returns how many.
pub async fn process_once(pool: &PgPool, settings: &BillingSettings, limit: i64) -> Result<usize, DbError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let stored = repo::claim_unprocessed(&mut tx, limit).await?;
    for w in &stored {
        let outcome = act(&mut tx, settings, w).await?;
        repo::finish_webhook(&mut *tx, &w.event_id, outcome.err().as_deref()).await?;
    }
    crosslogic_db::commit(tx).await?;
    Ok(stored.len())
}

/// `data.object` fields used from invoices and subscriptions.
#[derive(Debug, Deserialize)]
struct Object {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    customer: Option<Value>,
    #[serde(default)]
    amount_due: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
}

/// Acts on one event; `Err(why)` when it could not (recorded, not retried).
async fn act(
    tx: &mut PgConnection,
    settings: &BillingSettings,
    w: &StoredWebhook,
) -> Result<Result<(), String>, DbError> {
    let kind = w.event_type.as_str();
    if !matches!(
        kind,
        "invoice.payment_failed"
            | "invoice.paid"
            | "invoice.voided"
            | "invoice.marked_uncollectible"
            | "customer.subscription.deleted"
    ) {
        return Ok(Ok(()));
    }
    let Some(object) = w.payload.pointer("/data/object").cloned() else {
        return Ok(Err("the event has no data.object".into()));
    };
    let Ok(object) = serde_json::from_value::<Object>(object) else {
        return Ok(Err("data.object is not an invoice or subscription".into()));
    };
    // `customer` is an id, or an expanded customer object.
    let customer = match &object.customer {
        Some(Value::String(c)) => c.clone(),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    if customer.is_empty() {
        return Ok(Err("the event names no customer".into()));
    }
    let tenant = match tenants::get_by_stripe_customer(&mut *tx, &customer).await {
        Ok(t) => t,
        Err(DbError::NotFound { .. }) => return Ok(Err(format!("no tenant has Stripe customer {customer}"))),
        Err(e) => return Err(e),
    };
    let at = event_time(w);
    let actor = Actor::system("stripe");
    // Arrears and the tenant's status are decided under the tenant's lock,
    // so dunning (which takes it too) never acts on a stale view.
    tenants::get_for_update(&mut *tx, tenant.id).await?;
    match kind {
        "invoice.payment_failed" => {
            let invoice = object.id.clone().unwrap_or_else(|| format!("unknown:{}", w.event_id));
            repo::invoice_failed(
                tx,
                &InvoiceEvent {
                    invoice_id: &invoice,
                    tenant_id: tenant.id,
                    at,
                    amount_due: object.amount_due,
                    currency: object.currency.as_deref(),
                },
            )
            .await?;
            let (_, since) = repo::arrears(&mut *tx, tenant.id).await?;
            let grace = chrono::Duration::from_std(settings.grace_period).unwrap_or(chrono::Duration::MAX);
            changes::publish(
                tx,
                &Event::PaymentFailed(payment(&tenant.id, &customer, &object, w, since.map(|s| s + grace))),
            )
            .await?;
        }
        "invoice.paid" | "invoice.voided" | "invoice.marked_uncollectible" => {
            let invoice = object.id.clone().unwrap_or_else(|| format!("unknown:{}", w.event_id));
            let e = InvoiceEvent {
                invoice_id: &invoice,
                tenant_id: tenant.id,
                at,
                amount_due: object.amount_due,
                currency: object.currency.as_deref(),
            };
            if kind == "invoice.paid" {
                repo::invoice_paid(tx, &e).await?;
                changes::publish(
                    tx,
                    &Event::PaymentSucceeded(payment(&tenant.id, &customer, &object, w, None)),
                )
                .await?;
            } else {
                // Voided or written off: nothing is owed on it any more.
                repo::invoice_voided(tx, &e).await?;
            }
            let (unpaid, _) = repo::arrears(&mut *tx, tenant.id).await?;
            if unpaid == 0 {
                crosslogic_tenancy::reactivate_after_payment(tx, &actor, tenant.id).await?;
            }
        }
        _ => {
            changes::publish(
                tx,
                &Event::SubscriptionDeleted(SubscriptionDeleted {
                    tenant_id: tenant.id,
                    stripe_customer_id: customer,
                    subscription_id: object.id.clone(),
                    stripe_event_id: w.event_id.clone(),
                }),
            )
            .await?;
        }
    }
    Ok(Ok(()))
}

fn payment(
    tenant_id: &uuid::Uuid,
    customer: &str,
    object: &Object,
    w: &StoredWebhook,
    suspend_after: Option<DateTime<Utc>>,
) -> PaymentEvent {
    PaymentEvent {
        tenant_id: *tenant_id,
        stripe_customer_id: customer.to_owned(),
        invoice_id: object.id.clone(),
        amount_due: object.amount_due,
        currency: object.currency.clone(),
        stripe_event_id: w.event_id.clone(),
        suspend_after,
    }
}

/// When Stripe created the event (`created`), else when we received it.
fn event_time(w: &StoredWebhook) -> DateTime<Utc> {
    w.payload
        .get("created")
        .and_then(Value::as_i64)
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(w.received_at)
}

/// Suspends, for non-payment, every active tenant with an invoice unpaid
/// for longer than the grace period; returns how many.
pub async fn suspend_past_grace(
    pool: &PgPool,
    settings: &BillingSettings,
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    let grace = chrono::Duration::from_std(settings.grace_period).unwrap_or(chrono::Duration::MAX);
    let mut n = 0;
    let cutoff = now - grace;
    for tenant_id in repo::past_grace(pool, cutoff).await? {
        let mut tx = crosslogic_db::begin(pool).await?;
        // Again under the tenant's lock: a payment may have landed since.
        tenants::get_for_update(&mut *tx, tenant_id).await?;
        let (_, since) = repo::arrears(&mut *tx, tenant_id).await?;
        if since.is_none_or(|s| s >= cutoff) {
            crosslogic_db::commit(tx).await?;
            continue;
        }
        let done = crosslogic_tenancy::suspend_for_non_payment(&mut tx, &Actor::system("billing"), tenant_id).await?;
        crosslogic_db::commit(tx).await?;
        if done.is_some() {
            tracing::warn!(tenant_id = %tenant_id, "tenant suspended for non-payment");
            n += 1;
        }
    }
    Ok(n)
}
