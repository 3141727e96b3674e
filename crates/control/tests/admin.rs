//! The admin API over HTTP against a real database: authentication,
//! validation with precise errors, tenancy round trips, and the events and
//! audit entries each change writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosslogic_control::admin::{router, AdminState};
use crosslogic_testkit::TestDb;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

const TOKEN: &str = "test-admin-token-0123456789";

struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    async fn start(db: &TestDb, token: Option<&str>) -> Admin {
        crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
        let secret = token.map(|t| SecretString::from(t.to_owned()));
        let app = router(AdminState::new(db.pool.clone(), secret.as_ref()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, axum::Router::from(app)).await });
        Admin {
            base: format!("http://{addr}/admin/v1"),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
}

#[tokio::test]
async fn the_admin_api_requires_the_operator_token() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db, Some(TOKEN)).await;
    let url = format!("{}/tenants", admin.base);
    let none = admin.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let wrong = admin
        .http
        .get(&url)
        .bearer_auth("test-admin-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(admin.get("/tenants").await.0, StatusCode::OK);

    let disabled = Admin::start(&db, None).await;
    let (status, body) = disabled.get("/tenants").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"]["message"].as_str().unwrap().contains("ADMIN_API_TOKEN"));
    db.drop_db().await;
}

#[tokio::test]
async fn bad_input_gets_precise_errors() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db, Some(TOKEN)).await;
    let (status, body) = admin
        .post("/tenants", json!({ "name": "Acme", "email": "not-an-email" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["param"], "email");
    let (status, body) = admin.post("/tenants", json!({ "name": "Acme" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `email`"),
        "{body}"
    );
    let (status, body) = admin
        .post("/tenants", json!({ "name": "A", "email": "a@b.co", "colour": "red" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    let (status, body) = admin
        .post(
            "/tenants",
            json!({ "name": "A", "email": "a@b.co", "billing_plan": "gold" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("serverless"),
        "{body}"
    );
    let raw = admin
        .http
        .post(format!("{}/tenants", admin.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(admin.get("/tenants/not-a-uuid").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        admin.get(&format!("/tenants/{}", uuid::Uuid::new_v4())).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = admin.get("/tenants?limit=abc").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["param"], "limit");
    db.drop_db().await;
}

#[tokio::test]
async fn tenants_environments_and_keys_round_trip_and_publish_events() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db, Some(TOKEN)).await;

    let (status, tenant) = admin
        .post("/tenants", json!({ "name": "Acme", "email": "Ops@Acme.test" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    assert_eq!(tenant["email"], "ops@acme.test");
    let tid = tenant["id"].as_str().unwrap().to_owned();
    let (status, dup) = admin
        .post("/tenants", json!({ "name": "Acme 2", "email": "ops@acme.test" }))
        .await;
    assert_eq!(
        (status, dup["error"]["param"].as_str()),
        (StatusCode::CONFLICT, Some("email"))
    );

    let (status, env) = admin
        .post(
            &format!("/tenants/{tid}/environments"),
            json!({ "name": "prod", "region": "in-mumbai", "model_list": ["llama-3-8b"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{env}");
    assert_eq!(env["quota_tokens_per_day"], 1_000_000);
    let eid = env["id"].as_str().unwrap().to_owned();
    let (status, bad) = admin
        .post(
            &format!("/tenants/{tid}/environments"),
            json!({ "name": "dev", "region": "atlantis" }),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["param"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("region"))
    );
    let (status, _) = admin
        .post(&format!("/tenants/{tid}/environments"), json!({ "name": "prod" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, key) = admin
        .post(
            &format!("/tenants/{tid}/keys"),
            json!({ "environment_id": eid, "name": "ci", "role": "developer" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let secret = key["key_secret"].as_str().unwrap().to_owned();
    let prefix = key["key_prefix"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("{prefix}_")), "{secret} / {prefix}");
    let stored: String = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE key_prefix = $1")
        .bind(&prefix)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, crosslogic_core::keys::hash(&secret), "only the hash is stored");
    let kid = key["id"].as_str().unwrap().to_owned();
    let (_, listed) = admin.get(&format!("/tenants/{tid}/keys")).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown again in a list"
    );
    assert!(!listed.to_string().contains(&stored), "the hash leaks through the API");
    let (status, _) = admin
        .post(
            &format!("/tenants/{tid}/keys"),
            json!({ "environment_id": uuid::Uuid::new_v4() }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin
        .post(
            &format!("/tenants/{tid}/keys"),
            json!({ "environment_id": eid, "expires_at": "2001-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, patched) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/keys/{kid}"),
            Some(json!({ "rate_limit_requests_per_min": 10 })),
        )
        .await;
    assert_eq!(
        (status, patched["rate_limit_requests_per_min"].as_i64()),
        (StatusCode::OK, Some(10))
    );
    let (status, revoked) = admin.post(&format!("/keys/{kid}/revoke"), json!({})).await;
    assert_eq!((status, revoked["status"].as_str()), (StatusCode::OK, Some("revoked")));
    let (status, _) = admin.post(&format!("/keys/{kid}/activate"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a revoked key came back");

    let (status, suspended) = admin.post(&format!("/tenants/{tid}/suspend"), json!({})).await;
    assert_eq!(
        (status, suspended["status"].as_str()),
        (StatusCode::OK, Some("suspended"))
    );
    let (status, _) = admin
        .call(reqwest::Method::DELETE, &format!("/tenants/{tid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin.post(&format!("/tenants/{tid}/activate"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a deleted tenant came back");

    let types: Vec<String> = sqlx::query_scalar("SELECT event_type FROM events WHERE tenant_id = $1::uuid ORDER BY id")
        .bind(&tid)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        types,
        [
            "tenant.created",
            "environment.created",
            "apikey.created",
            "apikey.updated",
            "apikey.revoked",
            "tenant.suspended",
            "tenant.deleted"
        ]
    );
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE tenant_id = $1::uuid AND actor = 'admin'")
            .bind(&tid)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(audited, 7);
    db.drop_db().await;
}

#[tokio::test]
async fn tenant_lists_page_with_a_cursor() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db, Some(TOKEN)).await;
    for i in 0..3 {
        admin
            .post(
                "/tenants",
                json!({ "name": format!("T{i}"), "email": format!("t{i}@x.test") }),
            )
            .await;
    }
    let (_, first) = admin.get("/tenants?limit=2").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    assert_eq!(first["has_more"], true);
    let next = first["next_after"].as_str().unwrap();
    let (_, second) = admin.get(&format!("/tenants?limit=2&after={next}")).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["has_more"], false);
    db.drop_db().await;
}

/// The error parts that must not depend on which route refused.
fn shape(status: StatusCode, body: &Value) -> (u16, Value, Value, Value) {
    (
        status.as_u16(),
        body["error"]["type"].clone(),
        body["error"]["code"].clone(),
        body["error"]["param"].clone(),
    )
}

impl Admin {
    /// Sends raw `body` with `content_type` to `path`.
    async fn raw(&self, path: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }
}

#[tokio::test]
async fn tenancy_and_fleet_routes_refuse_the_same_bad_input_the_same_way() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db, Some(TOKEN)).await;
    // Bodies: not JSON, not sent as JSON, an unknown field, a field of the
    // wrong type, a missing required field, a nested wrong type.
    let bodies = [
        ("application/json", "{nope", (400, None)),
        ("text/plain", r#"{"name": "x"}"#, (400, None)),
        (
            "application/json",
            r#"{"name": "x", "colour": "blue"}"#,
            (422, Some("colour")),
        ),
        ("application/json", r#"{"name": 5}"#, (422, Some("name"))),
        ("application/json", r#"{}"#, (422, Some("name"))),
        ("application/json", r#"[1, 2]"#, (422, None)),
    ];
    for (content_type, body, (status, param)) in bodies {
        let (ts, tb) = admin.raw("/tenants", content_type, body).await;
        let (fs, fb) = admin.raw("/deployments", content_type, body).await;
        assert_eq!(
            shape(ts, &tb),
            shape(fs, &fb),
            "{body}: tenants {tb} vs deployments {fb}"
        );
        assert_eq!(ts.as_u16(), status, "{body}: {tb}");
        assert_eq!(tb["error"]["param"].as_str(), param, "{body}: {tb}");
        assert_eq!(tb["error"]["type"], "invalid_request_error");
        if let Some(p) = param {
            let message = tb["error"]["message"].as_str().unwrap();
            assert!(message.contains(p), "{body}: {message}");
        }
    }
    // Query strings: an unknown parameter, a value of the wrong type, an
    // unknown enum value.
    let queries = [
        ("colour=blue", 422, "colour"),
        ("limit=lots", 422, "limit"),
        ("status=asleep", 422, "status"),
    ];
    for (query, status, param) in queries {
        let (ts, tb) = admin.get(&format!("/tenants?{query}")).await;
        let (ns, nb) = admin.get(&format!("/nodes?{query}")).await;
        assert_eq!(shape(ts, &tb), shape(ns, &nb), "{query}: tenants {tb} vs nodes {nb}");
        assert_eq!(ts.as_u16(), status, "{query}: {tb}");
        assert_eq!(tb["error"]["param"], param, "{query}: {tb}");
    }
    // Path ids: anything but a UUID names nothing.
    let (ts, tb) = admin.get("/tenants/not-a-uuid").await;
    let (ds, dbody) = admin.get("/deployments/not-a-uuid").await;
    assert_eq!(shape(ts, &tb), shape(ds, &dbody));
    assert_eq!(ts, StatusCode::NOT_FOUND);
    db.drop_db().await;
}
