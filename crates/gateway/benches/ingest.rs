//! Usage ingestion through the real metering path, on a private PostgreSQL
//! cluster (the embedded supervisor, so the bench can stop and restart it).
//!
//! Records are what a served request produces: tenant, environment, key,
//! region, model and node all set (every reference checked by
//! PostgreSQL), handed to `Metering::record` with the journal on, as in
//! production (one `write(2)` per record).
//!
//! 1. Sustained: `BENCH_ROWS` (200,000) records as fast as one task hands
//!    them over; rows/s from the first record to the last row written.
//! 2. Replay after a crash: the same number journaled by a process that
//!    dies before writing any (handle and journal dropped unflushed, like a
//!    SIGKILL); a new writer replays the journal at start.
//! 3. Outage: records handed over steadily at `BENCH_RATE` (25,000/s) for
//!    `BENCH_OUTAGE_ROWS` (200,000) records; at 20 % PostgreSQL stops (fast
//!    shutdown), at 40 % the writer gets the shutdown a SIGTERM gives it
//!    (it drains into the journal, the process is replaced by a new one on
//!    the same spool directory), at 60 % PostgreSQL is back. Prints the
//!    whole run's rows/s and the catch-up rate once the database is back.
//!
//! Each phase checks 0 lost and 0 duplicated (rows = records, distinct
//! request ids = records) and exits non-zero otherwise. Run:
//! `cargo bench -p crosslogic-gateway --bench ingest` (PostgreSQL's server
//! binaries must be installed, as for `crosslogic serve`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crosslogic_core::{ApiKeyRole, Femtos, UsageStatus};
use crosslogic_db::embedded::EmbeddedPostgres;
use crosslogic_db::repo::api_keys::KeyLimits;
use crosslogic_db::repo::environments::NewEnvironment;
use crosslogic_db::repo::usage::UsageRecord;
use crosslogic_gateway::metering::{self, Metering};
use crosslogic_testkit::fixtures;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The references every record carries, as a served request's would.
#[derive(Clone, Copy)]
struct Refs {
    tenant: Uuid,
    environment: Uuid,
    key: Uuid,
    region: Uuid,
    model: Uuid,
    node: Uuid,
}

fn record(tag: &str, i: usize, r: Refs) -> UsageRecord {
    UsageRecord {
        request_id: format!("req_{tag}{i:09}"),
        timestamp: Utc::now(),
        tenant_id: r.tenant,
        environment_id: Some(r.environment),
        api_key_id: Some(r.key),
        region_id: Some(r.region),
        model_id: Some(r.model),
        model_name: "llama-3-8b".into(),
        node_id: Some(r.node),
        prompt_tokens: 12,
        completion_tokens: 16,
        cached_tokens: 0,
        latency_ms: 3,
        cost_microdollars: 1,
        cost_exact: Femtos::from_micros(crosslogic_core::Micros(1)),
        status: UsageStatus::Completed,
        metadata: serde_json::json!({ "usage_reported": true }),
    }
}

/// Counts `crosslogic_gateway_usage_rows_inserted_total`: the bench knows
/// when every row is in without scanning the table while it is written
/// (a `count(*)` every few ms would take PostgreSQL's CPU from the writer).
struct Inserted;

static INSERTED: AtomicU64 = AtomicU64::new(0);

impl metrics::CounterFn for Inserted {
    fn increment(&self, value: u64) {
        INSERTED.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for Inserted {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() == "crosslogic_gateway_usage_rows_inserted_total" {
            metrics::Counter::from_arc(Arc::new(Inserted))
        } else {
            metrics::Counter::noop()
        }
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

async fn rows(pool: &PgPool, tag: &str) -> Option<(i64, i64)> {
    sqlx::query_as("SELECT count(*), count(DISTINCT request_id) FROM usage_records WHERE starts_with(request_id, $1)")
        .bind(format!("req_{tag}"))
        .fetch_one(pool)
        .await
        .ok()
}

/// Waits until the writers report `n` more new rows than `before` (the
/// database may be away for a while); the instant they did.
async fn until_written(before: u64, n: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(600);
    while INSERTED.load(Ordering::Relaxed) < before + n as u64 {
        assert!(Instant::now() < deadline, "not every row written after 10 min");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Instant::now()
}

/// Prints the counts and returns whether nothing was lost or doubled.
async fn check(pool: &PgPool, tag: &str, n: usize) -> bool {
    let (count, distinct) = rows(pool, tag).await.expect("count rows");
    let lost = n as i64 - distinct;
    let doubled = count - distinct;
    println!("    rows {count}, distinct {distinct}: lost {lost}, duplicated {doubled}");
    lost == 0 && doubled == 0
}

fn start_writer(dir: &Path, pool: &PgPool) -> (Metering, CancellationToken, JoinHandle<()>) {
    let (m, w) = metering::channel(dir.to_path_buf(), true).unwrap();
    let shutdown = CancellationToken::new();
    let writer = tokio::spawn(metering::run_writer(w, pool.clone(), shutdown.clone()));
    (m, shutdown, writer)
}

async fn refs(pool: &PgPool) -> Refs {
    let tenant = fixtures::tenant(pool, "ingest@bench.test").await.id;
    let environment = fixtures::environment(
        pool,
        NewEnvironment {
            tenant_id: tenant,
            name: "prod".into(),
            ..Default::default()
        },
    )
    .await
    .id;
    let (_, key) = fixtures::api_key(pool, tenant, environment, ApiKeyRole::Developer, KeyLimits::default()).await;
    let node = fixtures::active_node(pool, "http://127.0.0.1:9", "llama-3-8b", "us-east").await;
    let region = sqlx::query_scalar("SELECT id FROM regions WHERE code = 'us-east'")
        .fetch_one(pool)
        .await
        .unwrap();
    let model = sqlx::query_scalar("SELECT id FROM models WHERE name = 'llama-3-8b'")
        .fetch_one(pool)
        .await
        .unwrap();
    Refs {
        tenant,
        environment,
        key,
        region,
        model,
        node,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("BENCH_ROWS", 200_000);
    let outage_rows = env_usize("BENCH_OUTAGE_ROWS", 200_000);
    let rate = env_usize("BENCH_RATE", 25_000);
    metrics::set_global_recorder(Inserted).expect("the only recorder");
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pg = EmbeddedPostgres::start(data.path(), None).await.unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(crosslogic_db::pool::connect_options(&pg.connection()))
        .await
        .unwrap();
    crosslogic_db::migrate::migrate(&pool).await.unwrap();
    let refs = refs(&pool).await;
    let mut ok = true;

    // 1. Sustained ingestion.
    let dir = tempfile::tempdir().unwrap();
    let (m, shutdown, writer) = start_writer(dir.path(), &pool);
    let before = INSERTED.load(Ordering::Relaxed);
    let started = Instant::now();
    for i in 0..n {
        m.record(record("live", i, refs));
        if i % 1_000 == 999 {
            tokio::task::yield_now().await; // one producer, sharing the runtime with the writer
        }
    }
    let produced = started.elapsed();
    let took = until_written(before, n).await - started;
    println!(
        "sustained: {n} records handed over in {:.2} s, all in PostgreSQL after {:.2} s: {:.0} rows/s",
        produced.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
    );
    ok &= check(&pool, "live", n).await;
    shutdown.cancel();
    writer.await.unwrap();
    drop(m);

    // 2. A process journals `n` records and dies before writing any.
    let dir = tempfile::tempdir().unwrap();
    {
        let (m, _w_never_run) = metering::channel(dir.path().to_path_buf(), true).unwrap();
        for i in 0..n {
            m.record(record("crash", i, refs));
        }
        // Dropped without the writer ever running, like a SIGKILL.
    }
    let before = INSERTED.load(Ordering::Relaxed);
    let started = Instant::now();
    let (m, shutdown, writer) = start_writer(dir.path(), &pool);
    let took = until_written(before, n).await - started;
    println!(
        "replay after a crash: {n} journaled records in PostgreSQL after {:.2} s: {:.0} rows/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
    );
    ok &= check(&pool, "crash", n).await;
    shutdown.cancel();
    writer.await.unwrap();
    drop(m);

    // 3. PostgreSQL restarts and the gateway is replaced (SIGTERM) while
    //    records keep coming at a steady rate.
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut shutdown, mut writer) = start_writer(dir.path(), &pool);
    let mut pg = Some(pg);
    let mut stopping: Option<JoinHandle<()>> = None;
    let mut starting: Option<JoinHandle<EmbeddedPostgres>> = None;
    let mut back_at = None;
    let before = INSERTED.load(Ordering::Relaxed);
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut interval = tokio::time::interval(tick);
    let started = Instant::now();
    let mut i = 0;
    while i < outage_rows {
        interval.tick().await;
        for _ in 0..per_tick.min(outage_rows - i) {
            m.record(record("outage", i, refs));
            i += 1;
            if i == outage_rows / 5 {
                let pg = pg.take().unwrap();
                stopping = Some(tokio::spawn(async move { pg.stop().await.unwrap() }));
            }
            if i == outage_rows * 2 / 5 {
                // SIGTERM: the writer drains (into the journal: PostgreSQL
                // is down) and the process exits; a new one takes over.
                shutdown.cancel();
                writer.await.unwrap();
                drop(m);
                (m, shutdown, writer) = start_writer(dir.path(), &pool);
            }
            if i == outage_rows * 3 / 5 {
                stopping.take().unwrap().await.unwrap();
                let data = data.path().to_path_buf();
                // Its own thread: start's future is not `Send` (sqlx).
                let rt = tokio::runtime::Handle::current();
                starting = Some(tokio::task::spawn_blocking(move || {
                    rt.block_on(EmbeddedPostgres::start(&data, None)).unwrap()
                }));
            }
        }
        if back_at.is_none() && starting.as_ref().is_some_and(JoinHandle::is_finished) {
            back_at = Some(Instant::now());
        }
    }
    let produced = started.elapsed();
    let pg = starting.take().unwrap().await.unwrap();
    let back_at = back_at.unwrap_or_else(Instant::now);
    let done = until_written(before, outage_rows).await;
    println!(
        "outage: {outage_rows} records at {rate}/s over {:.2} s (PostgreSQL down from 20 % to 60 %, the writer replaced at 40 %), all in PostgreSQL after {:.2} s: {:.0} rows/s overall; {:.2} s from PostgreSQL back to the last row",
        produced.as_secs_f64(),
        (done - started).as_secs_f64(),
        outage_rows as f64 / (done - started).as_secs_f64(),
        (done - back_at).as_secs_f64(),
    );
    ok &= check(&pool, "outage", outage_rows).await;
    shutdown.cancel();
    writer.await.unwrap();
    drop(m);
    pool.close().await;
    pg.stop().await.unwrap();
    if !ok {
        eprintln!("usage rows were lost or duplicated");
        std::process::exit(1);
    }
}
