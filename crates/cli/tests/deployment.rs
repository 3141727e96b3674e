//! The operator journey with the `local` provisioner: a deployment created
//! through the admin API is launched by the reconciler (engine + node agent
//! processes), registers, becomes active and serves a tenant's request; when
//! the node's processes die it is declared dead, terminated and replaced —
//! and the operator's Discord channel is told.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use crosslogic_core::{NodeStatus, Provider};
use crosslogic_db::repo::nodes;
use crosslogic_testkit::receiver::Receiver;
use crosslogic_testkit::TestDb;
use serde_json::json;

const TOKEN: &str = "deploy-e2e-admin-token-0123456789";

#[tokio::test]
async fn a_deployment_is_launched_locally_serves_requests_and_a_killed_node_is_replaced() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let discord = Receiver::start().await;
    let discord_url = format!("{}/api/webhooks/42/operator-token", discord.url);
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
            ("NOTIFY_DISCORD_WEBHOOK_URL", discord_url.as_str()),
            // Short silences so a killed node is declared dead within the test.
            ("NODE_UNHEALTHY_AFTER", "1s"),
            ("NODE_DEAD_AFTER", "2s"),
        ],
        &["--provisioner", "local"],
    )
    .unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/admin/v1/deployments"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "llama-local", "model_name": "llama-3-8b", "min_replicas": 1, "max_replicas": 1, "provider": "local" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let (_, _, secret, _) = common::tenant_with_key(&server, TOKEN, "us-east", json!({})).await;

    let chat = json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hello deployment" }], "max_tokens": 3 });
    let serves = || async {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let resp = http
                .post(server.url("/v1/chat/completions"))
                .bearer_auth(&secret)
                .json(&chat)
                .send()
                .await
                .unwrap();
            if resp.status() == 200 {
                return;
            }
            if Instant::now() > deadline {
                common::kill_local_nodes(&data.path().join("nodes"));
                panic!("the deployment never served a request (last status {})", resp.status());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    serves().await;
    let listed = nodes::list(&db.pool, &nodes::NodeFilter::default(), 10).await.unwrap();
    assert_eq!(listed.len(), 1, "exactly the one replica asked for");
    let node = &listed[0];
    assert_eq!((node.provider, node.status), (Provider::Local, NodeStatus::Active));
    assert!(
        node.deployment_id.is_some()
            && node
                .cluster_name
                .as_deref()
                .is_some_and(|c| c.starts_with("cic-local-")),
        "{node:?}"
    );
    let first = node.id;

    // The node's processes die: it is declared dead, terminated and replaced.
    common::kill_local_nodes(&data.path().join("nodes"));
    let all_nodes = nodes::NodeFilter {
        include_terminated: true,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = nodes::list(&db.pool, &all_nodes, 10).await.unwrap();
        let replaced = all.iter().any(|n| n.id != first && n.status == NodeStatus::Active);
        let old_gone = all
            .iter()
            .any(|n| n.id == first && matches!(n.status, NodeStatus::Dead | NodeStatus::Terminated));
        if replaced && old_gone {
            break;
        }
        if Instant::now() > deadline {
            common::kill_local_nodes(&data.path().join("nodes"));
            panic!("the killed node was not replaced: {all:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    serves().await;
    let live = nodes::list(&db.pool, &nodes::NodeFilter::default(), 10).await.unwrap();
    common::kill_local_nodes(&data.path().join("nodes"));
    assert_eq!(
        live.iter().filter(|n| n.status != NodeStatus::Dead).count(),
        1,
        "one live replica after the replacement"
    );

    let events: Vec<String> = sqlx::query_scalar("SELECT event_type FROM events ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e == "deployment.scaled"), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| *e == "node.dead").count(),
        1,
        "the death is reported once: {events:?}"
    );
    // The operator's Discord channel (warning and above) got the death.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let got = discord.received();
        if let Some(r) = got
            .iter()
            .find(|r| r.json()["embeds"][0]["footer"]["text"] == "node.dead")
        {
            break r.json();
        }
        assert!(
            Instant::now() < deadline,
            "no node.dead on the operator's Discord: {} messages",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        dead["embeds"][0]["title"].as_str().unwrap().contains("is dead"),
        "{dead}"
    );
    assert_eq!(discord.received()[0].path, "/api/webhooks/42/operator-token");
    assert!(server.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}
