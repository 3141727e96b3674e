//! The model catalog.

use chrono::{DateTime, Utc};
use crosslogic_core::{ModelStatus, ModelType, PricePerMillion};
use crosslogic_db::repo::catalog::{self, Model, ModelSpec};
use crosslogic_db::PgPool;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::decimal::{to_f64, Decimal};
use super::{record, validate, Change};
use crate::tenancy::Actor;
use crate::ServiceError;

/// Body of "create or replace model" (the name comes from the path).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutModel {
    pub family: String,
    pub size: String,
    #[serde(rename = "type", alias = "model_type")]
    pub model_type: ModelType,
    pub context_length: i64,
    pub vram_required_gb: i64,
    /// USD per million input tokens, ≥ 0, at most 6 decimal places.
    pub price_input_per_million: Decimal,
    /// USD per million output tokens, ≥ 0, at most 6 decimal places.
    pub price_output_per_million: Decimal,
    pub tokens_per_second_capacity: i64,
    /// Absent = `active`.
    #[serde(default)]
    pub status: Option<ModelStatus>,
    /// Free-form object (e.g. `hf_model`); absent = `{}`.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A model as the API shows it: prices both as USD decimals and as integer
/// micro-dollars per million tokens.
#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    pub id: Uuid,
    pub name: String,
    pub family: String,
    pub size: String,
    #[serde(rename = "type")]
    pub model_type: ModelType,
    pub context_length: i32,
    pub vram_required_gb: i32,
    pub price_input_per_million: f64,
    pub price_output_per_million: f64,
    pub price_input_microdollars_per_million: i64,
    pub price_output_microdollars_per_million: i64,
    pub tokens_per_second_capacity: i32,
    pub status: ModelStatus,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Model> for ModelView {
    fn from(m: Model) -> Self {
        ModelView {
            id: m.id,
            name: m.name,
            family: m.family,
            size: m.size,
            model_type: m.model_type,
            context_length: m.context_length,
            vram_required_gb: m.vram_required_gb,
            price_input_per_million: to_f64(m.price_input, 6),
            price_output_per_million: to_f64(m.price_output, 6),
            price_input_microdollars_per_million: m.price_input,
            price_output_microdollars_per_million: m.price_output,
            tokens_per_second_capacity: m.tokens_per_second_capacity,
            status: m.status,
            metadata: m.metadata,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// All models by name.
pub async fn list_models(pool: &PgPool) -> Result<Vec<Model>, ServiceError> {
    Ok(catalog::list_models(pool).await?)
}

/// One model.
pub async fn get_model(pool: &PgPool, name: &str) -> Result<Model, ServiceError> {
    Ok(catalog::get_model(pool, name).await?)
}

/// `models` holds prices as `numeric(12,6)`: 6 decimal places, below 1,000,000.
const PRICE_MAX_MICROS: i64 = 999_999_999_999;

fn model_spec(name: &str, input: PutModel) -> Result<ModelSpec, ServiceError> {
    Ok(ModelSpec {
        name: validate::ident("name", name, 128)?,
        family: validate::text("family", &input.family, 100)?,
        size: validate::text("size", &input.size, 50)?,
        model_type: input.model_type,
        context_length: validate::int("context_length", input.context_length, 1, i32::MAX)?,
        vram_required_gb: validate::int("vram_required_gb", input.vram_required_gb, 1, i32::MAX)?,
        price_input: PricePerMillion(input.price_input_per_million.units(
            "price_input_per_million",
            6,
            0,
            PRICE_MAX_MICROS,
        )?),
        price_output: PricePerMillion(input.price_output_per_million.units(
            "price_output_per_million",
            6,
            0,
            PRICE_MAX_MICROS,
        )?),
        tokens_per_second_capacity: validate::int(
            "tokens_per_second_capacity",
            input.tokens_per_second_capacity,
            1,
            i32::MAX,
        )?,
        status: input.status.unwrap_or(ModelStatus::Active),
        metadata: validate::object("metadata", input.metadata)?,
    })
}

fn model_changed(model: &Model) -> Value {
    json!({
        "name": model.name,
        "type": model.model_type,
        "status": model.status,
        "price_input_microdollars_per_million": model.price_input,
        "price_output_microdollars_per_million": model.price_output,
    })
}

/// Creates or replaces a model; publishes `model.updated`.
pub async fn put_model(pool: &PgPool, actor: &Actor, name: &str, input: PutModel) -> Result<Model, ServiceError> {
    let spec = model_spec(name, input)?;
    let mut tx = pool.begin().await?;
    let model = catalog::upsert_model(&mut *tx, &spec).await?;
    record(
        &mut tx,
        actor,
        Change {
            event_type: "model.updated",
            resource_type: "model",
            resource_id: model.name.clone(),
            payload: model_changed(&model),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(model)
}

/// Marks a model deprecated (no new deployments of it; running ones keep
/// serving); publishes `model.updated`. Deprecating twice changes nothing.
pub async fn deprecate_model(pool: &PgPool, actor: &Actor, name: &str) -> Result<Model, ServiceError> {
    let mut tx = pool.begin().await?;
    let current = catalog::get_model(&mut *tx, name).await?;
    if current.status == ModelStatus::Deprecated {
        return Ok(current);
    }
    let model = catalog::set_model_status(&mut *tx, name, ModelStatus::Deprecated).await?;
    record(
        &mut tx,
        actor,
        Change {
            event_type: "model.updated",
            resource_type: "model",
            resource_id: model.name.clone(),
            payload: model_changed(&model),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(model)
}
