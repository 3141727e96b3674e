//! What a deployment may serve and where: the model is servable, the forced
//! region offers the forced provider, and the GPU choice fits the model
//! (a pure check over the GPU catalog).

use crosslogic_core::{ModelStatus, Provider};
use crosslogic_db::repo::catalog::{self, GpuOffer, Model};
use crosslogic_db::DbError;
use sqlx::PgConnection;

use crosslogic_core::ServiceError;

/// Most GPUs one node may have.
pub const MAX_GPUS: i32 = 8;

/// Clouds priced by the GPU catalog; `on-prem` and `local` machines bring
/// their own GPUs, so `auto` needs no catalog offer for them.
fn is_cloud(p: Provider) -> bool {
    matches!(p, Provider::Aws | Provider::Gcp | Provider::Azure | Provider::Oci)
}

fn from_provider(provider: Option<Provider>) -> String {
    provider.map(|p| format!(" from {p}")).unwrap_or_default()
}

/// The model a deployment may serve: it exists and is not deprecated.
pub(crate) async fn servable_model(tx: &mut PgConnection, name: &str) -> Result<Model, ServiceError> {
    match catalog::get_model(&mut *tx, name).await {
        Ok(m) if m.status == ModelStatus::Deprecated => Err(ServiceError::invalid(
            "model_name",
            format!("{name} is deprecated; choose an active or beta model"),
        )),
        Ok(m) => Ok(m),
        Err(DbError::NotFound { .. }) => Err(ServiceError::invalid(
            "model_name",
            format!("no model named {name:?}; GET /admin/v1/models lists the catalog"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The forced region exists and offers the forced provider.
pub(crate) async fn check_region(
    tx: &mut PgConnection,
    code: &str,
    provider: Option<Provider>,
) -> Result<(), ServiceError> {
    let region = match catalog::get_region(&mut *tx, code).await {
        Err(DbError::NotFound { .. }) => {
            return Err(ServiceError::invalid(
                "region",
                format!("no region with code {code:?}; GET /admin/v1/regions lists them"),
            ))
        }
        other => other?,
    };
    match provider {
        Some(p) if !region.cloud_providers.contains(&p) => {
            let offered: Vec<&str> = region.cloud_providers.iter().map(|p| p.as_str()).collect();
            Err(ServiceError::invalid(
                "provider",
                format!("region {code} is served by {}, not {p}", offered.join(", ")),
            ))
        }
        _ => Ok(()),
    }
}

/// Checks `gpu_type` (`auto` or a catalog GPU type, any case) with
/// `gpu_count` GPUs per node (`None` = the fewest that fit, up to
/// [`MAX_GPUS`]) against the model's memory need and the provider's offers.
/// Returns the type as stored: `auto` or the catalog's spelling.
pub(crate) fn check_gpu(
    model: &Model,
    provider: Option<Provider>,
    gpu_type: &str,
    gpu_count: Option<i32>,
    offers: &[GpuOffer],
) -> Result<String, ServiceError> {
    let need = i64::from(model.vram_required_gb);
    let count = i64::from(gpu_count.unwrap_or(MAX_GPUS));
    let count_field = if gpu_count.is_some() { "gpu_count" } else { "gpu_type" };
    let offered = |o: &&GpuOffer| o.available && provider.is_none_or(|p| o.provider == p);
    let gpu_type = gpu_type.trim();

    if gpu_type.eq_ignore_ascii_case("auto") {
        let mut candidates = offers.iter().filter(offered).peekable();
        if provider.is_some_and(|p| !is_cloud(p)) && candidates.peek().is_none() {
            return Ok("auto".to_owned());
        }
        if candidates.any(|o| i64::from(o.vram_gb) * count >= need) {
            return Ok("auto".to_owned());
        }
        return Err(ServiceError::invalid(
            count_field,
            format!(
                "no available GPU{} fits {} ({need} GB) with {count} GPUs per node; \
                 add a larger GPU to the catalog or raise gpu_count (at most {MAX_GPUS})",
                from_provider(provider),
                model.name
            ),
        ));
    }

    let Some(known) = offers.iter().find(|o| o.gpu_type.eq_ignore_ascii_case(gpu_type)) else {
        let mut names: Vec<&str> = offers.iter().map(|o| o.gpu_type.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        return Err(ServiceError::invalid(
            "gpu_type",
            format!(
                "must be auto or a GPU type of the catalog ({}), got {gpu_type:?}",
                names.join(", ")
            ),
        ));
    };
    let name = known.gpu_type.clone();
    let vram = i64::from(known.vram_gb);
    let needs_offer = provider.is_none_or(is_cloud);
    if needs_offer && !offers.iter().any(|o| o.gpu_type == name && offered(&o)) {
        return Err(ServiceError::invalid(
            "gpu_type",
            format!("{name} is not available{}", from_provider(provider)),
        ));
    }
    if vram * count < need {
        let field = if vram * i64::from(MAX_GPUS) >= need {
            count_field
        } else {
            "gpu_type"
        };
        let fewest = (need + vram - 1) / vram;
        let hint = if fewest <= i64::from(MAX_GPUS) {
            format!("use gpu_count {fewest} or more")
        } else {
            "choose a GPU with more memory".to_owned()
        };
        return Err(ServiceError::invalid(
            field,
            format!(
                "{count} × {name} ({vram} GB each) cannot hold {} ({need} GB); {hint}",
                model.name
            ),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Utc;
    use crosslogic_core::{ModelStatus, ModelType};

    fn model(vram: i32) -> Model {
        Model {
            id: uuid::Uuid::nil(),
            name: "m".into(),
            family: "f".into(),
            size: "s".into(),
            model_type: ModelType::Chat,
            context_length: 1,
            vram_required_gb: vram,
            price_input: 0,
            price_output: 0,
            tokens_per_second_capacity: 1,
            status: ModelStatus::Active,
            metadata: serde_json::json!({}),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn offer(name: &str, vram: i32, provider: Provider) -> GpuOffer {
        GpuOffer {
            gpu_type: name.into(),
            vram_gb: vram,
            provider,
            on_demand_microdollars_per_hour: 1,
            spot_microdollars_per_hour: None,
            available: true,
        }
    }

    fn param(r: Result<String, ServiceError>) -> &'static str {
        match r {
            Err(ServiceError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn explicit_types_must_fit_the_model() {
        let offers = [offer("A10G", 24, Provider::Aws), offer("H100", 80, Provider::Gcp)];
        assert_eq!(check_gpu(&model(16), None, "a10g", Some(1), &offers).unwrap(), "A10G");
        assert_eq!(check_gpu(&model(80), None, "A10G", None, &offers).unwrap(), "A10G");
        assert_eq!(
            param(check_gpu(&model(80), None, "A10G", Some(1), &offers)),
            "gpu_count"
        );
        assert_eq!(
            param(check_gpu(&model(500), None, "A10G", Some(1), &offers)),
            "gpu_type"
        );
        assert_eq!(param(check_gpu(&model(16), None, "TPU", None, &offers)), "gpu_type");
        assert_eq!(
            param(check_gpu(&model(16), Some(Provider::Aws), "H100", None, &offers)),
            "gpu_type"
        );
        assert_eq!(
            check_gpu(&model(16), Some(Provider::Local), "H100", None, &offers).unwrap(),
            "H100"
        );
    }

    #[test]
    fn auto_needs_a_fitting_offer_except_on_own_machines() {
        let offers = [offer("A10G", 24, Provider::Aws)];
        assert_eq!(check_gpu(&model(80), None, "auto", None, &offers).unwrap(), "auto");
        assert_eq!(
            param(check_gpu(&model(80), None, "AUTO", Some(2), &offers)),
            "gpu_count"
        );
        assert_eq!(
            param(check_gpu(&model(16), Some(Provider::Oci), "auto", None, &offers)),
            "gpu_type"
        );
        assert_eq!(
            check_gpu(&model(16), Some(Provider::OnPrem), "auto", None, &offers).unwrap(),
            "auto"
        );
    }
}
