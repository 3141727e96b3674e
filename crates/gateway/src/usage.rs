//! Turning a finished request into exactly one usage record: the
//! [`RequestContext`] the whole path shares (who, which model, when, the
//! prompt estimate) and the [`RequestGuard`] of the attempt that got served,
//! which records on drop however the request ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crosslogic_core::{request_cost, UsageStatus};
use serde::Deserialize;
use serde_json::json;

use crate::auth::AuthedKey;
use crate::metering::{Metering, UsageRecord};
use crate::routing::{ModelInfo, NodeState, Snapshot};

/// OpenAI's `usage` object as engines report it.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u32,
    #[serde(default)]
    pub completion_tokens: u32,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u32>,
}

/// What one admitted request is, shared by the proxy (every attempt) and
/// the usage guard of the attempt that is served.
pub struct RequestContext {
    /// `req_<uuid>`: the usage row's id, sent to the node and the client.
    pub request_id: Arc<str>,
    pub key: Arc<AuthedKey>,
    pub model: Arc<ModelInfo>,
    /// The routing snapshot the request was admitted with (prices, regions).
    pub snapshot: Arc<Snapshot>,
    /// When the handler started (the usage row's latency counts from here).
    pub started: Instant,
    /// The endpoint's metric label (`chat`, `completions`, `embeddings`).
    pub endpoint: &'static str,
    /// Prompt size estimate, used when the engine never reported usage.
    pub prompt_estimate: u32,
}

/// Everything needed to record a request when it ends, however it ends.
/// Dropping it records the usage (exactly once) and releases the node.
pub struct RequestGuard {
    pub ctx: Arc<RequestContext>,
    pub node: Arc<NodeState>,
    pub metering: Metering,
    /// Usage reported by the engine.
    pub usage: Option<Usage>,
    /// Content chunks seen in a stream (≈ tokens) when usage never came.
    pub chunks: u32,
    pub status: UsageStatus,
    /// Whether anything should be recorded (false for requests the node refused).
    pub served: bool,
    /// The request's hold on its rate limits, settled with the actual tokens.
    pub lease: Option<crate::limits::Lease>,
    /// Time the gateway itself spent on the request, excluding the node's:
    /// until it was admitted (auth, validation, limits, routing), then its
    /// work on the answer (a body after it arrived; each streamed chunk).
    pub gateway_time: Duration,
    /// Whether the usage was recorded already ([`RequestGuard::finish`]).
    recorded: bool,
}

impl RequestGuard {
    /// The guard of an attempt on `node` (counted in its in-flight work
    /// until dropped); it records nothing unless marked `served`.
    pub fn new(ctx: Arc<RequestContext>, node: Arc<NodeState>, metering: Metering) -> RequestGuard {
        node.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            ctx,
            node,
            metering,
            usage: None,
            chunks: 0,
            status: UsageStatus::Completed,
            served: false,
            lease: None,
            gateway_time: Duration::ZERO,
            recorded: false,
        }
    }

    fn to_record(&self) -> UsageRecord {
        let ctx = &*self.ctx;
        let (prompt, completion, cached) = match self.usage {
            Some(u) => (
                u.prompt_tokens,
                u.completion_tokens,
                u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            ),
            None => (ctx.prompt_estimate, self.chunks, 0),
        };
        let region_id = self.node.region_id.or_else(|| {
            ctx.key
                .region
                .as_ref()
                .and_then(|c| ctx.snapshot.region_ids.get(c).copied())
        });
        let multiplier = region_id
            .and_then(|r| ctx.snapshot.multipliers.get(&r).copied())
            .unwrap_or(1000);
        let cost = request_cost(
            u64::from(prompt),
            u64::from(completion),
            ctx.model.input_price,
            ctx.model.output_price,
            multiplier,
        );
        UsageRecord {
            request_id: ctx.request_id.to_string(),
            timestamp: Utc::now(),
            tenant_id: ctx.key.tenant_id,
            environment_id: Some(ctx.key.environment_id),
            api_key_id: Some(ctx.key.key_id),
            region_id,
            model_id: Some(ctx.model.id),
            model_name: ctx.model.name.clone(),
            node_id: Some(self.node.id),
            prompt_tokens: i32::try_from(prompt).unwrap_or(i32::MAX),
            completion_tokens: i32::try_from(completion).unwrap_or(i32::MAX),
            cached_tokens: i32::try_from(cached).unwrap_or(i32::MAX),
            latency_ms: i32::try_from(ctx.started.elapsed().as_millis()).unwrap_or(i32::MAX),
            cost_microdollars: cost.round_micros().0,
            cost_exact: cost,
            status: self.status,
            metadata: json!({ "usage_reported": self.usage.is_some() }),
        }
    }
}

impl RequestGuard {
    /// Records the usage now (once): journaled to disk and queued for the
    /// database, and the rate limits settled with the actual tokens. A
    /// stream calls this before its final `[DONE]` goes to the client, so
    /// a client that saw the response complete always has its usage row,
    /// even if the process dies right after; otherwise dropping the guard
    /// records.
    pub fn finish(&mut self) {
        if self.served && !self.recorded {
            self.recorded = true;
            crate::telemetry::overhead(self.ctx.endpoint, self.gateway_time);
            let record = self.to_record();
            self.ctx.model.tokens.add(
                u64::try_from(record.prompt_tokens).unwrap_or(0),
                u64::try_from(record.completion_tokens).unwrap_or(0),
            );
            if let Some(mut lease) = self.lease.take() {
                lease.actual_tokens =
                    u64::try_from(record.prompt_tokens.saturating_add(record.completion_tokens)).unwrap_or(0);
                // Settles on drop.
                drop(lease);
            }
            tracing::info!(
                request_id = %record.request_id,
                key_prefix = %self.ctx.key.key_prefix,
                model = %record.model_name,
                status = %record.status,
                prompt_tokens = record.prompt_tokens,
                completion_tokens = record.completion_tokens,
                latency_ms = record.latency_ms,
                "request finished"
            );
            self.metering.record(record);
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.finish();
    }
}
