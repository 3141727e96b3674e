//! One conformance suite run against both limit stores: the in-process one
//! and Redis (real server from CROSSLOGIC_TEST_REDIS_URL). Each test uses
//! its own key prefix, so tests never share state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use crosslogic_core::limits::{Layer, LimitKind};
use crosslogic_gateway::limits::local::LocalStore;
use crosslogic_gateway::limits::redis::RedisStore;
use crosslogic_gateway::limits::{BucketSpec, DailySpec, Decision, LimitStore, Plan, Refusal, SlotSpec};
use tokio_util::task::TaskTracker;

fn redis_url() -> String {
    std::env::var("CROSSLOGIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A plain connection, to look at what the store wrote.
async fn redis_conn() -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn prefix() -> String {
    format!("cltest:{}", uuid::Uuid::new_v4().simple())
}

fn rid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

struct P {
    prefix: String,
}

impl P {
    fn bucket(&self, name: &str, layer: Layer, kind: LimitKind, capacity: u64, cost: u64) -> BucketSpec {
        BucketSpec {
            key: format!("{}:{name}", self.prefix).into(),
            layer,
            kind,
            capacity,
            cost,
        }
    }
    fn slot(&self, name: &str, layer: Layer, limit: u64) -> SlotSpec {
        SlotSpec {
            key: format!("{}:{name}", self.prefix).into(),
            layer,
            limit,
        }
    }
    fn daily(&self, quota: u64, cost: u64) -> DailySpec {
        DailySpec {
            key: format!("{}:day", self.prefix).into(),
            layer: Layer::Environment,
            quota,
            cost,
            ms_to_reset: 3_600_000,
        }
    }
}

fn refused(d: Decision) -> Refusal {
    match d {
        Decision::Refused(r) => r,
        Decision::Admitted { .. } => panic!("expected a refusal"),
    }
}

fn admitted(d: &Decision) -> bool {
    matches!(d, Decision::Admitted { .. })
}

async fn requests_per_minute_allow_the_limit_then_refuse_with_a_wait(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let plan = |id: String| Plan {
        request_id: id.into(),
        buckets: vec![p.bucket("rpm", Layer::Key, LimitKind::RequestsPerMinute, 3, 1)],
        ..Plan::default()
    };
    for _ in 0..3 {
        assert!(admitted(&store.admit(&plan(rid())).await.unwrap()));
    }
    let r = refused(store.admit(&plan(rid())).await.unwrap());
    assert_eq!(
        (r.layer, r.kind, r.limit),
        (Layer::Key, LimitKind::RequestsPerMinute, 3)
    );
    let wait = r.retry_after_ms.unwrap();
    assert!(wait > 0 && wait <= 20_000, "retry after {wait} ms");
}

async fn token_reservations_settle_to_actual_usage(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let plan = |id: String| Plan {
        request_id: id.into(),
        buckets: vec![p.bucket("tpm", Layer::Environment, LimitKind::TokensPerMinute, 1000, 600)],
        reserved_tokens: 600,
        ..Plan::default()
    };
    let first = plan(rid());
    let Decision::Admitted { remaining } = store.admit(&first).await.unwrap() else {
        panic!("refused")
    };
    assert!((remaining[0] - 400.0).abs() < 1.0, "{remaining:?}");
    let r = refused(store.admit(&plan(rid())).await.unwrap());
    assert_eq!((r.layer, r.kind), (Layer::Environment, LimitKind::TokensPerMinute));
    store.settle(&first, 100).await.unwrap(); // used 100 of 600: 500 back
    assert!(admitted(&store.admit(&plan(rid())).await.unwrap()));
}

async fn concurrency_slots_are_released_by_settlement(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let plan = |id: String| Plan {
        request_id: id.into(),
        slots: vec![p.slot("conc", Layer::Tenant, 2)],
        ..Plan::default()
    };
    let a = plan(rid());
    assert!(admitted(&store.admit(&a).await.unwrap()));
    assert!(admitted(&store.admit(&plan(rid())).await.unwrap()));
    let r = refused(store.admit(&plan(rid())).await.unwrap());
    assert_eq!((r.layer, r.kind, r.limit), (Layer::Tenant, LimitKind::Concurrency, 2));
    store.settle(&a, 0).await.unwrap();
    assert!(admitted(&store.admit(&plan(rid())).await.unwrap()));
}

async fn daily_quota_counts_actual_tokens(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let plan = |id: String| Plan {
        request_id: id.into(),
        daily: Some(p.daily(1000, 600)),
        reserved_tokens: 600,
        ..Plan::default()
    };
    let first = plan(rid());
    assert!(admitted(&store.admit(&first).await.unwrap()));
    let r = refused(store.admit(&plan(rid())).await.unwrap());
    assert_eq!(
        (r.kind, r.limit, r.retry_after_ms),
        (LimitKind::TokensPerDay, 1000, Some(3_600_000))
    );
    store.settle(&first, 100).await.unwrap();
    assert!(admitted(&store.admit(&plan(rid())).await.unwrap()));
    let too_big = Plan {
        request_id: rid().into(),
        daily: Some(p.daily(1000, 5000)),
        reserved_tokens: 5000,
        ..Plan::default()
    };
    assert_eq!(refused(store.admit(&too_big).await.unwrap()).retry_after_ms, None);
}

async fn a_refusal_charges_nothing(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let full = p.slot("conc", Layer::Key, 1);
    let holder = Plan {
        request_id: rid().into(),
        slots: vec![full.clone()],
        ..Plan::default()
    };
    assert!(admitted(&store.admit(&holder).await.unwrap()));
    // The request bucket passes, the slot does not: the bucket must stay full.
    let blocked = Plan {
        request_id: rid().into(),
        buckets: vec![p.bucket("rpm", Layer::Global, LimitKind::RequestsPerMinute, 1, 1)],
        slots: vec![full.clone()],
        ..Plan::default()
    };
    let r = refused(store.admit(&blocked).await.unwrap());
    assert_eq!(r.kind, LimitKind::Concurrency);
    store.settle(&holder, 0).await.unwrap();
    let retry = Plan {
        request_id: rid().into(),
        ..blocked
    };
    assert!(
        admitted(&store.admit(&retry).await.unwrap()),
        "the refused request consumed the request budget"
    );
}

async fn a_request_larger_than_the_limit_can_never_fit(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let plan = Plan {
        request_id: rid().into(),
        buckets: vec![p.bucket("tpm", Layer::Key, LimitKind::TokensPerMinute, 100, 101)],
        reserved_tokens: 101,
        ..Plan::default()
    };
    assert_eq!(refused(store.admit(&plan).await.unwrap()).retry_after_ms, None);
}

/// Leases settled off the request path (what a dropped `Lease` does; the
/// Redis store batches them into one script call per round trip): every
/// slot is released and every reservation corrected, as with `settle`.
async fn settlements_off_the_request_path_release_and_refund_everything(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let n = 300;
    let plan = |id: String| Plan {
        request_id: id.into(),
        reserved_tokens: 100,
        buckets: vec![p.bucket("tpm", Layer::Key, LimitKind::TokensPerMinute, 100 * n, 100)],
        slots: vec![p.slot("conc", Layer::Key, n)],
        daily: Some(p.daily(100 * n, 100)),
    };
    let mut held = Vec::new();
    for _ in 0..n {
        let pl = plan(rid());
        assert!(admitted(&store.admit(&pl).await.unwrap()));
        held.push(pl);
    }
    let r = refused(store.admit(&plan(rid())).await.unwrap());
    assert_eq!(r.kind, LimitKind::TokensPerMinute);
    let tasks = tokio_util::task::TaskTracker::new();
    // Each used 10 of its 100 reserved tokens.
    for pl in held {
        Arc::clone(&store).settle_later(pl, 10, &tasks);
    }
    tasks.close();
    tasks.wait().await;
    // All slots free and 90 × n tokens back: n more requests fit again.
    for _ in 0..(n * 9 / 10) {
        assert!(admitted(&store.admit(&plan(rid())).await.unwrap()));
    }
}

/// Many admissions at once (the Redis store sends them in batches, one
/// script call for many) stay exact: a concurrency limit of 60 admits 60 of
/// 150, every slot is released and every reservation corrected, and the
/// daily quota ends exactly where the settled usage puts it.
async fn concurrent_admissions_stay_exact(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let plan = |cost: u64| Plan {
        request_id: rid().into(),
        reserved_tokens: cost,
        buckets: vec![
            p.bucket("rpm", Layer::Key, LimitKind::RequestsPerMinute, 1_000, 1),
            p.bucket("tpm", Layer::Environment, LimitKind::TokensPerMinute, 100_000, cost),
        ],
        slots: vec![
            p.slot("conc-env", Layer::Environment, 1_000),
            p.slot("conc", Layer::Key, 60),
        ],
        daily: Some(p.daily(1_000, cost)),
    };
    let tasks = tokio_util::task::TaskTracker::new();
    let mut used = 0;
    for round in 0..2 {
        let plans: Vec<Plan> = (0..150).map(|_| plan(10)).collect();
        let decisions = futures_util::future::join_all(plans.iter().map(|pl| store.admit(pl))).await;
        let mut admitted_plans = Vec::new();
        for (pl, d) in plans.into_iter().zip(decisions) {
            match d.unwrap() {
                Decision::Admitted { .. } => admitted_plans.push(pl),
                Decision::Refused(r) => assert_eq!(r.kind, LimitKind::Concurrency, "round {round}: {r:?}"),
            }
        }
        assert_eq!(
            admitted_plans.len(),
            60,
            "round {round}: the concurrency limit was not exact"
        );
        // Each used 5 of the 10 it reserved.
        for pl in admitted_plans {
            Arc::clone(&store).settle_later(pl, 5, &tasks);
        }
        used += 60 * 5;
    }
    tasks.close();
    tasks.wait().await;
    // 600 of 1,000 used: 400 more fit, 401 do not.
    assert_eq!(used, 600);
    let r = refused(store.admit(&plan(401)).await.unwrap());
    assert_eq!(r.kind, LimitKind::TokensPerDay);
    assert!(admitted(&store.admit(&plan(400)).await.unwrap()));
}

macro_rules! conformance {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            fn store() -> Arc<dyn LimitStore> {
                $make
            }
            #[tokio::test]
            async fn requests_per_minute() {
                requests_per_minute_allow_the_limit_then_refuse_with_a_wait(store()).await;
            }
            #[tokio::test]
            async fn token_settlement() {
                token_reservations_settle_to_actual_usage(store()).await;
            }
            #[tokio::test]
            async fn concurrency_release() {
                concurrency_slots_are_released_by_settlement(store()).await;
            }
            #[tokio::test]
            async fn daily_quota() {
                daily_quota_counts_actual_tokens(store()).await;
            }
            #[tokio::test]
            async fn refusals_are_atomic() {
                a_refusal_charges_nothing(store()).await;
            }
            #[tokio::test]
            async fn batched_settlement() {
                settlements_off_the_request_path_release_and_refund_everything(store()).await;
            }
            #[tokio::test]
            async fn concurrent_admissions() {
                concurrent_admissions_stay_exact(store()).await;
            }
            #[tokio::test]
            async fn oversized_requests() {
                a_request_larger_than_the_limit_can_never_fit(store()).await;
            }
        }
    };
}

conformance!(local, Arc::new(LocalStore::new(Duration::from_secs(600))));
conformance!(
    redis,
    Arc::new(RedisStore::new(&redis_url(), Duration::from_secs(600), TaskTracker::new()).unwrap())
);

async fn leases_expire(store: Arc<dyn LimitStore>) {
    let p = P { prefix: prefix() };
    let plan = |id: String| Plan {
        request_id: id.into(),
        slots: vec![p.slot("conc", Layer::Key, 1)],
        ..Plan::default()
    };
    assert!(admitted(&store.admit(&plan(rid())).await.unwrap()));
    assert!(!admitted(&store.admit(&plan(rid())).await.unwrap()));
    // The holder "crashed" and never settles: its lease runs out.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        admitted(&store.admit(&plan(rid())).await.unwrap()),
        "an expired lease still holds its slot"
    );
}

#[tokio::test]
async fn local_leases_expire_when_a_holder_never_settles() {
    leases_expire(Arc::new(LocalStore::new(Duration::from_millis(300)))).await;
}

#[tokio::test]
async fn redis_leases_expire_when_a_holder_never_settles() {
    leases_expire(Arc::new(
        RedisStore::new(&redis_url(), Duration::from_millis(300), TaskTracker::new()).unwrap(),
    ))
    .await;
}

/// A lease settled off the request path rides along with the gateway's
/// next admission (one round trip for both): that admission already sees
/// the slot released and the tokens refunded; a refused admission carries
/// it too; the flusher that follows settles nothing twice.
#[tokio::test]
async fn redis_admissions_carry_queued_settlements() {
    let store = Arc::new(RedisStore::new(&redis_url(), Duration::from_secs(600), TaskTracker::new()).unwrap());
    let other = RedisStore::new(&redis_url(), Duration::from_secs(600), TaskTracker::new()).unwrap();
    let p = P { prefix: prefix() };
    let plan = |id: String, cost: u64| Plan {
        request_id: id.into(),
        reserved_tokens: cost,
        buckets: vec![p.bucket("tpm", Layer::Key, LimitKind::TokensPerMinute, 100, cost)],
        slots: vec![p.slot("conc", Layer::Key, 1)],
        daily: Some(p.daily(10_000, cost)),
    };
    let tasks = tokio_util::task::TaskTracker::new();
    // The first request reserves all 100 tokens and uses 10, the next ones
    // reserve 90 and use none: each fits (slot and tokens) only if the
    // settlement before it was applied first.
    let first = plan(rid(), 100);
    assert!(admitted(&store.admit(&first).await.unwrap()));
    Arc::clone(&store).settle_later(first, 10, &tasks);
    for _ in 0..5 {
        let next = plan(rid(), 90);
        assert!(
            admitted(&store.admit(&next).await.unwrap()),
            "the queued settlement did not ride along with the admission"
        );
        Arc::clone(&store).settle_later(next, 0, &tasks);
    }
    // A refused admission (200 tokens can never fit) carries what is queued
    // as well: the other gateway, which has no queue, finds the slot free.
    let never = refused(store.admit(&plan(rid(), 200)).await.unwrap());
    assert_eq!(never.retry_after_ms, None);
    let last = plan(rid(), 10);
    assert!(admitted(&other.admit(&last).await.unwrap()));
    tasks.close();
    tasks.wait().await;
    // Six settled once each (10 tokens used in all), one held (10 reserved).
    let mut conn = redis_conn().await;
    let daily: i64 = ::redis::cmd("GET")
        .arg(format!("{}:day", p.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(daily, 20, "a settlement was applied twice or not at all");
    assert_eq!(
        refused(store.admit(&plan(rid(), 1)).await.unwrap()).kind,
        LimitKind::Concurrency
    );
}

/// Admissions made while a call is in flight go together: 200 at once take
/// a handful of round trips, not 200.
#[tokio::test]
async fn redis_admissions_in_flight_together_share_a_call() {
    let store = RedisStore::new(&redis_url(), Duration::from_secs(600), TaskTracker::new()).unwrap();
    let p = P { prefix: prefix() };
    let plans: Vec<Plan> = (0..200)
        .map(|_| Plan {
            request_id: rid().into(),
            reserved_tokens: 1,
            buckets: vec![p.bucket("rpm", Layer::Key, LimitKind::RequestsPerMinute, 150, 1)],
            ..Plan::default()
        })
        .collect();
    let before = store.calls();
    let decisions = futures_util::future::join_all(plans.iter().map(|pl| store.admit(pl))).await;
    let calls = store.calls() - before;
    let n = decisions.iter().filter(|d| admitted(d.as_ref().unwrap())).count();
    assert_eq!(n, 150, "a batch admitted past the limit or refused within it");
    assert!(calls <= 10, "200 concurrent admissions took {calls} calls");
}

/// A request dropped while its admission is in flight (its client went
/// away) holds no slot afterwards: whichever of its admissions had been
/// answered is settled, inline or in a batch.
#[tokio::test]
async fn redis_cancelled_admissions_release_their_slots() {
    let tasks = TaskTracker::new();
    let store = Arc::new(RedisStore::new(&redis_url(), Duration::from_secs(600), tasks.clone()).unwrap());
    let p = P { prefix: prefix() };
    let slot_key = format!("{}:conc", p.prefix);
    let plan = || Plan {
        request_id: rid().into(),
        slots: vec![p.slot("conc", Layer::Key, 1_000)],
        ..Plan::default()
    };
    let mut handles = Vec::new();
    for i in 0..120 {
        let (store, pl) = (Arc::clone(&store), plan());
        let h = tokio::spawn(async move { admitted(&store.admit(&pl).await.unwrap()) });
        // Some are cancelled before their call, some while it is in flight.
        if i % 3 == 0 {
            tokio::task::yield_now().await;
        }
        handles.push(h);
    }
    for h in handles.iter().step_by(2) {
        h.abort();
    }
    let mut held = 0;
    let mut cancelled = 0;
    for h in handles {
        match h.await {
            Ok(true) => held += 1,
            Ok(false) => panic!("refused below the limit"),
            Err(e) => {
                assert!(e.is_cancelled());
                cancelled += 1;
            }
        }
    }
    assert!(cancelled > 0, "no admission was cancelled");
    // Settlements of cancelled admissions are flushed by the store's tasks.
    tasks.close();
    tasks.wait().await;
    let mut conn = redis_conn().await;
    let in_use: u64 = ::redis::cmd("ZCARD")
        .arg(&slot_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(in_use, held, "{cancelled} cancelled admissions left slots behind");
}

/// The daily counter in Redis expires an hour after its day ends; a
/// settlement that takes it to zero removes it (absent means 0), and one
/// that finds it gone (a request that ran past the day's expiry) gives the
/// counter it recreates an expiry too, so no counter outlives its day.
#[tokio::test]
async fn redis_daily_counters_always_expire() {
    let store = RedisStore::new(&redis_url(), Duration::from_secs(600), TaskTracker::new()).unwrap();
    let p = P { prefix: prefix() };
    let plan = |cost: u64| Plan {
        request_id: rid().into(),
        reserved_tokens: cost,
        daily: Some(p.daily(10_000, cost)),
        ..Plan::default()
    };
    let mut conn = redis_conn().await;
    let key = format!("{}:day", p.prefix);
    let state = |conn: &mut ::redis::aio::MultiplexedConnection| {
        let key = key.clone();
        let mut conn = conn.clone();
        async move {
            let (used, ttl): (Option<i64>, i64) = ::redis::pipe()
                .get(&key)
                .pttl(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            (used, ttl)
        }
    };
    // Ends an hour after the day (3,600,000 ms away in `p.daily`).
    let day_ttl = 1..=7_200_000;

    let a = plan(50);
    assert!(admitted(&store.admit(&a).await.unwrap()));
    let (used, ttl) = state(&mut conn).await;
    assert_eq!(used, Some(50));
    assert!(day_ttl.contains(&ttl), "the day's first charge set no expiry: {ttl}");
    // Nothing used: the counter is back to 0, i.e. gone.
    store.settle(&a, 0).await.unwrap();
    assert_eq!(state(&mut conn).await, (None, -2));

    // A request that used more than it reserved, settled after its day's
    // counter expired: the counter it recreates expires as well.
    let b = plan(50);
    assert!(admitted(&store.admit(&b).await.unwrap()));
    let _: () = ::redis::cmd("DEL").arg(&key).query_async(&mut conn).await.unwrap();
    store.settle(&b, 80).await.unwrap();
    let (used, ttl) = state(&mut conn).await;
    assert_eq!(used, Some(30));
    assert!(ttl > 0, "a recreated counter never expires: {ttl}");

    // A later admission adds to it and leaves its expiry alone.
    let c = plan(20);
    assert!(admitted(&store.admit(&c).await.unwrap()));
    let (used, ttl_after) = state(&mut conn).await;
    assert_eq!(used, Some(50));
    assert!(ttl_after > 0 && ttl_after <= ttl);
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_their_limits() {
    let a = RedisStore::new(&redis_url(), Duration::from_secs(600), TaskTracker::new()).unwrap();
    let b = RedisStore::new(&redis_url(), Duration::from_secs(600), TaskTracker::new()).unwrap();
    let p = P { prefix: prefix() };
    let plan = |id: String| Plan {
        request_id: id.into(),
        buckets: vec![p.bucket("tpm", Layer::Key, LimitKind::TokensPerMinute, 1000, 400)],
        reserved_tokens: 400,
        ..Plan::default()
    };
    assert!(admitted(&a.admit(&plan(rid())).await.unwrap()));
    assert!(admitted(&b.admit(&plan(rid())).await.unwrap()));
    // 800 of 1000 used across both: a third reservation of 400 fails on either.
    assert!(!admitted(&a.admit(&plan(rid())).await.unwrap()));
    assert!(!admitted(&b.admit(&plan(rid())).await.unwrap()));
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_the_limiter_can_fail_open_or_closed_on() {
    use crosslogic_gateway::limits::{FailureMode, Limiter, LimitsConfig};
    let dead = RedisStore::new("redis://127.0.0.1:1", Duration::from_secs(600), TaskTracker::new()).unwrap();
    let plan = Plan {
        request_id: rid().into(),
        slots: vec![P { prefix: prefix() }.slot("c", Layer::Key, 1)],
        ..Plan::default()
    };
    assert!(dead.admit(&plan).await.is_err());
    let store: Arc<dyn LimitStore> = Arc::new(dead);
    let open = Limiter::new(
        Arc::clone(&store),
        LimitsConfig {
            failure_mode: FailureMode::Open,
            ..LimitsConfig::default()
        },
        "x",
    );
    assert!(open.admit(&plan).await.is_ok(), "fail-open must admit");
    let closed = Limiter::new(
        store,
        LimitsConfig {
            failure_mode: FailureMode::Closed,
            ..LimitsConfig::default()
        },
        "x",
    );
    let err = closed.admit(&plan).await.unwrap_err();
    assert_eq!(err.status.as_u16(), 503);
}
