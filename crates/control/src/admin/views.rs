//! Fleet resources as the admin API shows them: wire types built from the
//! rows (prices as decimals beside their exact integer units), so a column
//! added to a table never reaches an answer by accident. Tenancy's views
//! are in `crosslogic_tenancy::views`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crosslogic_core::{
    CapacityPolicy, DeploymentStatus, DeploymentStrategy, HealthCheckStatus, ModelStatus, ModelType, NodeStatus,
    Provider, ProvisionJobKind, ProvisionJobStatus, RegionStatus,
};
use crosslogic_db::repo::catalog::{GpuOffer, Model, Region};
use crosslogic_db::repo::deployments::Deployment;
use crosslogic_db::repo::nodes::{HealthCheck, Node};
use crosslogic_db::repo::provision_jobs::{JobLine, ProvisionJob};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::fleet::{to_f64, NodeDetail, NodeLogs, Termination};

/// A region.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegionView {
    /// Always `region`.
    pub object: &'static str,
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub country: String,
    pub city: String,
    pub cloud_providers: Vec<Provider>,
    /// Provider → that cloud's own region name (`{"aws": "us-east-1"}`).
    pub provider_regions: BTreeMap<String, String>,
    /// The price factor as a decimal (1.1)…
    pub cost_multiplier: f64,
    /// …and exactly, in thousandths (1100).
    pub cost_multiplier_milli: i32,
    pub status: RegionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Region> for RegionView {
    fn from(r: Region) -> Self {
        RegionView {
            object: "region",
            cost_multiplier: to_f64(i64::from(r.cost_multiplier_milli), 3),
            id: r.id,
            code: r.code,
            name: r.name,
            country: r.country,
            city: r.city,
            cloud_providers: r.cloud_providers,
            provider_regions: r.provider_regions,
            cost_multiplier_milli: r.cost_multiplier_milli,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A model as the API shows it: prices both as USD decimals and as integer
/// micro-dollars per million tokens.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelView {
    /// Always `model`.
    pub object: &'static str,
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
            object: "model",
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

/// One GPU type's offer at one provider.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GpuView {
    /// Always `gpu_offer`.
    pub object: &'static str,
    pub gpu_type: String,
    pub vram_gb: i32,
    pub provider: Provider,
    pub on_demand_usd_per_hour: f64,
    /// `null`: no spot offer.
    pub spot_usd_per_hour: Option<f64>,
    pub on_demand_microdollars_per_hour: i64,
    pub spot_microdollars_per_hour: Option<i64>,
    pub available: bool,
}

impl From<GpuOffer> for GpuView {
    fn from(o: GpuOffer) -> Self {
        GpuView {
            object: "gpu_offer",
            on_demand_usd_per_hour: to_f64(o.on_demand_microdollars_per_hour, 6),
            spot_usd_per_hour: o.spot_microdollars_per_hour.map(|m| to_f64(m, 6)),
            gpu_type: o.gpu_type,
            vram_gb: o.vram_gb,
            provider: o.provider,
            on_demand_microdollars_per_hour: o.on_demand_microdollars_per_hour,
            spot_microdollars_per_hour: o.spot_microdollars_per_hour,
            available: o.available,
        }
    }
}

/// A deployment: a model served by `min..=max` replicas.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeploymentView {
    /// Always `deployment`.
    pub object: &'static str,
    pub id: Uuid,
    pub name: String,
    pub model_name: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// Live replicas as of the reconciler's last pass.
    pub current_replicas: i32,
    pub strategy: DeploymentStrategy,
    /// `null` = any provider.
    pub provider: Option<String>,
    /// `null` = any region.
    pub region: Option<String>,
    /// A GPU type or `auto`.
    pub gpu_type: String,
    pub gpu_count: Option<i32>,
    /// `capacity_policy` is not `on_demand`.
    pub use_spot: bool,
    /// `on_demand`, `spot` or `hedged`.
    pub capacity_policy: CapacityPolicy,
    /// `hedged`: replicas always on-demand.
    pub on_demand_base: i32,
    /// `hedged`: spot replicas kept beyond the target.
    pub spot_overprovision: i32,
    pub status: DeploymentStatus,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        DeploymentView {
            object: "deployment",
            id: d.id,
            name: d.name,
            model_name: d.model_name,
            min_replicas: d.min_replicas,
            max_replicas: d.max_replicas,
            current_replicas: d.current_replicas,
            strategy: d.strategy,
            provider: d.provider,
            region: d.region,
            gpu_type: d.gpu_type,
            gpu_count: d.gpu_count,
            use_spot: d.use_spot,
            capacity_policy: d.capacity_policy,
            on_demand_base: d.on_demand_base,
            spot_overprovision: d.spot_overprovision,
            status: d.status,
            metadata: d.metadata,
            created_at: d.created_at,
            updated_at: d.updated_at,
            deleted_at: d.deleted_at,
        }
    }
}

/// A GPU node (never its agent credential).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    /// Always `node`.
    pub object: &'static str,
    pub id: Uuid,
    pub node_id_external: Option<String>,
    pub cluster_name: Option<String>,
    pub provider: Provider,
    pub region_id: Option<Uuid>,
    pub region_code: Option<String>,
    pub instance_type: Option<String>,
    pub gpu_type: Option<String>,
    pub gpu_count: i32,
    pub vram_total_gb: Option<i32>,
    pub vram_free_gb: Option<i32>,
    pub model_id: Option<Uuid>,
    pub model_name: Option<String>,
    pub deployment_id: Option<Uuid>,
    /// Where the gateways send requests.
    pub endpoint_url: Option<String>,
    pub internal_ip: Option<String>,
    pub spot_instance: bool,
    /// Load from the last heartbeat.
    pub throughput_tokens_per_sec: f64,
    pub running_requests: i32,
    pub waiting_requests: i32,
    pub kv_cache_usage: f64,
    pub status: NodeStatus,
    pub health_score: f64,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
}

impl From<Node> for NodeView {
    fn from(n: Node) -> Self {
        NodeView {
            object: "node",
            id: n.id,
            node_id_external: n.node_id_external,
            cluster_name: n.cluster_name,
            provider: n.provider,
            region_id: n.region_id,
            region_code: n.region_code,
            instance_type: n.instance_type,
            gpu_type: n.gpu_type,
            gpu_count: n.gpu_count,
            vram_total_gb: n.vram_total_gb,
            vram_free_gb: n.vram_free_gb,
            model_id: n.model_id,
            model_name: n.model_name,
            deployment_id: n.deployment_id,
            endpoint_url: n.endpoint_url,
            internal_ip: n.internal_ip,
            spot_instance: n.spot_instance,
            throughput_tokens_per_sec: n.throughput_tokens_per_sec,
            running_requests: n.running_requests,
            waiting_requests: n.waiting_requests,
            kv_cache_usage: n.kv_cache_usage,
            status: n.status,
            health_score: n.health_score,
            last_heartbeat_at: n.last_heartbeat_at,
            metadata: n.metadata,
            created_at: n.created_at,
            updated_at: n.updated_at,
            terminated_at: n.terminated_at,
        }
    }
}

/// One health observation of a node.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthCheckView {
    pub id: i64,
    pub node_id: Uuid,
    pub status: HealthCheckStatus,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    pub details: Value,
    pub checked_at: DateTime<Utc>,
}

impl From<HealthCheck> for HealthCheckView {
    fn from(h: HealthCheck) -> Self {
        HealthCheckView {
            id: h.id,
            node_id: h.node_id,
            status: h.status,
            latency_ms: h.latency_ms,
            error: h.error,
            details: h.details,
            checked_at: h.checked_at,
        }
    }
}

/// A node with its most recent health checks, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeDetailView {
    #[serde(flatten)]
    pub node: NodeView,
    pub health_checks: Vec<HealthCheckView>,
}

impl From<NodeDetail> for NodeDetailView {
    fn from(d: NodeDetail) -> Self {
        NodeDetailView {
            node: d.node.into(),
            health_checks: d.health_checks.into_iter().map(Into::into).collect(),
        }
    }
}

/// The answer to a termination: the node now, and the teardown job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TerminationView {
    /// `draining` while its cluster is torn down, `terminated` once done.
    pub node: NodeView,
    /// The background job tearing the cluster down, if one was started.
    pub job_id: Option<Uuid>,
}

impl From<Termination> for TerminationView {
    fn from(t: Termination) -> Self {
        TerminationView {
            node: t.node.into(),
            job_id: t.job_id,
        }
    }
}

/// A launch or terminate job of a node.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProvisionJobView {
    pub id: Uuid,
    pub node_id: Option<Uuid>,
    pub cluster_name: String,
    pub kind: ProvisionJobKind,
    pub status: ProvisionJobStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<ProvisionJob> for ProvisionJobView {
    fn from(j: ProvisionJob) -> Self {
        ProvisionJobView {
            id: j.id,
            node_id: j.node_id,
            cluster_name: j.cluster_name,
            kind: j.kind,
            status: j.status,
            error: j.error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

/// One line of a job's output.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobLineView {
    /// Increases in write order: the cursor of a follower.
    pub id: i64,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    pub line: String,
}

impl From<JobLine> for JobLineView {
    fn from(l: JobLine) -> Self {
        JobLineView {
            id: l.id,
            job_id: l.job_id,
            at: l.at,
            line: l.line,
        }
    }
}

/// A page of a node's launch and terminate logs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeLogsView {
    /// The node's jobs, oldest first.
    pub jobs: Vec<ProvisionJobView>,
    /// Lines after the cursor asked for, in order.
    pub lines: Vec<JobLineView>,
    /// Pass as `after` to get the lines that follow.
    pub next_cursor: i64,
    /// Whether a job still runs (more lines may come).
    pub running: bool,
}

impl From<NodeLogs> for NodeLogsView {
    fn from(l: NodeLogs) -> Self {
        NodeLogsView {
            jobs: l.jobs.into_iter().map(Into::into).collect(),
            lines: l.lines.into_iter().map(Into::into).collect(),
            next_cursor: l.next_cursor,
            running: l.running,
        }
    }
}
