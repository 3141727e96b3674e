//! Fan-out and delivery against real PostgreSQL and local receivers that
//! follow the providers' formats: filters, signatures checked by the
//! official `standardwebhooks` library, retries after 500 and 429, 410
//! disabling a channel, two senders never sending one row twice, a crashed
//! sender's claim taken over, SSRF refusals, and the watchers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use chrono::Utc;
use crosslogic_core::{Actor, DeliveryStatus, NotificationChannel, ServiceError};
use crosslogic_db::repo::notifications::{self, DeliveryFilter};
use crosslogic_notify::channels::{self, CreateChannel, Policy, Scope};
use crosslogic_notify::deliver::Sender;
use crosslogic_notify::{fanout, watch, Transport};
use crosslogic_testkit::fixtures;
use crosslogic_testkit::receiver::{Receiver, Reply};
use serde_json::{json, Value};
use support::{config, verify_with_standardwebhooks, Env, OPEN};
use uuid::Uuid;

#[tokio::test]
async fn a_tenant_webhook_gets_its_events_signed_and_filters_keep_others_out() {
    let env = Env::start(config(&[])).await;
    let hook = Receiver::start().await;
    let only_revoked = Receiver::start().await;
    let (_, secret) = env.channel(NotificationChannel::Webhook, &hook.url, None).await;
    let secret = secret.expect("a webhook channel gets a secret");
    assert!(secret.starts_with("whsec_"));
    env.channel(NotificationChannel::Slack, &only_revoked.url, Some(&["apikey.revoked"]))
        .await;
    let key = env.revoke_a_key().await;
    env.pump_until("both channels got their events", |d| {
        d.iter().filter(|d| d.status == DeliveryStatus::Sent).count() == 5
    })
    .await;

    let got = hook.received();
    let mut types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "apikey.created",
            "apikey.revoked",
            "notification.channel_created",
            "notification.channel_created"
        ],
        "the webhook takes every event of its tenant"
    );
    let revoked = got.iter().find(|r| r.json()["type"] == "apikey.revoked").unwrap();
    assert_eq!(revoked.json()["data"]["key_id"], key.to_string());
    assert!(revoked.header("webhook-id").unwrap().starts_with("msg_"));
    assert!(
        verify_with_standardwebhooks(&secret, revoked),
        "the official library accepts our signature"
    );
    assert!(
        !verify_with_standardwebhooks("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGwh", revoked),
        "and rejects another secret (the check can fail)"
    );

    let slack = only_revoked.received();
    assert_eq!(slack.len(), 1, "the filter keeps apikey.created out");
    let body = slack[0].json();
    assert!(body["text"].as_str().unwrap().contains("was revoked"), "{body}");
    assert!(body["blocks"].as_array().unwrap().len() >= 3);

    // Fan-out is idempotent: running it again queues nothing new.
    let again = fanout::drain(&env.db.pool, &env.cfg).await.unwrap();
    assert_eq!(again.deliveries, 0);
    env.db.drop_db().await;
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_delivered_once_honouring_retry_after() {
    let env = Env::start(config(&[])).await;
    let hook = Receiver::start().await;
    hook.reply_next([
        Reply::Status(500),
        Reply::Full(429, vec![("retry-after".into(), "1".into())], String::new()),
    ]);
    env.channel(NotificationChannel::Webhook, &hook.url, Some(&["apikey.revoked"]))
        .await;
    env.revoke_a_key().await;
    fanout::drain(&env.db.pool, &env.cfg).await.unwrap();
    env.pump_until("two failed attempts", |d| d.iter().any(|d| d.retry_count == 2))
        .await;
    let d = &notifications::list_deliveries(&env.db.pool, &DeliveryFilter::default(), 10)
        .await
        .unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Retry);
    let at = d.next_retry_at.unwrap();
    let attempts = notifications::attempts(&env.db.pool, d.id).await.unwrap();
    let second = &attempts[1];
    assert_eq!(second.response_status, Some(429));
    assert!(
        at >= second.started_at + chrono::Duration::milliseconds(1000),
        "Retry-After: 1 wins over the 50 ms schedule: next {at}, attempt {}",
        second.started_at
    );
    let done = env
        .pump_until("delivered after the retries", |d| d[0].status == DeliveryStatus::Sent)
        .await;
    assert_eq!(done[0].retry_count, 3);
    let got = hook.received();
    assert_eq!(got.len(), 3, "500, 429, then 204: three sends, one success");
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id").unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "webhook-id is stable across retries: {ids:?}"
    );
    env.db.drop_db().await;
}

#[tokio::test]
async fn retries_stop_at_the_end_of_the_schedule() {
    let env = Env::start(config(&[("NOTIFY_RETRY_SCHEDULE", "0s,10ms")])).await;
    let hook = Receiver::start().await;
    hook.reply_always(Reply::Status(503));
    env.channel(NotificationChannel::Webhook, &hook.url, Some(&["apikey.revoked"]))
        .await;
    env.revoke_a_key().await;
    let all = env
        .pump_until("given up", |d| {
            d.iter().all(|d| d.status == DeliveryStatus::Failed) && !d.is_empty()
        })
        .await;
    assert_eq!(all[0].retry_count, 2);
    assert!(
        all[0].error.as_deref().unwrap().contains("gave up after 2 attempts"),
        "{:?}",
        all[0].error
    );
    assert_eq!(hook.received().len(), 2);
    env.db.drop_db().await;
}

#[tokio::test]
async fn a_gone_receiver_disables_its_channel_and_tells_the_operator() {
    let operator = Receiver::start().await;
    let env = Env::start(config(&[
        (
            "NOTIFY_DISCORD_WEBHOOK_URL",
            &format!("{}/api/webhooks/1/tok", operator.url),
        ),
        ("NOTIFY_MIN_SEVERITY", "warning"),
    ]))
    .await;
    let hook = Receiver::start().await;
    hook.reply_always(Reply::Status(410));
    let (id, _) = env
        .channel(NotificationChannel::Webhook, &hook.url, Some(&["apikey.revoked"]))
        .await;
    env.revoke_a_key().await;
    env.pump_until("the webhook's delivery failed", |d| {
        d.iter()
            .any(|d| d.config_id == Some(id) && d.status == DeliveryStatus::Failed)
    })
    .await;
    assert_eq!(hook.received().len(), 1, "410 is permanent: no retry");
    // The channel is off: later events are not sent to it at all.
    env.revoke_a_key().await;
    env.pump().await;
    assert_eq!(hook.received().len(), 1, "a disabled channel receives nothing");
    let c = notifications::get_channel(&env.db.pool, id).await.unwrap();
    assert!(!c.enabled);
    assert!(
        c.disabled_reason.as_deref().unwrap().starts_with("410"),
        "{:?}",
        c.disabled_reason
    );
    // The operator's Discord channel (warning and above) hears about it —
    // and about the revoked key, but not the info-level apikey.created.
    let got = operator.wait_for(2, Duration::from_secs(10)).await;
    let titles: Vec<String> = got
        .iter()
        .map(|r| r.json()["embeds"][0]["footer"]["text"].as_str().unwrap().to_owned())
        .collect();
    env.pump().await;
    assert!(
        titles.contains(&"notification.channel_disabled".to_owned()),
        "{titles:?}"
    );
    assert!(titles.contains(&"apikey.revoked".to_owned()), "{titles:?}");
    assert!(!titles.contains(&"apikey.created".to_owned()), "{titles:?}");
    assert_eq!(got[0].path, "/api/webhooks/1/tok");
    // Re-enabling clears the reason.
    let c = channels::update_channel(
        &env.db.pool,
        &Actor::admin(None),
        Scope::Operator,
        id,
        channels::UpdateChannel {
            enabled: Some(true),
            ..Default::default()
        },
        OPEN,
    )
    .await
    .unwrap();
    assert!(c.enabled && c.disabled_reason.is_none());
    env.db.drop_db().await;
}

#[tokio::test]
async fn two_senders_never_send_one_delivery_twice() {
    let env = Env::start(config(&[])).await;
    let hook = Receiver::start().await;
    env.channel(NotificationChannel::Webhook, &hook.url, Some(&["apikey.*"]))
        .await;
    for _ in 0..20 {
        env.revoke_a_key().await;
    }
    fanout::drain(&env.db.pool, &env.cfg).await.unwrap();
    let other = Sender::new(
        env.db.pool.clone(),
        env.cfg.clone(),
        Transport::new(Duration::from_secs(2), true, None).unwrap(),
    );
    let a = async { while env.sender.deliver_once().await.unwrap() > 0 {} };
    let b = async { while other.deliver_once().await.unwrap() > 0 {} };
    tokio::join!(a, b);
    let got = hook.wait_for(40, Duration::from_secs(10)).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id").unwrap()).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (40, 40), "each of the 40 events sent exactly once");
    env.db.drop_db().await;
}

#[tokio::test]
async fn a_crashed_senders_claim_expires_and_the_delivery_is_sent() {
    let mut cfg = config(&[]);
    cfg.lease = Duration::from_millis(300);
    let env = Env::start(cfg).await;
    let hook = Receiver::start().await;
    env.channel(NotificationChannel::Webhook, &hook.url, Some(&["apikey.revoked"]))
        .await;
    env.revoke_a_key().await;
    fanout::drain(&env.db.pool, &env.cfg).await.unwrap();
    // A sender claims the row and dies before sending.
    let mut conn = env.db.pool.acquire().await.unwrap();
    let claimed = notifications::claim_due(&mut conn, 10, env.cfg.lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        env.sender.deliver_once().await.unwrap(),
        0,
        "the claim holds while its lease runs"
    );
    drop(conn);
    env.pump_until("sent after the lease expired", |d| d[0].status == DeliveryStatus::Sent)
        .await;
    assert_eq!(hook.received().len(), 1);
    // The dead sender's late record is refused: the lease is no longer its.
    let late = notifications::record_attempt(
        &env.db.pool,
        claimed[0].id,
        claimed[0].lease_until,
        &notifications::Attempt {
            outcome: crosslogic_core::AttemptOutcome::Failed,
            started_at: Utc::now(),
            duration_ms: 0,
            request_body: None,
            response_status: None,
            response_body: None,
            error: Some("late".into()),
            next_retry_at: None,
        },
    )
    .await
    .unwrap();
    assert!(!late);
    env.db.drop_db().await;
}

#[tokio::test]
async fn a_tenant_cannot_point_a_channel_inside_the_platform() {
    let env = Env::start(config(&[("NOTIFY_ALLOW_PRIVATE_TARGETS", "false")])).await;
    let strict = Policy { allow_private: false };
    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1:9000/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
    ] {
        let input = CreateChannel {
            channel: NotificationChannel::Webhook,
            destination: url.into(),
            event_types: None,
            enabled: None,
        };
        let err = channels::create_channel(&env.db.pool, &Actor::admin(None), env.tenant, input, strict)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::Invalid {
                    field: "destination",
                    ..
                }
            ),
            "{url}: {err:?}"
        );
    }
    // A row that points inside anyway (written before the rules, or by
    // hand) is refused at send time, and the channel is disabled.
    let hook = Receiver::start().await;
    let (id, _) = env.channel(NotificationChannel::Webhook, &hook.url, None).await;
    let strict_sender = Sender::new(
        env.db.pool.clone(),
        env.cfg.clone(),
        Transport::new(Duration::from_secs(2), false, None).unwrap(),
    );
    env.revoke_a_key().await;
    fanout::drain(&env.db.pool, &env.cfg).await.unwrap();
    while strict_sender.deliver_once().await.unwrap() > 0 {}
    assert!(hook.received().is_empty(), "nothing reached the loopback receiver");
    let c = notifications::get_channel(&env.db.pool, id).await.unwrap();
    assert!(!c.enabled, "{:?}", c.disabled_reason);
    env.db.drop_db().await;
}

#[tokio::test]
async fn filters_are_checked_against_the_catalogue_and_one_channel_per_kind() {
    let env = Env::start(config(&[])).await;
    let hook = Receiver::start().await;
    for bad in [vec!["nodes.*"], vec!["node.exploded"], vec![]] {
        let input = CreateChannel {
            channel: NotificationChannel::Slack,
            destination: hook.url.clone(),
            event_types: Some(bad.iter().map(|s| (*s).to_owned()).collect()),
            enabled: None,
        };
        let err = channels::create_channel(&env.db.pool, &Actor::admin(None), env.tenant, input, OPEN)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::Invalid {
                    field: "event_types",
                    ..
                }
            ),
            "{bad:?}: {err:?}"
        );
    }
    env.channel(NotificationChannel::Slack, &hook.url, Some(&["node.*", "*"]))
        .await;
    let dup = CreateChannel {
        channel: NotificationChannel::Slack,
        destination: hook.url.clone(),
        event_types: None,
        enabled: None,
    };
    let err = channels::create_channel(&env.db.pool, &Actor::admin(None), env.tenant, dup, OPEN)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::Conflict {
                field: Some("channel"),
                ..
            }
        ),
        "{err:?}"
    );
    env.db.drop_db().await;
}

#[tokio::test]
async fn a_test_send_goes_out_now_and_is_logged() {
    let env = Env::start(config(&[])).await;
    let hook = Receiver::start().await;
    let (id, secret) = env
        .channel(NotificationChannel::Webhook, &hook.url, Some(&["node.dead"]))
        .await;
    let transport = Transport::new(Duration::from_secs(2), true, None).unwrap();
    let (d, attempts) = channels::send_test(&env.db.pool, &transport, Scope::Tenant(env.tenant), id)
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Sent);
    assert_eq!(d.event_type, "notification.test");
    assert_eq!(attempts.len(), 1);
    let got = hook.received();
    assert_eq!(got[0].json()["type"], "notification.test");
    assert!(verify_with_standardwebhooks(&secret.unwrap(), &got[0]));
    // Another tenant's scope cannot see or test it.
    let err = channels::send_test(&env.db.pool, &transport, Scope::Tenant(Uuid::new_v4()), id)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound(_)));
    // Rotation: two secrets sign until the old one expires.
    let (c, new) = channels::rotate_secret(&env.db.pool, &Actor::admin(None), Scope::Operator, id)
        .await
        .unwrap();
    assert_eq!(c.settings.secrets.len(), 2);
    channels::send_test(&env.db.pool, &transport, Scope::Operator, id)
        .await
        .unwrap();
    let second = &hook.received()[1];
    assert_eq!(second.header("webhook-signature").unwrap().split(' ').count(), 2);
    assert!(verify_with_standardwebhooks(&new, second));
    env.db.drop_db().await;
}

#[tokio::test]
async fn quota_and_key_expiry_events_are_published_once() {
    let env = Env::start(config(&[])).await;
    sqlx::query("UPDATE environments SET quota_tokens_per_day = 1000 WHERE id = $1")
        .bind(env.environment)
        .execute(&env.db.pool)
        .await
        .unwrap();
    let record = |tokens: i32| crosslogic_db::repo::usage::UsageRecord {
        request_id: format!("req_{}", Uuid::new_v4().simple()),
        timestamp: Utc::now(),
        tenant_id: env.tenant,
        environment_id: Some(env.environment),
        api_key_id: None,
        region_id: None,
        model_id: None,
        model_name: "llama-3-8b".into(),
        node_id: None,
        prompt_tokens: tokens,
        completion_tokens: 0,
        cached_tokens: 0,
        latency_ms: 5,
        cost_microdollars: 1,
        cost_exact: crosslogic_core::Femtos::from_micros(crosslogic_core::Micros(1)),
        status: crosslogic_core::UsageStatus::Completed,
        metadata: json!({}),
    };
    crosslogic_db::repo::usage::insert_batch(&env.db.pool, &[record(850)])
        .await
        .unwrap();
    let expiring = crosslogic_db::repo::api_keys::KeyLimits {
        expires_at: Some(Utc::now() + chrono::Duration::days(1)),
        ..Default::default()
    };
    fixtures::api_key(
        &env.db.pool,
        env.tenant,
        env.environment,
        crosslogic_core::ApiKeyRole::Developer,
        expiring,
    )
    .await;
    let pass = watch::watch_once(&env.db.pool, &env.cfg, Utc::now()).await.unwrap();
    assert_eq!(
        (pass.quota_warnings, pass.quota_exhausted, pass.keys_expiring),
        (1, 0, 1)
    );
    crosslogic_db::repo::usage::insert_batch(&env.db.pool, &[record(200)])
        .await
        .unwrap();
    let pass = watch::watch_once(&env.db.pool, &env.cfg, Utc::now()).await.unwrap();
    assert_eq!(
        (pass.quota_warnings, pass.quota_exhausted, pass.keys_expiring),
        (0, 1, 0),
        "each once: the warning and the key were reported already"
    );
    let payload: Value = sqlx::query_scalar("SELECT payload FROM events WHERE event_type = 'quota.exhausted'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(
        (payload["used_tokens"].as_i64(), payload["percent"].as_i64()),
        (Some(1050), Some(105))
    );
    env.db.drop_db().await;
}

#[tokio::test]
async fn a_failed_send_never_records_or_shows_the_secret_url() {
    let env = Env::start(config(&[("NOTIFY_RETRY_SCHEDULE", "0s")])).await;
    // Nothing listens on port 1: the connection is refused.
    let (id, _) = env
        .channel(
            NotificationChannel::Slack,
            "http://127.0.0.1:1/services/T0/B0/s3cr3t-t0ken",
            Some(&["apikey.*"]),
        )
        .await;
    env.revoke_a_key().await;
    let all = env
        .pump_until("failed", |d| {
            d.iter().filter(|d| d.config_id == Some(id)).count() == 2
                && d.iter().all(|d| d.status == DeliveryStatus::Failed)
        })
        .await;
    for d in &all {
        let text = format!("{d:?} {:?}", notifications::attempts(&env.db.pool, d.id).await.unwrap());
        assert!(!text.contains("s3cr3t-t0ken"), "the URL's token leaked: {text}");
        assert!(d.error.is_some());
    }
    let shown =
        crosslogic_notify::views::ChannelView::from(notifications::get_channel(&env.db.pool, id).await.unwrap());
    assert!(!format!("{shown:?}").contains("s3cr3t"));
    env.db.drop_db().await;
}
