//! Starting a launch the plan decided: the node row with its credential's
//! hash, and the background job.

use crosslogic_core::placement;
use crosslogic_core::NodeStatus;
use crosslogic_db::repo::deployments::Deployment;
use crosslogic_db::repo::nodes::{self, NewNode};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::plan::{self, Choice};
use super::{Pass, Snapshot};
use crate::jobs::LaunchOutcome;
use crosslogic_core::ServiceError;

impl Pass<'_> {
    /// Folds finished launches into the backoff and cooldown state.
    pub(super) fn apply_outcomes(&mut self, outcomes: Vec<LaunchOutcome>) {
        for o in outcomes {
            let Some(dep) = o.deployment_id else { continue };
            plan::launch_finished(self.cfg, self.state, self.now_ms, dep, o.candidate, o.error.is_none());
        }
    }
}

impl Pass<'_> {
    /// Creates the node row (status `launching`, with its credential's hash)
    /// and starts the launch job. Returns the cluster name.
    pub(super) async fn start_launch(
        &self,
        snap: &Snapshot,
        dep: &Deployment,
        choice: Choice,
    ) -> Result<Option<String>, ServiceError> {
        let id = Uuid::new_v4().simple().to_string();
        let cluster = placement::cluster_name(
            choice.provider,
            choice.region.as_deref().unwrap_or(choice.provider.as_str()),
            choice.gpu.as_deref().unwrap_or("any"),
            choice.spot,
            &id,
        );
        let candidate = choice.key();
        let model_source = snap
            .models
            .get(&dep.model_name)
            .and_then(|m| m.metadata.get("hf_model"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let (token, hash) = crosslogic_core::keys::generate_node_token(&mut rand::rngs::OsRng);
        let node = nodes::create(
            self.pool,
            &NewNode {
                cluster_name: cluster.clone(),
                provider: choice.provider,
                region_code: choice.region.clone(),
                instance_type: None,
                gpu_type: choice.gpu.clone(),
                gpu_count: i32::try_from(choice.count).unwrap_or(1),
                vram_total_gb: None,
                model_name: dep.model_name.clone(),
                deployment_id: Some(dep.id),
                spot_instance: choice.spot,
                agent_token_hash: Some(hash),
                metadata: json!({
                    "launched_by": "reconciler",
                    "candidate": candidate,
                    "micros_per_hour": choice.micros_per_hour,
                }),
            },
        )
        .await?;
        debug_assert_eq!(node.status, NodeStatus::Launching);
        let cloud_region = choice
            .region
            .as_ref()
            .and_then(|code| snap.cloud_regions.get(code)?.get(choice.provider.as_str()).cloned());
        let spec = crate::provision::LaunchSpec {
            cluster_name: cluster.clone(),
            node_id: node.id,
            node_token: SecretString::from(token),
            model: dep.model_name.clone(),
            model_source,
            provider: choice.provider,
            region: choice.region,
            cloud_region,
            gpu: choice.gpu,
            gpu_count: choice.count,
            spot: choice.spot,
            control_url: self.cfg.control_url.clone(),
        };
        tracing::info!(deployment = %dep.name, cluster = %cluster, candidate = %candidate, "launching a node");
        Ok(self.jobs.launch(spec, Some(dep.id), candidate).await?.map(|_| cluster))
    }
}
