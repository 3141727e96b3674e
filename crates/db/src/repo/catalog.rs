//! The catalog: `regions`, `models`, `gpu_types` + `gpu_prices`.
//!
//! Decimal columns are converted in SQL to integers so no float touches
//! money: prices become micro-dollars per million tokens (or per hour), the
//! region multiplier becomes thousandths.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crosslogic_core::{ModelStatus, ModelType, PricePerMillion, Provider, RegionStatus};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `regions`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Region {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub country: String,
    pub city: String,
    /// Clouds (or `on-prem`/`local`) that serve the region.
    #[sqlx(json)]
    pub cloud_providers: Vec<Provider>,
    /// Provider → that cloud's region name (`{"aws": "us-east-1"}`).
    #[sqlx(json)]
    pub provider_regions: BTreeMap<String, String>,
    /// `cost_multiplier` × 1000 (0.7 → 700).
    pub cost_multiplier_milli: i32,
    #[sqlx(try_from = "String")]
    pub status: RegionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! region_columns {
    () => {
        "id, code, name, country, city, cloud_providers, provider_regions, \
         round(cost_multiplier * 1000)::int AS cost_multiplier_milli, status, created_at, updated_at"
    };
}

/// All regions by code.
pub async fn list_regions(db: impl PgExecutor<'_>) -> DbResult<Vec<Region>> {
    Ok(
        sqlx::query_as(concat!("SELECT ", region_columns!(), " FROM regions ORDER BY code"))
            .fetch_all(db)
            .await?,
    )
}

/// One region by code.
pub async fn get_region(db: impl PgExecutor<'_>, code: &str) -> DbResult<Region> {
    sqlx::query_as(concat!("SELECT ", region_columns!(), " FROM regions WHERE code = $1"))
        .bind(code)
        .fetch_optional(db)
        .await
        .or_not_found("region")
}

/// A region to create or replace.
#[derive(Debug, Clone)]
pub struct RegionSpec {
    pub code: String,
    pub name: String,
    pub country: String,
    pub city: String,
    pub cloud_providers: Vec<Provider>,
    pub provider_regions: BTreeMap<String, String>,
    pub cost_multiplier_milli: i32,
    pub status: RegionStatus,
}

/// Creates a region, or updates the one with the same code.
pub async fn upsert_region(db: impl PgExecutor<'_>, r: &RegionSpec) -> DbResult<Region> {
    let providers: Vec<&str> = r.cloud_providers.iter().map(|p| p.as_str()).collect();
    Ok(sqlx::query_as(concat!(
        "INSERT INTO regions (code, name, country, city, cloud_providers, provider_regions, cost_multiplier, status)
         VALUES ($1, $2, $3, $4, to_jsonb($5::text[]), $6, $7::numeric / 1000, $8)
         ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country, city = EXCLUDED.city,
                cloud_providers = EXCLUDED.cloud_providers, provider_regions = EXCLUDED.provider_regions,
                cost_multiplier = EXCLUDED.cost_multiplier, status = EXCLUDED.status
         RETURNING ",
        region_columns!()
    ))
    .bind(&r.code)
    .bind(&r.name)
    .bind(&r.country)
    .bind(&r.city)
    .bind(providers)
    .bind(Json(&r.provider_regions))
    .bind(r.cost_multiplier_milli)
    .bind(r.status.as_str())
    .fetch_one(db)
    .await?)
}

/// A row of `models`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Model {
    pub id: Uuid,
    pub name: String,
    pub family: String,
    pub size: String,
    #[sqlx(rename = "type", try_from = "String")]
    pub model_type: ModelType,
    pub context_length: i32,
    pub vram_required_gb: i32,
    /// Micro-dollars per million input tokens (`price_input_per_million` × 10⁶).
    pub price_input: i64,
    /// Micro-dollars per million output tokens.
    pub price_output: i64,
    pub tokens_per_second_capacity: i32,
    #[sqlx(try_from = "String")]
    pub status: ModelStatus,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Model {
    /// Input price as a typed value.
    pub fn input_price(&self) -> PricePerMillion {
        PricePerMillion(self.price_input)
    }

    /// Output price as a typed value.
    pub fn output_price(&self) -> PricePerMillion {
        PricePerMillion(self.price_output)
    }
}

macro_rules! model_columns {
    () => {
        "id, name, family, size, type, context_length, vram_required_gb, \
         round(price_input_per_million * 1000000)::bigint AS price_input, \
         round(price_output_per_million * 1000000)::bigint AS price_output, \
         tokens_per_second_capacity, status, metadata, created_at, updated_at"
    };
}

/// All models by name.
pub async fn list_models(db: impl PgExecutor<'_>) -> DbResult<Vec<Model>> {
    Ok(
        sqlx::query_as(concat!("SELECT ", model_columns!(), " FROM models ORDER BY name"))
            .fetch_all(db)
            .await?,
    )
}

/// One model by name.
pub async fn get_model(db: impl PgExecutor<'_>, name: &str) -> DbResult<Model> {
    sqlx::query_as(concat!("SELECT ", model_columns!(), " FROM models WHERE name = $1"))
        .bind(name)
        .fetch_optional(db)
        .await
        .or_not_found("model")
}

/// A model to create or replace.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub family: String,
    pub size: String,
    pub model_type: ModelType,
    pub context_length: i32,
    pub vram_required_gb: i32,
    pub price_input: PricePerMillion,
    pub price_output: PricePerMillion,
    pub tokens_per_second_capacity: i32,
    pub status: ModelStatus,
    pub metadata: Value,
}

/// Creates a model, or updates the one with the same name.
pub async fn upsert_model(db: impl PgExecutor<'_>, m: &ModelSpec) -> DbResult<Model> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO models (name, family, size, type, context_length, vram_required_gb, price_input_per_million,
                             price_output_per_million, tokens_per_second_capacity, status, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7::numeric / 1000000, $8::numeric / 1000000, $9, $10, $11)
         ON CONFLICT (name) DO UPDATE SET family = EXCLUDED.family, size = EXCLUDED.size, type = EXCLUDED.type,
                context_length = EXCLUDED.context_length, vram_required_gb = EXCLUDED.vram_required_gb,
                price_input_per_million = EXCLUDED.price_input_per_million,
                price_output_per_million = EXCLUDED.price_output_per_million,
                tokens_per_second_capacity = EXCLUDED.tokens_per_second_capacity,
                status = EXCLUDED.status, metadata = EXCLUDED.metadata
         RETURNING ",
        model_columns!()
    ))
    .bind(&m.name)
    .bind(&m.family)
    .bind(&m.size)
    .bind(m.model_type.as_str())
    .bind(m.context_length)
    .bind(m.vram_required_gb)
    .bind(m.price_input.0)
    .bind(m.price_output.0)
    .bind(m.tokens_per_second_capacity)
    .bind(m.status.as_str())
    .bind(&m.metadata)
    .fetch_one(db)
    .await?)
}

/// Sets a model's status (e.g. deprecate it).
pub async fn set_model_status(db: impl PgExecutor<'_>, name: &str, status: ModelStatus) -> DbResult<Model> {
    sqlx::query_as(concat!(
        "UPDATE models SET status = $2 WHERE name = $1 RETURNING ",
        model_columns!()
    ))
    .bind(name)
    .bind(status.as_str())
    .fetch_optional(db)
    .await
    .or_not_found("model")
}

/// One GPU type's price at one provider (a row of the catalog view).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GpuOffer {
    pub gpu_type: String,
    pub vram_gb: i32,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    /// Micro-dollars per GPU-hour, on demand.
    pub on_demand_microdollars_per_hour: i64,
    /// Micro-dollars per GPU-hour on spot; `None` = no spot offer.
    pub spot_microdollars_per_hour: Option<i64>,
    pub available: bool,
}

/// The GPU catalog: every type × provider, cheapest on-demand first.
pub async fn gpu_catalog(db: impl PgExecutor<'_>) -> DbResult<Vec<GpuOffer>> {
    Ok(sqlx::query_as(
        "SELECT t.name AS gpu_type, t.vram_gb, p.provider,
                round(p.on_demand_usd_per_hour * 1000000)::bigint AS on_demand_microdollars_per_hour,
                round(p.spot_usd_per_hour * 1000000)::bigint AS spot_microdollars_per_hour,
                p.available
           FROM gpu_types t JOIN gpu_prices p ON p.gpu_type_id = t.id
          ORDER BY p.on_demand_usd_per_hour, t.name, p.provider",
    )
    .fetch_all(db)
    .await?)
}

/// Creates or updates a GPU type and its price at one provider.
pub async fn upsert_gpu_offer(db: impl PgExecutor<'_>, offer: &GpuOffer) -> DbResult<GpuOffer> {
    Ok(sqlx::query_as(
        "WITH t AS (
            INSERT INTO gpu_types (name, vram_gb) VALUES ($1, $2)
            ON CONFLICT (name) DO UPDATE SET vram_gb = EXCLUDED.vram_gb
            RETURNING id, name, vram_gb
         ), p AS (
            INSERT INTO gpu_prices (gpu_type_id, provider, on_demand_usd_per_hour, spot_usd_per_hour, available)
            SELECT t.id, $3, $4::numeric / 1000000, $5::numeric / 1000000, $6 FROM t
            ON CONFLICT (gpu_type_id, provider) DO UPDATE SET on_demand_usd_per_hour = EXCLUDED.on_demand_usd_per_hour,
                   spot_usd_per_hour = EXCLUDED.spot_usd_per_hour, available = EXCLUDED.available
            RETURNING provider, on_demand_usd_per_hour, spot_usd_per_hour, available
         )
         SELECT t.name AS gpu_type, t.vram_gb, p.provider,
                round(p.on_demand_usd_per_hour * 1000000)::bigint AS on_demand_microdollars_per_hour,
                round(p.spot_usd_per_hour * 1000000)::bigint AS spot_microdollars_per_hour, p.available
           FROM t, p",
    )
    .bind(&offer.gpu_type)
    .bind(offer.vram_gb)
    .bind(offer.provider.as_str())
    .bind(offer.on_demand_microdollars_per_hour)
    .bind(offer.spot_microdollars_per_hour)
    .bind(offer.available)
    .fetch_one(db)
    .await?)
}
