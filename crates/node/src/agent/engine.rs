//! The local engine (vLLM or the simulator) as the agent sees it: `/health`,
//! `/metrics` and the served model in `/v1/models`.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::load::{parse_engine_metrics, EngineLoad};

/// Time limit of one request to the engine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time between two `/health` probes while the engine starts.
const START_POLL: Duration = Duration::from_millis(500);

/// How waiting for the engine ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Startup {
    Healthy,
    TimedOut,
    Cancelled,
}

/// An HTTP client for the engine's own endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    http: reqwest::Client,
    base: String,
}

impl Engine {
    pub(crate) fn new(base_url: &str) -> Result<Engine, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
        Ok(Engine {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    /// `GET /health` answered 200.
    pub(crate) async fn healthy(&self) -> bool {
        match self.http.get(format!("{}/health", self.base)).send().await {
            Ok(resp) => resp.status().is_success(),
            Err(e) => {
                tracing::debug!(error = %e, "engine health probe failed");
                false
            }
        }
    }

    /// Scrapes `GET /metrics`.
    pub(crate) async fn load(&self) -> Result<EngineLoad, reqwest::Error> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(parse_engine_metrics(&text))
    }

    /// The first model id in `GET /v1/models` (vLLM's `--served-model-name`).
    pub(crate) async fn served_model(&self) -> Option<String> {
        let resp = self
            .http
            .get(format!("{}/v1/models", self.base))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        let list: Value = resp.json().await.ok()?;
        list.pointer("/data/0/id")?.as_str().map(str::to_owned)
    }

    /// Probes `/health` until it answers 200, `timeout` passes or `shutdown`
    /// fires.
    pub(crate) async fn wait_healthy(&self, timeout: Duration, shutdown: &CancellationToken) -> Startup {
        let poll = async {
            let mut probes = 0u64;
            loop {
                if self.healthy().await {
                    return;
                }
                probes += 1;
                if probes == 1 {
                    tracing::info!(engine = %self.base, "waiting for the engine to become healthy");
                }
                tokio::time::sleep(START_POLL).await;
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => Startup::Cancelled,
            waited = tokio::time::timeout(timeout, poll) => match waited {
                Ok(()) => Startup::Healthy,
                Err(_) => Startup::TimedOut,
            },
        }
    }
}
