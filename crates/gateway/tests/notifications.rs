//! Tenant self-service of notification channels under `/v1/notifications`:
//! admin keys only, one tenant's channels invisible to another, secrets
//! shown once and URLs masked, precise errors, SSRF refusals, test sends
//! and the delivery log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosslogic_core::ApiKeyRole;
use crosslogic_testkit::gateway::TestGateway;
use crosslogic_testkit::receiver::Receiver;
use crosslogic_testkit::{fixtures, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

struct Env {
    db: TestDb,
    gateway: TestGateway,
    http: reqwest::Client,
}

impl Env {
    async fn start(allow_private: bool) -> Env {
        let db = TestDb::new().await;
        crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
        let vars =
            std::collections::HashMap::from([("NOTIFY_ALLOW_PRIVATE_TARGETS".to_owned(), allow_private.to_string())]);
        let settings = crosslogic_config::Config::from_vars(&vars).unwrap().notify;
        let api = crosslogic_notify::NotifyApi::new(&settings).unwrap();
        let gateway = TestGateway::start(&db.pool, |cfg| cfg.notify = Some(api)).await;
        Env {
            db,
            gateway,
            http: reqwest::Client::new(),
        }
    }

    /// A tenant with an admin and a developer key.
    async fn tenant(&self, email: &str) -> (String, String) {
        let t = fixtures::tenant(&self.db.pool, email).await;
        let e = fixtures::environment(
            &self.db.pool,
            crosslogic_db::repo::environments::NewEnvironment {
                tenant_id: t.id,
                name: "prod".into(),
                ..Default::default()
            },
        )
        .await;
        let (admin, _) = fixtures::api_key(&self.db.pool, t.id, e.id, ApiKeyRole::Admin, Default::default()).await;
        let (dev, _) = fixtures::api_key(&self.db.pool, t.id, e.id, ApiKeyRole::Developer, Default::default()).await;
        (admin, dev)
    }

    async fn call(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.gateway.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.db.drop_db().await;
    }
}

use reqwest::Method;

#[tokio::test]
async fn an_admin_key_manages_its_channels_and_reads_its_delivery_log() {
    let env = Env::start(true).await;
    let (admin, dev) = env.tenant("owner@acme.test").await;
    let (other_admin, _) = env.tenant("other@corp.test").await;
    let hook = Receiver::start().await;
    let url = format!("{}/hooks/secret-path-token", hook.url);

    let (status, created) = env
        .call(
            Method::POST,
            "/v1/notifications/channels",
            &admin,
            Some(json!({ "channel": "webhook", "destination": url, "event_types": ["apikey.*", "node.dead"] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["signing_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["object"], "notification_channel");
    assert!(
        !created.to_string().contains("secret-path-token"),
        "the URL is masked: {created}"
    );

    let (status, list) = env.call(Method::GET, "/v1/notifications/channels", &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(
        list["data"][0].get("signing_secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(list["data"][0]["signing_secrets"], 1);

    // Other keys and other tenants.
    let (status, body) = env.call(Method::GET, "/v1/notifications/channels", &dev, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_permissions");
    let path = format!("/v1/notifications/channels/{id}");
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({ "enabled": false }))),
        (Method::DELETE, None),
    ] {
        let (status, _) = env.call(method.clone(), &path, &other_admin, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} of another tenant's channel");
    }
    let (status, _) = env
        .call(Method::POST, &format!("{path}/test"), &other_admin, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A test send goes out now and is in the log.
    let (status, sent) = env.call(Method::POST, &format!("{path}/test"), &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["attempt_log"][0]["response_status"], 204);
    assert_eq!(hook.received()[0].json()["type"], "notification.test");
    let (_, log) = env
        .call(
            Method::GET,
            "/v1/notifications/deliveries?event_type=notification.*",
            &admin,
            None,
        )
        .await;
    assert_eq!(log["data"][0]["id"], sent["id"]);
    let (_, log) = env
        .call(Method::GET, "/v1/notifications/deliveries", &other_admin, None)
        .await;
    assert!(
        log["data"].as_array().unwrap().is_empty(),
        "another tenant's log is its own"
    );

    // Filter changes, then delete.
    let (status, updated) = env
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "event_types": null, "enabled": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert!(updated["event_types"].is_null() && updated["enabled"] == false);
    let (status, rotated) = env
        .call(Method::POST, &format!("{path}/rotate-secret"), &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["signing_secret"].as_str().unwrap(), secret);
    assert_eq!(rotated["signing_secrets"], 2);
    let (status, _) = env.call(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = env.call(Method::GET, &path, &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.stop().await;
}

#[tokio::test]
async fn bad_channels_are_refused_naming_the_field() {
    let env = Env::start(false).await;
    let (admin, _) = env.tenant("strict@acme.test").await;
    let cases = [
        (
            json!({ "channel": "pager", "destination": "https://x.example.com" }),
            "channel",
        ),
        (json!({ "channel": "webhook" }), "destination"),
        (
            json!({ "channel": "webhook", "destination": "http://hooks.example.com/x" }),
            "destination",
        ),
        (
            json!({ "channel": "webhook", "destination": "https://127.0.0.1/x" }),
            "destination",
        ),
        (
            json!({ "channel": "slack", "destination": "https://169.254.169.254/latest/meta-data/" }),
            "destination",
        ),
        (
            json!({ "channel": "email", "destination": "not an address" }),
            "destination",
        ),
        (
            json!({ "channel": "discord", "destination": "https://discord.example.com/api/webhooks/1/x", "event_types": ["nodes.*"] }),
            "event_types",
        ),
        (
            json!({ "channel": "discord", "destination": "https://discord.example.com/api/webhooks/1/x", "colour": 1 }),
            "colour",
        ),
    ];
    for (body, param) in cases {
        let (status, resp) = env
            .call(Method::POST, "/v1/notifications/channels", &admin, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {resp}");
        assert_eq!(resp["error"]["param"], param, "{body}: {resp}");
    }
    let (status, resp) = env
        .call(Method::GET, "/v1/notifications/deliveries?status=lost", &admin, None)
        .await;
    assert_eq!(
        (status, resp["error"]["param"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("status"))
    );
    let (status, resp) = env
        .call(
            Method::GET,
            &format!("/v1/notifications/deliveries?tenant_id={}", Uuid::new_v4()),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (status, resp["error"]["param"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("tenant_id")),
        "a tenant cannot filter by owner"
    );
    env.stop().await;
}
