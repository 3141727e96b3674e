//! The demo platform `crosslogic serve --demo` brings up on an empty
//! database: a tenant with an environment and a developer key, and two
//! deployments served by local simulator nodes — a chat model and an
//! embedding model — so a newcomer can call the API at once.
//!
//! Idempotent across restarts: a database that already holds the demo
//! tenant is reused as it is (the key's secret, shown once at creation, is
//! not shown again); a database holding anything else is refused, so
//! `--demo` never adds demo objects to a real platform.

use crosslogic_core::{Actor, ServiceError};
use crosslogic_db::repo::tenants::Tenant;
use crosslogic_db::PgPool;
use serde_json::json;
use uuid::Uuid;

/// The demo tenant's email: how a later start recognises its own demo.
pub const DEMO_EMAIL: &str = "demo@crosslogic.local";
/// The chat model the demo deploys.
pub const CHAT_MODEL: &str = "llama-3-8b";
/// The embedding model the demo deploys.
pub const EMBEDDING_MODEL: &str = "bge-large-en";

/// What the demo consists of.
#[derive(Debug, Clone)]
pub struct Demo {
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    /// The demo key's visible prefix (`cl_xxxxxxxx`).
    pub key_prefix: String,
    /// The key's secret: only when this start created it.
    pub key_secret: Option<String>,
    /// Whether this start created the demo.
    pub created: bool,
}

fn input<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ServiceError> {
    serde_json::from_value(v).map_err(ServiceError::internal)
}

/// The demo of this database, created when the database is empty.
pub async fn bootstrap(pool: &PgPool) -> Result<Demo, ServiceError> {
    let actor = Actor::system("demo");
    let (tenants, _) = crosslogic_tenancy::list_tenants(pool, None, None, None, Some(2)).await?;
    if let Some(demo) = tenants.iter().find(|t| t.email == DEMO_EMAIL) {
        if tenants.len() == 1 {
            return existing(pool, demo).await;
        }
    }
    // The seeded example deployment (paused, metadata.example) is not
    // somebody's platform.
    let deployments: Vec<_> = crate::fleet::list_deployments(pool, None)
        .await?
        .into_iter()
        .filter(|d| d.metadata.get("example").and_then(serde_json::Value::as_bool) != Some(true))
        .collect();
    if !tenants.is_empty() || !deployments.is_empty() {
        return Err(ServiceError::State(format!(
            "--demo only runs on an empty database or one it set up itself, and this one already has {} \
             tenant(s) and {} deployment(s); run `crosslogic serve` without --demo, or point \
             CROSSLOGIC_DATA_DIR (or DATABASE_URL) at a fresh one",
            tenants.len(),
            deployments.len()
        )));
    }
    let tenant = crosslogic_tenancy::create_tenant(
        pool,
        &actor,
        input(json!({"name": "Demo", "email": DEMO_EMAIL, "metadata": {"demo": true}}))?,
        None,
    )
    .await?;
    let env = crosslogic_tenancy::create_environment(
        pool,
        &actor,
        tenant.id,
        input(json!({"name": "demo", "region": "us-east"}))?,
    )
    .await?;
    let key = crosslogic_tenancy::create_key(
        pool,
        &actor,
        tenant.id,
        input(json!({"environment_id": env.id, "name": "demo", "role": "developer"}))?,
    )
    .await?;
    for (name, model, max) in [("demo-chat", CHAT_MODEL, 2), ("demo-embeddings", EMBEDDING_MODEL, 1)] {
        crate::fleet::create_deployment(
            pool,
            &actor,
            input(json!({
                "name": name,
                "model_name": model,
                "min_replicas": 1,
                "max_replicas": max,
                "provider": "local",
            }))?,
        )
        .await?;
    }
    Ok(Demo {
        tenant_id: tenant.id,
        environment_id: env.id,
        key_prefix: key.key.key_prefix.clone(),
        key_secret: Some(key.key_secret),
        created: true,
    })
}

async fn existing(pool: &PgPool, tenant: &Tenant) -> Result<Demo, ServiceError> {
    let envs = crosslogic_tenancy::list_environments(pool, tenant.id).await?;
    let env = envs.first().ok_or(ServiceError::NotFound("demo environment"))?;
    let keys = crosslogic_tenancy::list_keys(pool, tenant.id, Some(env.id)).await?;
    Ok(Demo {
        tenant_id: tenant.id,
        environment_id: env.id,
        key_prefix: keys.last().map(|k| k.key_prefix.clone()).unwrap_or_default(),
        key_secret: None,
        created: false,
    })
}
