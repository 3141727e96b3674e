//! The model catalog.

use crosslogic_core::events::ModelEvent;
use crosslogic_core::{Actor, Event, ModelStatus, ModelType, PricePerMillion, ServiceError};
use crosslogic_db::changes;
use crosslogic_db::repo::catalog::{self, Model, ModelSpec};
use crosslogic_db::PgPool;
use serde::Deserialize;
use serde_json::Value;

use super::validate;
use crosslogic_core::decimal::Decimal;

/// Body of "create or replace model" (the name comes from the path).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
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

fn event(model: &Model) -> ModelEvent {
    ModelEvent {
        name: model.name.clone(),
        model_type: model.model_type,
        status: model.status,
        price_input_microdollars_per_million: model.price_input,
        price_output_microdollars_per_million: model.price_output,
    }
}

/// Creates or replaces a model; publishes `model.updated`.
pub async fn put_model(pool: &PgPool, actor: &Actor, name: &str, input: PutModel) -> Result<Model, ServiceError> {
    let spec = model_spec(name, input)?;
    let mut tx = crosslogic_db::begin(pool).await?;
    let model = catalog::upsert_model(&mut *tx, &spec).await?;
    changes::record(&mut tx, actor, &Event::ModelUpdated(event(&model))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(model)
}

/// Marks a model deprecated (no new deployments of it; running ones keep
/// serving); publishes `model.deprecated`. Deprecating twice changes nothing.
pub async fn deprecate_model(pool: &PgPool, actor: &Actor, name: &str) -> Result<Model, ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let current = catalog::get_model(&mut *tx, name).await?;
    if current.status == ModelStatus::Deprecated {
        return Ok(current);
    }
    let model = catalog::set_model_status(&mut *tx, name, ModelStatus::Deprecated).await?;
    changes::record(&mut tx, actor, &Event::ModelDeprecated(event(&model))).await?;
    crosslogic_db::commit(tx).await?;
    Ok(model)
}
