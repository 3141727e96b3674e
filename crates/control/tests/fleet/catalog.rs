//! The seeded catalog and exact round trips of regions, models and GPU offers.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::*;
use crosslogic_testkit::TestDb;

#[tokio::test]
async fn the_seeded_catalog_is_visible_with_exact_prices() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db).await;
    let anonymous = admin.http.get(format!("{}/regions", admin.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let regions = admin.list("/regions").await;
    assert_eq!(regions.len(), 4);
    for (code, multiplier, milli) in [("in-mumbai", 0.7, 700), ("us-east", 1.0, 1000), ("eu-west", 1.1, 1100)] {
        let r = find(&regions, "code", code);
        assert_eq!(
            (r["cost_multiplier"].as_f64(), r["cost_multiplier_milli"].as_i64()),
            (Some(multiplier), Some(milli))
        );
        assert_eq!(r["cloud_providers"], json!(["aws", "gcp", "azure"]));
    }
    let (status, sg) = admin.get("/regions/ap-southeast").await;
    assert_eq!(
        (status, sg["cost_multiplier"].to_string().as_str()),
        (StatusCode::OK, "0.9")
    );
    assert_eq!(admin.get("/regions/atlantis").await.0, StatusCode::NOT_FOUND);

    let models = admin.list("/models").await;
    assert_eq!(models.len(), 6);
    let llama = find(&models, "name", "llama-3-8b");
    assert_eq!(llama["price_input_per_million"].to_string(), "0.05");
    assert_eq!(llama["price_input_microdollars_per_million"], 50_000);
    assert_eq!(
        (llama["type"].as_str(), llama["vram_required_gb"].as_i64()),
        (Some("chat"), Some(16))
    );
    assert_eq!(find(&models, "name", "bge-large-en")["type"], "embedding");
    let (status, big) = admin.get("/models/llama-3-70b").await;
    assert_eq!(
        (status, big["price_output_microdollars_per_million"].as_i64()),
        (StatusCode::OK, Some(600_000))
    );
    assert_eq!(admin.get("/models/nope").await.0, StatusCode::NOT_FOUND);

    let gpus = admin.list("/gpus").await;
    assert_eq!(gpus.len(), 15, "5 types × aws, gcp, azure");
    let a10g = gpus
        .iter()
        .find(|g| g["gpu_type"] == "A10G" && g["provider"] == "aws")
        .unwrap();
    assert_eq!(a10g["on_demand_usd_per_hour"].to_string(), "1.2");
    assert_eq!(a10g["on_demand_microdollars_per_hour"], 1_200_000);
    assert_eq!(
        (a10g["spot_usd_per_hour"].to_string(), a10g["vram_gb"].as_i64()),
        ("0.36".into(), Some(24))
    );
    assert_eq!(gpus[0]["gpu_type"], "L4", "cheapest on-demand first");
    db.drop_db().await;
}

#[tokio::test]
async fn regions_models_and_gpus_upsert_and_read_back_exactly() {
    let db = TestDb::new().await;
    let admin = Admin::start(&db).await;
    let region = json!({ "name": "US West", "country": "USA", "city": "Portland", "cloud_providers": ["aws", "local"],
                         "provider_regions": { "aws": "us-west-2" }, "cost_multiplier": 1.25, "status": "degraded" });
    let (status, put) = admin.put("/regions/us-west", region.clone()).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let (_, got) = admin.get("/regions/us-west").await;
    for key in [
        "name",
        "country",
        "city",
        "cloud_providers",
        "provider_regions",
        "cost_multiplier",
        "status",
    ] {
        assert_eq!(got[key], region[key], "{key}");
    }
    assert_eq!(got["cost_multiplier_milli"], 1250);
    let (_, mumbai) = admin
        .put(
            "/regions/in-mumbai",
            json!({ "name": "Mumbai", "country": "India", "city": "Mumbai",
                                           "cloud_providers": ["aws"], "cost_multiplier": "0.75" }),
        )
        .await;
    assert_eq!(
        (mumbai["cost_multiplier_milli"].as_i64(), mumbai["status"].as_str()),
        (Some(750), Some("active"))
    );
    assert_eq!(admin.list("/regions").await.len(), 5);
    for (patch, param) in [
        (json!({ "cost_multiplier": 0 }), "cost_multiplier"),
        (json!({ "cost_multiplier": 100.5 }), "cost_multiplier"),
        (json!({ "cost_multiplier": 0.7005 }), "cost_multiplier"),
        (json!({ "cost_multiplier": true }), "cost_multiplier"),
        (json!({ "cloud_providers": ["ibm"] }), "cloud_providers"),
        (json!({ "cloud_providers": [] }), "cloud_providers"),
        (json!({ "provider_regions": { "gcp": "us-west1" } }), "provider_regions"),
        (json!({ "name": "  " }), "name"),
        (json!({ "status": "sunny" }), "status"),
    ] {
        let mut body = region.clone();
        body.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        admin.refused(Method::PUT, "/regions/us-west", body, param).await;
    }
    admin
        .refused(Method::PUT, "/regions/US_West", region.clone(), "code")
        .await;
    let mut missing = region.clone();
    missing.as_object_mut().unwrap().remove("city");
    assert!(admin
        .refused(Method::PUT, "/regions/x", missing, "city")
        .await
        .contains("required"));

    let model = json!({ "family": "tiny", "size": "22M", "type": "embedding", "context_length": 512,
                        "vram_required_gb": 1, "price_input_per_million": 0.05, "price_output_per_million": "0.000001",
                        "tokens_per_second_capacity": 5000, "metadata": { "hf_model": "x/tiny" } });
    let (status, put) = admin.put("/models/tiny-embed", model.clone()).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let (_, got) = admin.get("/models/tiny-embed").await;
    assert_eq!(got["price_input_microdollars_per_million"], 50_000);
    assert_eq!(got["price_output_microdollars_per_million"], 1);
    assert_eq!(
        (got["price_input_per_million"].to_string(), got["status"].as_str()),
        ("0.05".into(), Some("active"))
    );
    for key in [
        "family",
        "size",
        "type",
        "context_length",
        "vram_required_gb",
        "tokens_per_second_capacity",
        "metadata",
    ] {
        assert_eq!(got[key], model[key], "{key}");
    }
    for (patch, param) in [
        (
            json!({ "price_input_per_million": 0.0000001 }),
            "price_input_per_million",
        ),
        (json!({ "price_output_per_million": -1 }), "price_output_per_million"),
        (json!({ "context_length": 0 }), "context_length"),
        (json!({ "vram_required_gb": 0 }), "vram_required_gb"),
        (json!({ "tokens_per_second_capacity": 0 }), "tokens_per_second_capacity"),
        (json!({ "type": "image" }), "type"),
        (json!({ "metadata": [] }), "metadata"),
    ] {
        let mut body = model.clone();
        body.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        admin.refused(Method::PUT, "/models/tiny-embed", body, param).await;
    }
    let (status, deprecated) = admin.post("/models/tiny-embed/deprecate", json!({})).await;
    assert_eq!(
        (status, deprecated["status"].as_str()),
        (StatusCode::OK, Some("deprecated"))
    );
    assert_eq!(
        admin.post("/models/tiny-embed/deprecate", json!({})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        admin.post("/models/nope/deprecate", json!({})).await.0,
        StatusCode::NOT_FOUND
    );

    let gpu = json!({ "vram_gb": 48, "on_demand_usd_per_hour": 1.8, "spot_usd_per_hour": null });
    let (status, put) = admin.put("/gpus/L40S/aws", gpu.clone()).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let gpus = admin.list("/gpus").await;
    assert_eq!(gpus.len(), 16);
    let l40s = find(&gpus, "gpu_type", "L40S");
    assert_eq!(
        (
            l40s["on_demand_microdollars_per_hour"].as_i64(),
            l40s["on_demand_usd_per_hour"].as_f64()
        ),
        (Some(1_800_000), Some(1.8))
    );
    assert_eq!(
        (l40s["spot_usd_per_hour"].is_null(), l40s["available"].as_bool()),
        (true, Some(true))
    );
    admin
        .refused(Method::PUT, "/gpus/L40S/ibm", gpu.clone(), "provider")
        .await;
    admin
        .refused(
            Method::PUT,
            "/gpus/L40S/aws",
            json!({ "vram_gb": 48, "on_demand_usd_per_hour": 1.23456 }),
            "on_demand_usd_per_hour",
        )
        .await;
    admin
        .refused(
            Method::PUT,
            "/gpus/L40S/aws",
            json!({ "vram_gb": 0, "on_demand_usd_per_hour": 1 }),
            "vram_gb",
        )
        .await;

    let events = event_types(&db, "").await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "region.updated",
            "region.updated",
            "model.updated",
            "model.deprecated",
            "gpu.updated"
        ]
    );
    assert!(
        events.iter().all(|(_, tenant)| tenant.is_none()),
        "catalog events are platform-level"
    );
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE actor = 'admin' AND tenant_id IS NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(audited, 5);
    db.drop_db().await;
}
