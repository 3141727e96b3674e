//! Node listing filters and node detail.

use crosslogic_core::{HealthCheckStatus, NodeStatus, Provider};
use crosslogic_db::repo::nodes::{self, NewNode};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;
use crosslogic_testkit::TestDb;

fn node(cluster: &str, provider: Provider, region: Option<&str>, model: &str, deployment: Option<Uuid>) -> NewNode {
    NewNode {
        cluster_name: cluster.to_owned(),
        provider,
        region_code: region.map(str::to_owned),
        instance_type: None,
        gpu_type: Some("L4".to_owned()),
        gpu_count: 1,
        vram_total_gb: Some(24),
        model_name: model.to_owned(),
        deployment_id: deployment,
        spot_instance: true,
        agent_token_hash: Some(format!("agent-hash-of-{cluster}")),
        metadata: json!({}),
    }
}

#[tokio::test]
async fn nodes_are_listed_by_filter_and_shown_with_recent_health_checks() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db).await;
    let (_, d) = admin
        .post("/deployments", json!({ "name": "llama", "model_name": "llama-3-8b" }))
        .await;
    let dep: Uuid = d["id"].as_str().unwrap().parse().unwrap();
    let p = &db.pool;
    let n1 = nodes::create(p, &node("c1", Provider::Aws, Some("us-east"), "llama-3-8b", Some(dep)))
        .await
        .unwrap();
    let n2 = nodes::create(p, &node("c2", Provider::Gcp, Some("eu-west"), "mistral-7b", None))
        .await
        .unwrap();
    let n3 = nodes::create(p, &node("c3", Provider::Local, None, "llama-3-8b", None))
        .await
        .unwrap();
    let n4 = nodes::create(p, &node("c4", Provider::Aws, Some("eu-west"), "llama-3-8b", None))
        .await
        .unwrap();
    nodes::transition(p, n3.id, NodeStatus::Terminated, &[])
        .await
        .unwrap()
        .unwrap();
    nodes::transition(p, n4.id, NodeStatus::Active, &[])
        .await
        .unwrap()
        .unwrap();

    let clusters = |items: Vec<Value>| {
        let mut c: Vec<String> = items
            .iter()
            .map(|n| n["cluster_name"].as_str().unwrap().to_owned())
            .collect();
        c.sort();
        c
    };
    for (query, expected) in [
        ("", vec!["c1", "c2", "c4"]),
        ("?include_terminated=true", vec!["c1", "c2", "c3", "c4"]),
        ("?status=terminated", vec!["c3"]),
        ("?status=active", vec!["c4"]),
        ("?model=llama-3-8b", vec!["c1", "c4"]),
        ("?region=eu-west", vec!["c2", "c4"]),
        (&format!("?deployment_id={dep}"), vec!["c1"]),
        ("?provider=gcp", vec!["c2"]),
        ("?status=active&region=us-east", vec![]),
        ("?model=llama-3-8b&provider=aws&region=eu-west", vec!["c4"]),
    ] {
        assert_eq!(
            clusters(admin.list(&format!("/nodes{query}")).await),
            expected,
            "{query}"
        );
    }
    assert_eq!(admin.list("/nodes?limit=1").await.len(), 1);
    assert_eq!(
        admin.get("/nodes?status=sleeping").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (_, all) = admin.get("/nodes?include_terminated=true").await;
    assert!(
        !all.to_string().contains("agent-hash-of"),
        "the agent credential hash leaks"
    );
    assert!(all["data"][0].get("agent_token_hash").is_none());

    for i in 0..25 {
        let status = if i % 2 == 0 {
            HealthCheckStatus::Healthy
        } else {
            HealthCheckStatus::Unhealthy
        };
        nodes::record_health_check(p, n1.id, status, Some(i), None, &json!({ "i": i }))
            .await
            .unwrap();
    }
    let (status, detail) = admin.get(&format!("/nodes/{}", n1.id)).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(
        (detail["cluster_name"].as_str(), detail["region_code"].as_str()),
        (Some("c1"), Some("us-east"))
    );
    assert_eq!(detail["deployment_id"], json!(dep));
    let checks = detail["health_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 20);
    assert_eq!(
        (checks[0]["details"]["i"].as_i64(), checks[19]["details"]["i"].as_i64()),
        (Some(24), Some(5)),
        "newest first"
    );
    assert!(!detail.to_string().contains("agent-hash-of"));
    let (_, quiet) = admin.get(&format!("/nodes/{}", n2.id)).await;
    assert_eq!(quiet["health_checks"], json!([]));
    assert_eq!(
        admin.get(&format!("/nodes/{}", Uuid::new_v4())).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(admin.get("/nodes/not-a-uuid").await.0, StatusCode::NOT_FOUND);
    db.drop_db().await;
}
