//! One reconciler pass over a large synthetic fleet: 1,000 deployments with
//! 10 nodes each (10,000 nodes) on real PostgreSQL, with a provisioner that
//! launches and terminates instantly — so the figures are the reconciler's
//! own cost: wall time and SQL statements per pass.
//!
//! `cargo bench -p crosslogic-control --bench reconcile`
//! (`RECONCILE_BENCH_DEPLOYMENTS`, `RECONCILE_BENCH_NODES_PER` to resize).
//! Needs PostgreSQL (CROSSLOGIC_TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres). Prints, asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crosslogic_control::jobs::Jobs;
use crosslogic_control::provision::{BoxFuture, JobLog, LaunchHandle, LaunchSpec, ProvisionError, Provisioner};
use crosslogic_control::reconcile::{reconcile_once, Fleet, ReconcileConfig, ReconcileState};
use crosslogic_core::{DeploymentStrategy, NodeStatus, Provider};
use crosslogic_db::repo::deployments::{self, NewDeployment};
use crosslogic_db::repo::nodes::{self, Load, NewNode};
use crosslogic_testkit::TestDb;
use futures_util::future::try_join_all;
use serde_json::json;
use tracing_subscriber::layer::{Layer, SubscriberExt};

/// Counts the statements sqlx executes (its `sqlx::query` log events).
struct QueryCounter(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QueryCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Launches and terminates instantly; lists what it launched.
#[derive(Default)]
struct Immediate {
    alive: Mutex<HashSet<String>>,
}

impl Provisioner for Immediate {
    fn launch(&self, spec: LaunchSpec, _log: JobLog) -> BoxFuture<'_, Result<LaunchHandle, ProvisionError>> {
        self.alive.lock().unwrap().insert(spec.cluster_name.clone());
        Box::pin(async move {
            Ok(LaunchHandle {
                cluster_name: spec.cluster_name,
                endpoint_url: None,
            })
        })
    }
    fn terminate<'a>(&'a self, cluster: &'a str, _log: JobLog) -> BoxFuture<'a, Result<(), ProvisionError>> {
        self.alive.lock().unwrap().remove(cluster);
        Box::pin(async { Ok(()) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ProvisionError>> {
        let v = self.alive.lock().unwrap().iter().cloned().collect();
        Box::pin(async move { Ok(v) })
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let counter = Arc::new(AtomicU64::new(0));
    let filter = tracing_subscriber::filter::Targets::new().with_target("sqlx::query", tracing::Level::TRACE);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(QueryCounter(counter.clone()).with_filter(filter)),
    )
    .unwrap();
    let deployments_n = env_usize("RECONCILE_BENCH_DEPLOYMENTS", 1000);
    let per = env_usize("RECONCILE_BENCH_NODES_PER", 10);

    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let prov = Arc::new(Immediate::default());
    let regions = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"];
    let setup = Instant::now();
    let mut dead = 0;
    for chunk in (0..deployments_n).collect::<Vec<_>>().chunks(25) {
        try_join_all(chunk.iter().map(|&i| {
            let pool = db.pool.clone();
            let prov = prov.clone();
            async move {
                let dep = deployments::create(
                    &pool,
                    &NewDeployment {
                        name: format!("bench-{i:05}"),
                        model_name: "llama-3-8b".into(),
                        min_replicas: i32::try_from(per).unwrap(),
                        max_replicas: i32::try_from(per).unwrap() + 2,
                        strategy: DeploymentStrategy::Spread,
                        provider: Some(Provider::Aws),
                        region: None,
                        gpu_type: "auto".into(),
                        gpu_count: None,
                        capacity_policy: crosslogic_core::CapacityPolicy::Spot,
                        on_demand_base: 0,
                        spot_overprovision: 1,
                        metadata: json!({}),
                    },
                )
                .await?;
                for j in 0..per {
                    let cluster = format!("cic-aws-{}-a10g-spot-b{i:05}n{j:03}", regions[j % 4]);
                    let n = nodes::create(
                        &pool,
                        &NewNode {
                            cluster_name: cluster.clone(),
                            provider: Provider::Aws,
                            region_code: Some(regions[j % 4].into()),
                            instance_type: None,
                            gpu_type: Some("A10G".into()),
                            gpu_count: 1,
                            vram_total_gb: Some(24),
                            model_name: "llama-3-8b".into(),
                            deployment_id: Some(dep.id),
                            spot_instance: true,
                            agent_token_hash: None,
                            metadata: json!({}),
                        },
                    )
                    .await?;
                    prov.alive.lock().unwrap().insert(cluster);
                    // Every 50th deployment lost one node: it is replaced.
                    let status = if i % 50 == 0 && j == 0 {
                        NodeStatus::Dead
                    } else {
                        NodeStatus::Active
                    };
                    nodes::transition(&pool, n.id, status, &[]).await?;
                    if status == NodeStatus::Active {
                        let load = Load {
                            running_requests: 5,
                            waiting_requests: 0,
                            throughput_tokens_per_sec: 40.0,
                            kv_cache_usage: 0.3,
                            vram_free_gb: None,
                        };
                        nodes::heartbeat(&pool, n.id, &load).await?;
                    }
                }
                Ok::<_, crosslogic_db::DbError>(())
            }
        }))
        .await
        .unwrap();
        dead += chunk.iter().filter(|&&i| i % 50 == 0).count();
    }
    println!(
        "fleet: {deployments_n} deployments x {per} nodes = {} nodes ({dead} dead), set up in {:.1?}",
        deployments_n * per,
        setup.elapsed()
    );

    let jobs = Jobs::new(db.pool.clone(), prov.clone(), Duration::from_secs(60));
    let mut cfg = ReconcileConfig::for_fleet(
        Fleet::Cloud(vec![Provider::Aws, Provider::Gcp, Provider::Azure]),
        "http://127.0.0.1:1",
    );
    cfg.sweep_interval = Duration::ZERO;
    let mut state = ReconcileState::default();
    println!("pass                         time       SQL statements  launched  terminated");
    for label in ["1 (replace dead nodes)", "2 (steady state)", "3 (steady state)"] {
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
        let before = counter.load(Ordering::Relaxed);
        let t = Instant::now();
        let r = reconcile_once(&db.pool, &jobs, &cfg, &mut state, now).await.unwrap();
        let took = t.elapsed();
        let statements = counter.load(Ordering::Relaxed) - before;
        jobs.idle().await;
        println!(
            "{label:<28} {:>8.1} ms {:>15} {:>9} {:>11}",
            took.as_secs_f64() * 1000.0,
            statements,
            r.launched.len(),
            r.terminated.len()
        );
    }
    println!(
        "(statements counted while the pass ran; background job statements are excluded only when they start after it)"
    );
    db.drop_db().await;
}
