//! Console page times with a year of usage, on real PostgreSQL.
//!
//! The same pages are timed twice in one run: on a platform with only its
//! last hour of traffic (the reference), then after a year of usage —
//! `BENCH_YEAR_ROWS` (2,000,000) rows over 8,760 hours and 50 tenants,
//! rolled up hourly as the billing worker does — is added. Pages read the
//! hourly rollups for past hours and raw rows only for the last hour, so
//! the second column should stay close to the first.
//!
//! Run: `cargo bench -p crosslogic-console --bench pages` (needs the test
//! PostgreSQL of `scripts/test.sh`; `BENCH_KEEP_DB=1` keeps the database). Prints figures; asserts only that
//! every page answered 200.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use crosslogic_console::{router, ConsoleSettings, ConsoleState};
use crosslogic_control::admin::AdminState;
use crosslogic_core::{Actor, ApiKeyRole};
use crosslogic_tenancy::{self as tenancy, CreateEnvironment, CreateKey, CreateTenant};
use crosslogic_testkit::TestDb;
use reqwest::header::{COOKIE, SET_COOKIE};
use secrecy::SecretString;
use uuid::Uuid;

const TOKEN: &str = "console-bench-admin-token-0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// 50 tenants with an environment and an admin key each (real keys, so a
/// tenant can sign in); their ids, key ids and the first key's secret.
async fn tenants(pool: &sqlx::PgPool) -> (Vec<Uuid>, Vec<Uuid>, String) {
    let actor = Actor::system("bench");
    let (mut t_ids, mut k_ids, mut first) = (Vec::new(), Vec::new(), String::new());
    for i in 0..50 {
        let t = tenancy::create_tenant(
            pool,
            &actor,
            CreateTenant {
                name: format!("Bench tenant {i}"),
                email: format!("bench{i}@pages.test"),
                billing_plan: None,
                stripe_customer_id: None,
                region_preferences: None,
                metadata: None,
            },
            None,
        )
        .await
        .unwrap();
        let e = tenancy::create_environment(
            pool,
            &actor,
            t.id,
            CreateEnvironment {
                name: "prod".into(),
                region: None,
                model_list: None,
                quota_tokens_per_day: None,
                quota_tokens_per_minute: None,
                concurrency_limit: None,
                rate_limit_requests_per_min: None,
            },
        )
        .await
        .unwrap();
        let k = tenancy::create_key(
            pool,
            &actor,
            t.id,
            CreateKey {
                environment_id: e.id,
                name: Some("bench".into()),
                role: Some(ApiKeyRole::Admin),
                user_id: None,
                rate_limit_requests_per_min: None,
                rate_limit_tokens_per_min: None,
                concurrency_limit: None,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
        if i == 0 {
            first = k.key_secret;
        }
        t_ids.push(t.id);
        k_ids.push(k.key.id);
    }
    (t_ids, k_ids, first)
}

/// `rows` usage rows spread evenly over `[start, start + hours)`, tenants
/// round-robin, three models, exact costs, 1 % failed.
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
                          FROM models WHERE name IN ('llama-3-8b', 'mistral-7b', 'llama-3-70b'))
             INSERT INTO usage_records (request_id, \"timestamp\", tenant_id, api_key_id, model_id, model_name,
                                        prompt_tokens, completion_tokens, total_tokens, latency_ms,
                                        cost_microdollars, cost_exact_microdollars, status)
             SELECT $1 || '-' || g, $2 + ((g * 3600.0 * $3) / $5) * interval '1 second',
                    ($6::uuid[])[1 + g % 50], ($7::uuid[])[1 + g % 50], m.ids[1 + g % 3], m.names[1 + g % 3],
                    50 + g % 900, 10 + g % 400, 60 + g % 900 + g % 400, 20 + g % 500,
                    round((50 + g % 900) * m.pin[1 + g % 3] + (10 + g % 400) * m.pout[1 + g % 3]),
                    (50 + g % 900) * m.pin[1 + g % 3] + (10 + g % 400) * m.pout[1 + g % 3],
                    CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'completed' END
               FROM generate_series($4::bigint, $4::bigint + $8 - 1) g, m",
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

struct Console {
    base: String,
    http: reqwest::Client,
}

impl Console {
    async fn sign_in(&self, credential: &str) -> String {
        let page = self
            .http
            .get(format!("{}/console/login", self.base))
            .send()
            .await
            .unwrap();
        let login = page.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let html = page.text().await.unwrap();
        let at = html.find("name=\"login_csrf\" value=\"").unwrap() + 25;
        let csrf = &html[at..at + html[at..].find('"').unwrap()];
        let resp = self
            .http
            .post(format!("{}/console/login", self.base))
            .header(COOKIE, login)
            .form(&[("credential", credential), ("login_csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        resp.headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("cl_session="))
            .unwrap()
    }

    /// p50 and p99 of `n` loads of `path`, in milliseconds.
    async fn time(&self, path: &str, cookie: &str, n: usize) -> (f64, f64) {
        let mut d = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let resp = self
                .http
                .get(format!("{}{path}", self.base))
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.bytes().await.unwrap();
            d.push(started.elapsed());
        }
        d.sort();
        let ms = |x: Duration| x.as_secs_f64() * 1000.0;
        (ms(d[n / 2]), ms(d[(n * 99 / 100).min(n - 1)]))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let year_rows = env_usize("BENCH_YEAR_ROWS", 2_000_000);
    let n = env_usize("BENCH_LOADS", 20);
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let (t, k, key) = tenants(&db.pool).await;
    let now = Utc::now();
    // The last hour: one request a second.
    load(&db.pool, "hour", now - TimeDelta::hours(1), 1, 3_600, &t, &k).await;

    let admin = AdminState::new(db.pool.clone(), Some(&SecretString::from(TOKEN.to_owned())));
    let app = router(ConsoleState::new(admin, ConsoleSettings::default()))
        .into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = Console {
        base: format!("http://{}", listener.local_addr().unwrap()),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let op = c.sign_in(TOKEN).await;
    let tenant = c.sign_in(&key).await;
    let pages = [
        ("operator overview, last hour", "/console?range=hour".to_owned(), &op),
        ("operator overview, last day", "/console?range=day".to_owned(), &op),
        ("operator overview, last week", "/console?range=week".to_owned(), &op),
        (
            "a tenant's page, last week",
            format!("/console/tenants/{}?range=week", t[0]),
            &op,
        ),
        ("tenants list", "/console/tenants".to_owned(), &op),
        (
            "tenant's own usage, last week",
            "/console?range=week".to_owned(),
            &tenant,
        ),
    ];
    let mut before = Vec::new();
    for (_, path, cookie) in &pages {
        c.time(path, cookie, 3).await; // warm-up
        before.push(c.time(path, cookie, n).await);
    }

    println!("loading a year: {year_rows} usage rows over 8,760 hours …");
    let started = Instant::now();
    let year_start = now.duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(8760);
    load(&db.pool, "year", year_start, 8759, year_rows, &t, &k).await;
    let loaded = started.elapsed();
    let started = Instant::now();
    let pass = crosslogic_billing::rollup::rollup_pending(&db.pool, now).await.unwrap();
    println!(
        "loaded in {:.1} s; rolled up {} hours into {} rollup rows in {:.1} s",
        loaded.as_secs_f64(),
        pass.hours,
        pass.rows,
        started.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();

    println!();
    println!(
        "{:<32} {:>24} {:>24}",
        "page (p50 / p99 ms)", "last hour only (ref.)", "with a year of usage"
    );
    for ((label, path, cookie), (b50, b99)) in pages.iter().zip(before) {
        c.time(path, cookie, 3).await;
        let (a50, a99) = c.time(path, cookie, n).await;
        println!(
            "{label:<32} {:>24} {:>24}",
            format!("{b50:.1} / {b99:.1}"),
            format!("{a50:.1} / {a99:.1}")
        );
    }
    if std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1") {
        println!("kept the database {} (BENCH_KEEP_DB=1) for EXPLAIN", db.name);
    } else {
        db.drop_db().await;
    }
}
