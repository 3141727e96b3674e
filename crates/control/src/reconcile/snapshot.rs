//! Everything one pass reads, in a fixed number of queries whatever the
//! size of the fleet.

use std::collections::{HashMap, HashSet};

use crosslogic_core::placement;
use crosslogic_core::DeploymentStatus;
use crosslogic_db::repo::catalog::{self, Model};
use crosslogic_db::repo::deployments::{self, Deployment};
use crosslogic_db::repo::nodes::{self, Node};
use crosslogic_db::PgPool;
use uuid::Uuid;

use super::{launch, Fleet, ReconcileConfig};
use crate::ServiceError;

/// Everything a pass reads, loaded once.
pub(crate) struct Snapshot {
    /// Active deployments.
    pub deployments: Vec<Deployment>,
    /// Ids of paused deployments (left as they are; only dead nodes go).
    pub paused: HashSet<Uuid>,
    pub nodes: Vec<Node>,
    pub models: HashMap<String, Model>,
    pub regions: Vec<placement::RegionInfo>,
    /// Provider-specific region names by region code.
    pub cloud_regions: HashMap<String, serde_json::Value>,
    pub offers: Vec<placement::GpuOffer>,
}

impl Snapshot {
    /// Reads the fleet: active and paused deployments, every unterminated
    /// node, the models, and for clouds the regions and the GPU catalog.
    pub(crate) async fn load(pool: &PgPool, cfg: &ReconcileConfig) -> Result<Snapshot, ServiceError> {
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
            Fleet::Cloud(_) => (launch::region_infos(pool).await?, launch::gpu_offers(pool).await?),
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
