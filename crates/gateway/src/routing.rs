//! Where requests go: an in-memory snapshot of routable nodes and of the
//! catalog (model prices, region multipliers), refreshed by
//! [`run_refresher`] every second — one query per second for the whole
//! gateway, never one per request.
//!
//! A node is a candidate when it is active, has an endpoint, serves the
//! requested model and is not ejected. Candidates in the environment's
//! region come first; within a group the one with the least outstanding
//! work (this gateway's in-flight requests + the node's reported queue) wins.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crosslogic_core::{ModelStatus, ModelType, PricePerMillion};
use crosslogic_db::repo::{catalog, nodes};
use crosslogic_db::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::request::Endpoint;

/// Consecutive failures that eject a node.
const EJECT_AFTER: u32 = 3;
/// How long an ejected node is skipped.
const EJECT_FOR: Duration = Duration::from_secs(30);

/// A routable node and this gateway's live view of it.
#[derive(Debug)]
pub struct NodeState {
    pub id: Uuid,
    pub endpoint: String,
    /// The endpoint's URL per inference endpoint, parsed once (parsing a
    /// URL per request was ~4 % of the gateway's CPU); `None` when the
    /// node's endpoint is not a URL.
    targets: Option<[reqwest::Url; 3]>,
    pub region_code: Option<String>,
    pub region_id: Option<Uuid>,
    /// Requests this gateway has in flight on the node.
    pub in_flight: AtomicU32,
    /// Queue length the node last reported (running + waiting).
    pub reported_load: AtomicU32,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the node is ejected.
    ejected_until_ms: AtomicU64,
    epoch: Instant,
}

impl NodeState {
    /// A node at `endpoint` (a base URL; a trailing `/` is dropped).
    pub fn new(id: Uuid, endpoint: &str, region_code: Option<String>, region_id: Option<Uuid>) -> NodeState {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let url = |e: Endpoint| reqwest::Url::parse(&format!("{endpoint}{}", e.path())).ok();
        let targets = match (
            url(Endpoint::Chat),
            url(Endpoint::Completions),
            url(Endpoint::Embeddings),
        ) {
            (Some(c), Some(p), Some(e)) => Some([c, p, e]),
            _ => None,
        };
        NodeState {
            id,
            endpoint,
            targets,
            region_code,
            region_id,
            in_flight: AtomicU32::new(0),
            reported_load: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Where `endpoint` is served on this node; `None` when the node's
    /// endpoint is not a URL.
    pub fn url(&self, endpoint: Endpoint) -> Option<&reqwest::Url> {
        let i = match endpoint {
            Endpoint::Chat => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
        };
        self.targets.as_ref().map(|t| &t[i])
    }

    fn outstanding(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed) + self.reported_load.load(Ordering::Relaxed)
    }

    fn ejected(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.ejected_until_ms.load(Ordering::Relaxed) > now
    }

    /// Records a failed attempt; ejects the node after repeated failures.
    pub fn record_failure(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= EJECT_AFTER {
            let until = (self.epoch.elapsed() + EJECT_FOR).as_millis() as u64;
            self.ejected_until_ms.store(until, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
            tracing::warn!(node_id = %self.id, endpoint = %self.endpoint, "node ejected after repeated failures");
        }
    }

    /// Records a successful attempt.
    pub fn record_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }
}

/// A model as the gateway needs it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub id: Uuid,
    pub name: String,
    pub model_type: ModelType,
    pub input_price: PricePerMillion,
    pub output_price: PricePerMillion,
    pub created: i64,
    /// Its `crosslogic_gateway_tokens_total` counters.
    pub tokens: crate::telemetry::TokenCounters,
}

/// One consistent view of nodes and catalog.
#[derive(Debug, Default)]
pub struct Snapshot {
    nodes_by_model: HashMap<String, Vec<Arc<NodeState>>>,
    pub models: HashMap<String, Arc<ModelInfo>>,
    /// Region id → cost multiplier in thousandths.
    pub multipliers: HashMap<Uuid, u32>,
    /// Region code → id.
    pub region_ids: HashMap<String, Uuid>,
}

impl Snapshot {
    /// Candidates for `model`, best first.
    pub fn candidates(&self, model: &str, region: Option<&str>) -> Vec<Arc<NodeState>> {
        let Some(all) = self.nodes_by_model.get(model) else {
            return Vec::new();
        };
        let mut c: Vec<Arc<NodeState>> = all.iter().filter(|n| !n.ejected()).cloned().collect();
        if c.is_empty() {
            // Every node is ejected: trying one beats refusing outright.
            c = all.clone();
        }
        c.sort_by_key(|n| (region.is_some() && n.region_code.as_deref() != region, n.outstanding()));
        c
    }

    /// Whether any node serves `model`.
    pub fn is_served(&self, model: &str) -> bool {
        self.nodes_by_model.get(model).is_some_and(|v| !v.is_empty())
    }
}

/// The shared, swappable snapshot.
#[derive(Clone, Default)]
pub struct Routes {
    current: Arc<RwLock<Arc<Snapshot>>>,
}

impl Routes {
    /// The current snapshot (cheap: clones an `Arc`).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    /// Reloads nodes and catalog from the database, keeping the live
    /// counters of nodes that are still there.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), crosslogic_db::DbError> {
        let rows = nodes::routable(pool).await?;
        let models = catalog::list_models(pool).await?;
        let regions = catalog::list_regions(pool).await?;
        let old = self.snapshot();
        let old_nodes: HashMap<Uuid, Arc<NodeState>> = old
            .nodes_by_model
            .values()
            .flatten()
            .map(|n| (n.id, Arc::clone(n)))
            .collect();
        let mut next = Snapshot::default();
        for row in rows {
            let (Some(endpoint), Some(model)) = (row.endpoint_url, row.model_name) else {
                continue;
            };
            let load = u32::try_from(row.running_requests.max(0) + row.waiting_requests.max(0)).unwrap_or(u32::MAX);
            let state = match old_nodes.get(&row.id) {
                Some(s) if s.endpoint == endpoint.trim_end_matches('/') => Arc::clone(s),
                _ => Arc::new(NodeState::new(row.id, &endpoint, row.region_code, row.region_id)),
            };
            state.reported_load.store(load, Ordering::Relaxed);
            next.nodes_by_model.entry(model).or_default().push(state);
        }
        for m in models.into_iter().filter(|m| m.status != ModelStatus::Deprecated) {
            next.models.insert(
                m.name.clone(),
                Arc::new(ModelInfo {
                    id: m.id,
                    input_price: m.input_price(),
                    output_price: m.output_price(),
                    model_type: m.model_type,
                    created: m.created_at.timestamp(),
                    tokens: crate::telemetry::TokenCounters::new(&m.name),
                    name: m.name,
                }),
            );
        }
        for r in regions {
            next.multipliers
                .insert(r.id, u32::try_from(r.cost_multiplier_milli).unwrap_or(1000));
            next.region_ids.insert(r.code, r.id);
        }
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(next);
        }
        Ok(())
    }
}

/// Refreshes `routes` every `interval` until `shutdown`.
pub async fn run_refresher(routes: Routes, pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = routes.refresh(&pool).await {
                    tracing::warn!(error = %e, "refreshing routes failed; keeping the previous snapshot");
                }
            }
        }
    }
}
