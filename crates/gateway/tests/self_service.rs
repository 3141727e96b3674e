//! Tenant self-service under `/v1` in-process: real PostgreSQL, a real
//! simulator node, the real router. Usage rows are inserted with the same
//! repository the metering writer uses, so the expected numbers are exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use crosslogic_core::{ApiKeyRole, UsageStatus};
use crosslogic_db::repo::usage::{self, UsageRecord};
use crosslogic_db::repo::{api_keys, environments};
use crosslogic_node::sim::SimConfig;
use crosslogic_testkit::gateway::{start_sim, TestGateway};
use crosslogic_testkit::{fixtures, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// A key made for a test: its secret and id.
#[derive(Clone)]
struct Key {
    secret: String,
    id: Uuid,
    prefix: String,
}

struct Env {
    db: TestDb,
    base: String,
    tenant_id: Uuid,
    environment_id: Uuid,
    admin: Key,
    developer: Key,
    read_only: Key,
    http: reqwest::Client,
    gateway: TestGateway,
}

async fn add_node(db: &TestDb, endpoint: &str, model: &str, region: &str) {
    fixtures::active_node(&db.pool, endpoint, model, region).await;
}

async fn new_tenant(db: &TestDb, email: &str) -> (Uuid, Uuid) {
    let t = fixtures::tenant(&db.pool, email).await;
    let env = new_environment(db, t.id, "prod").await;
    (t.id, env)
}

async fn new_environment(db: &TestDb, tenant_id: Uuid, name: &str) -> Uuid {
    environments::create(
        &db.pool,
        &environments::NewEnvironment {
            tenant_id,
            name: name.into(),
            region: Some("in-mumbai".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id
}

async fn new_key(db: &TestDb, tenant_id: Uuid, environment_id: Uuid, role: ApiKeyRole) -> Key {
    let (secret, id) = fixtures::api_key(&db.pool, tenant_id, environment_id, role, Default::default()).await;
    let prefix = crosslogic_core::keys::prefix_of(&secret).unwrap().to_owned();
    Key { secret, id, prefix }
}

impl Env {
    /// A tenant with one environment and an admin, a developer and a
    /// read-only key; one simulator node serving llama-3-8b.
    async fn start() -> Env {
        let db = TestDb::new().await;
        crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
        let (tenant_id, environment_id) = new_tenant(&db, "self@acme.test").await;
        let admin = new_key(&db, tenant_id, environment_id, ApiKeyRole::Admin).await;
        let developer = new_key(&db, tenant_id, environment_id, ApiKeyRole::Developer).await;
        let read_only = new_key(&db, tenant_id, environment_id, ApiKeyRole::ReadOnly).await;
        let endpoint = start_sim(SimConfig {
            served_model_name: "llama-3-8b".into(),
            ..SimConfig::default()
        })
        .await;
        add_node(&db, &endpoint, "llama-3-8b", "in-mumbai").await;

        let gateway = TestGateway::start(&db.pool, |_| {}).await;
        Env {
            db,
            base: gateway.base.clone(),
            tenant_id,
            environment_id,
            admin,
            developer,
            read_only,
            http: reqwest::Client::new(),
            gateway,
        }
    }

    async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.db.drop_db().await;
    }
}

/// A completed usage row with a unique request id.
#[allow(clippy::too_many_arguments)]
fn record(
    tenant_id: Uuid,
    environment_id: Uuid,
    key: Uuid,
    model: &str,
    at: DateTime<Utc>,
    prompt: i32,
    completion: i32,
    cost: i64,
    latency_ms: i32,
) -> UsageRecord {
    UsageRecord {
        request_id: format!("req-{}", Uuid::new_v4().simple()),
        timestamp: at,
        tenant_id,
        environment_id: Some(environment_id),
        api_key_id: Some(key),
        region_id: None,
        model_id: None,
        model_name: model.into(),
        node_id: None,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: 0,
        latency_ms,
        cost_microdollars: cost,
        cost_exact: crosslogic_core::Femtos::from_micros(crosslogic_core::Micros(cost)),
        status: UsageStatus::Completed,
        metadata: json!({}),
    }
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn assert_insufficient(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["error"]["type"], "permission_error", "{what}");
    assert_eq!(body["error"]["code"], "insufficient_permissions", "{what}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`admin` role"), "{what}: {message}");
}

/// The groups of a usage answer as (group, requests, prompt, completion, total, cost).
fn groups(body: &Value) -> Vec<(String, i64, i64, i64, i64, i64)> {
    assert_eq!(body["object"], "list", "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_owned(),
                g["requests"].as_i64().unwrap(),
                g["prompt_tokens"].as_i64().unwrap(),
                g["completion_tokens"].as_i64().unwrap(),
                g["total_tokens"].as_i64().unwrap(),
                g["cost_microdollars"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_role_may_use_exactly_its_routes() {
    let env = Env::start().await;
    // Revoked by the admin at the end of the matrix.
    let victim = new_key(&env.db, env.tenant_id, env.environment_id, ApiKeyRole::Developer).await;
    let chat = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 2 });
    let usage_of_admin_key = format!("/v1/usage?key_id={}", env.admin.id);
    let one_key = format!("/v1/keys/{}", env.developer.id);
    let revoke = format!("/v1/keys/{}/revoke", victim.id);

    // Read-only, developer, admin: allowed (true) or 403.
    let cases: Vec<(&str, &str, Option<Value>, [bool; 3])> = vec![
        ("GET", "/v1/models", None, [true, true, true]),
        ("POST", "/v1/chat/completions", Some(chat), [false, true, true]),
        ("GET", "/v1/usage", None, [true, true, true]),
        ("GET", "/v1/usage?group_by=model", None, [true, true, true]),
        ("GET", "/v1/usage/latency", None, [true, true, true]),
        ("GET", usage_of_admin_key.as_str(), None, [false, false, true]),
        ("GET", "/v1/keys", None, [false, false, true]),
        (
            "POST",
            "/v1/keys",
            Some(json!({ "name": "made in the matrix" })),
            [false, false, true],
        ),
        ("GET", one_key.as_str(), None, [false, false, true]),
        ("POST", revoke.as_str(), Some(json!({})), [false, false, true]),
    ];
    for (method, path, body, allowed) in &cases {
        for (key, role, ok) in [
            (&env.read_only, "read-only", allowed[0]),
            (&env.developer, "developer", allowed[1]),
            (&env.admin, "admin", allowed[2]),
        ] {
            let (status, resp) = match *method {
                "GET" => env.get(path, &key.secret).await,
                _ => env.post(path, &key.secret, body.clone().unwrap()).await,
            };
            let what = format!("{role} {method} {path}");
            if ok {
                assert!(status.is_success(), "{what}: {status} {resp}");
            } else if path.starts_with("/v1/chat") {
                assert_eq!(status, 403, "{what}");
                assert_eq!(resp["error"]["code"], "insufficient_permissions");
            } else {
                assert_insufficient(status, &resp, &what);
                assert!(
                    resp["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("`{role}` role")),
                    "{what}: {resp}"
                );
            }
        }
    }
    // Refused calls changed nothing: only the admin's create and revoke did.
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE name = 'made in the matrix'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(created, 1);

    // No key at all: 401, before any role or parameter check.
    for path in ["/v1/usage?from=nonsense", "/v1/keys", "/v1/usage/latency"] {
        let resp = env.http.get(format!("{}{path}", env.base)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    // The concrete routes win over the `/v1/{*rest}` catch-all, which still
    // answers everything else.
    let (status, body) = env.get("/v1/keys/x/unknown", &env.admin.secret).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("no such endpoint"));
    env.stop().await;
}

#[tokio::test]
async fn a_key_created_through_the_api_works_once_shown_and_is_audited() {
    let env = Env::start().await;
    let (status, created) = env
        .post(
            "/v1/keys",
            &env.admin.secret,
            json!({ "name": "ci runner", "role": "read-only", "rate_limit_requests_per_min": 30, "concurrency_limit": 2 }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["object"], "api_key");
    assert_eq!(created["name"], "ci runner");
    assert_eq!(created["role"], "read-only");
    assert_eq!(created["status"], "active");
    assert_eq!(created["rate_limit_requests_per_min"], 30);
    assert_eq!(created["concurrency_limit"], 2);
    assert_eq!(
        created["environment_id"],
        env.environment_id.to_string(),
        "defaults to the caller's"
    );
    assert_eq!(created["tenant_id"], env.tenant_id.to_string());
    assert!(created.get("key_hash").is_none());
    let secret = created["key_secret"].as_str().unwrap().to_owned();
    let prefix = created["key_prefix"].as_str().unwrap();
    assert!(secret.starts_with(&format!("{prefix}_")), "{secret} / {prefix}");
    let id = created["id"].as_str().unwrap().to_owned();

    // The secret works at once, with the role it was given.
    let (status, models) = env.get("/v1/models", &secret).await;
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["data"][0]["id"], "llama-3-8b");
    let (status, _) = env.get("/v1/keys", &secret).await;
    assert_eq!(status, 403, "a read-only key cannot manage keys");

    // Lists and gets never show a secret or a hash again.
    let (status, list) = env.get("/v1/keys", &env.admin.secret).await;
    assert_eq!(status, 200);
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 4, "three keys of the fixture plus the new one");
    assert!(items.iter().any(|k| k["id"] == id.as_str()));
    assert!(items
        .iter()
        .all(|k| k.get("key_secret").is_none() && k.get("key_hash").is_none()));
    let (status, one) = env.get(&format!("/v1/keys/{id}"), &env.admin.secret).await;
    assert_eq!(status, 200);
    assert_eq!(one["key_prefix"], prefix);
    assert!(one.get("key_secret").is_none() && one.get("key_hash").is_none());

    // The change was published and audited under the admin key's name.
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'apikey.created' AND tenant_id = $1 AND payload->>'key_id' = $2",
    )
    .bind(env.tenant_id)
    .bind(&id)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(events, 1);
    let actor: String =
        sqlx::query_scalar("SELECT actor FROM audit_logs WHERE action = 'apikey.created' AND resource_id = $1")
            .bind(&id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(actor, format!("key:{}", env.admin.prefix));

    // Another environment of the same tenant is allowed; filters by environment.
    let staging = new_environment(&env.db, env.tenant_id, "staging").await;
    let (status, in_staging) = env
        .post("/v1/keys", &env.admin.secret, json!({ "environment_id": staging }))
        .await;
    assert_eq!(status, 201, "{in_staging}");
    assert_eq!(in_staging["role"], "developer", "the default role");
    let (_, staging_keys) = env
        .get(&format!("/v1/keys?environment_id={staging}"), &env.admin.secret)
        .await;
    assert_eq!(staging_keys["data"].as_array().unwrap().len(), 1);
    assert_eq!(staging_keys["data"][0]["id"], in_staging["id"]);
    env.stop().await;
}

#[tokio::test]
async fn key_creation_rejects_bad_input_precisely() {
    let env = Env::start().await;
    let (_, other_env) = new_tenant(&env.db, "other@corp.test").await;
    let cases = [
        (json!({ "environment_id": other_env }), Some("environment_id")),
        (json!({ "role": "root" }), Some("role")),
        (json!({ "colour": "blue" }), Some("colour")),
        (json!({ "name": "   " }), Some("name")),
        (
            json!({ "rate_limit_requests_per_min": 0 }),
            Some("rate_limit_requests_per_min"),
        ),
        (json!({ "expires_at": "2001-01-01T00:00:00Z" }), Some("expires_at")),
        (json!({ "metadata": [1] }), Some("metadata")),
    ];
    for (body, param) in cases {
        let (status, resp) = env.post("/v1/keys", &env.admin.secret, body.clone()).await;
        assert_eq!(status, 422, "{body}: {resp}");
        assert_eq!(resp["error"]["type"], "invalid_request_error");
        assert_eq!(resp["error"]["param"].as_str(), param, "{body}: {resp}");
    }
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(created, 3, "nothing was created");
    // An empty body takes every default.
    let resp = env
        .http
        .post(format!("{}/v1/keys", env.base))
        .bearer_auth(&env.admin.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    env.stop().await;
}

#[tokio::test]
async fn another_tenants_keys_look_like_they_do_not_exist() {
    let env = Env::start().await;
    let (other_tenant, other_env) = new_tenant(&env.db, "other@corp.test").await;
    let theirs = new_key(&env.db, other_tenant, other_env, ApiKeyRole::Developer).await;

    let nobody = Uuid::new_v4();
    let (status, unknown) = env.get(&format!("/v1/keys/{nobody}"), &env.admin.secret).await;
    assert_eq!(status, 404);
    let (status, body) = env.get(&format!("/v1/keys/{}", theirs.id), &env.admin.secret).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        body.to_string().replace(&theirs.id.to_string(), "ID"),
        unknown.to_string().replace(&nobody.to_string(), "ID"),
        "the same answer as an id that does not exist"
    );
    let (status, _) = env
        .post(&format!("/v1/keys/{}/revoke", theirs.id), &env.admin.secret, json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .post("/v1/keys/not-a-uuid/revoke", &env.admin.secret, json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .get(&format!("/v1/usage?key_id={}", theirs.id), &env.admin.secret)
        .await;
    assert_eq!(status, 404, "usage of another tenant's key");

    // Their key is untouched and still works; nothing was recorded.
    assert_eq!(
        api_keys::get(&env.db.pool, theirs.id).await.unwrap().status,
        crosslogic_core::ApiKeyStatus::Active
    );
    let (status, _) = env.get("/v1/models", &theirs.secret).await;
    assert_eq!(status, 200);
    let revocations: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'apikey.revoked'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(revocations, 0);
    // Their admin does not see our keys either.
    let their_admin = new_key(&env.db, other_tenant, other_env, ApiKeyRole::Admin).await;
    let (_, list) = env.get("/v1/keys", &their_admin.secret).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&env.admin.id.to_string().as_str()));
    env.stop().await;
}

#[tokio::test]
async fn revocation_is_audited_idempotent_and_allowed_on_the_callers_own_key() {
    let env = Env::start().await;
    let path = format!("/v1/keys/{}/revoke", env.developer.id);
    let (status, body) = env.post(&path, &env.admin.secret, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    assert!(body["revoked_at"].is_string());
    let (status, again) = env.post(&path, &env.admin.secret, json!({})).await;
    assert_eq!(status, 200, "revoking twice answers the revoked key");
    assert_eq!(again["revoked_at"], body["revoked_at"]);
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM audit_logs WHERE action = 'apikey.revoked' AND resource_id = $1")
            .bind(env.developer.id.to_string())
            .fetch_all(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(
        audited,
        vec![format!("key:{}", env.admin.prefix)],
        "one change, one entry"
    );

    // An admin key may revoke itself; afterwards it is refused everywhere.
    let own = format!("/v1/keys/{}/revoke", env.admin.id);
    let (status, body) = env.post(&own, &env.admin.secret, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = env.get("/v1/keys", &env.admin.secret).await;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "a self-revoked key still works");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.stop().await;
}

#[tokio::test]
async fn usage_equals_the_recorded_rows_within_each_roles_scope() {
    let env = Env::start().await;
    let (t, e) = (env.tenant_id, env.environment_id);
    let (a, d) = (env.admin.id, env.developer.id);
    let (other_tenant, other_env) = new_tenant(&env.db, "other@corp.test").await;
    let theirs = new_key(&env.db, other_tenant, other_env, ApiKeyRole::Admin).await;
    let rows = vec![
        record(t, e, a, "llama-3-8b", utc(2024, 5, 1, 10), 100, 20, 1_000, 10),
        record(t, e, a, "llama-3-8b", utc(2024, 5, 1, 10), 50, 5, 500, 10),
        record(t, e, d, "mistral-7b", utc(2024, 5, 1, 23), 7, 3, 70, 10),
        record(t, e, d, "llama-3-8b", utc(2024, 5, 2, 0), 10, 10, 2_000_000, 10),
        // Outside the range [2024-05-01, 2024-05-03): excluded.
        record(t, e, a, "llama-3-8b", utc(2024, 4, 30, 23), 1_000, 1_000, 9_999, 10),
        record(t, e, d, "llama-3-8b", utc(2024, 5, 3, 0), 1_000, 1_000, 9_999, 10),
        // Another tenant, inside the range: never visible.
        record(
            other_tenant,
            other_env,
            theirs.id,
            "llama-3-8b",
            utc(2024, 5, 1, 12),
            1,
            1,
            1,
            10,
        ),
    ];
    usage::insert_batch(&env.db.pool, &rows).await.unwrap();
    let range = "from=2024-05-01&to=2024-05-02";

    // Every answer is the same from raw rows and once the hours are rolled
    // up (rollups for whole rolled-up hours, raw rows for the rest); the
    // checks below then run against the rollups.
    let probes: Vec<(String, &str)> = vec![
        (format!("/v1/usage?{range}"), &env.admin.secret),
        (format!("/v1/usage?{range}&group_by=model"), &env.admin.secret),
        (format!("/v1/usage?{range}&group_by=key"), &env.admin.secret),
        (format!("/v1/usage?{range}&group_by=hour"), &env.admin.secret),
        (
            format!("/v1/usage?{range}&group_by=model&key_id={d}"),
            &env.admin.secret,
        ),
        (
            "/v1/usage?from=2024-05-01T10:30:00Z&to=2024-05-02T00:00:01Z&group_by=model".into(),
            &env.admin.secret,
        ),
        (format!("/v1/usage?{range}&group_by=key"), &env.developer.secret),
    ];
    let mut from_raw = Vec::new();
    for (path, key) in &probes {
        let (status, body) = env.get(path, key).await;
        assert_eq!(status, 200, "{path}: {body}");
        from_raw.push(body);
    }
    let pass = crosslogic_billing::rollup::rollup_pending(&env.db.pool, Utc::now())
        .await
        .unwrap();
    assert_eq!(pass.hours, 6, "every hour with usage is rolled up once");
    for ((path, key), before) in probes.iter().zip(from_raw) {
        let (_, after) = env.get(path, key).await;
        assert_eq!(after, before, "{path}: rollups and raw rows disagree");
    }

    // Admin: the whole tenant.
    let (status, body) = env.get(&format!("/v1/usage?{range}"), &env.admin.secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["group_by"], "day");
    assert_eq!(body["from"], "2024-05-01T00:00:00Z");
    assert_eq!(body["to"], "2024-05-03T00:00:00Z", "a date in `to` includes that day");
    assert_eq!(
        groups(&body),
        vec![
            ("2024-05-01".into(), 3, 157, 28, 185, 1_570),
            ("2024-05-02".into(), 1, 10, 10, 20, 2_000_000),
        ]
    );
    assert_eq!(
        body["data"][1]["cost"],
        json!({"amount": "2.00", "currency": "usd", "microdollars": 2_000_000})
    );
    assert_eq!(body["data"][0]["cost"]["amount"], "0.00157");

    let (_, by_model) = env
        .get(&format!("/v1/usage?{range}&group_by=model"), &env.admin.secret)
        .await;
    assert_eq!(
        groups(&by_model),
        vec![
            ("llama-3-8b".into(), 3, 160, 35, 195, 2_001_500),
            ("mistral-7b".into(), 1, 7, 3, 10, 70),
        ]
    );
    let (_, by_key) = env
        .get(&format!("/v1/usage?{range}&group_by=key"), &env.admin.secret)
        .await;
    let mut by_key = groups(&by_key);
    by_key.sort();
    let mut expected = vec![
        (a.to_string(), 2, 150, 25, 175, 1_500),
        (d.to_string(), 2, 17, 13, 30, 2_000_070),
    ];
    expected.sort();
    assert_eq!(by_key, expected);
    let (_, by_hour) = env
        .get(&format!("/v1/usage?{range}&group_by=hour"), &env.admin.secret)
        .await;
    assert_eq!(
        groups(&by_hour).iter().map(|g| (g.0.as_str(), g.1)).collect::<Vec<_>>(),
        vec![
            ("2024-05-01T10:00:00Z", 2),
            ("2024-05-01T23:00:00Z", 1),
            ("2024-05-02T00:00:00Z", 1)
        ]
    );
    let (_, one_key) = env
        .get(
            &format!("/v1/usage?{range}&group_by=model&key_id={d}"),
            &env.admin.secret,
        )
        .await;
    assert_eq!(one_key["key_id"], d.to_string());
    assert_eq!(
        groups(&one_key),
        vec![
            ("llama-3-8b".into(), 1, 10, 10, 20, 2_000_000),
            ("mistral-7b".into(), 1, 7, 3, 10, 70),
        ]
    );
    // RFC 3339 bounds are exact and half-open.
    let (_, exact) = env
        .get(
            "/v1/usage?from=2024-05-01T10:00:00Z&to=2024-05-01T23:00:00Z&group_by=model",
            &env.admin.secret,
        )
        .await;
    assert_eq!(groups(&exact), vec![("llama-3-8b".into(), 2, 150, 25, 175, 1_500)]);

    // Developer: its own key only, with or without naming it.
    for path in [
        format!("/v1/usage?{range}&group_by=key"),
        format!("/v1/usage?{range}&group_by=key&key_id={d}"),
    ] {
        let (status, body) = env.get(&path, &env.developer.secret).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key_id"], d.to_string());
        assert_eq!(groups(&body), vec![(d.to_string(), 2, 17, 13, 30, 2_000_070)]);
    }
    // Read-only: its own key, which served nothing.
    let (status, body) = env.get(&format!("/v1/usage?{range}"), &env.read_only.secret).await;
    assert_eq!(status, 200);
    assert_eq!(groups(&body), vec![]);

    // Default range: the last seven days.
    usage::insert_batch(
        &env.db.pool,
        &[
            record(
                t,
                e,
                a,
                "gemma-7b",
                Utc::now() - chrono::Duration::hours(1),
                4,
                4,
                8,
                10,
            ),
            record(t, e, a, "gemma-7b", Utc::now() - chrono::Duration::days(8), 4, 4, 8, 10),
        ],
    )
    .await
    .unwrap();
    let (_, recent) = env.get("/v1/usage?group_by=model", &env.admin.secret).await;
    assert_eq!(groups(&recent), vec![("gemma-7b".into(), 1, 4, 4, 8, 8)]);
    env.stop().await;
}

#[tokio::test]
async fn bad_parameters_answer_422_naming_the_parameter() {
    let env = Env::start().await;
    let cases = [
        ("/v1/usage?from=yesterday", Some("from")),
        ("/v1/usage?from=", Some("from")),
        ("/v1/usage?to=2024-13-01", Some("to")),
        ("/v1/usage?to=2024-05-01%2010:00", Some("to")),
        ("/v1/usage?from=2024-05-02&to=2024-05-01", Some("to")),
        ("/v1/usage?from=2024-01-01&to=2024-06-01", Some("from")),
        ("/v1/usage?group_by=week", Some("group_by")),
        ("/v1/usage?key_id=nope", Some("key_id")),
        ("/v1/usage?colour=blue", Some("colour")),
        ("/v1/usage/latency?from=soon", Some("from")),
        ("/v1/usage/latency?model=", Some("model")),
        ("/v1/keys?environment_id=prod", Some("environment_id")),
    ];
    for (path, param) in cases {
        let (status, body) = env.get(path, &env.admin.secret).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{path}");
        assert_eq!(body["error"]["param"].as_str(), param, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        let named = param.unwrap_or("colour");
        assert!(message.contains(named), "{path}: {message}");
    }
    // The range limit is inclusive: 93 days is accepted.
    let (status, body) = env
        .get(
            "/v1/usage?from=2024-01-01T00:00:00Z&to=2024-04-03T00:00:00Z",
            &env.admin.secret,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    env.stop().await;
}

#[tokio::test]
async fn latency_percentiles_match_known_latencies() {
    let env = Env::start().await;
    let (t, e) = (env.tenant_id, env.environment_id);
    let (a, d) = (env.admin.id, env.developer.id);
    let at = utc(2024, 5, 1, 12);
    let mut rows: Vec<UsageRecord> = (1..=100)
        .map(|ms| record(t, e, a, "llama-3-8b", at, 10, 2 * ms, 1, ms))
        .collect();
    for ms in [10, 20, 30, 40] {
        rows.push(record(t, e, d, "mistral-7b", at, 5, 5, 1, ms));
    }
    // Failed and cancelled requests do not count towards latency.
    let mut failed = record(t, e, a, "llama-3-8b", at, 10, 0, 0, 60_000);
    failed.status = UsageStatus::Failed;
    let mut cancelled = record(t, e, d, "mistral-7b", at, 5, 0, 0, 60_000);
    cancelled.status = UsageStatus::Cancelled;
    rows.extend([failed, cancelled]);
    usage::insert_batch(&env.db.pool, &rows).await.unwrap();
    let range = "from=2024-05-01&to=2024-05-01";

    let (status, body) = env.get(&format!("/v1/usage/latency?{range}"), &env.admin.secret).await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let close = |v: &Value, want: f64| {
        let got = v.as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{got} != {want}");
    };
    // 1..=100 ms: percentile_cont interpolates between neighbours.
    let llama = &data[0];
    assert_eq!(llama["model"], "llama-3-8b");
    assert_eq!(llama["requests"], 100);
    close(&llama["avg_latency_ms"], 50.5);
    close(&llama["p50_latency_ms"], 50.5);
    close(&llama["p95_latency_ms"], 95.05);
    close(&llama["p99_latency_ms"], 99.01);
    assert_eq!(
        (llama["min_latency_ms"].as_i64(), llama["max_latency_ms"].as_i64()),
        (Some(1), Some(100))
    );
    close(&llama["avg_prompt_tokens"], 10.0);
    close(&llama["avg_completion_tokens"], 101.0);
    // 10, 20, 30, 40 ms.
    let mistral = &data[1];
    assert_eq!(mistral["model"], "mistral-7b");
    assert_eq!(mistral["requests"], 4);
    close(&mistral["avg_latency_ms"], 25.0);
    close(&mistral["p50_latency_ms"], 25.0);
    close(&mistral["p95_latency_ms"], 38.5);
    close(&mistral["p99_latency_ms"], 39.7);

    // One model.
    let (_, one) = env
        .get(
            &format!("/v1/usage/latency?{range}&model=mistral-7b"),
            &env.admin.secret,
        )
        .await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"][0]["model"], "mistral-7b");
    // A developer sees its own key's requests only.
    let (status, own) = env
        .get(&format!("/v1/usage/latency?{range}"), &env.developer.secret)
        .await;
    assert_eq!(status, 200);
    assert_eq!(own["data"].as_array().unwrap().len(), 1);
    assert_eq!(own["data"][0]["model"], "mistral-7b");
    close(&own["data"][0]["p95_latency_ms"], 38.5);
    let (status, refused) = env
        .get(&format!("/v1/usage/latency?{range}&key_id={a}"), &env.developer.secret)
        .await;
    assert_insufficient(status, &refused, "developer reading the admin key's latency");
    env.stop().await;
}
