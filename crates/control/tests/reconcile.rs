//! The deployments reconciler against a real database and a recording
//! fake provisioner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Mutex;

use crosslogic_control::provision::{BoxFuture, LaunchHandle, LaunchSpec, ProvisionError, Provisioner};
use crosslogic_control::reconcile::{reconcile_once, ReconcileConfig, ReconcileState};
use crosslogic_core::{DeploymentStrategy, NodeStatus, Provider};
use crosslogic_db::repo::deployments::{self, DeploymentPatch, NewDeployment};
use crosslogic_db::repo::nodes::{self, Node, NodeFilter};
use crosslogic_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

#[derive(Default)]
struct Fake {
    launched: Mutex<Vec<(String, Uuid)>>,
    terminated: Mutex<Vec<String>>,
}

impl Provisioner for Fake {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<LaunchHandle, ProvisionError>> {
        self.launched
            .lock()
            .unwrap()
            .push((spec.cluster_name.clone(), spec.node_id));
        Box::pin(async move {
            Ok(LaunchHandle {
                cluster_name: spec.cluster_name,
                endpoint_url: None,
            })
        })
    }
    fn terminate<'a>(&'a self, cluster_name: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>> {
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
            .filter(|c| !dead.contains(c))
            .collect();
        Box::pin(async move { Ok(alive) })
    }
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
            use_spot: false,
            metadata: json!({}),
        },
    )
    .await
    .unwrap();
    let fake = Fake::default();
    let cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    let mut state = ReconcileState::default();

    // min 2 → two launches, distinct clusters, node rows launching.
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut state, 1_000).await.unwrap();
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
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut state, 2_000).await.unwrap();
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
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut state, 3_000).await.unwrap();
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
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut state, 4_000).await.unwrap();
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
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut state, 5_000).await.unwrap();
    assert_eq!(r.drained.len(), 1, "{r:?}");
    assert!(r.launched.is_empty());
    let victim = r.drained[0];
    assert_eq!(nodes::get(&db.pool, victim).await.unwrap().status, NodeStatus::Draining);
    assert_eq!(deployments::get(&db.pool, dep.id).await.unwrap().current_replicas, 1);

    // Idle draining node → terminated on the next pass; nothing relaunched.
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut state, 6_000).await.unwrap();
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
    let fake = Fake::default();
    let cfg = ReconcileConfig::new(Provider::Local, "http://127.0.0.1:1");
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut ReconcileState::default(), 0)
        .await
        .unwrap();
    assert!(!r.acted);
    holder.rollback().await.unwrap();
    let r = reconcile_once(&db.pool, &fake, &cfg, &mut ReconcileState::default(), 0)
        .await
        .unwrap();
    assert!(r.acted);
    db.drop_db().await;
}
