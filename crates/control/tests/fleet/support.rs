//! The admin router on a real database, and helpers the fleet tests share.

use crosslogic_control::admin::{router, AdminState};
use crosslogic_testkit::TestDb;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

pub const TOKEN: &str = "test-admin-token-fleet-0123456789";

pub struct Admin {
    pub base: String,
    pub http: reqwest::Client,
}

impl Admin {
    pub async fn start(db: &TestDb) -> Admin {
        crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
        let secret = SecretString::from(TOKEN.to_owned());
        let app = router(AdminState::new(db.pool.clone(), Some(&secret)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, axum::Router::from(app)).await });
        Admin {
            base: format!("http://{addr}/admin/v1"),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
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
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// The `data` of a list response.
    pub async fn list(&self, path: &str) -> Vec<Value> {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body["data"].as_array().unwrap().clone()
    }

    /// Asserts a 422 naming `param`; returns the message.
    pub async fn refused(&self, method: Method, path: &str, body: Value, param: &str) -> String {
        let (status, resp) = self.call(method, path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {resp}");
        assert_eq!(resp["error"]["param"], param, "{body} → {resp}");
        assert_eq!(resp["error"]["type"], "invalid_request_error");
        resp["error"]["message"].as_str().unwrap().to_owned()
    }
}

pub fn find<'a>(items: &'a [Value], key: &str, value: &str) -> &'a Value {
    items
        .iter()
        .find(|v| v[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value}"))
}

pub async fn event_types(db: &TestDb, prefix: &str) -> Vec<(String, Option<Uuid>)> {
    sqlx::query_as("SELECT event_type, tenant_id FROM events WHERE starts_with(event_type, $1) ORDER BY id")
        .bind(prefix)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Removes the seeded example deployment (migration 08), for tests that
/// count the deployments they create themselves.
pub async fn without_example_deployment(db: &TestDb) {
    sqlx::query("DELETE FROM deployments WHERE metadata->>'example' = 'true'")
        .execute(&db.pool)
        .await
        .unwrap();
}
