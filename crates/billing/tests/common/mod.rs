//! What the billing tests share: a migrated database with the seeded
//! catalog, billing settings as the process would read them, and usage
//! rows priced exactly as the gateway prices them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crosslogic_billing::BillingConfig;
use crosslogic_config::{BillingSettings, Config};
use crosslogic_core::{request_cost, Femtos, UsageStatus};
use crosslogic_db::repo::catalog::{self, Model, Region};
use crosslogic_db::repo::usage::UsageRecord;
use crosslogic_db::{migrate, PgPool};
use crosslogic_testkit::stripe::StripeStandIn;
use crosslogic_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

pub struct Ctx {
    pub db: TestDb,
    pub models: Vec<Model>,
    pub regions: Vec<Region>,
}

impl Ctx {
    pub async fn new() -> Ctx {
        let db = TestDb::new().await;
        migrate::migrate(&db.pool).await.unwrap();
        let models = catalog::list_models(&db.pool).await.unwrap();
        let regions = catalog::list_regions(&db.pool).await.unwrap();
        Ctx { db, models, regions }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// A usage row of `tenant` at `at`, costed as the gateway does.
    pub fn record(
        &self,
        tenant: Uuid,
        at: DateTime<Utc>,
        model: usize,
        region: usize,
        prompt: u32,
        completion: u32,
    ) -> UsageRecord {
        let m = &self.models[model % self.models.len()];
        let r = &self.regions[region % self.regions.len()];
        let cost = request_cost(
            u64::from(prompt),
            u64::from(completion),
            m.input_price(),
            m.output_price(),
            r.cost_multiplier_milli as u32,
        );
        UsageRecord {
            request_id: format!("req_{}", Uuid::new_v4().simple()),
            timestamp: at,
            tenant_id: tenant,
            environment_id: None,
            api_key_id: None,
            region_id: Some(r.id),
            model_id: Some(m.id),
            model_name: m.name.clone(),
            node_id: None,
            prompt_tokens: prompt as i32,
            completion_tokens: completion as i32,
            cached_tokens: 0,
            latency_ms: 10,
            cost_microdollars: cost.round_micros().0,
            cost_exact: cost,
            status: UsageStatus::Completed,
            metadata: json!({}),
        }
    }

    /// Σ tokens × price × region multiplier of `records`, computed here
    /// from the catalog (not with the platform's cost function).
    pub fn expected(&self, records: &[UsageRecord]) -> Femtos {
        let mut sum: i128 = 0;
        for r in records {
            let m = self.models.iter().find(|m| Some(m.id) == r.model_id).unwrap();
            let g = self.regions.iter().find(|g| Some(g.id) == r.region_id).unwrap();
            sum += (i128::from(r.prompt_tokens) * i128::from(m.price_input)
                + i128::from(r.completion_tokens) * i128::from(m.price_output))
                * i128::from(g.cost_multiplier_milli);
        }
        Femtos(sum)
    }
}

/// Rounded once, half up, to whole micro-dollars (computed here).
pub fn round_once(f: Femtos) -> i64 {
    ((f.0 + 500_000_000) / 1_000_000_000) as i64
}

/// Billing settings as `crosslogic serve` reads them, with `vars` on top.
pub fn settings(stripe: Option<&StripeStandIn>, vars: &[(&str, &str)]) -> BillingSettings {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("BILLING_SETTLE_DELAY".into(), "0s".into());
    if let Some(s) = stripe {
        env.extend(s.env());
    }
    for (k, v) in vars {
        env.insert((*k).into(), (*v).into());
    }
    Config::from_vars(&env).unwrap().billing
}

pub fn config(stripe: Option<&StripeStandIn>, vars: &[(&str, &str)]) -> BillingConfig {
    BillingConfig::new(settings(stripe, vars))
}

/// The start of the UTC hour `hours_ago` hours before now.
pub fn past_hour(hours_ago: i64) -> DateTime<Utc> {
    crosslogic_core::billing::hour_start(Utc::now()) - Duration::hours(hours_ago)
}

/// Events of `kind` in the outbox for `tenant` (or all when `None`).
pub async fn outbox(pool: &PgPool, kind: &str) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT payload FROM events WHERE event_type = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}
