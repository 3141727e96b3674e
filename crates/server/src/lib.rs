//! The CrossLogic HTTP application.
//!
//! Invariant: this crate wires things together — routes, shared state,
//! background tasks and the shutdown order. It holds no business rules and no
//! SQL; handlers call into the domain crates.
//!
//! A process plays a [`Role`]: `all` (the default), `gateway` (`/v1` with its
//! metering and caches, nothing else) or `control` (the admin, agent and
//! webhook APIs, the console, and every background worker).
//!
//! Shutdown runs in phases (see [`App::run`]):
//! 1. the shutdown token fires (SIGINT/SIGTERM): `/readyz` answers 503 so load
//!    balancers stop routing here, the listener stops accepting, and
//!    in-flight requests (streams included) get up to `SHUTDOWN_TIMEOUT`;
//! 2. background tasks are cancelled and awaited; the usage writer drains its
//!    queue into PostgreSQL (or the spool) before it returns;
//! 3. the database pool closes, then the embedded PostgreSQL (if any) stops.

pub mod openapi;
mod ops;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crosslogic_control::admin::AdminState;
use crosslogic_db::Database;
use crosslogic_gateway::GatewayConfig;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa_axum::router::OpenApiRouter;

/// State shared by the ops handlers.
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub pool: crosslogic_db::PgPool,
    /// Set when shutdown begins; `/readyz` then reports 503.
    pub draining: Arc<AtomicBool>,
}

/// What a process serves and runs (`crosslogic serve --role`), so that
/// gateways scale out on their own while the workers run elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process (the default).
    #[default]
    All,
    /// The data plane: `/v1` (inference and the tenant's self-service) and
    /// the ops routes, with its own metering and caches; no admin, agent or
    /// webhook API, no console, no background worker.
    Gateway,
    /// The control plane: the admin, node-agent and webhook APIs, the
    /// console and the ops routes, and every worker (health monitor,
    /// reconciler, notification delivery, billing); no `/v1`.
    Control,
}

impl Role {
    /// Whether this process serves `/v1`.
    pub fn serves_gateway(self) -> bool {
        self != Role::Control
    }

    /// Whether this process serves the control plane and runs the workers.
    pub fn serves_control(self) -> bool {
        self != Role::Gateway
    }

    /// Its name, as `--role` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Gateway => "gateway",
            Role::Control => "control",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Role::All),
            "gateway" => Ok(Role::Gateway),
            "control" => Ok(Role::Control),
            other => Err(format!("unknown role {other:?}: expected all, gateway or control")),
        }
    }
}

/// What the server needs besides its listener and database.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// What this process serves and runs.
    pub role: Role,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Operator token of the admin API (`None` disables it).
    pub admin_token: Option<SecretString>,
    /// Gateway settings.
    pub gateway: GatewayConfig,
    /// Token of hand-added on-prem node agents.
    pub node_registration_token: Option<SecretString>,
    /// Node heartbeat thresholds.
    pub health: crosslogic_control::health::HealthConfig,
    /// The deployments reconciler and its provisioner; `None` = no launching.
    pub reconciler: Option<ReconcilerSetup>,
    /// Notification delivery (fan-out, senders, watchers); `None` = the
    /// events outbox is not delivered by this process.
    pub notify: Option<crosslogic_notify::NotifyConfig>,
    /// Billing workers (rollups, settlement, Stripe export and webhooks,
    /// budgets, retention); `None` = not run by this process (the webhook
    /// route then answers 503).
    pub billing: Option<crosslogic_billing::BillingConfig>,
    /// The web console's sessions.
    pub console: crosslogic_console::ConsoleSettings,
}

/// What the reconciler runs with.
#[derive(Clone)]
pub struct ReconcilerSetup {
    /// Launches and terminates nodes.
    pub provisioner: Arc<dyn crosslogic_control::provision::Provisioner>,
    /// Provider, control URL, scaling policy.
    pub config: crosslogic_control::reconcile::ReconcileConfig,
    /// Time between passes.
    pub interval: Duration,
}

impl std::fmt::Debug for ReconcilerSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcilerSetup")
            .field("config", &self.config)
            .field("interval", &self.interval)
            .finish()
    }
}

/// A bound server with its database and background tasks.
pub struct App {
    listener: TcpListener,
    db: Database,
    shutdown: CancellationToken,
    config: ServerConfig,
}

impl App {
    /// Wraps an already-bound listener (port 0 works for tests).
    pub fn new(listener: TcpListener, db: Database, shutdown: CancellationToken, config: ServerConfig) -> App {
        App {
            listener,
            db,
            shutdown,
            config,
        }
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown token fires, then shuts down in phases.
    pub async fn run(self) -> Result<(), RunError> {
        let App {
            listener,
            db,
            shutdown,
            config,
        } = self;
        let pool = db.pool().clone();
        let tasks = TaskTracker::new();
        // Background work stops in phase 2, after requests have drained.
        let background = CancellationToken::new();
        ops::install_metrics(&tasks, background.clone());
        let role = config.role;
        let gateway = match role.serves_gateway() {
            true => Some(
                crosslogic_gateway::start(pool.clone(), &config.gateway, &tasks, background.clone())
                    .await
                    .map_err(|e| RunError::Start(e.to_string()))?,
            ),
            false => None,
        };
        let state = AppState {
            pool: pool.clone(),
            draining: Arc::new(AtomicBool::new(false)),
        };
        let draining = state.draining.clone();
        let jobs = config
            .reconciler
            .as_ref()
            .map(|r| crosslogic_control::jobs::Jobs::new(pool.clone(), r.provisioner.clone(), r.config.launch_timeout));
        let mut admin = AdminState::new(pool.clone(), config.admin_token.as_ref());
        if let Some(jobs) = &jobs {
            admin = admin.with_jobs(jobs.clone());
        }
        // A gateway-only process runs no worker: only its metering and caches.
        let workers = role.serves_control();
        if let Some(n) = config.notify.as_ref().filter(|_| workers) {
            let api = crosslogic_notify::NotifyApi::new(&n.settings).map_err(|e| RunError::Start(e.to_string()))?;
            admin = admin.with_notify(api);
            crosslogic_notify::start(pool.clone(), n.clone(), &tasks, background.clone())
                .await
                .map_err(|e| RunError::Start(e.to_string()))?;
        }
        let billing_wake = crosslogic_billing::Wake::default();
        let mut webhook_secrets = Vec::new();
        if let Some(b) = config.billing.as_ref().filter(|_| workers) {
            admin = admin.with_billing(crosslogic_billing::BillingApi::new(&b.settings));
            webhook_secrets = b.settings.webhook_secrets.clone();
            crosslogic_billing::start(
                pool.clone(),
                b.clone(),
                billing_wake.clone(),
                &tasks,
                background.clone(),
            )
            .map_err(|e| RunError::Start(e.to_string()))?;
        }
        let webhooks = crosslogic_billing::webhooks::router(crosslogic_billing::webhooks::WebhookState {
            pool: pool.clone(),
            secrets: webhook_secrets,
            wake: billing_wake,
        });
        let agent = crosslogic_control::agent::AgentState::new(pool.clone(), config.node_registration_token.as_ref());
        if workers {
            tasks.spawn(crosslogic_control::health::run_monitor(
                pool.clone(),
                config.health,
                background.clone(),
            ));
        }
        if let (Some(r), Some(jobs), true) = (config.reconciler.clone(), jobs, workers) {
            tasks.spawn(crosslogic_control::reconcile::run_reconciler(
                pool,
                jobs,
                r.config,
                r.interval,
                config.shutdown_timeout,
                background.clone(),
            ));
        }
        // The console's pages are HTML, not API operations: outside the document.
        let console = crosslogic_console::router(crosslogic_console::ConsoleState::new(admin.clone(), config.console));
        // The document lists what this process serves.
        let mut api = OpenApiRouter::with_openapi(openapi::base()).merge(ops::routes().with_state(state));
        if role.serves_control() {
            api = api
                .merge(crosslogic_control::admin::router(admin))
                .merge(crosslogic_control::agent::router(agent))
                .merge(webhooks);
        }
        if let Some(gateway) = gateway {
            api = api.merge(gateway);
        }
        let (routes, doc) = api.split_for_parts();
        let mut app = routes.merge(openapi::routes(doc));
        if role.serves_control() {
            app = app.merge(console);
        }
        let app = app.into_make_service_with_connect_info::<SocketAddr>();

        let stop_accepting = shutdown.clone();
        // TCP_NODELAY: each streamed chunk leaves at once instead of waiting
        // for the client's delayed ACK (Nagle), which costs up to 40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
            }
        });
        let mut server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop_accepting.cancelled().await })
                .await
        });

        // Phase 1: wait for the signal (or a server failure), then drain requests.
        let served = tokio::select! {
            res = &mut server => res,
            () = shutdown.cancelled() => {
                draining.store(true, Ordering::SeqCst);
                tracing::info!(timeout = ?config.shutdown_timeout, "shutdown: phase 1, draining in-flight requests");
                match tokio::time::timeout(config.shutdown_timeout, &mut server).await {
                    Ok(res) => res,
                    Err(_) => {
                        tracing::warn!("shutdown: requests still running after the timeout; closing them");
                        server.abort();
                        Ok(Ok(()))
                    }
                }
            }
        };

        // Phase 2: stop background tasks; each drains its own work.
        tracing::info!("shutdown: phase 2, stopping background tasks");
        background.cancel();
        tasks.close();
        tasks.wait().await;

        // Phase 3: database.
        tracing::info!("shutdown: phase 3, closing the database");
        db.close().await.map_err(|e| RunError::Database(e.to_string()))?;
        served
            .map_err(|e| RunError::Task(e.to_string()))?
            .map_err(RunError::Serve)?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A component could not start.
    #[error("{0}")]
    Start(String),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A task panicked.
    #[error("server task failed: {0}")]
    Task(String),
    /// The database did not close cleanly.
    #[error("database shutdown failed: {0}")]
    Database(String),
}
