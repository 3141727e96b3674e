//! Deployment validation, lifecycle and events.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;
use crosslogic_testkit::TestDb;

#[tokio::test]
async fn every_invalid_deployment_is_refused_naming_its_field() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db).await;
    without_example_deployment(&db).await;
    admin.post("/models/gemma-7b/deprecate", json!({})).await;
    let base = json!({ "name": "llama-prod", "model_name": "llama-3-8b" });
    let cases = [
        (json!({ "name": "Llama_Prod" }), "name"),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(64) }), "name"),
        (json!({ "model_name": "gpt-17" }), "model_name"),
        (json!({ "model_name": "gemma-7b" }), "model_name"),
        (json!({ "min_replicas": -1 }), "min_replicas"),
        (json!({ "min_replicas": "two" }), "min_replicas"),
        (json!({ "max_replicas": 0 }), "max_replicas"),
        (json!({ "min_replicas": 5, "max_replicas": 3 }), "min_replicas"),
        (json!({ "strategy": "diagonal" }), "strategy"),
        (json!({ "provider": "ibm" }), "provider"),
        (json!({ "region": "atlantis" }), "region"),
        (json!({ "region": "us-east", "provider": "local" }), "provider"),
        (json!({ "gpu_type": "TPU-v5" }), "gpu_type"),
        (json!({ "gpu_type": "H100", "provider": "oci" }), "gpu_type"),
        (json!({ "gpu_count": 0 }), "gpu_count"),
        (json!({ "gpu_count": 9 }), "gpu_count"),
        (
            json!({ "model_name": "llama-3-70b", "gpu_type": "A10G", "gpu_count": 1 }),
            "gpu_count",
        ),
        (json!({ "use_spot": "yes" }), "use_spot"),
        (json!({ "capacity_policy": "cheap" }), "capacity_policy"),
        (json!({ "capacity_policy": "hedged", "use_spot": false }), "use_spot"),
        (json!({ "capacity_policy": "on_demand", "use_spot": true }), "use_spot"),
        (
            json!({ "capacity_policy": "spot", "on_demand_base": 1 }),
            "on_demand_base",
        ),
        (json!({ "spot_overprovision": 2 }), "spot_overprovision"),
        (
            json!({ "capacity_policy": "hedged", "spot_overprovision": 101 }),
            "spot_overprovision",
        ),
        (
            json!({ "capacity_policy": "hedged", "on_demand_base": -1 }),
            "on_demand_base",
        ),
        (
            json!({ "capacity_policy": "hedged", "max_replicas": 3, "on_demand_base": 4 }),
            "on_demand_base",
        ),
        (json!({ "metadata": [1] }), "metadata"),
    ];
    for (patch, param) in cases {
        let mut body = base.clone();
        body.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        let message = admin.refused(Method::POST, "/deployments", body, param).await;
        assert!(message.starts_with(&format!("{param}: ")), "{message}");
    }
    let msg = admin
        .refused(Method::POST, "/deployments", json!({ "name": "x" }), "model_name")
        .await;
    assert!(msg.contains("required"), "{msg}");
    let msg = admin
        .refused(
            Method::POST,
            "/deployments",
            json!({ "name": "x", "model_name": "llama-3-70b", "gpu_type": "A10G", "gpu_count": 2 }),
            "gpu_count",
        )
        .await;
    assert!(msg.contains("gpu_count 4"), "{msg}");

    let (status, created) = admin.post("/deployments", base.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, dup) = admin.post("/deployments", base).await;
    assert_eq!(
        (status, dup["error"]["param"].as_str()),
        (StatusCode::CONFLICT, Some("name"))
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "a refused request wrote a deployment");
    db.drop_db().await;
}

#[tokio::test]
async fn deployments_go_through_their_lifecycle_and_publish_events() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db).await;
    without_example_deployment(&db).await;
    let (status, d) = admin
        .post(
            "/deployments",
            json!({ "name": "llama-8b", "model_name": "llama-3-8b", "min_replicas": 2, "max_replicas": 6 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(
        (d["strategy"].as_str(), d["gpu_type"].as_str(), d["use_spot"].as_bool()),
        (Some("spread"), Some("auto"), Some(true))
    );
    assert_eq!(
        (
            d["status"].as_str(),
            d["current_replicas"].as_i64(),
            d["region"].is_null()
        ),
        (Some("active"), Some(0), true)
    );
    let id = d["id"].as_str().unwrap().to_owned();
    let (status, packed) = admin
        .post(
            "/deployments",
            json!({ "name": "mistral-eu", "model_name": "mistral-7b", "strategy": "packed", "region": "eu-west",
                                      "provider": "aws", "gpu_type": "a10g", "gpu_count": 1, "use_spot": false }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{packed}");
    assert_eq!(
        (
            packed["gpu_type"].as_str(),
            packed["provider"].as_str(),
            packed["region"].as_str()
        ),
        (Some("A10G"), Some("aws"), Some("eu-west"))
    );

    let (status, got) = admin.get(&format!("/deployments/{id}")).await;
    assert_eq!((status, got["name"].as_str()), (StatusCode::OK, Some("llama-8b")));
    assert_eq!(
        admin.get(&format!("/deployments/{}", Uuid::new_v4())).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(admin.get("/deployments/not-a-uuid").await.0, StatusCode::NOT_FOUND);
    let names: Vec<Value> = admin
        .list("/deployments")
        .await
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, [json!("llama-8b"), json!("mistral-eu")]);

    let path = format!("/deployments/{id}");
    let msg = admin
        .refused(Method::PATCH, &path, json!({ "min_replicas": 8 }), "min_replicas")
        .await;
    assert!(msg.contains("max_replicas (6)"), "{msg}");
    admin
        .refused(Method::PATCH, &path, json!({ "max_replicas": 1 }), "max_replicas")
        .await;
    admin
        .refused(Method::PATCH, &path, json!({ "gpu_type": "TPU-v5" }), "gpu_type")
        .await;
    admin
        .refused(Method::PATCH, &path, json!({ "strategy": "diagonal" }), "strategy")
        .await;
    let (status, patched) = admin
        .patch(
            &path,
            json!({ "min_replicas": 3, "max_replicas": 8, "strategy": "packed", "use_spot": false, "gpu_type": "l4" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["min_replicas"].as_i64(), patched["max_replicas"].as_i64()),
        (Some(3), Some(8))
    );
    assert_eq!(
        (
            patched["strategy"].as_str(),
            patched["gpu_type"].as_str(),
            patched["use_spot"].as_bool()
        ),
        (Some("packed"), Some("L4"), Some(false))
    );

    let (status, paused) = admin.post(&format!("{path}/pause"), json!({})).await;
    assert_eq!((status, paused["status"].as_str()), (StatusCode::OK, Some("paused")));
    assert_eq!(
        admin.post(&format!("{path}/pause"), json!({})).await.0,
        StatusCode::OK,
        "pausing twice is harmless"
    );
    assert_eq!(admin.list("/deployments?status=paused").await.len(), 1);
    let (status, resumed) = admin.post(&format!("{path}/resume"), json!({})).await;
    assert_eq!((status, resumed["status"].as_str()), (StatusCode::OK, Some("active")));
    let (status, deleted) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!((status, deleted["status"].as_str()), (StatusCode::OK, Some("deleted")));
    assert!(deleted["deleted_at"].is_string());
    let listed = admin.list("/deployments").await;
    assert_eq!(
        (listed.len(), listed[0]["name"].as_str()),
        (1, Some("mistral-eu")),
        "deleted ones are hidden"
    );
    assert_eq!(admin.list("/deployments?status=deleted").await.len(), 1);
    assert_eq!(admin.get(&path).await.1["status"], "deleted");
    assert_eq!(
        admin.post(&format!("{path}/resume"), json!({})).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        admin.patch(&path, json!({ "max_replicas": 9 })).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, StatusCode::OK);
    let (status, reuse) = admin
        .post(
            "/deployments",
            json!({ "name": "llama-8b", "model_name": "llama-3-8b" }),
        )
        .await;
    assert_eq!(
        (status, reuse["error"]["param"].as_str()),
        (StatusCode::CONFLICT, Some("name"))
    );
    assert_eq!(
        admin.get("/deployments?status=bogus").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let events: Vec<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT event_type, tenant_id FROM events WHERE payload->>'deployment_id' = $1 ORDER BY id")
            .bind(&id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "deployment.created",
            "deployment.updated",
            "deployment.paused",
            "deployment.resumed",
            "deployment.deleted"
        ]
    );
    assert!(events.iter().all(|(_, tenant)| tenant.is_none()));
    assert_eq!(
        event_types(&db, "deployment.").await.len(),
        6,
        "plus mistral-eu's creation"
    );
    let changes: Value =
        sqlx::query_scalar("SELECT payload->'changes' FROM events WHERE event_type = 'deployment.updated'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        changes,
        json!({ "min_replicas": 3, "max_replicas": 8, "strategy": "packed", "use_spot": false,
                "capacity_policy": "on_demand", "gpu_type": "L4" })
    );
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE resource_type = 'deployment' AND resource_id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(audited, 5);
    db.drop_db().await;
}

#[tokio::test]
async fn the_seeded_example_deployment_is_paused_and_asks_for_nothing() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db).await;
    let listed = admin.list("/deployments").await;
    let example = find(&listed, "name", "example-llama-3-8b-paused");
    assert_eq!(example["status"], "paused");
    assert_eq!(
        example["min_replicas"], 0,
        "resumed, it launches nothing until there is load"
    );
    assert_eq!(example["metadata"]["example"], true);
    // The seed's verification step shows it.
    let row: (String,) = sqlx::query_as("SELECT name FROM deployments LIMIT 1")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(row.0, "example-llama-3-8b-paused");
    db.drop_db().await;
}
