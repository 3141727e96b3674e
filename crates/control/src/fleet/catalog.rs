//! Regions and the GPU catalog (GPU types and their hourly prices per
//! provider).

use std::collections::HashMap;

use crosslogic_core::events::{GpuEvent, RegionEvent};
use crosslogic_core::{Actor, Event, Provider, RegionStatus, ServiceError};
use crosslogic_db::changes;
use crosslogic_db::repo::catalog::{self, GpuOffer, Region, RegionSpec};
use crosslogic_db::PgPool;
use serde::Deserialize;

use super::validate;
use crosslogic_core::decimal::Decimal;

/// Body of "create or replace region" (the code comes from the path).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRegion {
    pub name: String,
    pub country: String,
    pub city: String,
    /// Clouds (or `on-prem`/`local`) that serve this region; at least one.
    pub cloud_providers: Vec<Provider>,
    /// Provider → that provider's own region name; keys must be listed in
    /// `cloud_providers`. Absent = none.
    #[serde(default)]
    pub provider_regions: Option<HashMap<Provider, String>>,
    /// Price factor of the region: > 0, ≤ 100, at most 3 decimal places.
    pub cost_multiplier: Decimal,
    /// Absent = `active`.
    #[serde(default)]
    pub status: Option<RegionStatus>,
}

/// All regions by code.
pub async fn list_regions(pool: &PgPool) -> Result<Vec<Region>, ServiceError> {
    Ok(catalog::list_regions(pool).await?)
}

/// One region.
pub async fn get_region(pool: &PgPool, code: &str) -> Result<Region, ServiceError> {
    Ok(catalog::get_region(pool, code).await?)
}

fn region_spec(code: &str, input: PutRegion) -> Result<RegionSpec, ServiceError> {
    let code = validate::slug("code", code)?;
    let mut providers: Vec<Provider> = Vec::with_capacity(input.cloud_providers.len());
    for p in input.cloud_providers {
        if providers.contains(&p) {
            return Err(ServiceError::invalid("cloud_providers", format!("lists {p} twice")));
        }
        providers.push(p);
    }
    if providers.is_empty() {
        return Err(ServiceError::invalid(
            "cloud_providers",
            "must list at least one of aws, gcp, azure, oci, on-prem, local",
        ));
    }
    let mut mapping = std::collections::BTreeMap::new();
    for (provider, name) in input.provider_regions.unwrap_or_default() {
        if !providers.contains(&provider) {
            return Err(ServiceError::invalid(
                "provider_regions",
                format!("names a region for {provider}, which is not in cloud_providers"),
            ));
        }
        let name = validate::text("provider_regions", &name, 100)?;
        mapping.insert(provider.as_str().to_owned(), name);
    }
    Ok(RegionSpec {
        code,
        name: validate::text("name", &input.name, 200)?,
        country: validate::text("country", &input.country, 100)?,
        city: validate::text("city", &input.city, 100)?,
        cloud_providers: providers,
        provider_regions: mapping,
        // Thousandths: 0.001 ..= 100.000.
        cost_multiplier_milli: input.cost_multiplier.units("cost_multiplier", 3, 1, 100_000)? as i32,
        status: input.status.unwrap_or(RegionStatus::Active),
    })
}

/// Creates or replaces a region; publishes `region.updated`.
pub async fn put_region(pool: &PgPool, actor: &Actor, code: &str, input: PutRegion) -> Result<Region, ServiceError> {
    let spec = region_spec(code, input)?;
    let mut tx = crosslogic_db::begin(pool).await?;
    let region = catalog::upsert_region(&mut *tx, &spec).await?;
    let event = RegionEvent {
        code: region.code.clone(),
        status: region.status,
        cloud_providers: region.cloud_providers.clone(),
        cost_multiplier_milli: region.cost_multiplier_milli,
    };
    changes::record(&mut tx, actor, &Event::RegionUpdated(event)).await?;
    crosslogic_db::commit(tx).await?;
    Ok(region)
}

/// Body of "create or replace GPU offer" (type and provider from the path).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGpu {
    /// Memory of one GPU of this type; shared by every provider's offer.
    pub vram_gb: i64,
    /// USD per GPU-hour, ≥ 0, at most 4 decimal places.
    pub on_demand_usd_per_hour: Decimal,
    /// USD per GPU-hour on spot; `null` or absent = no spot offer.
    #[serde(default)]
    pub spot_usd_per_hour: Option<Decimal>,
    /// Absent = `true`.
    #[serde(default)]
    pub available: Option<bool>,
}

/// The GPU catalog: every type × provider, cheapest on-demand first.
pub async fn list_gpus(pool: &PgPool) -> Result<Vec<GpuOffer>, ServiceError> {
    Ok(catalog::gpu_catalog(pool).await?)
}

/// `gpu_prices` holds `numeric(10,4)`: 4 decimal places, below 1,000,000.
const HOURLY_MAX_UNITS: i64 = 9_999_999_999;

fn hourly_microdollars(field: &'static str, d: &Decimal) -> Result<i64, ServiceError> {
    Ok(d.units(field, 4, 0, HOURLY_MAX_UNITS)? * 100)
}

fn gpu_offer(name: &str, provider: &str, input: PutGpu) -> Result<GpuOffer, ServiceError> {
    let provider: Provider = provider
        .parse()
        .map_err(|e: crosslogic_core::ParseEnumError| ServiceError::invalid("provider", e.to_string()))?;
    Ok(GpuOffer {
        gpu_type: validate::ident("gpu_type", name, 64)?,
        vram_gb: validate::int("vram_gb", input.vram_gb, 1, 4096)?,
        provider,
        on_demand_microdollars_per_hour: hourly_microdollars("on_demand_usd_per_hour", &input.on_demand_usd_per_hour)?,
        spot_microdollars_per_hour: input
            .spot_usd_per_hour
            .as_ref()
            .map(|d| hourly_microdollars("spot_usd_per_hour", d))
            .transpose()?,
        available: input.available.unwrap_or(true),
    })
}

/// Creates or replaces a GPU type's offer at one provider (and the type's
/// VRAM); publishes `gpu.updated`.
pub async fn put_gpu(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    provider: &str,
    input: PutGpu,
) -> Result<GpuOffer, ServiceError> {
    let offer = gpu_offer(name, provider, input)?;
    let mut tx = crosslogic_db::begin(pool).await?;
    let offer = catalog::upsert_gpu_offer(&mut *tx, &offer).await?;
    let event = GpuEvent {
        gpu_type: offer.gpu_type.clone(),
        provider: offer.provider,
        vram_gb: offer.vram_gb,
        on_demand_microdollars_per_hour: offer.on_demand_microdollars_per_hour,
        spot_microdollars_per_hour: offer.spot_microdollars_per_hour,
        available: offer.available,
    };
    changes::record(&mut tx, actor, &Event::GpuUpdated(event)).await?;
    crosslogic_db::commit(tx).await?;
    Ok(offer)
}
