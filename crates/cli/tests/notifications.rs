//! Notifications end to end through the real binary: a tenant's webhook
//! receives `apikey.revoked` with a signature the official library
//! verifies; a platform killed in the middle of delivering loses nothing;
//! two platform processes on one database never deliver a row twice; and
//! a tenant cannot point a channel at a loopback or metadata address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Server;
use crosslogic_testkit::receiver::{Receiver, Recorded, Reply};
use crosslogic_testkit::TestDb;
use serde_json::{json, Value};

const TOKEN: &str = "notify-e2e-admin-token-0123456789";

struct Admin<'a> {
    server: &'a Server,
    http: reqwest::Client,
}

impl Admin<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .request(method, self.server.url(&format!("/admin/v1{path}")))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call(reqwest::Method::POST, path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }

    /// Creates and revokes `n` keys of the tenant: 2n events.
    async fn churn_keys(&self, tenant: &str, environment: &str, n: usize) {
        for _ in 0..n {
            let k = self
                .post(
                    &format!("/tenants/{tenant}/keys"),
                    json!({ "environment_id": environment }),
                )
                .await;
            self.post(&format!("/keys/{}/revoke", k["id"].as_str().unwrap()), json!({}))
                .await;
        }
    }
}

fn env<'a>(db: &'a TestDb, data: &'a tempfile::TempDir) -> Vec<(&'static str, &'a str)> {
    vec![
        ("DATABASE_URL", db.url.as_str()),
        ("ADMIN_API_TOKEN", TOKEN),
        ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ("NOTIFY_ALLOW_PRIVATE_TARGETS", "true"),
        ("NOTIFY_TIMEOUT", "2s"),
        ("NOTIFY_RETRY_SCHEDULE", "0s,200ms,200ms,200ms"),
    ]
}

/// Waits (bounded) until every one of `want` distinct messages arrived;
/// returns the requests by `webhook-id`.
async fn distinct(hook: &Receiver, want: usize, within: Duration) -> HashMap<String, Vec<Recorded>> {
    let deadline = Instant::now() + within;
    loop {
        let mut by_id: HashMap<String, Vec<Recorded>> = HashMap::new();
        for r in hook.received() {
            by_id
                .entry(r.header("webhook-id").unwrap().to_owned())
                .or_default()
                .push(r);
        }
        if by_id.len() >= want {
            return by_id;
        }
        assert!(Instant::now() < deadline, "{} of {want} messages arrived", by_id.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verify(secret: &str, r: &Recorded) -> bool {
    crosslogic_testkit::receiver::standard_webhook_verifies(secret, r)
}

#[tokio::test]
async fn webhooks_survive_a_killed_platform_and_two_platforms_never_send_twice() {
    let db = TestDb::new().await;
    let data_a = common::data_dir();
    let data_b = common::data_dir();
    let a = Server::start(&env(&db, &data_a), &[]).unwrap();
    let admin = Admin {
        server: &a,
        http: reqwest::Client::new(),
    };
    let hook = Receiver::start().await;
    let tenant = admin
        .post("/tenants", json!({ "name": "Hooked", "email": "hooked@e2e.test" }))
        .await;
    let tid = tenant["id"].as_str().unwrap().to_owned();
    let e = admin
        .post(&format!("/tenants/{tid}/environments"), json!({ "name": "prod" }))
        .await;
    let eid = e["id"].as_str().unwrap().to_owned();
    let channel = admin
        .post(
            &format!("/tenants/{tid}/notifications/channels"),
            json!({ "channel": "webhook", "destination": format!("{}/crosslogic", hook.url), "event_types": ["apikey.*"] }),
        )
        .await;
    let secret = channel["signing_secret"].as_str().unwrap().to_owned();

    // 1. Delivered and verifiable.
    admin.churn_keys(&tid, &eid, 1).await;
    let got = distinct(&hook, 2, Duration::from_secs(30)).await;
    let revoked = got
        .values()
        .flatten()
        .find(|r| r.json()["type"] == "apikey.revoked")
        .expect("apikey.revoked arrived");
    assert!(
        verify(&secret, revoked),
        "the official standardwebhooks library accepts it"
    );
    assert!(!verify("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGwh", revoked));

    // 2. Killed mid-delivery: the receiver holds every request; the
    //    platform dies with attempts in flight; a new one finishes them.
    hook.reply_always(Reply::Hang(Duration::from_millis(1500)));
    admin.churn_keys(&tid, &eid, 3).await;
    let before = hook.received().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.received().len() == before {
        assert!(Instant::now() < deadline, "no attempt started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(a.signal_and_wait(nix::sys::signal::Signal::SIGKILL).code().is_none());
    hook.reply_always(Reply::Status(204));
    let a2 = Server::start(&env(&db, &data_a), &[]).unwrap();
    let b = Server::start(&env(&db, &data_b), &[]).unwrap();
    let got = distinct(&hook, 8, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 8, "all 8 events arrived: nothing lost to the kill");

    // 3. Two platforms, one database: every row sent once.
    let before: HashMap<String, usize> = got.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    let admin_b = Admin {
        server: &b,
        http: reqwest::Client::new(),
    };
    admin_b.churn_keys(&tid, &eid, 15).await;
    let got = distinct(&hook, 38, Duration::from_secs(60)).await;
    let new: Vec<(&String, usize)> = got
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .map(|(k, v)| (k, v.len()))
        .collect();
    assert_eq!(new.len(), 30);
    assert!(
        new.iter().all(|(_, n)| *n == 1),
        "a delivery sent twice by two platforms: {new:?}"
    );
    // A platform marks a row sent once the receiver's answer is back, a
    // moment after the receiver counted the request; a row the killed
    // platform was sending (the receiver already counted it) is sent again
    // once its lease (4 × NOTIFY_TIMEOUT = 8 s) runs out.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_deliveries WHERE status <> 'sent'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if unsent == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every delivery row ends sent: {unsent} are not"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a2.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    assert!(b.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}

#[tokio::test]
async fn a_tenant_cannot_point_a_channel_inside_the_platform() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[],
    )
    .unwrap();
    let admin = Admin {
        server: &server,
        http: reqwest::Client::new(),
    };
    let (tid, _, key, _) = common::tenant_with_key(&server, TOKEN, "us-east", json!({ "role": "admin" })).await;
    for url in [
        "https://127.0.0.1:8080/v1/keys",
        "https://169.254.169.254/latest/meta-data/iam/",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://hooks.example.com/plain-http",
    ] {
        let body = json!({ "channel": "webhook", "destination": url });
        let (status, resp) = admin
            .call(
                reqwest::Method::POST,
                &format!("/tenants/{tid}/notifications/channels"),
                body.clone(),
            )
            .await;
        assert_eq!(
            (status, resp["error"]["param"].as_str()),
            (422, Some("destination")),
            "{url}: {resp}"
        );
        let resp = reqwest::Client::new()
            .post(server.url("/v1/notifications/channels"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{url} through self-service");
    }
    assert!(server.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}
