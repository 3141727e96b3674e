//! The operator's notification API under `/admin/v1/notifications`: any
//! tenant's channels, the operator's own (from NOTIFY_* settings, which the
//! API cannot repoint or delete), and the delivery log with redelivery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosslogic_control::admin::{router, AdminState};
use crosslogic_testkit::receiver::Receiver;
use crosslogic_testkit::{fixtures, TestDb};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};

const TOKEN: &str = "test-admin-token-0123456789";

async fn call(base: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_operator_manages_every_channel_and_redelivers() {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let operator_hook = Receiver::start().await;
    let tenant_hook = Receiver::start().await;
    let vars = std::collections::HashMap::from([
        ("NOTIFY_ALLOW_PRIVATE_TARGETS".to_owned(), "true".to_owned()),
        (
            "NOTIFY_SLACK_WEBHOOK_URL".to_owned(),
            format!("{}/services/T/B/tok", operator_hook.url),
        ),
        ("NOTIFY_RETRY_SCHEDULE".to_owned(), "0s,10ms".to_owned()),
    ]);
    let settings = crosslogic_config::Config::from_vars(&vars).unwrap().notify;
    crosslogic_notify::operator::sync(&db.pool, &settings).await.unwrap();
    let secret = SecretString::from(TOKEN.to_owned());
    let state = AdminState::new(db.pool.clone(), Some(&secret))
        .with_notify(crosslogic_notify::NotifyApi::new(&settings).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/admin/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::from(router(state))).await });
    let t = fixtures::tenant(&db.pool, "ops@acme.test").await;

    // The operator's channel, mirrored from the settings.
    let (_, ops) = call(&base, Method::GET, "/notifications/channels", None).await;
    let op = &ops["data"][0];
    assert_eq!(
        (op["channel"].as_str(), op["tenant_id"].is_null()),
        (Some("slack"), true)
    );
    let op_id = op["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &base,
        Method::PATCH,
        &format!("/notifications/channels/{op_id}"),
        Some(json!({ "destination": "https://hooks.slack.com/services/x" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("destination"))
    );
    let (status, _) = call(&base, Method::DELETE, &format!("/notifications/channels/{op_id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "the environment owns it");
    let (status, filtered) = call(
        &base,
        Method::PATCH,
        &format!("/notifications/channels/{op_id}"),
        Some(json!({ "event_types": ["tenant.*"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{filtered}");

    // A tenant's channel, made by the operator.
    let (status, created) = call(
        &base,
        Method::POST,
        &format!("/tenants/{}/notifications/channels", t.id),
        Some(json!({ "channel": "webhook", "destination": tenant_hook.url, "event_types": ["tenant.*"] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, listed) = call(
        &base,
        Method::GET,
        &format!("/tenants/{}/notifications/channels", t.id),
        None,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    // An event for both; the tenant's receiver fails for good... then recovers.
    tenant_hook.reply_always(crosslogic_testkit::receiver::Reply::Status(500));
    crosslogic_tenancy::set_tenant_status(
        &db.pool,
        &crosslogic_core::Actor::admin(None),
        t.id,
        crosslogic_core::TenantStatus::Suspended,
    )
    .await
    .unwrap();
    let mut cfg = crosslogic_notify::NotifyConfig::new(settings.clone());
    cfg.schedule = crosslogic_core::delivery::RetrySchedule(vec![std::time::Duration::ZERO; 2]);
    let sender = crosslogic_notify::deliver::Sender::new(
        db.pool.clone(),
        cfg.clone(),
        crosslogic_notify::Transport::new(std::time::Duration::from_secs(2), true, None).unwrap(),
    );
    for _ in 0..50 {
        crosslogic_notify::fanout::drain(&db.pool, &cfg).await.unwrap();
        while sender.deliver_once().await.unwrap() > 0 {}
        let (_, failed) = call(
            &base,
            Method::GET,
            &format!("/notifications/deliveries?tenant_id={}&status=failed", t.id),
            None,
        )
        .await;
        if !failed["data"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, failed) = call(
        &base,
        Method::GET,
        &format!("/notifications/deliveries?tenant_id={}&status=failed", t.id),
        None,
    )
    .await;
    let failed = &failed["data"][0];
    assert_eq!(failed["event_type"], "tenant.suspended", "{failed}");
    let (_, operator_log) = call(&base, Method::GET, "/notifications/deliveries?operator=true", None).await;
    assert_eq!(operator_log["data"][0]["status"], "sent", "{operator_log}");
    assert_eq!(operator_hook.received().len(), 1);

    tenant_hook.reply_always(crosslogic_testkit::receiver::Reply::Status(200));
    let id = failed["id"].as_str().unwrap();
    let (status, queued) = call(
        &base,
        Method::POST,
        &format!("/notifications/deliveries/{id}/redeliver"),
        None,
    )
    .await;
    assert_eq!(
        (status, queued["status"].as_str()),
        (StatusCode::ACCEPTED, Some("pending"))
    );
    while sender.deliver_once().await.unwrap() > 0 {}
    let (_, detail) = call(&base, Method::GET, &format!("/notifications/deliveries/{id}"), None).await;
    assert_eq!(detail["status"], "sent", "{detail}");
    let outcomes: Vec<&str> = detail["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "failed", "sent"]);
    db.drop_db().await;
}
