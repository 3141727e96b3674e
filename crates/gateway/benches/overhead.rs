//! Gateway overhead benchmark: the same requests sent straight to a
//! simulator node (zero latency) and through the gateway with auth, all four
//! limit layers and metering on, side by side in one run.
//!
//! Run: `cargo bench -p crosslogic-gateway --bench overhead` (needs the test
//! PostgreSQL of `scripts/test.sh`, and Redis for the Redis-limiter rows).
//! Set `BENCH_SECONDS` (default 5) for the closed-loop phases. Prints figures;
//! asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use crosslogic_core::ApiKeyRole;
use crosslogic_db::repo::api_keys::KeyLimits;
use crosslogic_db::repo::{environments, tenants};
use crosslogic_gateway::GatewayConfig;
use crosslogic_node::sim::SimConfig;
use crosslogic_testkit::gateway::{start_sim, TestGateway};
use crosslogic_testkit::{fixtures, TestDb};
use serde_json::json;

struct Target {
    url: String,
    key: Option<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints p50/p99 of the direct and gateway runs of one phase and the difference.
fn compare(phase: &str, direct: &[Duration], gateway: &[Duration]) {
    let (d50, d99) = (ms(percentile(direct, 0.5)), ms(percentile(direct, 0.99)));
    let (g50, g99) = (ms(percentile(gateway, 0.5)), ms(percentile(gateway, 0.99)));
    println!("{:<34} {:>10.3} {:>10.3}", format!("{phase}, direct"), d50, d99);
    println!("{:<34} {:>10.3} {:>10.3}", format!("{phase}, gateway"), g50, g99);
    println!(
        "{:<34} {:>10.3} {:>10.3}",
        "  added by the gateway",
        g50 - d50,
        g99 - d99
    );
}

/// Sequential requests (concurrency 1): latency of each.
async fn sequential(
    http: &reqwest::Client,
    t: &Target,
    body: &serde_json::Value,
    n: usize,
    stream: bool,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut req = http.post(format!("{}/v1/chat/completions", t.url)).json(body);
        if let Some(k) = &t.key {
            req = req.bearer_auth(k);
        }
        let mut resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        if stream {
            resp.chunk().await.unwrap(); // time to first byte of the body
            out.push(started.elapsed());
            while resp.chunk().await.unwrap().is_some() {}
        } else {
            resp.bytes().await.unwrap();
            out.push(started.elapsed());
        }
    }
    out.sort();
    out
}

/// Closed loop with `conc` workers for `secs`: (requests/s, sorted latencies).
async fn closed_loop(
    http: &reqwest::Client,
    t: &Target,
    body: &serde_json::Value,
    conc: usize,
    secs: u64,
) -> (f64, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for _ in 0..conc {
        let http = http.clone();
        let url = format!("{}/v1/chat/completions", t.url);
        let key = t.key.clone();
        let body = body.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let mut req = http.post(&url).json(&body);
                if let Some(k) = &key {
                    req = req.bearer_auth(k);
                }
                let resp = req.send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                resp.bytes().await.unwrap();
                lat.push(started.elapsed());
            }
            lat
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    all.sort();
    (rps, all)
}

/// Open loop at `rate` requests/s for `secs` (latency is not queueing here:
/// requests are sent on schedule whatever the answers do). Tokio's timer has
/// millisecond resolution, so sub-millisecond intervals arrive in small bursts.
async fn fixed_rate(
    http: &reqwest::Client,
    t: &Target,
    body: &serde_json::Value,
    rate: u64,
    secs: u64,
) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..rate * secs {
        tick.tick().await;
        let http = http.clone();
        let url = format!("{}/v1/chat/completions", t.url);
        let key = t.key.clone();
        let body = body.clone();
        set.spawn(async move {
            let started = Instant::now();
            let mut req = http.post(&url).json(&body);
            if let Some(k) = &key {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            resp.bytes().await.unwrap();
            started.elapsed()
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out.sort();
    out
}

/// The gateway with platform-wide limits high enough never to refuse, and
/// the production refresh interval.
async fn start_gateway(db: &TestDb, redis: Option<String>, journal: bool) -> TestGateway {
    TestGateway::start(&db.pool, |cfg| {
        cfg.usage_journal = journal;
        cfg.refresh_interval = GatewayConfig::new(std::path::Path::new(".")).refresh_interval;
        cfg.redis_url = redis;
        cfg.redis_prefix = format!("clbench:{}", uuid::Uuid::new_v4().simple());
        cfg.limits.global_requests_per_min = Some(100_000_000);
        cfg.limits.global_tokens_per_min = Some(1_000_000_000);
        cfg.limits.global_concurrency = Some(100_000);
    })
    .await
}

async fn usage_rows(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn db_transactions(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let t = fixtures::tenant(&db.pool, "bench@x.test").await;
    // Every layer has a limit (high enough not to refuse): all four are checked.
    tenants::update(
        &db.pool,
        t.id,
        &tenants::TenantPatch {
            rate_limit_requests_per_min: Some(100_000_000),
            rate_limit_tokens_per_min: Some(1_000_000_000),
            concurrency_limit: Some(100_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let env = environments::create(
        &db.pool,
        &environments::NewEnvironment {
            tenant_id: t.id,
            name: "bench".into(),
            region: Some("us-east".into()),
            quota_tokens_per_day: Some(1_000_000_000_000),
            quota_tokens_per_minute: Some(1_000_000_000),
            concurrency_limit: Some(100_000),
            rate_limit_requests_per_min: Some(100_000_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let limits = KeyLimits {
        rate_limit_tokens_per_min: Some(1_000_000_000),
        rate_limit_requests_per_min: Some(100_000_000),
        concurrency_limit: Some(100_000),
        ..Default::default()
    };
    let (key, _) = fixtures::api_key(&db.pool, t.id, env.id, ApiKeyRole::Developer, limits).await;
    let sim_url = start_sim(SimConfig {
        served_model_name: "llama-3-8b".into(),
        output_tokens: 16,
        ..SimConfig::default()
    })
    .await;
    fixtures::active_node(&db.pool, &sim_url, "llama-3-8b", "us-east").await;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let body = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "benchmark prompt" }], "max_tokens": 16 });
    let stream_body = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "benchmark prompt" }], "max_tokens": 16, "stream": true });
    let direct = Target {
        url: sim_url.clone(),
        key: None,
    };

    let redis = std::env::var("CROSSLOGIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    println!(
        "crosslogic gateway overhead benchmark ({secs} s per closed-loop phase, 2 worker threads, all on this machine)"
    );
    println!("upstream: simulator with zero latency; gateway: auth + 4 limit layers + metering\n");
    // The usage journal (one write(2) per request before its last byte) is
    // on in production; the second row measures what it costs.
    for (label, redis_url, journal) in [
        ("in-process limiter, usage journal on", None, true),
        ("in-process limiter, usage journal off", None, false),
        ("Redis limiter, usage journal on", Some(redis.clone()), true),
    ] {
        let gateway = start_gateway(&db, redis_url, journal).await;
        let via = Target {
            url: gateway.base.clone(),
            key: Some(key.clone()),
        };
        // Warm up connections, the key cache and Redis scripts.
        sequential(&http, &via, &body, 200, false).await;
        sequential(&http, &direct, &body, 200, false).await;
        let tx_before = db_transactions(&db).await;
        tokio::time::sleep(Duration::from_millis(500)).await; // the warm-up's usage is written
        let rows_before = usage_rows(&db).await;
        let mut gateway_requests = 0usize;

        println!("== {label} ==");
        println!(
            "{:<34} {:>10} {:>10} {:>10} {:>12}",
            "phase", "p50 ms", "p99 ms", "req/s", ""
        );
        let n = 2000;
        let d = sequential(&http, &direct, &body, n, false).await;
        let g = sequential(&http, &via, &body, n, false).await;
        compare("c=1 non-streaming", &d, &g);
        let d = sequential(&http, &direct, &stream_body, n / 2, true).await;
        let g = sequential(&http, &via, &stream_body, n / 2, true).await;
        compare("c=1 streaming TTFB", &d, &g);
        gateway_requests += n + n / 2;
        let d = fixed_rate(&http, &direct, &body, 2000, secs).await;
        let g = fixed_rate(&http, &via, &body, 2000, secs).await;
        gateway_requests += g.len();
        compare("2000 req/s fixed rate", &d, &g);
        for conc in [16usize, 64] {
            let (drps, d) = closed_loop(&http, &direct, &body, conc, secs).await;
            let (grps, g) = closed_loop(&http, &via, &body, conc, secs).await;
            gateway_requests += g.len();
            println!(
                "{:<34} {:>10.3} {:>10.3} {:>10.0}",
                format!("c={conc} closed loop, direct"),
                ms(percentile(&d, 0.5)),
                ms(percentile(&d, 0.99)),
                drps
            );
            println!(
                "{:<34} {:>10.3} {:>10.3} {:>10.0}",
                format!("c={conc} closed loop, gateway"),
                ms(percentile(&g, 0.5)),
                ms(percentile(&g, 0.99)),
                grps
            );
        }
        gateway.stop().await; // the usage writer drains
        let tx = db_transactions(&db).await - tx_before;
        let rows = usage_rows(&db).await - rows_before;
        println!(
            "{:<34} {:>10} transactions for {} gateway requests ({:.4} per request: batched usage writes + 1/s route refresh)",
            "database load", tx, gateway_requests, tx as f64 / gateway_requests as f64
        );
        println!(
            "{:<34} {:>10} rows for {} served requests (lost: {})\n",
            "usage records",
            rows,
            gateway_requests,
            gateway_requests as i64 - rows
        );
    }
    db.drop_db().await;
}
