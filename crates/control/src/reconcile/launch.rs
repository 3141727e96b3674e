//! Launching new replicas: where each goes (the first candidate that has
//! not failed recently), its node row and credential, and the background
//! job; and what failed launches do to the next ones (backoff, cooldown).

use std::collections::HashMap;

use crosslogic_core::candidates::{self, Candidate};
use crosslogic_core::placement::{self, GpuChoice, GpuRequest};
use crosslogic_core::{NodeStatus, Provider};
use crosslogic_db::repo::deployments::Deployment;
use crosslogic_db::repo::nodes::{self, NewNode, Node};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::{dur_ms, Fleet, Pass, ReconcileConfig, Snapshot};
use crate::jobs::LaunchOutcome;
use crosslogic_core::ServiceError;

impl Pass<'_> {
    /// Folds finished launches into the backoff and cooldown state: a
    /// failure backs its deployment off and puts its candidate on cooldown;
    /// a success clears the deployment's backoff.
    pub(super) fn apply_outcomes(&mut self, outcomes: Vec<LaunchOutcome>) {
        for o in outcomes {
            let Some(dep) = o.deployment_id else { continue };
            match &o.error {
                None => {
                    self.state.backoff.remove(&dep);
                }
                Some(_) => {
                    self.record_failure(dep);
                    self.cool_down(o.candidate);
                }
            }
        }
    }

    /// One more failed launch for `dep`.
    pub(super) fn record_failure(&mut self, dep: Uuid) {
        let b = self.state.backoff.entry(dep).or_default();
        b.failures = b.failures.saturating_add(1);
        let delay = candidates::launch_backoff(b.failures, self.cfg.backoff_base, self.cfg.backoff_max);
        b.until_ms = self.now_ms.saturating_add(dur_ms(delay));
    }

    /// Skips `candidate` for the cooldown period.
    pub(super) fn cool_down(&mut self, candidate: String) {
        let until = self.now_ms.saturating_add(dur_ms(self.cfg.candidate_cooldown));
        self.state.avoid.insert(candidate, until);
    }
}

/// What one new node will be.
struct Choice {
    provider: Provider,
    region: Option<String>,
    gpu: Option<String>,
    count: u32,
    spot: bool,
    micros_per_hour: Option<i64>,
}

impl Choice {
    fn key(&self) -> String {
        candidates::candidate_key(
            self.provider,
            self.region.as_deref(),
            self.gpu.as_deref(),
            self.count,
            self.spot,
        )
    }
}

impl Pass<'_> {
    /// Starts up to `n` launches for `dep`; returns how many started.
    pub(super) async fn launch_replicas(
        &mut self,
        snap: &Snapshot,
        dep: &Deployment,
        placed: &[&Node],
        n: u32,
    ) -> Result<usize, ServiceError> {
        let mut per_region: HashMap<String, u32> = HashMap::new();
        for node in placed {
            if let Some(code) = &node.region_code {
                *per_region.entry(code.clone()).or_default() += 1;
            }
        }
        let now = self.now_ms;
        let mut started = 0;
        for _ in 0..n {
            let choice = match &self.cfg.fleet {
                Fleet::Local => Some(Choice {
                    provider: Provider::Local,
                    region: dep.region.clone(),
                    gpu: None,
                    count: u32::try_from(dep.gpu_count.unwrap_or(1).max(1)).unwrap_or(1),
                    spot: false,
                    micros_per_hour: None,
                }),
                Fleet::Cloud(providers) => {
                    let all = cloud_candidates(self.cfg, providers, snap, dep, &per_region);
                    if all.is_empty() {
                        self.report.failures.push((
                            dep.name.clone(),
                            "no region and GPU of the allowed providers fit this deployment".into(),
                        ));
                        break;
                    }
                    let next = all
                        .into_iter()
                        .find(|c| self.state.avoid.get(&c.key()).is_none_or(|&t| t <= now));
                    if next.is_none() {
                        self.report.failures.push((
                            dep.name.clone(),
                            "every candidate region and GPU failed recently; waiting for the cooldown".into(),
                        ));
                    }
                    next.map(|c| Choice {
                        provider: c.provider,
                        region: Some(c.region),
                        gpu: Some(c.gpu),
                        count: c.count,
                        spot: c.spot,
                        micros_per_hour: Some(c.micros_per_hour),
                    })
                }
            };
            let Some(choice) = choice else { break };
            if let Some(region) = &choice.region {
                *per_region.entry(region.clone()).or_default() += 1;
            }
            if let Some(cluster) = self.start_launch(snap, dep, choice).await? {
                self.report.launched.push(cluster);
                started += 1;
            }
        }
        Ok(started)
    }
}

fn cloud_candidates(
    cfg: &ReconcileConfig,
    providers: &[Provider],
    snap: &Snapshot,
    dep: &Deployment,
    per_region: &HashMap<String, u32>,
) -> Vec<Candidate> {
    let allowed: Vec<Provider> = match dep.provider.as_deref().map(str::parse::<Provider>) {
        Some(Ok(p)) => providers.iter().copied().filter(|x| *x == p).collect(),
        Some(Err(_)) => Vec::new(),
        None => providers.to_vec(),
    };
    let Some(model) = snap.models.get(&dep.model_name) else {
        return Vec::new();
    };
    let request = if dep.gpu_type.eq_ignore_ascii_case("auto") {
        GpuRequest::Auto
    } else {
        GpuRequest::Named {
            gpu: dep.gpu_type.clone(),
            count: dep.gpu_count.and_then(|c| u32::try_from(c).ok()),
        }
    };
    let gpus: Vec<GpuChoice> = placement::choose_gpu(
        u32::try_from(model.vram_required_gb.max(0)).unwrap_or(0),
        request,
        dep.use_spot,
        None,
        &snap.offers,
        cfg.vram_headroom,
        cfg.max_gpus_per_node,
    );
    candidates::launch_candidates(
        dep.strategy,
        dep.region.as_deref(),
        &snap.regions,
        per_region,
        &allowed,
        &gpus,
    )
}

impl Pass<'_> {
    /// Creates the node row (status `launching`, with its credential's hash)
    /// and starts the launch job. Returns the cluster name.
    async fn start_launch(
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
