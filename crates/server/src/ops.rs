//! Operational endpoints: liveness and readiness.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// What the probes answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Probe {
    /// `ok` (liveness), `ready`, `draining` or `unavailable`.
    status: &'static str,
    /// `ok`, `unreachable` or `timeout` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
}

impl Probe {
    fn json(status: &'static str, database: Option<&'static str>) -> Json<Probe> {
        Json(Probe { status, database })
    }
}

/// The process-wide Prometheus recorder, installed on first use.
fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0, 60.0,
            ];
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "Prometheus recorder not installed"))
                .ok()
                .and_then(|r| {
                    r.map_err(|e| tracing::warn!(error = %e, "Prometheus recorder not installed"))
                        .ok()
                })
        })
        .as_ref()
}

/// Installs the metrics recorder (call before serving) and runs its upkeep
/// on `tasks` until `shutdown`: histogram samples are kept raw until they
/// are folded into buckets, which without upkeep happens only when
/// `/metrics` is scraped — a process nobody scrapes would grow without end.
pub(crate) fn install_metrics(tasks: &tokio_util::task::TaskTracker, shutdown: tokio_util::sync::CancellationToken) {
    let Some(handle) = prometheus() else { return };
    tasks.spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => handle.run_upkeep(),
                () = shutdown.cancelled() => return,
            }
        }
    });
}

/// Prometheus text exposition of every `crosslogic_*` metric.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
async fn metrics() -> impl axum::response::IntoResponse {
    let body = prometheus().map(|h| h.render()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "Serving", body = Probe, example = json!({"status": "ok"})))
)]
async fn healthz() -> Json<Probe> {
    Probe::json("ok", None)
}

/// Readiness: not shutting down, and the database answers within 2 s.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Probe, example = json!({"status": "ready", "database": "ok"})),
        (status = 503, description = "Draining for shutdown, or the database does not answer", body = Probe,
            example = json!({"status": "unavailable", "database": "timeout"})),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Probe>) {
    if state.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Probe::json("draining", None));
    }
    match tokio::time::timeout(Duration::from_secs(2), crosslogic_db::repo::ping(&state.pool)).await {
        Ok(Ok(())) => (StatusCode::OK, Probe::json("ready", Some("ok"))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Probe::json("unavailable", Some("unreachable")),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Probe::json("unavailable", Some("timeout")),
        ),
    }
}
