//! The `local` provisioner with real processes: it launches `engine-sim`
//! and `node-agent` for a node row, the agent registers with a real
//! `crosslogic serve` and the node becomes active; terminating stops both
//! processes and the agent's deregistration terminates the node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, BIN};
use crosslogic_control::provision::{JobLog, LaunchSpec, LocalProvisioner, Provisioner};
use crosslogic_core::{NodeStatus, Provider};
use crosslogic_db::repo::nodes::{self, NewNode};
use crosslogic_testkit::TestDb;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::{json, Value};

const TOKEN: &str = "local-prov-admin-token-0123456789";

#[tokio::test]
async fn local_provisioner_launches_a_node_that_registers_and_terminates_it() {
    let db = TestDb::new().await;
    let data = common::data_dir();
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[],
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let prov = LocalProvisioner::new(BIN.into(), state.path().to_path_buf(), None);

    let (token, hash) = crosslogic_core::keys::generate_node_token(&mut rand::rngs::OsRng);
    let cluster = "cic-local-local-sim-od-test0001";
    let node = nodes::create(
        &db.pool,
        &NewNode {
            cluster_name: cluster.into(),
            provider: Provider::Local,
            region_code: None,
            instance_type: None,
            gpu_type: None,
            gpu_count: 1,
            vram_total_gb: None,
            model_name: "llama-3-8b".into(),
            deployment_id: None,
            spot_instance: false,
            agent_token_hash: Some(hash),
            metadata: json!({}),
        },
    )
    .await
    .unwrap();

    let (log, mut lines) = JobLog::channel();
    let handle = prov
        .launch(
            LaunchSpec {
                cluster_name: cluster.into(),
                node_id: node.id,
                node_token: token.clone().into(),
                model: "llama-3-8b".into(),
                model_source: None,
                provider: Provider::Local,
                region: None,
                cloud_region: None,
                gpu: None,
                gpu_count: 1,
                spot: false,
                control_url: server.url(""),
            },
            log,
        )
        .await
        .unwrap();
    let engine = handle.endpoint_url.clone().unwrap();
    // The launch log names what was started, never the node's credential.
    let mut logged = Vec::new();
    while let Ok(l) = lines.try_recv() {
        logged.push(l);
    }
    assert!(logged.iter().any(|l| l.contains("node-agent")), "{logged:?}");
    assert!(
        logged.iter().all(|l| !l.contains(&token)),
        "credential leaked into the log"
    );

    // The engine answers /health.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{engine}/health")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the engine never answered /health");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The agent registers with its per-node credential; the node goes active.
    let deadline = Instant::now() + Duration::from_secs(60);
    let active = loop {
        let n = nodes::get(&db.pool, node.id).await.unwrap();
        if n.status == NodeStatus::Active {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "the node never became active: {:?}",
            n.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(active.endpoint_url.as_deref(), Some(engine.as_str()));
    assert_eq!(prov.list().await.unwrap(), [cluster]);

    let record: Value =
        serde_json::from_slice(&std::fs::read(state.path().join(format!("{cluster}.json"))).unwrap()).unwrap();
    let pids: Vec<i32> = record["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| i32::try_from(p.as_u64().unwrap()).unwrap())
        .collect();
    assert_eq!(pids.len(), 2);

    prov.terminate(cluster, JobLog::discard()).await.unwrap();
    for pid in &pids {
        assert_eq!(
            kill(Pid::from_raw(*pid), None),
            Err(Errno::ESRCH),
            "process {pid} still runs"
        );
    }
    assert_eq!(
        nodes::get(&db.pool, node.id).await.unwrap().status,
        NodeStatus::Terminated
    );
    assert!(prov.list().await.unwrap().is_empty());
    assert!(!state.path().join(format!("{cluster}.json")).exists());
    // Terminating again is a no-op.
    prov.terminate(cluster, JobLog::discard()).await.unwrap();

    assert!(server.signal_and_wait(nix::sys::signal::Signal::SIGTERM).success());
    db.drop_db().await;
}
