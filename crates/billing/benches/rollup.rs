//! Rollup and report benchmark on real PostgreSQL.
//!
//! 1. One UTC hour holding `BENCH_ROWS` (1,000,000) usage rows across 1,000
//!    tenants (each with a key; 3 models, 4 regions): the time to roll it up
//!    and to settle it, and the PostgreSQL backend's peak memory and temp
//!    spill while rolling it up.
//! 2. A month (720 hours) of `BENCH_MONTH_ROWS` (10,000,000) rows: one
//!    tenant's monthly usage report by day — from rollups (as the APIs
//!    answer) and, for reference, from raw rows only — each timed over
//!    repeated runs.
//!
//! Run: `cargo bench -p crosslogic-billing --bench rollup` (needs the test
//! PostgreSQL of `scripts/test.sh`). Prints figures; asserts nothing but
//! that both report paths agree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use crosslogic_billing::report::{self, Scope, UsageGroup};
use crosslogic_billing::{rollup, settle};
use crosslogic_config::Config;
use crosslogic_db::repo::rollups;
use crosslogic_testkit::TestDb;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// 1,000 tenants with an environment and a key each; their ids and key ids.
async fn tenants(pool: &sqlx::PgPool) -> (Vec<Uuid>, Vec<Uuid>) {
    sqlx::query(
        "INSERT INTO tenants (name, email) SELECT 'bench ' || g, 'bench' || g || '@bench.test' FROM generate_series(1, 1000) g",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO environments (tenant_id, name) SELECT id, 'prod' FROM tenants")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO api_keys (key_hash, key_prefix, tenant_id, environment_id)
         SELECT md5(e.id::text), 'cl_bench', e.tenant_id, e.id FROM environments e",
    )
    .execute(pool)
    .await
    .unwrap();
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT tenant_id, id FROM api_keys ORDER BY tenant_id")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter().unzip()
}

/// `rows` usage rows spread evenly over `hours` hours from `start`, tenants
/// and keys round-robin, three models, four regions, exact costs.
async fn load(
    pool: &sqlx::PgPool,
    tag: &str,
    start: chrono::DateTime<Utc>,
    hours: i64,
    rows: usize,
    t: &[Uuid],
    k: &[Uuid],
) {
    let chunk = 500_000usize;
    let mut done = 0usize;
    while done < rows {
        let n = chunk.min(rows - done);
        sqlx::query(
            "WITH m AS (SELECT array_agg(id ORDER BY name) ids, array_agg(name ORDER BY name) names,
                               array_agg(price_input_per_million ORDER BY name) pin,
                               array_agg(price_output_per_million ORDER BY name) pout
                          FROM models WHERE name IN ('llama-3-8b', 'mistral-7b', 'llama-3-70b')),
                  r AS (SELECT array_agg(id ORDER BY code) ids, array_agg(cost_multiplier ORDER BY code) mult FROM regions)
             INSERT INTO usage_records (request_id, \"timestamp\", tenant_id, environment_id, api_key_id, region_id,
                                        model_id, model_name, prompt_tokens, completion_tokens, total_tokens,
                                        latency_ms, cost_microdollars, cost_exact_microdollars, status)
             SELECT $1 || '-' || g, $2 + ((g * 3600.0 * $3) / $5) * interval '1 second',
                    ($6::uuid[])[1 + g % 1000], NULL, ($7::uuid[])[1 + g % 1000], r.ids[1 + g % 4],
                    m.ids[1 + g % 3], m.names[1 + g % 3], 50 + g % 900, 10 + g % 400, 60 + g % 900 + g % 400,
                    20 + g % 500,
                    round(((50 + g % 900) * m.pin[1 + g % 3] + (10 + g % 400) * m.pout[1 + g % 3]) * r.mult[1 + g % 4]),
                    ((50 + g % 900) * m.pin[1 + g % 3] + (10 + g % 400) * m.pout[1 + g % 3]) * r.mult[1 + g % 4],
                    CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'completed' END
               FROM generate_series($4::bigint, $4::bigint + $8 - 1) g, m, r",
        )
        .bind(tag)
        .bind(start)
        .bind(hours as f64)
        .bind(done as i64)
        .bind(rows as i64)
        .bind(t)
        .bind(k)
        .bind(n as i64)
        .execute(pool)
        .await
        .unwrap();
        done += n;
    }
}

/// VmHWM (peak resident memory) of a PostgreSQL backend, from /proc.
fn peak_rss(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l[6..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown (backend not readable from here)".into())
}

fn stats(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    (ms(d[d.len() / 2]), ms(d[(d.len() * 99 / 100).min(d.len() - 1)]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows = env_usize("BENCH_ROWS", 1_000_000);
    let month_rows = env_usize("BENCH_MONTH_ROWS", 10_000_000);
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    // One connection: the backend whose memory is read is the one that rolls up.
    let one = PgPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&one)
        .await
        .unwrap();
    let work_mem: String = sqlx::query_scalar("SHOW work_mem").fetch_one(&one).await.unwrap();
    println!("crosslogic billing rollup benchmark (PostgreSQL on this machine, work_mem {work_mem})\n");
    let (t, k) = tenants(&db.pool).await;

    // 1. One hour of `rows` rows.
    let hour = crosslogic_core::billing::hour_start(Utc::now()) - ChronoDuration::hours(3);
    let started = Instant::now();
    load(&db.pool, "h", hour, 1, rows, &t, &k).await;
    println!(
        "loaded {rows} rows into one hour in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE usage_records").execute(&db.pool).await.unwrap();
    let temp_before: i64 =
        sqlx::query_scalar("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&one)
            .await
            .unwrap();
    let started = Instant::now();
    let pass = rollup::rollup_pending(&one, Utc::now()).await.unwrap();
    let rollup_time = started.elapsed();
    let temp_after: i64 =
        sqlx::query_scalar("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&one)
            .await
            .unwrap();
    let mut env = std::collections::HashMap::new();
    env.insert("BILLING_SETTLE_DELAY".to_owned(), "0s".to_owned());
    let settings = Config::from_vars(&env).unwrap().billing;
    let started = Instant::now();
    let settled = settle::settle_due(&one, &settings, Utc::now()).await.unwrap();
    let settle_time = started.elapsed();
    println!("{:<52} {:>10}", "figure", "value");
    println!(
        "{:<52} {:>10.3} s   (target < 5 s)",
        format!("rollup of one hour, {rows} rows"),
        rollup_time.as_secs_f64()
    );
    println!("{:<52} {:>10}", "  usage_hourly rows written", pass.rows);
    println!("{:<52} {:>10}", "  PostgreSQL backend peak RSS", peak_rss(pid));
    println!("{:<52} {:>10}", "  temp spill (bytes)", temp_after - temp_before);
    println!(
        "{:<52} {:>10.3} s",
        format!("settlement of that hour, {} tenants", settled.tenant_hours),
        settle_time.as_secs_f64()
    );
    // Re-running the hour is idempotent (and costs about the same).
    sqlx::query("INSERT INTO usage_rollup_queue (hour) VALUES ($1)")
        .bind(hour)
        .execute(&db.pool)
        .await
        .unwrap();
    let started = Instant::now();
    rollup::rollup_pending(&one, Utc::now()).await.unwrap();
    println!(
        "{:<52} {:>10.3} s",
        "re-rollup of the same hour",
        started.elapsed().as_secs_f64()
    );

    // 2. A month of `month_rows` rows.
    let month_end = hour - ChronoDuration::hours(1);
    let month_start = month_end - ChronoDuration::hours(720);
    let started = Instant::now();
    load(&db.pool, "m", month_start, 720, month_rows, &t, &k).await;
    println!(
        "\nloaded {month_rows} rows over 720 hours in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let pass = rollup::rollup_pending(&one, Utc::now()).await.unwrap();
    println!(
        "{:<52} {:>10.3} s",
        format!("rollup of {} hours", pass.hours),
        started.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let tenant = t[17];
    let scope = Scope::Tenant {
        tenant_id: tenant,
        api_key_id: None,
    };
    let (from, to) = (month_start, Utc::now());
    let mut via_rollups = Vec::new();
    let mut answer = Vec::new();
    for _ in 0..20 {
        let s = Instant::now();
        answer = report::usage(&db.pool, scope, from, to, UsageGroup::Day, false)
            .await
            .unwrap();
        via_rollups.push(s.elapsed());
    }
    let mut via_raw = Vec::new();
    let mut raw_answer = Vec::new();
    for _ in 0..5 {
        let s = Instant::now();
        raw_answer = rollups::totals(&db.pool, scope, &[], &[(from, to)], UsageGroup::Day, false)
            .await
            .unwrap();
        via_raw.push(s.elapsed());
    }
    assert_eq!(answer, raw_answer, "rollups and raw rows disagree");
    let (r50, r99) = stats(via_rollups);
    let (w50, w99) = stats(via_raw);
    println!("{:<52} {:>10}", "usage_records rows in the table", total);
    println!(
        "{:<52} {:>7.2} ms p50 {:>7.2} ms p99",
        "one tenant's month by day, rollups + open hour (API)", r50, r99
    );
    println!(
        "{:<52} {:>7.2} ms p50 {:>7.2} ms p99",
        "the same from raw rows only (reference)", w50, w99
    );
    drop(one);
    db.drop_db().await;
}
