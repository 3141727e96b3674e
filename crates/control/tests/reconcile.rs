//! The deployments reconciler against a real database and a recording
//! fake provisioner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crosslogic_control::jobs::Jobs;
use crosslogic_control::provision::{BoxFuture, JobLog, LaunchHandle, LaunchSpec, ProvisionError, Provisioner};
use crosslogic_control::reconcile::{reconcile_once, ReconcileConfig, ReconcileReport, ReconcileState};
use crosslogic_core::{DeploymentStrategy, NodeStatus, Provider};
use crosslogic_db::repo::deployments::{self, DeploymentPatch, NewDeployment};
use crosslogic_db::repo::nodes::{self, Node, NodeFilter};
use crosslogic_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

type Spec = (String, Provider, Option<String>, Option<String>, bool, Option<String>);

#[derive(Default)]
struct Fake {
    launched: Mutex<Vec<(String, Uuid)>>,
    terminated: Mutex<Vec<String>>,
    /// Launches of clusters whose name contains one of these fail.
    fail: Mutex<Vec<String>>,
    /// Clusters that exist without having been launched here (orphans).
    extra: Mutex<Vec<String>>,
    /// Specs seen, as (cluster, provider, region, gpu, spot, cloud region).
    specs: Mutex<Vec<Spec>>,
}

impl Provisioner for Fake {
    fn launch(&self, spec: LaunchSpec, log: JobLog) -> BoxFuture<'_, Result<LaunchHandle, ProvisionError>> {
        log.line("fake: provisioning");
        self.specs.lock().unwrap().push((
            spec.cluster_name.clone(),
            spec.provider,
            spec.region.clone(),
            spec.gpu.clone(),
            spec.spot,
            spec.cloud_region.clone(),
        ));
        let fails = self
            .fail
            .lock()
            .unwrap()
            .iter()
            .any(|f| spec.cluster_name.contains(f.as_str()));
        if !fails {
            self.launched
                .lock()
                .unwrap()
                .push((spec.cluster_name.clone(), spec.node_id));
        }
        Box::pin(async move {
            if fails {
                log.line("fake: no capacity");
                return Err(ProvisionError::Failed("InsufficientInstanceCapacity".into()));
            }
            Ok(LaunchHandle {
                cluster_name: spec.cluster_name,
                endpoint_url: None,
            })
        })
    }
    fn terminate<'a>(&'a self, cluster_name: &'a str, _log: JobLog) -> BoxFuture<'a, Result<(), ProvisionError>> {
        self.terminated.lock().unwrap().push(cluster_name.to_owned());
        Box::pin(async { Ok(()) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ProvisionError>> {
        let dead = self.terminated.lock().unwrap().clone();
        let alive = self
            .launched
            .lock()
            .unwrap()
            .iter()
            .map(|(c, _)| c.clone())
            .chain(self.extra.lock().unwrap().iter().cloned())
            .filter(|c| !dead.contains(c))
            .collect();
        Box::pin(async move { Ok(alive) })
    }
}

/// Jobs over a shared fake.
fn jobs(db: &TestDb, fake: &Arc<Fake>) -> Jobs {
    Jobs::new(db.pool.clone(), fake.clone(), Duration::from_secs(60))
}

/// One pass, then waits for the jobs it started.
async fn pass(
    db: &TestDb,
    jobs: &Jobs,
    cfg: &ReconcileConfig,
    state: &mut ReconcileState,
    now: u64,
) -> ReconcileReport {
    let r = reconcile_once(&db.pool, jobs, cfg, state, now).await.unwrap();
    jobs.idle().await;
    r
}

async fn deployment_nodes(db: &TestDb, id: Uuid) -> Vec<Node> {
    let f = NodeFilter {
        deployment_id: Some(id),
        include_terminated: true,
        ..NodeFilter::default()
    };
    nodes::list(&db.pool, &f, 100).await.unwrap()
}

#[tokio::test]
async fn reconciler_launches_to_min_replaces_dead_nodes_and_drains_the_excess() {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let dep = deployments::create(
        &db.pool,
        &NewDeployment {
            name: "llama-local".into(),
            model_name: "llama-3-8b".into(),
            min_replicas: 2,
            max_replicas: 4,
            strategy: DeploymentStrategy::Spread,
            provider: Some(Provider::Local),
            region: None,
            gpu_type: "auto".into(),
            gpu_count: None,
            capacity_policy: crosslogic_core::CapacityPolicy::OnDemand,
            on_demand_base: 0,
            spot_overprovision: 1,
            metadata: json!({}),
        },
    )
    .await
    .unwrap();
    let fake = Arc::new(Fake::default());
    let jobs = jobs(&db, &fake);
    let cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    let mut state = ReconcileState::default();

    // min 2 → two launches, distinct clusters, node rows launching.
    let r = pass(&db, &jobs, &cfg, &mut state, 1_000).await;
    assert!(r.acted);
    assert_eq!(r.launched.len(), 2);
    let names: BTreeSet<_> = r.launched.iter().cloned().collect();
    assert_eq!(names.len(), 2, "cluster names are distinct");
    let rows = deployment_nodes(&db, dep.id).await;
    assert_eq!(rows.len(), 2);
    for n in &rows {
        assert_eq!(n.status, NodeStatus::Launching);
        assert_eq!(n.provider, Provider::Local);
        assert!(names.contains(n.cluster_name.as_deref().unwrap()));
        assert!(fake
            .launched
            .lock()
            .unwrap()
            .contains(&(n.cluster_name.clone().unwrap(), n.id)));
        assert!(nodes::agent_token_hash(&db.pool, n.id).await.unwrap().is_some());
    }
    let scaled: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'deployment.scaled'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(scaled, 1);

    // Launching nodes count: nothing more.
    let r = pass(&db, &jobs, &cfg, &mut state, 2_000).await;
    assert!(
        r.launched.is_empty() && r.drained.is_empty() && r.terminated.is_empty(),
        "{r:?}"
    );
    assert_eq!(fake.launched.lock().unwrap().len(), 2);

    // Both come up; one dies → terminated and replaced.
    for n in &rows {
        nodes::transition(&db.pool, n.id, NodeStatus::Active, &[])
            .await
            .unwrap();
    }
    let dead = &rows[0];
    nodes::transition(&db.pool, dead.id, NodeStatus::Dead, &[])
        .await
        .unwrap();
    let r = pass(&db, &jobs, &cfg, &mut state, 3_000).await;
    assert_eq!(r.terminated, [dead.cluster_name.clone().unwrap()]);
    assert_eq!(r.launched.len(), 1);
    assert_eq!(*fake.terminated.lock().unwrap(), [dead.cluster_name.clone().unwrap()]);
    assert_eq!(
        nodes::get(&db.pool, dead.id).await.unwrap().status,
        NodeStatus::Terminated
    );
    assert_eq!(deployments::get(&db.pool, dep.id).await.unwrap().current_replicas, 1);

    // The replacement comes up; lowering max drains the excess.
    let replacement = deployment_nodes(&db, dep.id)
        .await
        .into_iter()
        .find(|n| n.status == NodeStatus::Launching)
        .unwrap();
    nodes::transition(&db.pool, replacement.id, NodeStatus::Active, &[])
        .await
        .unwrap();
    let r = pass(&db, &jobs, &cfg, &mut state, 4_000).await;
    assert!(r.launched.is_empty() && r.drained.is_empty(), "{r:?}");
    assert_eq!(deployments::get(&db.pool, dep.id).await.unwrap().current_replicas, 2);
    deployments::update(
        &db.pool,
        dep.id,
        &DeploymentPatch {
            min_replicas: Some(1),
            max_replicas: Some(1),
            ..DeploymentPatch::default()
        },
    )
    .await
    .unwrap();
    let r = pass(&db, &jobs, &cfg, &mut state, 5_000).await;
    assert_eq!(r.drained.len(), 1, "{r:?}");
    assert!(r.launched.is_empty());
    let victim = r.drained[0];
    assert_eq!(nodes::get(&db.pool, victim).await.unwrap().status, NodeStatus::Draining);
    assert_eq!(deployments::get(&db.pool, dep.id).await.unwrap().current_replicas, 1);

    // Idle draining node → terminated on the next pass; nothing relaunched.
    let r = pass(&db, &jobs, &cfg, &mut state, 6_000).await;
    let victim_row = nodes::get(&db.pool, victim).await.unwrap();
    assert_eq!(r.terminated, [victim_row.cluster_name.clone().unwrap()]);
    assert!(r.launched.is_empty());
    assert_eq!(victim_row.status, NodeStatus::Terminated);
    assert_eq!(fake.list().await.unwrap().len(), 1);
    db.drop_db().await;
}

#[tokio::test]
async fn only_one_replica_acts_per_pass() {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let mut holder = db.pool.begin().await.unwrap();
    assert!(deployments::try_reconcile_lock(&mut *holder).await.unwrap());
    let fake = Arc::new(Fake::default());
    let jobs = jobs(&db, &fake);
    let cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    let r = reconcile_once(&db.pool, &jobs, &cfg, &mut ReconcileState::default(), 0)
        .await
        .unwrap();
    assert!(!r.acted);
    holder.rollback().await.unwrap();
    let r = reconcile_once(&db.pool, &jobs, &cfg, &mut ReconcileState::default(), 0)
        .await
        .unwrap();
    assert!(r.acted);
    db.drop_db().await;
}

/// A fresh database with one deployment, a fake provisioner and its jobs.
async fn setup(
    name: &str,
    min: i32,
    provider: Option<Provider>,
    region: Option<&str>,
) -> (TestDb, Uuid, Arc<Fake>, Jobs) {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let dep = create_deployment(&db, name, min, provider, region).await;
    let fake = Arc::new(Fake::default());
    let jobs = jobs(&db, &fake);
    (db, dep, fake, jobs)
}

fn epoch_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap()
}

async fn create_deployment(
    db: &TestDb,
    name: &str,
    min: i32,
    provider: Option<Provider>,
    region: Option<&str>,
) -> Uuid {
    deployments::create(
        &db.pool,
        &NewDeployment {
            name: name.into(),
            model_name: "llama-3-8b".into(),
            min_replicas: min,
            max_replicas: min.max(1) + 2,
            strategy: DeploymentStrategy::Spread,
            provider,
            region: region.map(str::to_owned),
            gpu_type: "auto".into(),
            gpu_count: None,
            capacity_policy: crosslogic_core::CapacityPolicy::Spot,
            on_demand_base: 0,
            spot_overprovision: 1,
            metadata: json!({}),
        },
    )
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn cloud_launches_go_to_the_cheapest_fit_and_failures_back_off_to_the_next_candidate() {
    let (db, dep, fake, jobs) = setup("llama-cloud", 1, Some(Provider::Aws), Some("us-east")).await;
    let cfg = ReconcileConfig::new(Provider::Aws, "http://127.0.0.1:1");
    let mut state = ReconcileState::default();

    // Spot capacity is out everywhere: every spot launch fails.
    fake.fail.lock().unwrap().push("-spot-".into());
    let t0 = epoch_ms();
    let r = pass(&db, &jobs, &cfg, &mut state, t0).await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    let first = fake.specs.lock().unwrap()[0].clone();
    assert_eq!(first.1, Provider::Aws);
    assert_eq!(first.2.as_deref(), Some("us-east"));
    assert_eq!(first.5.as_deref(), Some("us-east-1"), "the provider's own region name");
    assert!(first.4, "spot first");
    // llama-3-8b needs 16 GB × 1.2: the cheapest AWS GPU that fits, one of it.
    let gpu = first.3.clone().unwrap();
    assert!(
        first
            .0
            .starts_with(&format!("cic-aws-us-east-{}-spot-", gpu.to_lowercase())),
        "{}",
        first.0
    );
    let row = &deployment_nodes(&db, dep).await[0];
    assert_eq!(
        row.status,
        NodeStatus::Terminated,
        "a failed launch terminates its node"
    );
    assert_eq!(row.gpu_type.as_deref(), Some(gpu.as_str()));

    // The failure backs the deployment off: nothing during the backoff.
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 1_000).await;
    assert!(r.launched.is_empty(), "{r:?}");
    assert_eq!(r.backing_off, ["llama-cloud"]);
    assert_eq!(state.backoff[&dep].failures, 1);

    // After it, the next candidate (not the one that failed) is tried.
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 11_000).await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    let second = fake.specs.lock().unwrap()[1].clone();
    assert_ne!(
        (second.3.clone(), second.4),
        (first.3.clone(), first.4),
        "a different shape"
    );
    // Spot keeps failing until an on-demand shape is reached; then it sticks.
    let mut now = t0 + 11_000;
    for _ in 0..20 {
        if deployment_nodes(&db, dep)
            .await
            .iter()
            .any(|n| n.status == NodeStatus::Launching)
        {
            break;
        }
        now += 400_000;
        pass(&db, &jobs, &cfg, &mut state, now).await;
    }
    let launching: Vec<Node> = deployment_nodes(&db, dep)
        .await
        .into_iter()
        .filter(|n| n.status == NodeStatus::Launching)
        .collect();
    assert_eq!(launching.len(), 1);
    assert!(!launching[0].spot_instance, "on-demand fallback");
    pass(&db, &jobs, &cfg, &mut state, now + 1).await;
    assert!(
        !state.backoff.contains_key(&dep),
        "a successful launch clears the backoff"
    );

    // Every launch left its log.
    let logs: Vec<String> = sqlx::query_scalar(
        "SELECT l.line FROM provision_job_lines l JOIN provision_jobs j ON j.id = l.job_id
          WHERE j.node_id = $1 ORDER BY l.id",
    )
    .bind(row.id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(logs.iter().any(|l| l.contains("fake: no capacity")), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("launch failed")), "{logs:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn stuck_launches_vanished_clusters_and_orphans_are_handled() {
    let (db, dep, fake, jobs) = setup("llama-sweep", 1, Some(Provider::Local), None).await;
    let mut cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    cfg.launch_timeout = Duration::from_secs(120);
    cfg.orphan_grace = Duration::from_secs(30);
    cfg.sweep_interval = Duration::from_secs(0);
    let mut state = ReconcileState::default();
    let t0 = epoch_ms();

    let r = pass(&db, &jobs, &cfg, &mut state, t0).await;
    assert_eq!(r.launched.len(), 1);
    let stuck = deployment_nodes(&db, dep).await[0].clone();

    // Its agent never registers: dead after the launch timeout, then replaced.
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 60_000).await;
    assert!(r.declared_dead.is_empty() && r.launched.is_empty(), "{r:?}");
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 121_000).await;
    assert_eq!(r.declared_dead, [stuck.id]);
    assert_eq!(r.terminated, [stuck.cluster_name.clone().unwrap()]);
    let stuck_now = nodes::get(&db.pool, stuck.id).await.unwrap();
    assert_eq!(stuck_now.status, NodeStatus::Terminated);
    // A stuck launch counts as a failure: backoff first, then a replacement.
    assert!(r.launched.is_empty() && r.backing_off == ["llama-sweep"], "{r:?}");
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 200_000).await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    let replacement = deployment_nodes(&db, dep)
        .await
        .into_iter()
        .find(|n| n.status == NodeStatus::Launching)
        .unwrap();
    nodes::transition(&db.pool, replacement.id, NodeStatus::Active, &[])
        .await
        .unwrap();

    // An orphan cluster appears: kept during the grace period, then terminated.
    fake.extra.lock().unwrap().push("cic-local-local-any-od-orphan1".into());
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 201_000).await;
    assert!(r.terminated.is_empty(), "{r:?}");
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 232_000).await;
    assert_eq!(r.terminated, ["cic-local-local-any-od-orphan1"]);
    assert!(fake
        .terminated
        .lock()
        .unwrap()
        .contains(&"cic-local-local-any-od-orphan1".to_string()));

    // The active node's cluster vanishes: dead, terminated and replaced.
    fake.terminated
        .lock()
        .unwrap()
        .push(replacement.cluster_name.clone().unwrap());
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 240_000).await;
    assert_eq!(r.declared_dead, [replacement.id], "{r:?}");
    assert_eq!(r.terminated, [replacement.cluster_name.clone().unwrap()]);
    assert_eq!(r.launched.len(), 1, "replaced in the same pass: {r:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn concurrent_reconcilers_never_double_launch() {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let dep = create_deployment(&db, "llama-race", 3, Some(Provider::Local), None).await;
    let fake = Arc::new(Fake::default());
    let cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    // Two control planes (separate jobs and state), passing in a tight loop.
    let mut handles = Vec::new();
    for _ in 0..2 {
        let pool = db.pool.clone();
        let jobs = Jobs::new(db.pool.clone(), fake.clone(), Duration::from_secs(60));
        let cfg = cfg.clone();
        handles.push(tokio::spawn(async move {
            let mut state = ReconcileState::default();
            let mut acted = 0;
            for _ in 0..40 {
                let r = reconcile_once(&pool, &jobs, &cfg, &mut state, epoch_ms())
                    .await
                    .unwrap();
                acted += usize::from(r.acted);
            }
            jobs.idle().await;
            acted
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    assert!(total > 0);
    let rows = deployment_nodes(&db, dep).await;
    assert_eq!(rows.len(), 3, "exactly min launched: {rows:?}");
    assert_eq!(fake.launched.lock().unwrap().len(), 3);
    db.drop_db().await;
}

#[tokio::test]
async fn paused_deployments_are_left_alone_and_deleted_ones_wind_down() {
    use crosslogic_core::DeploymentStatus;
    let (db, dep, _, jobs) = setup("llama-wind", 2, Some(Provider::Local), None).await;
    let cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    let mut state = ReconcileState::default();
    let t0 = epoch_ms();
    assert_eq!(pass(&db, &jobs, &cfg, &mut state, t0).await.launched.len(), 2);
    let rows = deployment_nodes(&db, dep).await;
    for n in &rows {
        nodes::transition(&db.pool, n.id, NodeStatus::Active, &[])
            .await
            .unwrap();
    }

    // Paused: a dead node is cleaned up but not replaced; the live one stays.
    deployments::set_status(&db.pool, dep, DeploymentStatus::Paused)
        .await
        .unwrap();
    nodes::transition(&db.pool, rows[0].id, NodeStatus::Dead, &[])
        .await
        .unwrap();
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 1_000).await;
    assert_eq!(r.terminated, [rows[0].cluster_name.clone().unwrap()]);
    assert!(r.launched.is_empty() && r.drained.is_empty(), "{r:?}");
    assert_eq!(
        nodes::get(&db.pool, rows[1].id).await.unwrap().status,
        NodeStatus::Active
    );

    // Deleted: the remaining node drains, then (idle) is terminated.
    deployments::set_status(&db.pool, dep, DeploymentStatus::Deleted)
        .await
        .unwrap();
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 2_000).await;
    assert_eq!(r.drained, [rows[1].id]);
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 3_000).await;
    assert_eq!(r.terminated, [rows[1].cluster_name.clone().unwrap()]);
    assert!(deployment_nodes(&db, dep)
        .await
        .iter()
        .all(|n| n.status == NodeStatus::Terminated));
    assert_eq!(deployments::get(&db.pool, dep).await.unwrap().current_replicas, 0);
    let r = pass(&db, &jobs, &cfg, &mut state, t0 + 4_000).await;
    assert!(
        r.launched.is_empty() && r.terminated.is_empty() && r.drained.is_empty(),
        "{r:?}"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_reconciler_leaves_other_providers_deployments_and_nodes_alone() {
    let (db, dep, _, jobs) = setup("llama-elsewhere", 1, Some(Provider::Aws), Some("us-east")).await;
    // A local control plane: the AWS deployment is not its to launch.
    let local = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    let mut state = ReconcileState::default();
    let r = pass(&db, &jobs, &local, &mut state, epoch_ms()).await;
    assert!(r.launched.is_empty() && r.failures.is_empty(), "{r:?}");
    // The AWS control plane launches it; the node dies.
    let aws = ReconcileConfig::new(Provider::Aws, "http://127.0.0.1:1");
    let mut aws_state = ReconcileState::default();
    assert_eq!(
        pass(&db, &jobs, &aws, &mut aws_state, epoch_ms()).await.launched.len(),
        1
    );
    let node = deployment_nodes(&db, dep).await.remove(0);
    nodes::transition(&db.pool, node.id, NodeStatus::Dead, &[])
        .await
        .unwrap();
    // The local one does not tear down a cloud node it cannot reach.
    let r = pass(&db, &jobs, &local, &mut state, epoch_ms()).await;
    assert!(r.terminated.is_empty(), "{r:?}");
    assert_eq!(nodes::get(&db.pool, node.id).await.unwrap().status, NodeStatus::Dead);
    let r = pass(&db, &jobs, &aws, &mut aws_state, epoch_ms()).await;
    assert_eq!(r.terminated, [node.cluster_name.clone().unwrap()]);
    db.drop_db().await;
}

#[tokio::test]
async fn a_node_whose_launch_never_started_is_replaced_without_waiting_for_the_timeout() {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let dep = create_deployment(&db, "llama-crash", 1, Some(Provider::Local), None).await;
    // What a control plane that died right after writing the row leaves.
    let orphan_row = nodes::create(
        &db.pool,
        &nodes::NewNode {
            cluster_name: "cic-local-local-any-od-crashed0".into(),
            provider: Provider::Local,
            region_code: None,
            instance_type: None,
            gpu_type: None,
            gpu_count: 1,
            vram_total_gb: None,
            model_name: "llama-3-8b".into(),
            deployment_id: Some(dep),
            spot_instance: false,
            agent_token_hash: None,
            metadata: json!({}),
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE nodes SET created_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(orphan_row.id)
        .execute(&db.pool)
        .await
        .unwrap();
    let fake = Arc::new(Fake::default());
    let jobs = jobs(&db, &fake);
    let cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    let mut state = ReconcileState::default();
    let r = pass(&db, &jobs, &cfg, &mut state, epoch_ms()).await;
    assert_eq!(r.declared_dead, [orphan_row.id], "{r:?}");
    assert_eq!(r.terminated, ["cic-local-local-any-od-crashed0"]);
    assert_eq!(r.launched.len(), 1, "replaced at once: {r:?}");
    assert_eq!(
        nodes::get(&db.pool, orphan_row.id).await.unwrap().status,
        NodeStatus::Terminated
    );
    db.drop_db().await;
}
