//! Notification delivery benchmark: the real workers (fan-out woken by
//! NOTIFY, leased senders) over real PostgreSQL, delivering signed webhooks
//! to a local receiver.
//!
//! * Throughput: a burst of events spread over 1, 10 and 100 tenants, each
//!   with one webhook channel; events/s from the burst's commit until the
//!   receiver has every message.
//! * Latency: one event every 20 ms for a few seconds; the delay from each
//!   event's commit to its arrival at the receiver (p50/p99), against the
//!   bar of SYSTEM.md (p99 < 1 s when the receiver answers).
//!
//! Run: `cargo bench -p crosslogic-notify --bench delivery` (needs the test
//! PostgreSQL of `scripts/test.sh`). `BENCH_EVENTS` (default 2000) sets the
//! burst. Prints figures; asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crosslogic_core::events::{example, EventKind};
use crosslogic_core::{Actor, Event, NotificationChannel};
use crosslogic_notify::channels::{self, CreateChannel, Policy};
use crosslogic_notify::NotifyConfig;
use crosslogic_testkit::receiver::Receiver;
use crosslogic_testkit::{fixtures, TestDb};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

fn revoked(tenant: Uuid) -> Event {
    let mut e = example(EventKind::ApiKeyRevoked);
    if let Event::ApiKeyRevoked(k) = &mut e {
        k.tenant_id = tenant;
        k.key_id = Uuid::new_v4();
    }
    e
}

/// Publishes `events` in one transaction; returns their public ids and the
/// commit instant.
async fn publish(pool: &sqlx::PgPool, events: &[Event]) -> (Vec<String>, Instant) {
    let mut tx = pool.begin().await.unwrap();
    let mut ids = Vec::with_capacity(events.len());
    for e in events {
        let stored = crosslogic_db::changes::publish(&mut tx, e).await.unwrap();
        ids.push(format!("msg_{}", stored.event_id.simple()));
    }
    tx.commit().await.unwrap();
    (ids, Instant::now())
}

/// Waits until the receiver has a message for every id; returns arrival
/// instants by id.
async fn arrivals(hook: &Receiver, ids: &[String], within: Duration) -> HashMap<String, Instant> {
    let deadline = Instant::now() + within;
    loop {
        let got: HashMap<String, Instant> = hook
            .received()
            .into_iter()
            .filter_map(|r| Some((r.header("webhook-id")?.to_owned(), r.at)))
            .collect();
        if ids.iter().all(|id| got.contains_key(id)) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let burst: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let vars = HashMap::from([("NOTIFY_ALLOW_PRIVATE_TARGETS".to_owned(), "true".to_owned())]);
    let settings = crosslogic_config::Config::from_vars(&vars).unwrap().notify;
    let cfg = NotifyConfig::new(settings);
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    crosslogic_notify::start(db.pool.clone(), cfg.clone(), &tasks, stop.clone())
        .await
        .unwrap();
    let hook = Receiver::start().await;
    println!("notification delivery benchmark (real workers, PostgreSQL, local webhook receiver, 2 worker threads)\n");
    println!("{:<28} {:>10} {:>12} {:>12}", "phase", "events", "seconds", "events/s");
    let mut tenants: Vec<Uuid> = Vec::new();
    for channels_wanted in [1usize, 10, 100] {
        while tenants.len() < channels_wanted {
            let t = fixtures::tenant(&db.pool, &format!("bench{}@notify.test", tenants.len())).await;
            channels::create_channel(
                &db.pool,
                &Actor::admin(None),
                t.id,
                CreateChannel {
                    channel: NotificationChannel::Webhook,
                    destination: format!("{}/t/{}", hook.url, t.id),
                    event_types: Some(vec!["apikey.*".into()]),
                    enabled: None,
                },
                Policy { allow_private: true },
            )
            .await
            .unwrap();
            tenants.push(t.id);
        }
        let events: Vec<Event> = (0..burst).map(|i| revoked(tenants[i % tenants.len()])).collect();
        let started = Instant::now();
        let (ids, _) = publish(&db.pool, &events).await;
        let got = arrivals(&hook, &ids, Duration::from_secs(300)).await;
        let secs = started.elapsed().as_secs_f64();
        let delivered = ids.iter().filter(|id| got.contains_key(*id)).count();
        println!(
            "{:<28} {:>10} {:>12.2} {:>12.0}",
            format!("burst, {channels_wanted} channel(s)"),
            delivered,
            secs,
            delivered as f64 / secs
        );
    }

    // Latency at a steady pace.
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..250 {
        tick.tick().await;
        let (ids, at) = publish(&db.pool, &[revoked(tenants[i % tenants.len()])]).await;
        pending.push((ids[0].clone(), at));
    }
    let ids: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
    let got = arrivals(&hook, &ids, Duration::from_secs(60)).await;
    let mut delays: Vec<Duration> = pending
        .iter()
        .filter_map(|(id, at)| got.get(id).map(|arrived| arrived.saturating_duration_since(*at)))
        .collect();
    delays.sort();
    println!(
        "\n{:<28} {:>10} {:>10} {:>10} {:>14}",
        "commit → receiver", "events", "p50 ms", "p99 ms", "bar (p99)"
    );
    println!(
        "{:<28} {:>10} {:>10.1} {:>10.1} {:>14}",
        "50 events/s, 100 channels",
        delays.len(),
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        "< 1000 ms"
    );
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    db.drop_db().await;
}
