//! What the notification tests share: a migrated database with a tenant,
//! settings pointing at local receivers, a sender, and the official
//! Standard Webhooks verifier.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::Duration;

use crosslogic_config::Config;
use crosslogic_core::{Actor, ApiKeyStatus, NotificationChannel};
use crosslogic_db::repo::notifications::{self, DeliveryFilter};
use crosslogic_notify::channels::{self, CreateChannel, Policy};
use crosslogic_notify::deliver::Sender;
use crosslogic_notify::{fanout, NotifyConfig, Transport};
use crosslogic_testkit::{fixtures, TestDb};
use uuid::Uuid;

pub const OPEN: Policy = Policy { allow_private: true };

/// Settings with receivers on loopback and a schedule short enough to
/// retry within a test.
pub fn config(extra: &[(&str, &str)]) -> NotifyConfig {
    let mut vars: std::collections::HashMap<String, String> = [
        ("NOTIFY_ALLOW_PRIVATE_TARGETS", "true"),
        ("NOTIFY_RETRY_SCHEDULE", "0s,50ms,50ms"),
        ("NOTIFY_TIMEOUT", "2s"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut cfg = NotifyConfig::new(Config::from_vars(&vars).unwrap().notify);
    cfg.lease = Duration::from_secs(5);
    cfg
}

pub struct Env {
    pub db: TestDb,
    pub cfg: NotifyConfig,
    pub sender: Sender,
    pub tenant: Uuid,
    pub environment: Uuid,
}

impl Env {
    pub async fn start(cfg: NotifyConfig) -> Env {
        let db = TestDb::new().await;
        crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
        crosslogic_notify::operator::sync(&db.pool, &cfg.settings)
            .await
            .unwrap();
        let t = fixtures::tenant(&db.pool, "notify@acme.test").await;
        let env = fixtures::environment(
            &db.pool,
            crosslogic_db::repo::environments::NewEnvironment {
                tenant_id: t.id,
                name: "prod".into(),
                ..Default::default()
            },
        )
        .await;
        let transport = Transport::new(cfg.settings.timeout, true, cfg.settings.smtp.as_ref()).unwrap();
        let sender = Sender::new(db.pool.clone(), cfg.clone(), transport);
        Env {
            db,
            cfg,
            sender,
            tenant: t.id,
            environment: env.id,
        }
    }

    pub async fn channel(
        &self,
        kind: NotificationChannel,
        url: &str,
        events: Option<&[&str]>,
    ) -> (Uuid, Option<String>) {
        let input = CreateChannel {
            channel: kind,
            destination: url.to_owned(),
            event_types: events.map(|e| e.iter().map(|s| (*s).to_owned()).collect()),
            enabled: None,
        };
        let (c, secret) = channels::create_channel(&self.db.pool, &Actor::admin(None), self.tenant, input, OPEN)
            .await
            .unwrap();
        (c.id, secret)
    }

    /// Fans out, then sends until nothing is due right now.
    pub async fn pump(&self) {
        fanout::drain(&self.db.pool, &self.cfg).await.unwrap();
        while self.sender.deliver_once().await.unwrap() > 0 {}
    }

    /// Fans out and sends until `done` holds (bounded).
    pub async fn pump_until(
        &self,
        what: &str,
        done: impl Fn(&[notifications::Delivery]) -> bool,
    ) -> Vec<notifications::Delivery> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            self.pump().await;
            let all = notifications::list_deliveries(&self.db.pool, &DeliveryFilter::default(), 500)
                .await
                .unwrap();
            if done(&all) {
                return all;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {all:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates a key and revokes it: `apikey.created` then `apikey.revoked`.
    pub async fn revoke_a_key(&self) -> Uuid {
        let input = crosslogic_tenancy::CreateKey {
            environment_id: self.environment,
            name: None,
            role: None,
            user_id: None,
            rate_limit_requests_per_min: None,
            rate_limit_tokens_per_min: None,
            concurrency_limit: None,
            expires_at: None,
            metadata: None,
        };
        let created = crosslogic_tenancy::create_key(&self.db.pool, &Actor::admin(None), self.tenant, input)
            .await
            .unwrap();
        let key = created.key.id;
        crosslogic_tenancy::set_key_status(&self.db.pool, &Actor::admin(None), key, ApiKeyStatus::Revoked)
            .await
            .unwrap();
        key
    }
}

/// Verifies a recorded webhook with the official Python library.
pub fn verify_with_standardwebhooks(secret: &str, r: &crosslogic_testkit::receiver::Recorded) -> bool {
    crosslogic_testkit::receiver::standard_webhook_verifies(secret, r)
}
