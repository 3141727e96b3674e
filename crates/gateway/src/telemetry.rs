//! Prometheus metrics of the gateway (`crosslogic_gateway_*`). Labels are
//! bounded: endpoint, status class, model (from the operator's catalog),
//! limit layer and kind, failure reason — never tenant, key or raw errors.

use std::sync::OnceLock;
use std::time::Duration;

use crosslogic_core::limits::{Layer, LimitKind};
use metrics::{counter, histogram, Counter, Histogram};

/// Handles of the per-request metrics, registered once: looking a metric
/// up by name and labels on every request costs a hash of the key, a lock
/// and, for labels that are not static, allocations. Registered at the
/// first request, after `serve` installed the recorder.
struct Handles {
    /// Per endpoint: requests by status class (2xx, 4xx, 5xx).
    requests: [[Counter; 3]; 3],
    /// Per endpoint.
    duration: [Histogram; 3],
    overhead: [Histogram; 3],
}

const ENDPOINTS: [&str; 3] = ["chat_completions", "completions", "embeddings"];

fn handles() -> &'static Handles {
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    HANDLES.get_or_init(|| Handles {
        requests: ENDPOINTS.map(|e| {
            ["2xx", "4xx", "5xx"].map(|c| counter!("crosslogic_gateway_requests_total", "endpoint" => e, "status" => c))
        }),
        duration: ENDPOINTS.map(|e| histogram!("crosslogic_gateway_request_duration_seconds", "endpoint" => e)),
        overhead: ENDPOINTS.map(|e| histogram!("crosslogic_gateway_overhead_seconds", "endpoint" => e)),
    })
}

fn endpoint_index(endpoint: &str) -> Option<usize> {
    ENDPOINTS.iter().position(|e| *e == endpoint)
}

/// A finished inference request.
pub fn request(endpoint: &'static str, status: u16, total: Duration) {
    let class = match status {
        200..=299 => 0,
        400..=499 => 1,
        _ => 2,
    };
    match endpoint_index(endpoint) {
        Some(i) => {
            let h = handles();
            h.requests[i][class].increment(1);
            h.duration[i].record(total.as_secs_f64());
        }
        None => {
            let class = ["2xx", "4xx", "5xx"][class];
            counter!("crosslogic_gateway_requests_total", "endpoint" => endpoint, "status" => class).increment(1);
            histogram!("crosslogic_gateway_request_duration_seconds", "endpoint" => endpoint)
                .record(total.as_secs_f64());
        }
    }
}

/// Time the gateway itself spent on a served request, excluding the node's
/// own time: until it was admitted (auth, validation, limits, routing),
/// plus its work on the answer (a non-streamed body once it arrived, each
/// chunk of a stream) — the latency it adds, as `scripts/bench.sh` reports
/// it, for streamed and non-streamed requests alike.
pub fn overhead(endpoint: &'static str, spent: Duration) {
    match endpoint_index(endpoint) {
        Some(i) => handles().overhead[i].record(spent.as_secs_f64()),
        None => histogram!("crosslogic_gateway_overhead_seconds", "endpoint" => endpoint).record(spent.as_secs_f64()),
    }
}

/// A model's token counters (`kind` prompt and completion), registered
/// when the routing snapshot is built, not per request.
#[derive(Debug, Clone)]
pub struct TokenCounters {
    prompt: Counter,
    completion: Counter,
}

impl TokenCounters {
    /// The counters of `model`.
    pub fn new(model: &str) -> TokenCounters {
        TokenCounters {
            prompt: counter!("crosslogic_gateway_tokens_total", "model" => model.to_owned(), "kind" => "prompt"),
            completion: counter!("crosslogic_gateway_tokens_total", "model" => model.to_owned(), "kind" => "completion"),
        }
    }

    /// Tokens metered for a served request.
    pub fn add(&self, prompt: u64, completion: u64) {
        self.prompt.increment(prompt);
        self.completion.increment(completion);
    }
}

/// A request refused by a limit.
pub fn rate_limited(layer: Layer, kind: LimitKind) {
    counter!("crosslogic_gateway_rate_limited_total", "layer" => layer.as_str(), "limit" => kind.as_str()).increment(1);
}

/// One call to the shared limit store (Redis) that admitted `admissions`
/// requests (0: settlements only): requests per call shows the batching.
pub fn limit_store_call(admissions: usize) {
    counter!("crosslogic_gateway_ratelimit_calls_total").increment(1);
    counter!("crosslogic_gateway_ratelimit_admissions_total").increment(admissions as u64);
}

/// A failed attempt on a node (`connect`, `status`, `stream`, `body`).
pub fn upstream_error(reason: &'static str) {
    counter!("crosslogic_gateway_upstream_errors_total", "reason" => reason).increment(1);
}

/// Usage records written to PostgreSQL or spooled to disk.
pub fn usage_records(outcome: &'static str, n: u64) {
    counter!("crosslogic_gateway_usage_records_total", "outcome" => outcome).increment(n);
}

/// Usage rows new in PostgreSQL (a replayed record already there is not
/// counted): the ingestion rate.
pub fn usage_rows_inserted(n: u64) {
    counter!("crosslogic_gateway_usage_rows_inserted_total").increment(n);
}
