//! The CrossLogic HTTP application.
//!
//! Invariant: this crate wires things together — routes, shared state,
//! background tasks and the shutdown order. It holds no business rules and no
//! SQL; handlers call into the domain crates.
//!
//! Shutdown runs in phases (see [`App::run`]):
//! 1. the shutdown token fires (SIGINT/SIGTERM): `/readyz` answers 503 so load
//!    balancers stop routing here, the listener stops accepting, and
//!    in-flight requests get up to `SHUTDOWN_TIMEOUT` to finish;
//! 2. background tasks are cancelled and awaited (each drains its own work);
//! 3. the database pool closes, then the embedded PostgreSQL (if any) stops.

mod ops;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use crosslogic_control::admin::AdminState;
use crosslogic_db::Database;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub pool: crosslogic_db::PgPool,
    /// Set when shutdown begins; `/readyz` then reports 503.
    pub draining: Arc<AtomicBool>,
}

/// All routes of the process.
pub fn router(state: AppState, admin: AdminState) -> Router {
    Router::new()
        .merge(ops::routes())
        .with_state(state)
        .merge(crosslogic_control::admin::router(admin))
}

/// A bound server with its database and background tasks.
pub struct App {
    listener: TcpListener,
    db: Database,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    shutdown_timeout: Duration,
    admin_token: Option<SecretString>,
}

impl App {
    /// Wraps an already-bound listener (port 0 works for tests).
    pub fn new(
        listener: TcpListener,
        db: Database,
        shutdown: CancellationToken,
        shutdown_timeout: Duration,
        admin_token: Option<SecretString>,
    ) -> App {
        App {
            listener,
            db,
            tasks: TaskTracker::new(),
            shutdown,
            shutdown_timeout,
            admin_token,
        }
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown token fires, then shuts down in phases.
    pub async fn run(self) -> Result<(), RunError> {
        let App {
            listener,
            db,
            tasks,
            shutdown,
            shutdown_timeout,
            admin_token,
        } = self;
        let state = AppState {
            pool: db.pool().clone(),
            draining: Arc::new(AtomicBool::new(false)),
        };
        let draining = state.draining.clone();
        let admin = AdminState::new(db.pool().clone(), admin_token.as_ref());
        let app = router(state, admin).into_make_service_with_connect_info::<std::net::SocketAddr>();

        let stop_accepting = shutdown.clone();
        let mut server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop_accepting.cancelled().await })
                .await
        });

        // Phase 1: wait for the signal (or a server failure), then drain requests.
        tokio::select! {
            res = &mut server => {
                shutdown.cancel();
                res.map_err(|e| RunError::Task(e.to_string()))?.map_err(RunError::Serve)?;
            }
            () = shutdown.cancelled() => {
                draining.store(true, Ordering::SeqCst);
                tracing::info!(timeout = ?shutdown_timeout, "shutdown: phase 1, draining in-flight requests");
                match tokio::time::timeout(shutdown_timeout, &mut server).await {
                    Ok(res) => res.map_err(|e| RunError::Task(e.to_string()))?.map_err(RunError::Serve)?,
                    Err(_) => {
                        tracing::warn!("shutdown: requests still running after the timeout; closing them");
                        server.abort();
                    }
                }
            }
        }

        // Phase 2: background tasks observe the same token; wait for them.
        tracing::info!("shutdown: phase 2, stopping background tasks");
        tasks.close();
        tasks.wait().await;

        // Phase 3: database.
        tracing::info!("shutdown: phase 3, closing the database");
        db.close().await.map_err(|e| RunError::Database(e.to_string()))?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
