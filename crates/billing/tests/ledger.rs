//! Rollups, settlement, credits, corrections and retention against a real
//! PostgreSQL: the money invariant (a tenant-hour is billed its exact cost
//! rounded once, and rollups, reports and the Stripe export agree to the
//! micro-dollar) as a property over random requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, Utc};
use common::{config, past_hour, round_once, settings, Ctx};
use crosslogic_billing::report::{self, Scope, UsageGroup};
use crosslogic_billing::{export, retention, rollup, settle};
use crosslogic_core::{BillingEventStatus, BillingEventType, CreditType};
use crosslogic_db::repo::billing::events::{self, EventFilter};
use crosslogic_db::repo::billing::{credits, settlement};
use crosslogic_db::repo::usage;
use crosslogic_testkit::fixtures;
use crosslogic_testkit::stripe::StripeStandIn;
use proptest::prelude::*;

async fn settle_all(ctx: &Ctx, s: &crosslogic_config::BillingSettings) {
    rollup::rollup_pending(ctx.pool(), Utc::now()).await.unwrap();
    settle::settle_due(ctx.pool(), s, Utc::now()).await.unwrap();
}

#[test]
fn a_tenant_hour_is_billed_its_exact_cost_rounded_once_everywhere() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ctx, stripe) = rt.block_on(async { (Ctx::new().await, StripeStandIn::start().await) });
    let cfg = config(Some(&stripe), &[]);
    let case = std::sync::atomic::AtomicI64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 24,
        ..Default::default()
    });
    let requests = proptest::collection::vec((0u32..4000, 0u32..4000, 0usize..6, 0usize..4), 1..40);
    runner
        .run(&(requests, 0i64..3000), |(reqs, credit)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let hour = past_hour(2 + case);
            rt.block_on(async {
                let pool = ctx.pool();
                let tenant = fixtures::tenant(pool, &format!("p{case}@prop.test")).await;
                let rows: Vec<_> = reqs
                    .iter()
                    .enumerate()
                    .map(|(i, (p, c, m, r))| {
                        ctx.record(tenant.id, hour + Duration::seconds(i as i64 * 13), *m, *r, *p, *c)
                    })
                    .collect();
                if credit > 0 {
                    credits::grant(pool, tenant.id, CreditType::Promotional, credit, None, None)
                        .await
                        .unwrap();
                }
                // Two batches, as two gateways would write them.
                let (a, b) = rows.split_at(rows.len() / 2);
                usage::insert_batch(pool, a).await.unwrap();
                usage::insert_batch(pool, b).await.unwrap();
                settle_all(&ctx, &cfg.settings).await;
                while export::export_once(
                    pool,
                    &cfg,
                    &crosslogic_billing::stripe::Stripe::new(cfg.settings.stripe.as_ref().unwrap()).unwrap(),
                    Utc::now(),
                )
                .await
                .unwrap()
                .sent
                    > 0
                {}
                let billed = round_once(ctx.expected(&rows));

                // Settlement.
                let settled = settlement::tenant_hours(pool, hour).await.unwrap();
                let th = settled.iter().find(|h| h.tenant_id == tenant.id).unwrap();
                prop_assert_eq!(th.billed_microdollars, billed);
                prop_assert_eq!(th.cost_exact, ctx.expected(&rows));
                prop_assert_eq!(th.credit_microdollars, credit.min(billed));
                prop_assert_eq!(th.payable_microdollars, billed - credit.min(billed));

                // Reports (rolled-up hour) agree.
                let scope = Scope::Tenant {
                    tenant_id: tenant.id,
                    api_key_id: None,
                };
                let by_hour = report::usage(pool, scope, hour, hour + Duration::hours(1), UsageGroup::Hour, false)
                    .await
                    .unwrap();
                prop_assert_eq!(by_hour.len(), 1);
                prop_assert_eq!(by_hour[0].cost.round_micros().0, billed);
                prop_assert_eq!(by_hour[0].requests, rows.len() as i64);

                // The export: payable to Stripe, the rest as credit events.
                let sent: i64 = stripe
                    .events()
                    .iter()
                    .filter(|e| e.identifier.contains(&tenant.id.simple().to_string()))
                    .map(|e| e.value)
                    .sum();
                let credited: i64 = events::list(
                    pool,
                    &EventFilter {
                        tenant_id: Some(tenant.id),
                        event_type: Some(BillingEventType::Credit),
                        ..Default::default()
                    },
                    100,
                )
                .await
                .unwrap()
                .iter()
                .map(|e| e.amount_microdollars)
                .sum();
                prop_assert_eq!(sent + credited, billed);
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(ctx.db.drop_db());
}

#[tokio::test]
async fn a_record_whose_environment_and_key_were_deleted_meanwhile_is_kept_and_does_not_fail_its_batch() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let tenant = fixtures::tenant(pool, "gone@x.test").await;
    let mut orphan = ctx.record(tenant.id, past_hour(1), 0, 0, 10, 10);
    orphan.environment_id = Some(uuid::Uuid::new_v4());
    orphan.api_key_id = Some(uuid::Uuid::new_v4());
    orphan.node_id = Some(uuid::Uuid::new_v4());
    let fine = ctx.record(tenant.id, past_hour(1), 0, 0, 10, 10);
    assert_eq!(usage::insert_batch(pool, &[orphan.clone(), fine]).await.unwrap(), 2);
    let (env, key): (Option<uuid::Uuid>, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT environment_id, api_key_id FROM usage_records WHERE request_id = $1")
            .bind(&orphan.request_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((env, key), (None, None), "written as the deletion would have left it");
    ctx.db.drop_db().await;
}

#[tokio::test]
async fn small_requests_are_not_rounded_away() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let tenant = fixtures::tenant(pool, "small@x.test").await;
    let hour = past_hour(3);
    // gemma-7b is $0.03/M: 10 tokens = 0.3 µ$, which rounds to 0 on its own.
    let gemma = ctx.models.iter().position(|m| m.name == "gemma-7b").unwrap();
    let us_east = ctx.regions.iter().position(|r| r.code == "us-east").unwrap();
    let rows: Vec<_> = (0..1000)
        .map(|i| ctx.record(tenant.id, hour + Duration::milliseconds(i), gemma, us_east, 10, 0))
        .collect();
    assert!(rows.iter().all(|r| r.cost_microdollars == 0));
    usage::insert_batch(pool, &rows).await.unwrap();
    settle_all(&ctx, &settings(None, &[])).await;
    let th = settlement::tenant_hours(pool, hour).await.unwrap();
    assert_eq!(th[0].billed_microdollars, 300, "1000 × 0.3 µ$ billed, not 0");
    ctx.db.drop_db().await;
}

#[tokio::test]
async fn late_usage_is_settled_as_a_correction_never_twice_and_never_lost() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let stripe = StripeStandIn::start().await;
    let cfg = config(Some(&stripe), &[]);
    let client = crosslogic_billing::stripe::Stripe::new(cfg.settings.stripe.as_ref().unwrap()).unwrap();
    let tenant = fixtures::tenant(pool, "late@x.test").await;
    let hour = past_hour(2);
    let first: Vec<_> = (0..5)
        .map(|i| ctx.record(tenant.id, hour + Duration::minutes(i), 0, 1, 1000, 500))
        .collect();
    usage::insert_batch(pool, &first).await.unwrap();
    settle_all(&ctx, &cfg.settings).await;
    export::export_once(pool, &cfg, &client, Utc::now()).await.unwrap();
    assert_eq!(stripe.events().len(), 1);

    // Nothing new: settling and exporting again sends nothing.
    settle_all(&ctx, &cfg.settings).await;
    export::export_once(pool, &cfg, &client, Utc::now()).await.unwrap();
    assert_eq!(stripe.events().len(), 1);

    // A row replayed from a spool lands in the settled hour.
    let late = vec![ctx.record(tenant.id, hour + Duration::minutes(59), 0, 1, 3000, 3000)];
    usage::insert_batch(pool, &late).await.unwrap();
    settle_all(&ctx, &cfg.settings).await;
    export::export_once(pool, &cfg, &client, Utc::now()).await.unwrap();
    let sent = stripe.events();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[0].identifier.ends_with("-r0") && sent[1].identifier.ends_with("-r1"));
    let all: Vec<_> = first.iter().chain(late.iter()).cloned().collect();
    assert_eq!(sent[0].value + sent[1].value, round_once(ctx.expected(&all)));
    assert_eq!(sent[0].value, round_once(ctx.expected(&first)));
    let th = &settlement::tenant_hours(pool, hour).await.unwrap()[0];
    assert_eq!(
        (th.revision, th.billed_microdollars),
        (1, round_once(ctx.expected(&all)))
    );
    // Both meter events carry a timestamp inside the hour.
    for e in &sent {
        assert!(e.timestamp >= hour.timestamp() && e.timestamp < hour.timestamp() + 3600);
    }
    ctx.db.drop_db().await;
}

#[tokio::test]
async fn credits_cover_usage_soonest_expiring_first_and_the_ledger_shows_it() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let tenant = fixtures::tenant(pool, "credit@x.test").await;
    let hour = past_hour(2);
    let at_end = hour + Duration::hours(1);
    let later = credits::grant(
        pool,
        tenant.id,
        CreditType::Promotional,
        1_000,
        None,
        Some(at_end + Duration::days(30)),
    )
    .await
    .unwrap();
    let sooner = credits::grant(
        pool,
        tenant.id,
        CreditType::Referral,
        400,
        None,
        Some(at_end + Duration::days(2)),
    )
    .await
    .unwrap();
    let never = credits::grant(pool, tenant.id, CreditType::SignupBonus, 5_000, None, None)
        .await
        .unwrap();
    let expired = credits::grant(pool, tenant.id, CreditType::MonthlyFree, 9_000, None, Some(hour))
        .await
        .unwrap();
    // 1,000 µ$ of usage exactly: llama-3-8b $0.05/M in us-east (×1.0) = 20,000 tokens.
    let llama = ctx.models.iter().position(|m| m.name == "llama-3-8b").unwrap();
    let us_east = ctx.regions.iter().position(|r| r.code == "us-east").unwrap();
    let rows = vec![ctx.record(tenant.id, hour, llama, us_east, 10_000, 10_000)];
    assert_eq!(round_once(ctx.expected(&rows)), 1_000);
    usage::insert_batch(pool, &rows).await.unwrap();
    settle_all(&ctx, &settings(None, &[])).await;
    let remaining = |id| async move { credits::get(pool, id).await.unwrap().remaining_microdollars };
    assert_eq!(remaining(sooner.id).await, 0, "the soonest-expiring credit goes first");
    assert_eq!(remaining(later.id).await, 400, "then the next");
    assert_eq!(remaining(never.id).await, 5_000, "credits without expiry last");
    assert_eq!(remaining(expired.id).await, 9_000, "an expired credit covers nothing");
    let ledger = events::list(
        pool,
        &EventFilter {
            tenant_id: Some(tenant.id),
            ..Default::default()
        },
        10,
    )
    .await
    .unwrap();
    let credit_rows: Vec<i64> = ledger
        .iter()
        .filter(|e| e.event_type == BillingEventType::Credit)
        .map(|e| e.amount_microdollars)
        .collect();
    assert_eq!(credit_rows.iter().sum::<i64>(), 1_000);
    assert_eq!(credit_rows.len(), 2);
    let usage_row = ledger.iter().find(|e| e.event_type == BillingEventType::Usage).unwrap();
    assert_eq!(usage_row.amount_microdollars, 0, "nothing payable");
    assert_eq!(usage_row.status, BillingEventStatus::Processed, "nothing to export");
    ctx.db.drop_db().await;
}

#[tokio::test]
async fn raw_rows_past_retention_go_once_settled_and_late_rows_still_count() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let s = settings(None, &[("USAGE_RETENTION", "30d")]);
    let cfg = crosslogic_billing::BillingConfig::new(s.clone());
    let tenant = fixtures::tenant(pool, "old@x.test").await;
    let old = past_hour(24 * 40);
    let recent = past_hour(2);
    let old_rows: Vec<_> = (0..50)
        .map(|i| ctx.record(tenant.id, old + Duration::seconds(i), 0, 0, 100, 100))
        .collect();
    let new_rows: Vec<_> = (0..5)
        .map(|i| ctx.record(tenant.id, recent + Duration::seconds(i), 0, 0, 100, 100))
        .collect();
    usage::insert_batch(pool, &old_rows).await.unwrap();
    usage::insert_batch(pool, &new_rows).await.unwrap();
    // Not rolled up and settled yet: nothing is purged.
    assert_eq!(retention::purge_once(pool, &cfg, Utc::now()).await.unwrap().rows, 0);
    settle_all(&ctx, &s).await;
    let purged = retention::purge_once(pool, &cfg, Utc::now()).await.unwrap();
    assert_eq!((purged.hours, purged.rows), (1, 50));
    let count = |from, to| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM usage_records WHERE timestamp >= $1 AND timestamp < $2")
            .bind(from)
            .bind(to)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(count(old, old + Duration::hours(1)).await, 0);
    assert_eq!(count(recent, recent + Duration::hours(1)).await, 5, "recent rows stay");
    let scope = Scope::Tenant {
        tenant_id: tenant.id,
        api_key_id: None,
    };
    let before = report::usage(pool, scope, old, old + Duration::hours(1), UsageGroup::Hour, false)
        .await
        .unwrap();
    assert_eq!(before[0].requests, 50, "the rollup outlives the raw rows");

    // A row for the purged hour arrives (a spool replayed very late).
    let late = vec![ctx.record(tenant.id, old + Duration::minutes(30), 0, 0, 100, 100)];
    usage::insert_batch(pool, &late).await.unwrap();
    settle_all(&ctx, &s).await;
    let after = report::usage(pool, scope, old, old + Duration::hours(1), UsageGroup::Hour, false)
        .await
        .unwrap();
    assert_eq!(after[0].requests, 51, "folded into the rollup");
    let all: Vec<_> = old_rows.iter().chain(late.iter()).cloned().collect();
    assert_eq!(after[0].cost, ctx.expected(&all));
    assert_eq!(count(old, old + Duration::hours(1)).await, 0, "and not kept raw");
    // The same late row replayed again (a spool replayed twice) is not
    // counted twice.
    usage::insert_batch(pool, &late).await.unwrap();
    settle_all(&ctx, &s).await;
    let replayed = report::usage(pool, scope, old, old + Duration::hours(1), UsageGroup::Hour, false)
        .await
        .unwrap();
    assert_eq!(replayed[0].requests, 51, "a replayed folded row counts once");
    let th = settlement::tenant_hours(pool, old).await.unwrap();
    assert_eq!(
        (th[0].revision, th[0].billed_microdollars),
        (1, round_once(ctx.expected(&all)))
    );
    ctx.db.drop_db().await;
}
