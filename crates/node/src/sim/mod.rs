//! A vLLM-compatible engine simulator: a real HTTP server speaking vLLM's
//! OpenAI-compatible API, used by tests and local development in place of a
//! GPU node.
//!
//! Routes (the same paths a vLLM node serves):
//! - `GET /health` — 200, empty body;
//! - `GET /v1/models` — the one served model ([`SimConfig::served_model_name`]);
//! - `POST /v1/chat/completions`, `POST /v1/completions` — streaming (SSE) or
//!   not, with vLLM's usage reporting;
//! - `POST /v1/embeddings` — deterministic unit vectors, float or base64;
//! - `GET /metrics` — vLLM's Prometheus metric names.
//!
//! Text is deterministic: see [`count_tokens`] for the tokenizer and the chat
//! template overhead. At most [`SimConfig::max_num_seqs`] requests generate at
//! once, the rest queue; a request whose client goes away stops at once and
//! frees its slot.
//!
//! Failure injection, all decided before the first response byte unless noted:
//! - [`SimConfig::error_rate`]: that fraction of valid requests gets a 500,
//!   drawn from an RNG seeded with [`SimConfig::seed`];
//! - header `X-Return-Error: <status>`: answer with that status;
//! - header `X-Sim-Delay-Ms: <n>`: wait n ms first;
//! - header `X-Sim-Abort-After: <n>`: a stream breaks the connection after n
//!   content tokens (no `[DONE]`), as a dying node would; a non-streaming
//!   request just gets a 500.

mod chat;
mod completions;
mod embeddings;
mod engine;
mod error;
mod inject;
mod metrics;
mod models;
mod request;
mod stream;
mod tokenize;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use tokenize::{count_tokens, CHAT_TOKENS_PER_MESSAGE, CHAT_TOKENS_PER_REQUEST};

/// How the simulated engine behaves. Immutable once the server runs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The model id clients must send (vLLM `--served-model-name`).
    pub served_model_name: String,
    /// Context length (vLLM `--max-model-len`): a request whose prompt plus
    /// `max_tokens` exceeds it is refused with 400, as vLLM does.
    pub max_model_len: u32,
    /// Time to first token.
    pub ttft: Duration,
    /// Inter-token latency.
    pub itl: Duration,
    /// Requests generating at once (vLLM `--max-num-seqs`); more wait in a queue.
    pub max_num_seqs: usize,
    /// Tokens a request generates when its `max_tokens` allows; fewer (with
    /// `finish_reason: "length"`) when `max_tokens` is smaller.
    pub output_tokens: u32,
    /// Fraction (0..=1) of valid requests answered with 500, deterministic
    /// given [`SimConfig::seed`] and the order of requests.
    pub error_rate: f64,
    /// Seed of the failure-injection RNG.
    pub seed: u64,
    /// Like vLLM `--enable-force-include-usage`: every stream ends with the
    /// usage chunk, whatever `stream_options` says.
    pub force_include_usage: bool,
    /// Length of the vectors `/v1/embeddings` returns.
    pub embedding_dim: usize,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            served_model_name: "sim-model".to_owned(),
            max_model_len: 8192,
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            max_num_seqs: 256,
            output_tokens: 16,
            error_rate: 0.0,
            seed: 0,
            force_include_usage: false,
            embedding_dim: 384,
        }
    }
}

/// All routes of the simulator, for in-process use (e.g. `oneshot` tests).
pub fn router(cfg: SimConfig) -> Router {
    let sim = engine::Sim::new(cfg);
    Router::new()
        .route("/health", get(models::health))
        .route("/v1/models", get(models::list))
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/embeddings", post(embeddings::handle))
        .route("/metrics", get(models::metrics))
        .with_state(sim)
}

/// Serves the simulator on `listener` until `shutdown` fires, then stops
/// accepting and returns once in-flight requests have finished.
pub async fn serve(listener: TcpListener, cfg: SimConfig, shutdown: CancellationToken) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, model = %cfg.served_model_name, "vLLM simulator listening");
    // TCP_NODELAY, as serving engines set it: every token chunk leaves at
    // once instead of waiting up to 40 ms for the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    axum::serve(listener, router(cfg))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Shared state of the handlers.
type SimState = axum::extract::State<Arc<engine::Sim>>;
