//! Each provider's own behaviour: Discord's 429 body and rate-limit
//! headers and its 404 for a deleted webhook, Slack's pace and its
//! `channel_is_archived`, and email over real SMTP (the `aiosmtpd` server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use crosslogic_core::{DeliveryStatus, NotificationChannel};
use crosslogic_db::repo::notifications;
use crosslogic_testkit::receiver::{Receiver, Reply};
use support::{config, Env};

#[tokio::test]
async fn discord_rate_limits_are_honoured_and_a_deleted_webhook_disables_the_channel() {
    let env = Env::start(config(&[])).await;
    let discord = Receiver::start().await;
    discord.reply_next([
        Reply::Full(
            429,
            vec![("content-type".into(), "application/json".into())],
            r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#.into(),
        ),
        Reply::Full(
            204,
            vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset-after".into(), "0.4".into()),
            ],
            String::new(),
        ),
    ]);
    let url = format!("{}/api/webhooks/123/secret-token", discord.url);
    let (id, secret) = env
        .channel(NotificationChannel::Discord, &url, Some(&["apikey.revoked"]))
        .await;
    assert!(secret.is_none(), "only webhook channels are signed");
    env.revoke_a_key().await;
    let all = env
        .pump_until("sent after the 429", |d| {
            d.iter().any(|d| d.status == DeliveryStatus::Sent)
        })
        .await;
    let attempts = notifications::attempts(&env.db.pool, all[0].id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[1].started_at >= attempts[0].started_at + chrono::Duration::milliseconds(1500),
        "the JSON retry_after (1.5 s) was waited: {attempts:?}"
    );
    let body = discord.received()[1].json();
    let embed = &body["embeds"][0];
    assert_eq!(body["username"], "CrossLogic");
    assert!(embed["title"].as_str().unwrap().contains("was revoked"), "{embed}");
    assert_eq!(embed["color"], 0xf39c12, "warning colour");
    assert!(embed["fields"].as_array().unwrap().len() <= 25);

    // The bucket is empty (remaining 0): the next message waits for its reset.
    discord.reply_always(Reply::Status(404));
    env.revoke_a_key().await;
    env.pump_until("the deleted webhook's delivery failed", |d| {
        d.iter().any(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    let got = discord.received();
    assert!(
        got[2].at >= got[1].at + Duration::from_millis(400),
        "x-ratelimit-reset-after was waited"
    );
    let c = notifications::get_channel(&env.db.pool, id).await.unwrap();
    assert!(!c.enabled, "Discord's 404 means the webhook was deleted");
    let shown = crosslogic_notify::views::ChannelView::from(c);
    assert_eq!(shown.destination, format!("{}/…", discord.url), "the token never shows");
    env.db.drop_db().await;
}

#[tokio::test]
async fn slack_gets_at_most_a_message_a_second_and_an_archived_channel_is_permanent() {
    let env = Env::start(config(&[])).await;
    let slack = Receiver::start().await;
    env.channel(
        NotificationChannel::Slack,
        &format!("{}/services/T/B/x", slack.url),
        Some(&["apikey.*"]),
    )
    .await;
    env.revoke_a_key().await;
    env.pump_until("both sent", |d| {
        d.iter().filter(|d| d.status == DeliveryStatus::Sent).count() == 2
    })
    .await;
    let got = slack.received();
    assert_eq!(got.len(), 2);
    assert!(
        got[1].at >= got[0].at + Duration::from_secs(1),
        "one message per second per webhook"
    );
    let body = got[0].json();
    assert!(body["text"].is_string() && body["blocks"].is_array(), "{body}");

    slack.reply_always(Reply::Full(404, vec![], "channel_is_archived".into()));
    env.revoke_a_key().await;
    env.pump_until("failed for good", |d| {
        d.iter().any(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    let channels = notifications::list_channels(&env.db.pool, Some(env.tenant))
        .await
        .unwrap();
    assert!(!channels[0].enabled);
    assert!(channels[0]
        .disabled_reason
        .as_deref()
        .unwrap()
        .contains("channel_is_archived"));
    env.db.drop_db().await;
}

/// A real SMTP server (`aiosmtpd`) storing messages in a Maildir.
struct Smtp {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let python = std::env::var("CROSSLOGIC_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = std::process::Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("mail"))
            .spawn()
            .expect("aiosmtpd (scripts/test.sh installs it)");
        Smtp { child, port, maildir }
    }

    async fn wait_listening(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "aiosmtpd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn messages(&self) -> Vec<String> {
        let dir = self.maildir.path().join("mail").join("new");
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn email_goes_out_over_real_smtp_with_text_and_html_parts() {
    let smtp = Smtp::start();
    smtp.wait_listening().await;
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let env = Env::start(config(&[
        ("SMTP_URL", &url),
        ("SMTP_FROM", "CrossLogic <alerts@crosslogic.test>"),
        ("NOTIFY_EMAIL_TO", "ops@acme.test,oncall@acme.test"),
        ("NOTIFY_MIN_SEVERITY", "warning"),
    ]))
    .await;
    env.revoke_a_key().await;
    env.pump_until("the operator's email went out", |d| {
        d.iter()
            .any(|d| d.status == DeliveryStatus::Sent && d.event_type == "apikey.revoked")
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mail = loop {
        if let Some(m) = smtp.messages().into_iter().next() {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no mail in the Maildir");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(mail.contains("Subject: [CrossLogic] apikey.revoked"), "{mail}");
    assert!(mail.contains("notify"), "the tenant is named: {mail}");
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "{mail}");
    assert!(
        mail.contains("ops@acme.test") && mail.contains("oncall@acme.test"),
        "{mail}"
    );
    env.db.drop_db().await;
}
