//! A gateway and simulator nodes in the test's own process, on port 0.

use std::time::Duration;

use crosslogic_gateway::GatewayConfig;
use crosslogic_node::sim::{self, SimConfig};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running gateway over a test database.
pub struct TestGateway {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    _spool: tempfile::TempDir,
}

impl TestGateway {
    /// Starts the gateway on `pool` with a private spool directory and a
    /// 200 ms routing refresh, its settings adjusted by `tweak`.
    pub async fn start(pool: &PgPool, tweak: impl FnOnce(&mut GatewayConfig)) -> TestGateway {
        let spool = tempfile::tempdir().expect("spool dir");
        let mut cfg = GatewayConfig::new(spool.path());
        cfg.refresh_interval = Duration::from_millis(200);
        tweak(&mut cfg);
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let app = crosslogic_gateway::start(pool.clone(), &cfg, &tasks, shutdown.clone())
            .await
            .expect("gateway start");
        let app = axum::Router::from(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        // TCP_NODELAY, as `crosslogic serve` sets it.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestGateway {
            base,
            shutdown,
            tasks,
            _spool: spool,
        }
    }

    /// Stops the background tasks; the usage writer drains first.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Starts a simulator node in this process; returns its base URL.
pub async fn start_sim(cfg: SimConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(sim::serve(listener, cfg, CancellationToken::new()));
    format!("http://{addr}")
}
