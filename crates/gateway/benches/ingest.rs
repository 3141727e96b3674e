//! Usage ingestion through the real metering path, on real PostgreSQL.
//!
//! 1. Sustained ingestion: `BENCH_ROWS` (200,000) usage records handed to
//!    `Metering::record` as fast as one task can (journal on, as in
//!    production: one `write(2)` per record), the writer batching them into
//!    PostgreSQL; rows/s from the first record to the last row written.
//! 2. Replay after a crash: the same number journaled by a process that
//!    dies before writing anything (the handle and its journal dropped
//!    unflushed); a new writer replays the journal's segments at start.
//!
//! Both check 0 lost and 0 duplicated (rows = records, distinct request
//! ids = records). Run: `cargo bench -p crosslogic-gateway --bench ingest`
//! (needs the test PostgreSQL of `scripts/test.sh`). Prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use chrono::Utc;
use crosslogic_core::{Femtos, UsageStatus};
use crosslogic_db::repo::usage::UsageRecord;
use crosslogic_gateway::metering::{self, Metering};
use crosslogic_testkit::{fixtures, TestDb};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn record(tag: &str, i: usize, tenant: Uuid) -> UsageRecord {
    UsageRecord {
        request_id: format!("{tag}-{i}"),
        timestamp: Utc::now(),
        tenant_id: tenant,
        environment_id: None,
        api_key_id: None,
        region_id: None,
        model_id: None,
        model_name: "llama-3-8b".into(),
        node_id: None,
        prompt_tokens: 12,
        completion_tokens: 16,
        cached_tokens: 0,
        latency_ms: 3,
        cost_microdollars: 0,
        cost_exact: Femtos::ZERO,
        status: UsageStatus::Completed,
        metadata: serde_json::json!({ "usage_reported": true }),
    }
}

async fn rows(pool: &sqlx::PgPool, tag: &str) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT request_id) FROM usage_records WHERE starts_with(request_id, $1)")
        .bind(format!("{tag}-"))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until `n` rows of `tag` are in; the time it took from `since`.
async fn until_written(pool: &sqlx::PgPool, tag: &str, n: usize, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (count, _) = rows(pool, tag).await;
        if count as usize >= n {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "{count} of {n} rows after 10 min");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("BENCH_ROWS", 200_000);
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let tenant = fixtures::tenant(&db.pool, "ingest@bench.test").await.id;

    // 1. Sustained ingestion.
    let dir = tempfile::tempdir().unwrap();
    let (m, w): (Metering, _) = metering::channel(dir.path().to_path_buf(), true).unwrap();
    let shutdown = CancellationToken::new();
    let writer = tokio::spawn(metering::run_writer(w, db.pool.clone(), shutdown.clone()));
    let started = Instant::now();
    for i in 0..n {
        m.record(record("live", i, tenant));
        if i % 1_000 == 999 {
            tokio::task::yield_now().await; // one producer, sharing the runtime with the writer
        }
    }
    let produced = started.elapsed();
    let took = until_written(&db.pool, "live", n, started).await;
    let (count, distinct) = rows(&db.pool, "live").await;
    println!(
        "sustained: {n} records produced in {:.2} s, all written in {:.2} s: {:.0} rows/s; rows {count}, distinct {distinct} (lost {}, duplicated {})",
        produced.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        n as i64 - distinct,
        count - distinct
    );
    shutdown.cancel();
    writer.await.unwrap();
    drop(m);

    // 2. A process journals `n` records and dies before writing any.
    let dir = tempfile::tempdir().unwrap();
    {
        let (m, _w_never_run) = metering::channel(dir.path().to_path_buf(), true).unwrap();
        for i in 0..n {
            m.record(record("crash", i, tenant));
        }
        // Dropped without the writer ever running, like a SIGKILL.
    }
    let (_m, w) = metering::channel(dir.path().to_path_buf(), true).unwrap();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let writer = tokio::spawn(metering::run_writer(w, db.pool.clone(), shutdown.clone()));
    let took = until_written(&db.pool, "crash", n, started).await;
    let (count, distinct) = rows(&db.pool, "crash").await;
    println!(
        "replay after a crash: {n} journaled records written in {:.2} s: {:.0} rows/s; rows {count}, distinct {distinct} (lost {}, duplicated {})",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        n as i64 - distinct,
        count - distinct
    );
    shutdown.cancel();
    writer.await.unwrap();
    db.drop_db().await;
}
