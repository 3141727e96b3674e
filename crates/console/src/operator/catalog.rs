//! The catalog: models with their prices, GPU offers, regions — listed,
//! and added or changed through the same `crosslogic_control::fleet`
//! calls as `PUT /admin/v1/models/{name}`, `/gpus/{type}/{provider}` and
//! `/regions/{code}` (exact decimal prices, validation, events, audit).

use std::collections::HashMap;

use axum::extract::{Query, State};
use crosslogic_control::admin::views::{GpuView, ModelView, RegionView};
use crosslogic_control::fleet::{self, Decimal, PutGpu, PutModel, PutRegion};
use crosslogic_core::{ModelStatus, ModelType, Provider, RegionStatus, ServiceError};
use maud::{html, Markup};
use serde::Deserialize;

use super::Op;
use crate::form::{self, CsrfForm};
use crate::page::{self, after, PageResult};
use crate::ConsoleState;

/// Micro-dollars as the decimal dollars a form shows (`1.2`, `0.000150`).
fn dollars(micros: i64) -> String {
    let whole = micros / 1_000_000;
    let frac = (micros % 1_000_000).abs();
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("{whole}.{f}")
}

pub(crate) async fn catalog(State(s): State<ConsoleState>, Op(session): Op) -> PageResult {
    let pool = s.pool();
    let models: Vec<ModelView> = fleet::list_models(pool).await?.into_iter().map(Into::into).collect();
    let gpus: Vec<GpuView> = fleet::list_gpus(pool).await?.into_iter().map(Into::into).collect();
    let regions: Vec<RegionView> = fleet::list_regions(pool).await?.into_iter().map(Into::into).collect();
    let body = html! {
        h1 { "Catalog" }
        p.muted { "What deployments may serve, what it costs tenants, and what GPUs cost us. Prices are exact decimals." }
        div.section-head { h2 { "Models" } a.button href="/console/catalog/model" { "Add a model" } }
        @if models.is_empty() { (page::empty("No models in the catalog: add one.")) } @else {
            div.table-wrap { table #models {
                thead { tr { th { "Name" } th { "Type" } th { "Context" } th { "VRAM" } th { "Input $/M" } th { "Output $/M" } th { "Capacity tok/s" } th { "Status" } } }
                tbody { @for m in &models {
                    tr { td { a href={"/console/catalog/model?name=" (m.name)} { (m.name) } } td { (m.model_type.as_str()) } td.num { (page::count(m.context_length.into())) } td.num { (m.vram_required_gb) " GB" }
                         td.num { (page::usd(m.price_input_microdollars_per_million)) } td.num { (page::usd(m.price_output_microdollars_per_million)) }
                         td.num { (page::count(m.tokens_per_second_capacity.into())) } td { (page::badge(m.status.as_str())) } }
                } }
            } }
        }
        div.section-head { h2 { "GPU prices" } a.button href="/console/catalog/gpu" { "Add a GPU offer" } }
        @if gpus.is_empty() { (page::empty("No GPU offers: add one.")) } @else {
            div.table-wrap { table #gpus {
                thead { tr { th { "GPU" } th { "VRAM" } th { "Provider" } th { "On-demand $/h" } th { "Spot $/h" } th { "Available" } } }
                tbody { @for g in &gpus {
                    tr { td { a href={"/console/catalog/gpu?gpu_type=" (g.gpu_type) "&provider=" (g.provider.as_str())} { (g.gpu_type) } } td.num { (g.vram_gb) " GB" } td { (g.provider.as_str()) }
                         td.num { (page::usd(g.on_demand_microdollars_per_hour)) } td.num { (g.spot_microdollars_per_hour.map(page::usd).unwrap_or_else(|| "–".into())) }
                         td { (if g.available { "yes" } else { "no" }) } }
                } }
            } }
        }
        div.section-head { h2 { "Regions" } a.button href="/console/catalog/region" { "Add a region" } }
        @if regions.is_empty() { (page::empty("No regions: add one.")) } @else {
            div.table-wrap { table #regions {
                thead { tr { th { "Code" } th { "Name" } th { "Clouds" } th { "Price multiplier" } th { "Status" } } }
                tbody { @for r in &regions {
                    tr { td { a href={"/console/catalog/region?code=" (r.code)} { (r.code) } } td { (r.name) } td { (r.cloud_providers.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                         td.num { (format!("{:.3}", r.cost_multiplier)) } td { (page::badge(r.status.as_str())) } }
                } }
            } }
        }
    };
    Ok(page::render(&session, "Catalog", "catalog", body))
}

fn select<T: Copy + PartialEq>(name: &str, all: &[T], current: Option<T>, label: fn(T) -> &'static str) -> Markup {
    html! {
        select name=(name) {
            @for v in all { option value=(label(*v)) selected[current == Some(*v)] { (label(*v)) } }
        }
    }
}

/// Query naming the model to edit (none: a new one).
#[derive(Debug, Deserialize)]
pub(crate) struct ModelQuery {
    name: Option<String>,
}

pub(crate) async fn model_form(
    State(s): State<ConsoleState>,
    Op(session): Op,
    Query(q): Query<ModelQuery>,
) -> PageResult {
    let existing: Option<ModelView> = match form::text(&q.name) {
        Some(n) => Some(fleet::get_model(s.pool(), &n).await?.into()),
        None => None,
    };
    let m = existing.as_ref();
    let body = html! {
        p.crumbs { a href="/console/catalog" { "Catalog" } " / " }
        h1 { @if let Some(m) = m { "Model " (m.name) } @else { "New model" } }
        form.grid method="post" action="/console/catalog/model" {
            (page::csrf(&session))
            @if let Some(m) = m { input type="hidden" name="name" value=(m.name); }
            @else { label { "Name (as clients ask for it)" input name="name" required maxlength="100" placeholder="e.g. llama-3-70b"; } }
            label { "Family" input name="family" required value=[m.map(|m| m.family.clone())] placeholder="llama"; }
            label { "Size" input name="size" required value=[m.map(|m| m.size.clone())] placeholder="70b"; }
            label { "Type" (select("model_type", ModelType::ALL, m.map(|m| m.model_type), ModelType::as_str)) }
            label { "Context length" input type="number" name="context_length" min="1" required value=[m.map(|m| m.context_length)]; }
            label { "VRAM needed (GB)" input type="number" name="vram_required_gb" min="1" required value=[m.map(|m| m.vram_required_gb)]; }
            label { "Input price, USD per million tokens" input name="price_input_per_million" required inputmode="decimal" value=[m.map(|m| dollars(m.price_input_microdollars_per_million))]; }
            label { "Output price, USD per million tokens" input name="price_output_per_million" required inputmode="decimal" value=[m.map(|m| dollars(m.price_output_microdollars_per_million))]; }
            label { "Capacity per replica (tokens/s)" input type="number" name="tokens_per_second_capacity" min="1" required value=[m.map(|m| m.tokens_per_second_capacity)]; }
            label { "Status" (select("status", ModelStatus::ALL, m.map(|m| m.status).or(Some(ModelStatus::Active)), ModelStatus::as_str)) }
            button type="submit" { "Save model" }
        }
    };
    Ok(page::render(&session, "Model", "catalog", body))
}

/// The model form.
#[derive(Debug, Deserialize)]
pub(crate) struct ModelForm {
    name: String,
    family: String,
    size: String,
    model_type: String,
    context_length: Option<String>,
    vram_required_gb: Option<String>,
    price_input_per_million: String,
    price_output_per_million: String,
    tokens_per_second_capacity: Option<String>,
    status: Option<String>,
}

fn required(field: &'static str, v: &Option<String>) -> Result<i64, ServiceError> {
    form::int(field, v)?.ok_or_else(|| ServiceError::invalid(field, "is required"))
}

pub(crate) async fn save_model(State(s): State<ConsoleState>, CsrfForm(session, f): CsrfForm<ModelForm>) -> PageResult {
    let input = (|| -> Result<PutModel, ServiceError> {
        Ok(PutModel {
            family: f.family.clone(),
            size: f.size.clone(),
            model_type: f
                .model_type
                .parse()
                .map_err(|e: crosslogic_core::ParseEnumError| ServiceError::invalid("model_type", e.to_string()))?,
            context_length: required("context_length", &f.context_length)?,
            vram_required_gb: required("vram_required_gb", &f.vram_required_gb)?,
            price_input_per_million: Decimal::new(f.price_input_per_million.clone()),
            price_output_per_million: Decimal::new(f.price_output_per_million.clone()),
            tokens_per_second_capacity: required("tokens_per_second_capacity", &f.tokens_per_second_capacity)?,
            status: form::parsed("status", &f.status)?,
            metadata: None,
        })
    })();
    let name = f.name.trim().to_owned();
    let r = match input {
        Ok(i) => fleet::put_model(s.pool(), &session.actor(), &name, i).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(m) => Ok(page::Flash::ok(format!("Model {} saved.", m.name)).redirect("/console/catalog")),
        Err(e) => {
            let back = format!(
                "/console/catalog/model?{}",
                serde_urlencoded::to_string([("name", name.as_str())]).unwrap_or_default()
            );
            after::<()>(
                if name.is_empty() {
                    "/console/catalog/model"
                } else {
                    &back
                },
                Err(e),
                |_| String::new(),
            )
        }
    }
}

/// Query naming the GPU offer to edit.
#[derive(Debug, Deserialize)]
pub(crate) struct GpuQuery {
    gpu_type: Option<String>,
    provider: Option<String>,
}

pub(crate) async fn gpu_form(State(s): State<ConsoleState>, Op(session): Op, Query(q): Query<GpuQuery>) -> PageResult {
    let all: Vec<GpuView> = fleet::list_gpus(s.pool()).await?.into_iter().map(Into::into).collect();
    let g = all.iter().find(|g| {
        Some(g.gpu_type.as_str()) == q.gpu_type.as_deref() && Some(g.provider.as_str()) == q.provider.as_deref()
    });
    let body = html! {
        p.crumbs { a href="/console/catalog" { "Catalog" } " / " }
        h1 { @if let Some(g) = g { (g.gpu_type) " at " (g.provider.as_str()) } @else { "New GPU offer" } }
        form.grid method="post" action="/console/catalog/gpu" {
            (page::csrf(&session))
            label { "GPU type" input name="gpu_type" required maxlength="50" value=[g.map(|g| g.gpu_type.clone())] placeholder="e.g. L40S"; }
            label { "Provider" (select("provider", Provider::ALL, g.map(|g| g.provider), Provider::as_str)) }
            label { "VRAM (GB)" input type="number" name="vram_gb" min="1" required value=[g.map(|g| g.vram_gb)]; }
            label { "On-demand USD per hour" input name="on_demand_usd_per_hour" required inputmode="decimal" value=[g.map(|g| dollars(g.on_demand_microdollars_per_hour))]; }
            label { "Spot USD per hour (empty: no spot)" input name="spot_usd_per_hour" inputmode="decimal" value=[g.and_then(|g| g.spot_microdollars_per_hour).map(dollars)]; }
            label.check { input type="checkbox" name="available" checked[g.is_none_or(|g| g.available)]; " Available for new nodes" }
            button type="submit" { "Save GPU offer" }
        }
    };
    Ok(page::render(&session, "GPU offer", "catalog", body))
}

/// The GPU offer form.
#[derive(Debug, Deserialize)]
pub(crate) struct GpuForm {
    gpu_type: String,
    provider: String,
    vram_gb: Option<String>,
    on_demand_usd_per_hour: String,
    spot_usd_per_hour: Option<String>,
    available: Option<String>,
}

pub(crate) async fn save_gpu(State(s): State<ConsoleState>, CsrfForm(session, f): CsrfForm<GpuForm>) -> PageResult {
    let input = required("vram_gb", &f.vram_gb).map(|vram_gb| PutGpu {
        vram_gb,
        on_demand_usd_per_hour: Decimal::new(f.on_demand_usd_per_hour.clone()),
        spot_usd_per_hour: form::text(&f.spot_usd_per_hour).map(Decimal::new),
        available: Some(form::checked(&f.available)),
    });
    let r = match input {
        Ok(i) => fleet::put_gpu(s.pool(), &session.actor(), f.gpu_type.trim(), f.provider.trim(), i).await,
        Err(e) => Err(e),
    };
    after("/console/catalog", r, |g| {
        format!("{} at {} saved.", g.gpu_type, g.provider.as_str())
    })
}

/// Query naming the region to edit.
#[derive(Debug, Deserialize)]
pub(crate) struct RegionQuery {
    code: Option<String>,
}

pub(crate) async fn region_form(
    State(s): State<ConsoleState>,
    Op(session): Op,
    Query(q): Query<RegionQuery>,
) -> PageResult {
    let existing: Option<RegionView> = match form::text(&q.code) {
        Some(c) => Some(fleet::get_region(s.pool(), &c).await?.into()),
        None => None,
    };
    let r = existing.as_ref();
    let body = html! {
        p.crumbs { a href="/console/catalog" { "Catalog" } " / " }
        h1 { @if let Some(r) = r { "Region " (r.code) } @else { "New region" } }
        form.grid method="post" action="/console/catalog/region" {
            (page::csrf(&session))
            @if let Some(r) = r { input type="hidden" name="code" value=(r.code); }
            @else { label { "Code" input name="code" required maxlength="50" placeholder="e.g. eu-west"; } }
            label { "Name" input name="name" required value=[r.map(|r| r.name.clone())] placeholder="Europe West"; }
            label { "Country" input name="country" required value=[r.map(|r| r.country.clone())] placeholder="IE"; }
            label { "City" input name="city" required value=[r.map(|r| r.city.clone())] placeholder="Dublin"; }
            label { "Clouds (comma-separated)" input name="cloud_providers" required value=[r.map(|r| r.cloud_providers.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "))] placeholder="aws, gcp"; }
            label { "Cloud region names" input name="provider_regions" value=[r.map(|r| r.provider_regions.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))] placeholder="aws=eu-west-1, gcp=europe-west1"; }
            label { "Price multiplier" input name="cost_multiplier" required inputmode="decimal" value=(r.map(|r| format!("{:.3}", r.cost_multiplier)).unwrap_or_else(|| "1.000".into())); }
            label { "Status" (select("status", RegionStatus::ALL, r.map(|r| r.status).or(Some(RegionStatus::Active)), RegionStatus::as_str)) }
            button type="submit" { "Save region" }
        }
    };
    Ok(page::render(&session, "Region", "catalog", body))
}

/// The region form.
#[derive(Debug, Deserialize)]
pub(crate) struct RegionForm {
    code: String,
    name: String,
    country: String,
    city: String,
    cloud_providers: String,
    provider_regions: Option<String>,
    cost_multiplier: String,
    status: Option<String>,
}

fn providers(text: &str) -> Result<Vec<Provider>, ServiceError> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse()
                .map_err(|e: crosslogic_core::ParseEnumError| ServiceError::invalid("cloud_providers", e.to_string()))
        })
        .collect()
}

fn provider_regions(text: &Option<String>) -> Result<Option<HashMap<Provider, String>>, ServiceError> {
    let Some(text) = form::text(text) else {
        return Ok(None);
    };
    let mut out = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (p, name) = pair.split_once('=').ok_or_else(|| {
            ServiceError::invalid(
                "provider_regions",
                format!("`{pair}`: write provider=region, e.g. aws=eu-west-1"),
            )
        })?;
        let p: Provider = p
            .trim()
            .parse()
            .map_err(|e: crosslogic_core::ParseEnumError| ServiceError::invalid("provider_regions", e.to_string()))?;
        out.insert(p, name.trim().to_owned());
    }
    Ok(Some(out))
}

pub(crate) async fn save_region(
    State(s): State<ConsoleState>,
    CsrfForm(session, f): CsrfForm<RegionForm>,
) -> PageResult {
    let input = (|| -> Result<PutRegion, ServiceError> {
        Ok(PutRegion {
            name: f.name.clone(),
            country: f.country.clone(),
            city: f.city.clone(),
            cloud_providers: providers(&f.cloud_providers)?,
            provider_regions: provider_regions(&f.provider_regions)?,
            cost_multiplier: Decimal::new(f.cost_multiplier.clone()),
            status: form::parsed("status", &f.status)?,
        })
    })();
    let code = f.code.trim().to_owned();
    let r = match input {
        Ok(i) => fleet::put_region(s.pool(), &session.actor(), &code, i).await,
        Err(e) => Err(e),
    };
    after("/console/catalog", r, |r| format!("Region {} saved.", r.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_read_back_as_the_prices_they_show() {
        assert_eq!(dollars(1_200_000), "1.20");
        assert_eq!(dollars(150), "0.00015");
        assert_eq!(dollars(0), "0.00");
        assert_eq!(providers("aws, gcp").unwrap(), vec![Provider::Aws, Provider::Gcp]);
        assert!(providers("aws, mars")
            .unwrap_err()
            .to_string()
            .contains("cloud_providers"));
        let m = provider_regions(&Some("aws=eu-west-1, gcp = europe-west1".into()))
            .unwrap()
            .unwrap();
        assert_eq!(m[&Provider::Gcp], "europe-west1");
        assert!(provider_regions(&Some("aws".into())).is_err());
    }
}
