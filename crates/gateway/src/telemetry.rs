//! Prometheus metrics of the gateway (`crosslogic_gateway_*`). Labels are
//! bounded: endpoint, status class, model (from the operator's catalog),
//! limit layer and kind, failure reason — never tenant, key or raw errors.

use std::time::Duration;

use crosslogic_core::limits::{Layer, LimitKind};
use metrics::{counter, histogram};

/// A finished inference request.
pub fn request(endpoint: &'static str, status: u16, total: Duration) {
    let class = match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("crosslogic_gateway_requests_total", "endpoint" => endpoint, "status" => class).increment(1);
    histogram!("crosslogic_gateway_request_duration_seconds", "endpoint" => endpoint).record(total.as_secs_f64());
}

/// Time the gateway itself spent on a served request, excluding the node's
/// own time: until it was admitted (auth, validation, limits, routing),
/// plus its work on the answer (a non-streamed body once it arrived, each
/// chunk of a stream) — the latency it adds, as `scripts/bench.sh` reports
/// it, for streamed and non-streamed requests alike.
pub fn overhead(endpoint: &'static str, spent: Duration) {
    histogram!("crosslogic_gateway_overhead_seconds", "endpoint" => endpoint).record(spent.as_secs_f64());
}

/// Tokens metered for a served request.
pub fn tokens(model: &str, prompt: u64, completion: u64) {
    counter!("crosslogic_gateway_tokens_total", "model" => model.to_owned(), "kind" => "prompt").increment(prompt);
    counter!("crosslogic_gateway_tokens_total", "model" => model.to_owned(), "kind" => "completion")
        .increment(completion);
}

/// A request refused by a limit.
pub fn rate_limited(layer: Layer, kind: LimitKind) {
    counter!("crosslogic_gateway_rate_limited_total", "layer" => layer.as_str(), "limit" => kind.as_str()).increment(1);
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
