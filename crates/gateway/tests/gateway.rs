//! The gateway end to end in-process: real PostgreSQL, real simulator nodes
//! over HTTP, the real router. Keys, nodes and usage go through the same
//! repositories the platform uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crosslogic_core::{ApiKeyRole, ApiKeyStatus};
use crosslogic_db::repo::{api_keys, environments, tenants};
use crosslogic_gateway::GatewayConfig;
use crosslogic_node::sim::SimConfig;
use crosslogic_testkit::gateway::{start_sim, TestGateway};
use crosslogic_testkit::{fixtures, TestDb};
use serde_json::{json, Value};

struct Env {
    db: TestDb,
    base: String,
    key: String,
    key_id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    environment_id: uuid::Uuid,
    http: reqwest::Client,
    gateway: TestGateway,
    /// The simulator node's base URL.
    sim: String,
}

impl Env {
    /// A tenant with one environment (region in-mumbai) and a developer key,
    /// one simulator node serving llama-3-8b, and the gateway in front.
    async fn start(sim_cfg: SimConfig, models: Option<Vec<&str>>) -> Env {
        Env::start_with(sim_cfg, models, |_| {}).await
    }

    /// Like [`Env::start`], with gateway settings adjusted by `tweak`.
    async fn start_with(sim_cfg: SimConfig, models: Option<Vec<&str>>, tweak: impl FnOnce(&mut GatewayConfig)) -> Env {
        let db = TestDb::new().await;
        crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
        let t = fixtures::tenant(&db.pool, "gw@acme.test").await;
        let env = environments::create(
            &db.pool,
            &environments::NewEnvironment {
                tenant_id: t.id,
                name: "prod".into(),
                region: Some("in-mumbai".into()),
                model_list: models.map(|m| m.into_iter().map(str::to_owned).collect()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let (key, key_id) = fixtures::api_key(&db.pool, t.id, env.id, ApiKeyRole::Developer, Default::default()).await;
        let endpoint = start_sim(SimConfig {
            served_model_name: "llama-3-8b".into(),
            ..sim_cfg
        })
        .await;
        fixtures::active_node(&db.pool, &endpoint, "llama-3-8b", "in-mumbai").await;

        let gateway = TestGateway::start(&db.pool, tweak).await;
        Env {
            db,
            base: gateway.base.clone(),
            key,
            key_id,
            tenant_id: t.id,
            environment_id: env.id,
            http: reqwest::Client::new(),
            gateway,
            sim: endpoint,
        }
    }

    /// `vllm:num_requests_running` as the simulator reports it.
    async fn sim_running(&self) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.sim))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("vllm:num_requests_running"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Waits (bounded) for the usage row of a request id.
    async fn usage_row(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row: Option<Value> =
                sqlx::query_scalar("SELECT to_jsonb(u) FROM usage_records u WHERE request_id = $1")
                    .bind(request_id)
                    .fetch_optional(&self.db.pool)
                    .await
                    .unwrap();
            if let Some(r) = row {
                return r;
            }
            assert!(Instant::now() < deadline, "no usage row for {request_id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.db.drop_db().await;
    }
}

fn chat(stream: bool) -> Value {
    json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hello there general kenobi" }], "max_tokens": 8, "stream": stream })
}

/// Reads an SSE body into its `data:` payloads.
fn sse_payloads(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_chat_completion_is_served_and_metered_exactly() {
    let env = Env::start(SimConfig::default(), None).await;
    let resp = env.post("/v1/chat/completions", &env.key, chat(false)).await;
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let (p, c) = (
        body["usage"]["prompt_tokens"].as_i64().unwrap(),
        body["usage"]["completion_tokens"].as_i64().unwrap(),
    );
    assert_eq!(c, 8);
    let row = env.usage_row(&request_id).await;
    assert_eq!(
        (row["prompt_tokens"].as_i64(), row["completion_tokens"].as_i64()),
        (Some(p), Some(c))
    );
    assert_eq!(row["status"], "completed");
    assert_eq!(row["api_key_id"], env.key_id.to_string());
    assert_eq!(row["environment_id"], env.environment_id.to_string());
    // $0.05/M in and out, × 0.7 in Mumbai.
    let expected = crosslogic_core::cost_microdollars(
        p as u64,
        c as u64,
        crosslogic_core::PricePerMillion(50_000),
        crosslogic_core::PricePerMillion(50_000),
        700,
    );
    assert_eq!(row["cost_microdollars"].as_i64(), Some(expected.0));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records WHERE tenant_id = $1")
        .bind(env.tenant_id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "exactly one row per request");
    env.stop().await;
}

#[tokio::test]
async fn streams_are_metered_whether_or_not_the_client_asked_for_usage() {
    let env = Env::start(SimConfig::default(), None).await;
    let plain: Value = env
        .post("/v1/chat/completions", &env.key, chat(false))
        .await
        .json()
        .await
        .unwrap();

    let resp = env.post("/v1/chat/completions", &env.key, chat(true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let events = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        events.iter().all(|e| !e.contains("\"prompt_tokens\"")),
        "usage leaked to a client that did not ask: {events:?}"
    );
    let row = env.usage_row(&rid).await;
    assert_eq!(row["prompt_tokens"].as_i64(), plain["usage"]["prompt_tokens"].as_i64());
    assert_eq!(
        row["completion_tokens"].as_i64(),
        plain["usage"]["completion_tokens"].as_i64()
    );
    assert_eq!(row["status"], "completed");

    let mut asked = chat(true);
    asked["stream_options"] = json!({ "include_usage": true });
    let resp = env.post("/v1/chat/completions", &env.key, asked).await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let events = sse_payloads(&resp.text().await.unwrap());
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        plain["usage"]["completion_tokens"]
    );
    let row = env.usage_row(&rid).await;
    assert_eq!(
        row["completion_tokens"].as_i64(),
        usage_chunk["usage"]["completion_tokens"].as_i64()
    );
    env.stop().await;
}

#[tokio::test]
async fn a_stream_cut_by_the_client_is_recorded_with_the_tokens_produced() {
    let env = Env::start(
        SimConfig {
            itl: Duration::from_millis(40),
            ..SimConfig::default()
        },
        None,
    )
    .await;
    let mut body = chat(true);
    body["max_tokens"] = json!(200);
    let mut resp = env.post("/v1/chat/completions", &env.key, body).await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    // Read a few chunks, then hang up.
    let mut seen = 0;
    while seen < 4 {
        if resp.chunk().await.unwrap().is_some() {
            seen += 1;
        }
    }
    drop(resp);
    // The node stops generating for the client that left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.sim_running().await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the node kept generating after the client disconnected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = env.usage_row(&rid).await;
    assert_eq!(row["status"], "cancelled");
    let produced = row["completion_tokens"].as_i64().unwrap();
    assert!((1..200).contains(&produced), "completion_tokens {produced}");
    env.stop().await;
}

#[tokio::test]
async fn errors_use_the_openai_envelope() {
    let env = Env::start(SimConfig::default(), Some(vec!["llama-3-8b", "bge-large-en"])).await;
    type Case<'a> = (Option<&'a str>, Value, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (None, chat(false), 401, "authentication_error", Some("invalid_api_key")),
        (
            Some("cl_abcdefgh_notarealkeynotarealkeynotarealkey12345"),
            chat(false),
            401,
            "authentication_error",
            Some("invalid_api_key"),
        ),
        (
            Some(&env.key),
            json!({ "model": "gpt-9", "messages": [] }),
            404,
            "invalid_request_error",
            Some("model_not_found"),
        ),
        (
            Some(&env.key),
            json!({ "model": "mistral-7b", "messages": [] }),
            404,
            "invalid_request_error",
            Some("model_not_found"),
        ),
        (
            Some(&env.key),
            json!({ "messages": [] }),
            400,
            "invalid_request_error",
            None,
        ),
        (
            Some(&env.key),
            json!({ "model": "bge-large-en", "messages": [] }),
            400,
            "invalid_request_error",
            None,
        ),
        // Refused by the engine itself (vLLM's `BadRequestError`, code 400):
        // relayed with its message in OpenAI's envelope.
        (
            Some(&env.key),
            json!({ "model": "llama-3-8b", "messages": [] }),
            400,
            "invalid_request_error",
            None,
        ),
    ];
    for (key, body, status, kind, code) in cases {
        let mut req = env.http.post(format!("{}/v1/chat/completions", env.base)).json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], kind, "{err}");
        assert_eq!(err["error"]["code"].as_str(), code, "{err}");
        assert!(
            err["error"]["code"].is_string() || err["error"]["code"].is_null(),
            "{err}"
        );
        assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let raw = env
        .http
        .post(format!("{}/v1/chat/completions", env.base))
        .bearer_auth(&env.key)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);

    // The embedding model is allowed but no node serves it: 503 with a clear message.
    let resp = env
        .post(
            "/v1/embeddings",
            &env.key,
            json!({ "model": "bge-large-en", "input": "x" }),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));

    let (ro, _) = fixtures::api_key(
        &env.db.pool,
        env.tenant_id,
        env.environment_id,
        ApiKeyRole::ReadOnly,
        Default::default(),
    )
    .await;
    let resp = env.post("/v1/chat/completions", &ro, chat(false)).await;
    assert_eq!(resp.status(), 403);
    let models: Value = env
        .http
        .get(format!("{}/v1/models", env.base))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["llama-3-8b"], "only allowed models that are served");
    let one = env
        .http
        .get(format!("{}/v1/models/llama-3-8b", env.base))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let none = env
        .http
        .get(format!("{}/v1/models/mistral-7b", env.base))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    env.stop().await;
}

#[tokio::test]
async fn revocation_reaches_the_gateway_without_waiting_for_a_ttl() {
    let env = Env::start(SimConfig::default(), None).await;
    assert_eq!(
        env.post("/v1/chat/completions", &env.key, chat(false)).await.status(),
        200
    );
    api_keys::set_status(&env.db.pool, env.key_id, ApiKeyStatus::Revoked)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    loop {
        let status = env.post("/v1/chat/completions", &env.key, chat(false)).await.status();
        if status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "revoked key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("revocation observed after {:?}", revoked_at.elapsed());
    env.stop().await;
}

#[tokio::test]
async fn a_dead_node_is_skipped_for_a_live_one() {
    let env = Env::start(SimConfig::default(), None).await;
    // A node whose endpoint refuses connections, in the preferred region.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    fixtures::active_node(&env.db.pool, &dead_url, "llama-3-8b", "in-mumbai").await;
    tokio::time::sleep(Duration::from_millis(600)).await; // next route refresh
    for _ in 0..5 {
        let resp = env.post("/v1/chat/completions", &env.key, chat(false)).await;
        assert_eq!(resp.status(), 200);
    }
    env.stop().await;
}

#[tokio::test]
async fn key_limits_answer_429_with_openai_headers() {
    let env = Env::start(SimConfig::default(), None).await;
    api_keys::update(
        &env.db.pool,
        env.key_id,
        &api_keys::KeyLimits {
            rate_limit_requests_per_min: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let first = env.post("/v1/chat/completions", &env.key, chat(false)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "1");
    assert!(first.headers().contains_key("x-ratelimit-reset-requests"));
    // The environment's default 10,000 tokens/min is the tightest token limit.
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "10000");
    assert_eq!(
        env.post("/v1/chat/completions", &env.key, chat(false)).await.status(),
        200
    );
    let third = env.post("/v1/chat/completions", &env.key, chat(false)).await;
    assert_eq!(third.status(), 429);
    let retry: u64 = third.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "retry-after {retry}");
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "requests_per_min_exceeded");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("this API key"),
        "{body}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_concurrency_slot_is_released_when_the_client_disconnects() {
    let env = Env::start(
        SimConfig {
            // Far longer than the wait below: the slot must come back when
            // the client goes, not when the node's next token arrives.
            itl: Duration::from_secs(20),
            ..SimConfig::default()
        },
        None,
    )
    .await;
    api_keys::update(
        &env.db.pool,
        env.key_id,
        &api_keys::KeyLimits {
            concurrency_limit: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut body = chat(true);
    body["max_tokens"] = json!(100);
    let mut holder = env.post("/v1/chat/completions", &env.key, body).await;
    assert_eq!(holder.status(), 200);
    holder.chunk().await.unwrap();
    let blocked = env.post("/v1/chat/completions", &env.key, chat(false)).await;
    assert_eq!(blocked.status(), 429);
    let err: Value = blocked.json().await.unwrap();
    assert_eq!(err["error"]["code"], "concurrency_limit_exceeded");
    drop(holder); // client goes away mid-stream
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // One token: answered without waiting for the slow node's next one.
        let mut quick = chat(false);
        quick["max_tokens"] = json!(1);
        let status = env.post("/v1/chat/completions", &env.key, quick).await.status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot of a disconnected stream was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.stop().await;
}

#[tokio::test]
async fn the_daily_quota_is_insufficient_quota_and_counts_actual_tokens() {
    let env = Env::start(SimConfig::default(), None).await;
    environments::update(
        &env.db.pool,
        env.environment_id,
        &environments::EnvironmentPatch {
            quota_tokens_per_day: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut big = chat(false);
    big["max_tokens"] = json!(500);
    let resp = env.post("/v1/chat/completions", &env.key, big).await;
    assert_eq!(resp.status(), 429);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["type"], "insufficient_quota");
    // Small requests fit; reservations settle to the real usage, so more
    // requests fit than the reservations alone would allow.
    let mut served = 0;
    for _ in 0..10 {
        let mut small = chat(false);
        small["max_tokens"] = json!(4);
        if env.post("/v1/chat/completions", &env.key, small).await.status() == 200 {
            served += 1;
        }
    }
    let used: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(total_tokens), 0)::bigint FROM usage_records WHERE environment_id = $1",
    )
    .bind(env.environment_id)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert!(served >= 1, "nothing fitted in the quota");
    assert!(used <= 100 + 30, "quota overrun: {used} tokens used of 100");
    env.stop().await;
}

#[tokio::test]
async fn a_silent_node_fails_the_stream_records_what_it_produced_and_frees_the_slot() {
    // The node pauses 1.5 s between tokens; the gateway's idle timeout is 300 ms.
    let env = Env::start_with(
        SimConfig {
            itl: Duration::from_millis(1500),
            ..SimConfig::default()
        },
        None,
        |c| {
            c.upstream_idle_timeout = Duration::from_millis(300);
        },
    )
    .await;
    api_keys::update(
        &env.db.pool,
        env.key_id,
        &api_keys::KeyLimits {
            concurrency_limit: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let resp = env.post("/v1/chat/completions", &env.key, chat(true)).await;
    assert_eq!(resp.status(), 200);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = resp.text().await;
    // The broken upstream breaks the client's stream too (an Err here), or
    // at least it never ends cleanly.
    if let Ok(body) = &text {
        assert!(!body.contains("[DONE]"), "a timed-out stream ended cleanly: {body}");
    }
    let row = env.usage_row(&rid).await;
    assert_eq!(row["status"], "failed");
    assert!(row["completion_tokens"].as_i64().unwrap() >= 1, "{row}");
    // The concurrency slot came back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut quick = chat(false);
        quick["max_tokens"] = json!(1);
        if env.post("/v1/chat/completions", &env.key, quick).await.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot of a timed-out stream was not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.stop().await;
}

#[tokio::test]
async fn every_layer_and_kind_of_limit_refuses_with_its_own_error() {
    use crosslogic_gateway::limits::LimitsConfig;
    // (set up, expected type, expected code, a phrase of the message)
    type Setup = Box<dyn Fn(&mut LimitsConfig)>;
    let cases: Vec<(&str, Setup, &str, &str, &str)> = vec![
        (
            "global rpm",
            Box::new(|l: &mut LimitsConfig| l.global_requests_per_min = Some(1)),
            "rate_limit_error",
            "global_rate_limit_exceeded",
            "the platform",
        ),
        (
            "global tpm",
            Box::new(|l: &mut LimitsConfig| l.global_tokens_per_min = Some(100)),
            "rate_limit_error",
            "global_rate_limit_exceeded",
            "tokens per minute",
        ),
        (
            "global concurrency",
            Box::new(|l: &mut LimitsConfig| l.global_concurrency = Some(1)),
            "rate_limit_error",
            "global_rate_limit_exceeded",
            "concurrent requests",
        ),
    ];
    for (name, setup, kind, code, phrase) in cases {
        let env = Env::start_with(
            SimConfig {
                itl: Duration::from_millis(30),
                ..SimConfig::default()
            },
            None,
            |c| setup(&mut c.limits),
        )
        .await;
        let mut long = chat(true);
        long["max_tokens"] = json!(60);
        let holder = env.post("/v1/chat/completions", &env.key, long).await; // holds a slot for a while
        let mut body = chat(false);
        body["max_tokens"] = json!(60);
        let resp = env.post("/v1/chat/completions", &env.key, body).await;
        assert_eq!(resp.status(), 429, "{name}");
        assert!(resp.headers().contains_key("retry-after"), "{name}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], kind, "{name}: {err}");
        assert_eq!(err["error"]["code"], code, "{name}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(phrase),
            "{name}: {err}"
        );
        drop(holder);
        env.stop().await;
    }

    // Tenant, environment and key layers come from their rows.
    let env = Env::start(
        SimConfig {
            itl: Duration::from_millis(30),
            ..SimConfig::default()
        },
        None,
    )
    .await;
    let p = &env.db.pool;
    // A row change reaches the gateway's key cache through NOTIFY, so the
    // expected refusal is awaited (bounded) rather than assumed immediate.
    let check = |code: &'static str, phrase: &'static str| {
        let env = &env;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let resp = env.post("/v1/chat/completions", &env.key, chat(false)).await;
                let status = resp.status();
                let err: Value = resp.json().await.unwrap_or(Value::Null);
                // A refusal by the previous step's limit may still show until
                // its change reaches the cache; wait for this step's own.
                if status == 429 && err["error"]["code"] == code {
                    assert!(err["error"]["message"].as_str().unwrap().contains(phrase), "{err}");
                    return;
                }
                assert!(Instant::now() < deadline, "no 429 for {code}; last: {status} {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Concurrency first, before the key is cached: a slot is only taken
    // under the limits the gateway knew when it admitted the holder.
    tenants::update(
        p,
        env.tenant_id,
        &tenants::TenantPatch {
            concurrency_limit: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut long = chat(true);
    long["max_tokens"] = json!(60);
    let holder = env.post("/v1/chat/completions", &env.key, long.clone()).await;
    check("concurrency_limit_exceeded", "your organization").await;
    drop(holder);
    tenants::update(
        p,
        env.tenant_id,
        &tenants::TenantPatch {
            concurrency_limit: Some(1000),
            rate_limit_tokens_per_min: Some(20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    check("tokens_per_min_exceeded", "your organization").await;
    tenants::update(
        p,
        env.tenant_id,
        &tenants::TenantPatch {
            rate_limit_tokens_per_min: Some(1_000_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    environments::update(
        p,
        env.environment_id,
        &environments::EnvironmentPatch {
            rate_limit_requests_per_min: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    check("requests_per_min_exceeded", "this environment").await;
    environments::update(
        p,
        env.environment_id,
        &environments::EnvironmentPatch {
            rate_limit_requests_per_min: Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    api_keys::update(
        p,
        env.key_id,
        &api_keys::KeyLimits {
            rate_limit_tokens_per_min: Some(20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    check("tokens_per_min_exceeded", "this API key").await;
    env.stop().await;
}
