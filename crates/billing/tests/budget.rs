//! Monthly budgets: warnings at 80 % and 100 % once per month and amount,
//! a hard stop that gateways see (`spend_blocked_month`), lifted at once
//! when the budget is raised through the API; credits and the signup
//! credit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, Utc};
use common::{outbox, Ctx};
use crosslogic_billing::account::{self, GrantCredit, SetBudget};
use crosslogic_billing::budget;
use crosslogic_core::billing::month_day;
use crosslogic_core::decimal::Decimal;
use crosslogic_core::{Actor, CreditType, ServiceError};
use crosslogic_db::repo::{tenants, usage};
use crosslogic_testkit::fixtures;

#[tokio::test]
async fn a_budget_warns_then_stops_requests_and_raising_it_lifts_the_stop_at_once() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let admin = Actor::admin(None);
    let tenant = fixtures::tenant(pool, "budget@x.test").await;
    let now = Utc::now();
    // $0.01 budget, hard stop.
    let set = |amount: &str, hard_stop| SetBudget {
        amount: Decimal::new(amount),
        hard_stop,
    };
    account::set_budget(pool, &admin, tenant.id, Some(set("0.01", true)), now)
        .await
        .unwrap();
    // 8,500 µ$ this month (raw rows of the open hour): 85 %.
    let llama = ctx.models.iter().position(|m| m.name == "llama-3-8b").unwrap();
    let us_east = ctx.regions.iter().position(|r| r.code == "us-east").unwrap();
    let at = now - Duration::seconds(1);
    usage::insert_batch(pool, &[ctx.record(tenant.id, at, llama, us_east, 85_000, 85_000)])
        .await
        .unwrap();
    let pass = budget::check_all(pool, now).await.unwrap();
    assert_eq!((pass.warnings, pass.exceeded, pass.blocked), (1, 0, 0));
    assert_eq!(budget::check_all(pool, now).await.unwrap().warnings, 0, "once a month");
    let warning = outbox(pool, "billing.budget_warning").await;
    assert_eq!(
        (
            warning[0]["percent"].as_i64(),
            warning[0]["spent_microdollars"].as_i64()
        ),
        (Some(85), Some(8_500))
    );

    // Past 100 %: exceeded, and requests stop.
    usage::insert_batch(pool, &[ctx.record(tenant.id, at, llama, us_east, 20_000, 20_000)])
        .await
        .unwrap();
    let pass = budget::check_all(pool, now).await.unwrap();
    assert_eq!((pass.exceeded, pass.blocked), (1, 1));
    let t = tenants::get(pool, tenant.id).await.unwrap();
    assert_eq!(t.spend_blocked_month, Some(month_day(now)));
    let summary = account::summary(pool, tenant.id, std::time::Duration::ZERO, now)
        .await
        .unwrap();
    let b = summary.budget.unwrap();
    assert_eq!((b.state, b.blocked, b.percent), ("exceeded", true, 105));
    assert_eq!(summary.period.cost.microdollars, 10_500);

    // Raised: lifted by the API call itself, not the next pass.
    account::set_budget(pool, &admin, tenant.id, Some(set("1", true)), now)
        .await
        .unwrap();
    assert_eq!(tenants::get(pool, tenant.id).await.unwrap().spend_blocked_month, None);
    // Lowered again without a hard stop: warned, never stopped.
    account::set_budget(pool, &admin, tenant.id, Some(set("0.005", false)), now)
        .await
        .unwrap();
    assert_eq!(tenants::get(pool, tenant.id).await.unwrap().spend_blocked_month, None);
    assert_eq!(
        outbox(pool, "billing.budget_exceeded").await.len(),
        2,
        "re-armed for the new amount"
    );
    assert_eq!(outbox(pool, "billing.budget_updated").await.len(), 3);
    // Removed.
    account::set_budget(pool, &admin, tenant.id, None, now).await.unwrap();
    assert!(account::summary(pool, tenant.id, std::time::Duration::ZERO, now)
        .await
        .unwrap()
        .budget
        .is_none());
    ctx.db.drop_db().await;
}

#[tokio::test]
async fn credits_are_granted_exactly_and_bad_grants_name_their_field() {
    let ctx = Ctx::new().await;
    let pool = ctx.pool();
    let admin = Actor::admin(None);
    let tenant = fixtures::tenant(pool, "grant@x.test").await;
    let now = Utc::now();
    let grant = |amount: &str, expires: Option<chrono::DateTime<Utc>>| GrantCredit {
        credit_type: CreditType::Promotional,
        amount: Decimal::new(amount),
        expires_at: expires,
        description: Some("launch".into()),
    };
    let c = account::grant_credit(
        pool,
        &admin,
        tenant.id,
        grant("2.50", Some(now + Duration::days(30))),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        (c.amount.microdollars, c.remaining.microdollars, c.status),
        (2_500_000, 2_500_000, "active")
    );
    for (amount, expires, field) in [
        ("0", None, "amount"),
        ("0.0000001", None, "amount"),
        ("-1", None, "amount"),
        ("1", Some(now - Duration::hours(1)), "expires_at"),
    ] {
        match account::grant_credit(pool, &admin, tenant.id, grant(amount, expires), now).await {
            Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field, "{amount}"),
            other => panic!("{amount}: {other:?}"),
        }
    }
    let granted = outbox(pool, "billing.credit_granted").await;
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0]["amount_microdollars"], 2_500_000);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'billing.credit_granted'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(audit, 1);
    let summary = account::summary(pool, tenant.id, std::time::Duration::ZERO, now)
        .await
        .unwrap();
    assert_eq!(summary.credits.balance.microdollars, 2_500_000);

    // The signup credit comes with the tenant, in the same transaction.
    let api = crosslogic_billing::BillingApi {
        signup_credit_microdollars: Some(5_000_000),
        signup_credit_expires_after: Some(std::time::Duration::from_secs(86_400)),
        ..Default::default()
    };
    let t = crosslogic_tenancy::create_tenant(
        pool,
        &admin,
        serde_json::from_value(serde_json::json!({"name": "New", "email": "new@x.test"})).unwrap(),
        api.signup_credit(now),
    )
    .await
    .unwrap();
    let credits = account::list_credits(pool, t.id, now).await.unwrap();
    assert_eq!(credits.len(), 1);
    assert_eq!(
        (credits[0].credit_type, credits[0].amount.microdollars),
        (CreditType::SignupBonus, 5_000_000)
    );
    assert!(credits[0].expires_at.is_some());
    ctx.db.drop_db().await;
}
