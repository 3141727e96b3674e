//! Everything one pass reads, in a fixed number of queries whatever the
//! size of the fleet.

use std::collections::{BTreeMap, HashMap, HashSet};

use crosslogic_core::placement::{self, GpuOffer, RegionInfo};
use crosslogic_core::{DeploymentStatus, RegionStatus};
use crosslogic_db::repo::catalog::{self, Model};
use crosslogic_db::repo::deployments::{self, Deployment};
use crosslogic_db::repo::nodes::{self, Node};
use crosslogic_db::PgPool;
use uuid::Uuid;

use super::{Fleet, ReconcileConfig};
use crosslogic_core::ServiceError;

/// Everything a pass reads, loaded once (or, in the fleet simulator, built
/// from the simulated fleet).
pub struct Snapshot {
    /// Active deployments.
    pub deployments: Vec<Deployment>,
    /// Ids of paused deployments (left as they are; only dead nodes go).
    pub paused: HashSet<Uuid>,
    pub nodes: Vec<Node>,
    pub models: HashMap<String, Model>,
    pub regions: Vec<placement::RegionInfo>,
    /// Provider-specific region names (`aws` → `us-east-1`) by region code.
    pub cloud_regions: HashMap<String, BTreeMap<String, String>>,
    pub offers: Vec<placement::GpuOffer>,
}

impl Snapshot {
    /// Reads the fleet: active and paused deployments, every unterminated
    /// node, the models, and for clouds the regions and the GPU catalog.
    pub async fn load(pool: &PgPool, cfg: &ReconcileConfig) -> Result<Snapshot, ServiceError> {
        let deployments = deployments::list(pool, Some(DeploymentStatus::Active)).await?;
        let paused = deployments::list(pool, Some(DeploymentStatus::Paused))
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        let nodes = nodes::list_unterminated(pool).await?;
        let models = catalog::list_models(pool)
            .await?
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        let ((regions, cloud_regions), offers) = match cfg.fleet {
            Fleet::Local => ((Vec::new(), HashMap::new()), Vec::new()),
            Fleet::Cloud(_) => (region_infos(pool).await?, gpu_offers(pool).await?),
        };
        Ok(Snapshot {
            deployments,
            paused,
            nodes,
            models,
            regions,
            cloud_regions,
            offers,
        })
    }
}

/// Regions as placement sees them, and each region's provider-specific
/// names (`{"aws": "us-east-1", …}`) by code.
async fn region_infos(
    pool: &PgPool,
) -> Result<(Vec<RegionInfo>, HashMap<String, BTreeMap<String, String>>), ServiceError> {
    let rows = catalog::list_regions(pool).await?;
    let names = rows
        .iter()
        .map(|r| (r.code.clone(), r.provider_regions.clone()))
        .collect();
    let infos = rows
        .into_iter()
        .map(|r| RegionInfo {
            providers: r.cloud_providers,
            cost_multiplier_milli: u32::try_from(r.cost_multiplier_milli).unwrap_or(1000),
            usable: matches!(r.status, RegionStatus::Active | RegionStatus::Degraded),
            code: r.code,
        })
        .collect();
    Ok((infos, names))
}

/// The GPU catalog as placement sees it.
async fn gpu_offers(pool: &PgPool) -> Result<Vec<GpuOffer>, ServiceError> {
    Ok(catalog::gpu_catalog(pool)
        .await?
        .into_iter()
        .map(|o| GpuOffer {
            gpu: o.gpu_type,
            vram_gb: u32::try_from(o.vram_gb.max(0)).unwrap_or(0),
            provider: o.provider,
            on_demand_micros_per_hour: o.on_demand_microdollars_per_hour,
            spot_micros_per_hour: o.spot_microdollars_per_hour,
            available: o.available,
        })
        .collect())
}
