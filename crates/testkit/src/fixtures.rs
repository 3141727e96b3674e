//! Rows tests need again and again, created through the platform's own
//! repositories: a tenant, an environment, an API key, a routable node.

use crosslogic_core::{keys, ApiKeyRole, BillingPlan, NodeStatus, Provider};
use crosslogic_db::repo::api_keys::{self, KeyLimits, NewApiKey};
use crosslogic_db::repo::environments::{self, NewEnvironment};
use crosslogic_db::repo::{nodes, tenants};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// A serverless tenant with this email.
pub async fn tenant(pool: &PgPool, email: &str) -> tenants::Tenant {
    tenants::create(
        pool,
        &tenants::NewTenant {
            name: email.split('@').next().unwrap_or("tenant").to_owned(),
            email: email.to_owned(),
            billing_plan: BillingPlan::Serverless,
            stripe_customer_id: None,
            region_preferences: Vec::new(),
            metadata: json!({}),
        },
    )
    .await
    .expect("create tenant")
}

/// An environment of `tenant_id` with the data model's default limits.
pub async fn environment(pool: &PgPool, new: NewEnvironment) -> environments::Environment {
    environments::create(pool, &new).await.expect("create environment")
}

/// An API key (plaintext, id) with the given role and limits.
pub async fn api_key(
    pool: &PgPool,
    tenant_id: Uuid,
    environment_id: Uuid,
    role: ApiKeyRole,
    limits: KeyLimits,
) -> (String, Uuid) {
    let k = keys::generate(&mut rand::rngs::OsRng);
    let row = api_keys::create(
        pool,
        &NewApiKey {
            key_hash: k.hash,
            key_prefix: k.prefix,
            tenant_id,
            environment_id,
            user_id: None,
            name: "test".into(),
            role,
            rate_limit_tokens_per_min: limits.rate_limit_tokens_per_min,
            rate_limit_requests_per_min: limits.rate_limit_requests_per_min,
            concurrency_limit: limits.concurrency_limit,
            expires_at: limits.expires_at,
            metadata: json!({}),
        },
    )
    .await
    .expect("create api key");
    (k.plaintext, row.id)
}

/// An active local node serving `model` at `endpoint` in `region`.
pub async fn active_node(pool: &PgPool, endpoint: &str, model: &str, region: &str) -> Uuid {
    let n = nodes::create(
        pool,
        &nodes::NewNode {
            cluster_name: format!("cic-local-{region}-sim-od-{}", Uuid::new_v4().simple()),
            provider: Provider::Local,
            region_code: Some(region.to_owned()),
            instance_type: None,
            gpu_type: None,
            gpu_count: 0,
            vram_total_gb: None,
            model_name: model.to_owned(),
            deployment_id: None,
            spot_instance: false,
            agent_token_hash: None,
            metadata: json!({}),
        },
    )
    .await
    .expect("create node");
    nodes::register(pool, n.id, endpoint, None, None)
        .await
        .expect("register node");
    nodes::transition(pool, n.id, NodeStatus::Active, &[])
        .await
        .expect("activate node");
    n.id
}
