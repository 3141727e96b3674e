//! The Stripe side against a local stand-in that follows Stripe's formats:
//! meter event export (customers created once, retries, duplicates counted
//! as delivered, the 35-day window, refusals reported), and webhooks signed
//! by the official `stripe` library (forged, stale and replayed ones
//! refused or ignored; payment failed → suspended after the grace period;
//! paid → reactivated).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Utc;
use common::{config, outbox, past_hour, Ctx};
use crosslogic_billing::stripe::Stripe;
use crosslogic_billing::webhooks::{self, WebhookState};
use crosslogic_billing::{account, export, rollup, settle, Wake};
use crosslogic_core::{Actor, BillingEventStatus, SuspensionReason, TenantStatus};
use crosslogic_db::repo::billing::events;
use crosslogic_db::repo::{tenants, usage};
use crosslogic_testkit::fixtures;
use crosslogic_testkit::stripe::{stripe_signature, Failure, StripeStandIn};
use serde_json::json;

async fn settled_hour(
    ctx: &Ctx,
    cfg: &crosslogic_billing::BillingConfig,
    tenant: uuid::Uuid,
    hours_ago: i64,
) -> chrono::DateTime<Utc> {
    let hour = past_hour(hours_ago);
    usage::insert_batch(ctx.pool(), &[ctx.record(tenant, hour, 1, 1, 20_000, 20_000)])
        .await
        .unwrap();
    rollup::rollup_pending(ctx.pool(), Utc::now()).await.unwrap();
    settle::settle_due(ctx.pool(), &cfg.settings, Utc::now()).await.unwrap();
    hour
}

#[tokio::test]
async fn exports_retry_until_stripe_takes_them_and_a_resend_is_harmless() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let stripe = StripeStandIn::start().await;
    let cfg = config(Some(&stripe), &[]);
    let client = Stripe::new(cfg.settings.stripe.as_ref().unwrap()).unwrap();
    let tenant = fixtures::tenant(pool, "acme@x.test").await;
    settled_hour(&ctx, &cfg, tenant.id, 2).await;
    settled_hour(&ctx, &cfg, tenant.id, 3).await;

    // Rate limited, then a 5xx: retried at Stripe's Retry-After.
    stripe.fail_next([Failure::Status(429, Some(0)), Failure::Status(500, Some(0))]);
    // Retry-After: 0 makes each due again at once: one pass retries both.
    let first = export::export_once(pool, &cfg, &client, Utc::now()).await.unwrap();
    assert_eq!((first.sent, first.retrying), (2, 2));
    let done = events::list(pool, &Default::default(), 10).await.unwrap();
    assert!(
        done.iter()
            .all(|e| e.status == BillingEventStatus::Processed && e.attempts == 2),
        "{done:?}"
    );
    assert_eq!(stripe.events().len(), 2);
    assert_eq!(stripe.customers().len(), 1, "one customer per tenant");
    assert_eq!(stripe.customers()[0].tenant_id, tenant.id.to_string());
    let customer = tenants::get(pool, tenant.id).await.unwrap().stripe_customer_id.unwrap();
    assert!(stripe
        .events()
        .iter()
        .all(|e| e.customer == customer && e.event_name == "crosslogic_usage"));

    // A resend (a crash after Stripe took it, before we recorded it) is
    // answered "already exists": delivered, still once at Stripe.
    sqlx::query("UPDATE billing_events SET status = 'pending', next_attempt_at = now() WHERE event_type = 'usage'")
        .execute(pool)
        .await
        .unwrap();
    let again = export::export_once(pool, &cfg, &client, Utc::now()).await.unwrap();
    assert_eq!(again.sent, 2);
    assert_eq!(stripe.events().len(), 2);
    assert_eq!(stripe.calls(), 6);
    ctx.db.drop_db().await;
}

#[tokio::test]
async fn an_hour_outside_stripes_window_or_a_refusal_is_reported_never_dropped() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let stripe = StripeStandIn::start().await;
    let cfg = config(Some(&stripe), &[]);
    let client = Stripe::new(cfg.settings.stripe.as_ref().unwrap()).unwrap();
    let old_tenant = fixtures::tenant(pool, "old@x.test").await;
    settled_hour(&ctx, &cfg, old_tenant.id, 24 * 36).await;
    let pass = export::export_once(pool, &cfg, &client, Utc::now()).await.unwrap();
    assert_eq!(pass.failed, 1);
    assert_eq!(stripe.calls(), 0, "never sent");
    let failed = outbox(pool, "billing.export_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().unwrap().contains("35-day"), "{}", failed[0]);
    assert_eq!(failed[0]["tenant"], old_tenant.id.to_string());

    // Stripe refuses (a customer it does not know): failed, reported, and
    // the operator can queue it again once fixed.
    let bad = fixtures::tenant(pool, "bad@x.test").await;
    tenants::set_stripe_customer(pool, bad.id, "cus_deleted").await.unwrap();
    settled_hour(&ctx, &cfg, bad.id, 2).await;
    assert_eq!(
        export::export_once(pool, &cfg, &client, Utc::now())
            .await
            .unwrap()
            .failed,
        1
    );
    let log = account::exports(
        pool,
        events::EventFilter {
            tenant_id: Some(bad.id),
            ..Default::default()
        },
        10,
    )
    .await
    .unwrap()
    .0;
    assert_eq!(log[0].status, BillingEventStatus::Failed);
    assert!(
        log[0].last_error.as_deref().unwrap().contains("No such customer"),
        "{:?}",
        log[0]
    );
    assert_eq!(outbox(pool, "billing.export_failed").await.len(), 2);
    let retried = account::retry_export(pool, log[0].id).await.unwrap();
    assert_eq!(retried.status, BillingEventStatus::Pending);
    assert!(
        account::retry_export(pool, log[0].id).await.is_err(),
        "only failed exports are retried"
    );
    ctx.db.drop_db().await;
}

struct Hook {
    url: String,
    http: reqwest::Client,
}

impl Hook {
    async fn start(ctx: &Ctx, secret: &str) -> Hook {
        let router = webhooks::router(WebhookState {
            pool: ctx.pool().clone(),
            secrets: vec![secret.to_owned().into()],
            wake: Wake::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, axum::Router::from(router)).await });
        Hook {
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, body: &str, signature: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(s) = signature {
            req = req.header("Stripe-Signature", s);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }
}

fn event(id: &str, kind: &str, customer: &str, invoice: &str) -> String {
    json!({
        "id": id,
        "object": "event",
        "type": kind,
        "created": Utc::now().timestamp(),
        "data": {"object": {"id": invoice, "object": "invoice", "customer": customer, "amount_due": 4200, "currency": "usd"}},
    })
    .to_string()
}

#[tokio::test]
async fn signed_webhooks_suspend_after_the_grace_period_and_reactivate_when_paid() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let secret = "whsec_test_crosslogic_0123456789";
    let hook = Hook::start(&ctx, secret).await;
    let settings = common::settings(None, &[("BILLING_GRACE_PERIOD", "1h")]);
    let tenant = fixtures::tenant(pool, "payer@x.test").await;
    tenants::set_stripe_customer(pool, tenant.id, "cus_payer")
        .await
        .unwrap();

    // Forged, stale, unsigned: 400, nothing stored.
    let failed = event("evt_failed_1", "invoice.payment_failed", "cus_payer", "in_1");
    let forged = stripe_signature(&failed, "whsec_someone_else_000000", None);
    assert_eq!(hook.send(&failed, Some(&forged)).await.0, 400);
    let stale = stripe_signature(&failed, secret, Some(Utc::now().timestamp() - 600));
    let (status, body) = hook.send(&failed, Some(&stale)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("timestamp"),
        "{body}"
    );
    assert_eq!(hook.send(&failed, None).await.0, 400);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    // Signed by Stripe's own library: stored once, acted on once.
    let sig = stripe_signature(&failed, secret, None);
    let (status, body) = hook.send(&failed, Some(&sig)).await;
    assert_eq!((status, body["duplicate"].as_bool()), (200, Some(false)), "{body}");
    let (status, body) = hook.send(&failed, Some(&stripe_signature(&failed, secret, None))).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (200, Some(true)),
        "a replay is acknowledged, not repeated"
    );
    // An event type we do not act on is stored and acknowledged.
    let other = event("evt_other", "invoice.finalized", "cus_payer", "in_1");
    assert_eq!(
        hook.send(&other, Some(&stripe_signature(&other, secret, None))).await.0,
        200
    );
    assert_eq!(webhooks::process_once(pool, &settings, 100).await.unwrap(), 2);
    assert_eq!(webhooks::process_once(pool, &settings, 100).await.unwrap(), 0);
    let payment_failed = outbox(pool, "payment.failed").await;
    assert_eq!(payment_failed.len(), 1);
    assert_eq!(payment_failed[0]["invoice_id"], "in_1");
    assert!(payment_failed[0]["suspend_after"].is_string());

    // Within the grace period nothing happens; after it, suspended.
    assert_eq!(
        webhooks::suspend_past_grace(pool, &settings, Utc::now()).await.unwrap(),
        0
    );
    let later = Utc::now() + chrono::Duration::hours(2);
    assert_eq!(webhooks::suspend_past_grace(pool, &settings, later).await.unwrap(), 1);
    let t = tenants::get(pool, tenant.id).await.unwrap();
    assert_eq!(
        (t.status, t.suspension_reason()),
        (TenantStatus::Suspended, Some(SuspensionReason::NonPayment))
    );
    let suspended = outbox(pool, "tenant.suspended").await;
    assert_eq!(suspended.last().unwrap()["reason"], "non_payment");

    // Paid: reactivated, payment.succeeded.
    let paid = event("evt_paid_1", "invoice.paid", "cus_payer", "in_1");
    assert_eq!(
        hook.send(&paid, Some(&stripe_signature(&paid, secret, None))).await.0,
        200
    );
    webhooks::process_once(pool, &settings, 100).await.unwrap();
    assert_eq!(
        tenants::get(pool, tenant.id).await.unwrap().status,
        TenantStatus::Active
    );
    assert_eq!(outbox(pool, "payment.succeeded").await.len(), 1);

    // An operator's suspension is not lifted by a payment.
    crosslogic_tenancy::set_tenant_status(pool, &Actor::admin(None), tenant.id, TenantStatus::Suspended)
        .await
        .unwrap();
    let paid2 = event("evt_paid_2", "invoice.paid", "cus_payer", "in_2");
    hook.send(&paid2, Some(&stripe_signature(&paid2, secret, None))).await;
    webhooks::process_once(pool, &settings, 100).await.unwrap();
    let t = tenants::get(pool, tenant.id).await.unwrap();
    assert_eq!(
        (t.status, t.suspension_reason()),
        (TenantStatus::Suspended, Some(SuspensionReason::Operator))
    );
    ctx.db.drop_db().await;
}

#[tokio::test]
async fn a_payment_that_overtakes_its_failure_leaves_nothing_unpaid_and_unknown_customers_are_recorded() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let secret = "whsec_test_crosslogic_0123456789";
    let hook = Hook::start(&ctx, secret).await;
    let settings = common::settings(None, &[("BILLING_GRACE_PERIOD", "0s")]);
    let tenant = fixtures::tenant(pool, "order@x.test").await;
    tenants::set_stripe_customer(pool, tenant.id, "cus_order")
        .await
        .unwrap();
    for (id, kind) in [("evt_a", "invoice.paid"), ("evt_b", "invoice.payment_failed")] {
        let body = event(id, kind, "cus_order", "in_9");
        assert_eq!(
            hook.send(&body, Some(&stripe_signature(&body, secret, None))).await.0,
            200
        );
        webhooks::process_once(pool, &settings, 100).await.unwrap();
    }
    let later = Utc::now() + chrono::Duration::hours(1);
    assert_eq!(webhooks::suspend_past_grace(pool, &settings, later).await.unwrap(), 0);
    assert_eq!(
        tenants::get(pool, tenant.id).await.unwrap().status,
        TenantStatus::Active
    );

    // An invoice that failed and was then voided leaves nothing owed.
    for (id, kind) in [("evt_d", "invoice.payment_failed"), ("evt_e", "invoice.voided")] {
        let body = event(id, kind, "cus_order", "in_11");
        assert_eq!(
            hook.send(&body, Some(&stripe_signature(&body, secret, None))).await.0,
            200
        );
        webhooks::process_once(pool, &settings, 100).await.unwrap();
    }
    assert_eq!(webhooks::suspend_past_grace(pool, &settings, later).await.unwrap(), 0);
    assert_eq!(
        tenants::get(pool, tenant.id).await.unwrap().status,
        TenantStatus::Active
    );

    let stranger = event("evt_c", "invoice.payment_failed", "cus_nobody", "in_10");
    hook.send(&stranger, Some(&stripe_signature(&stranger, secret, None)))
        .await;
    webhooks::process_once(pool, &settings, 100).await.unwrap();
    let error: Option<String> = sqlx::query_scalar("SELECT error FROM webhook_events WHERE event_id = 'evt_c'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(error.unwrap().contains("cus_nobody"));
    ctx.db.drop_db().await;
}
