//! Redis limit store: limits shared by every gateway. Admission is one Lua
//! script call (one round trip on the request path; atomic on the server;
//! EVALSHA after the first call). Leases are settled off the request path:
//! a finished lease waits in a queue, and the next admission carries every
//! queued settlement in its own script call (under load, no round trip is
//! spent on settling at all); what no admission took within
//! [`SETTLE_LINGER`] goes in one settle call. Redis's clock is used so
//! gateways agree on time. Connection loss is reported as [`StoreError`] and handled
//! by the limiter's failure mode.
//!
//! Key layout: `<prefix>:{req,tok}:<scope>` (token buckets: a string
//! "<level> <at_ms>"), `<prefix>:conc:<scope>` (a sorted set of leases) and
//! `<prefix>:day:env:<id>:<yyyymmdd>`. One script touches the global,
//! tenant, environment and key entries of a request together, so this store
//! targets a single Redis primary (with replicas), not Redis Cluster.

use std::sync::Arc;
use std::time::Duration;

use crosslogic_core::limits::LimitKind;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Decision, LimitStore, Plan, Refusal, StoreError};

/// Limits kept in Redis.
pub struct RedisStore {
    client: redis::Client,
    /// Connected on first use (so a gateway can start while Redis is down);
    /// the manager reconnects by itself afterwards.
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// After a failed connection attempt, calls fail fast until this instant
    /// (so a dead Redis costs requests nothing under fail-open).
    retry_at: std::sync::Mutex<Option<std::time::Instant>>,
    admit: Script,
    settle: Script,
    lease_ms: u64,
    /// Leases settled off the request path, batched per round trip.
    queue: std::sync::Mutex<SettleQueue>,
}

impl RedisStore {
    /// A store for `url` (`redis://…`); leases last `lease_ttl`. Only the
    /// URL is checked here; the connection is made on first use.
    pub fn new(url: &str, lease_ttl: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(format!("invalid REDIS_URL: {e}")))?;
        Ok(RedisStore {
            client,
            conn: tokio::sync::OnceCell::new(),
            retry_at: std::sync::Mutex::new(None),
            admit: Script::new(concat!(
                include_str!("bucket.lua"),
                include_str!("settle.lua"),
                include_str!("admit.lua")
            )),
            settle: Script::new(concat!(
                include_str!("bucket.lua"),
                include_str!("settle.lua"),
                "settle_batch(now_ms(), 1, 1)\nreturn 1\n"
            )),
            lease_ms: lease_ttl.as_millis() as u64,
            queue: std::sync::Mutex::new(SettleQueue::default()),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let now = std::time::Instant::now();
        if self.retry_at.lock().ok().and_then(|g| *g).is_some_and(|t| now < t) {
            return Err(StoreError("Redis unreachable (retrying shortly)".into()));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(0);
        match self
            .conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
        {
            Ok(c) => Ok(c.clone()),
            Err(e) => {
                if let Ok(mut g) = self.retry_at.lock() {
                    *g = Some(now + Duration::from_secs(2));
                }
                Err(StoreError(format!("cannot connect to Redis: {e}")))
            }
        }
    }

    async fn admit_plan(&self, plan: &Plan) -> Result<Decision, StoreError> {
        let mut conn = self.conn().await?;
        // Settlements queued by this gateway ride along (settled first, in
        // the same script call).
        let carried = {
            let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = q.pending.len().min(MAX_CARRIED);
            q.pending.drain(..n).collect::<Vec<_>>()
        };
        let mut inv = self.admit.prepare_invoke();
        push_settlements(&mut inv, carried.iter().map(|(p, a)| (p, *a)));
        push_keys(&mut inv, plan, plan.buckets.iter());
        inv.arg(&*plan.request_id)
            .arg(self.lease_ms)
            .arg(plan.buckets.len())
            .arg(plan.slots.len())
            .arg(u8::from(plan.daily.is_some()));
        for b in &plan.buckets {
            inv.arg(b.capacity).arg(b.cost);
        }
        for s in &plan.slots {
            inv.arg(s.limit);
        }
        if let Some(d) = &plan.daily {
            inv.arg(d.quota).arg(d.cost).arg(d.ms_to_reset);
        }
        let reply: Result<Vec<String>, _> = inv.invoke_async(&mut conn).await;
        let reply = reply.map_err(|e| {
            if !carried.is_empty() {
                // As with a failed settle call: the slots free at lease expiry.
                tracing::warn!(error = %e, requests = carried.len(), "rate-limit settlement failed; slots free at lease expiry");
            }
            StoreError(e.to_string())
        })?;
        parse_admit(plan, &reply)
    }

    /// Settles `items` with one script call (one round trip).
    async fn settle_batch<'p>(&self, items: impl ExactSizeIterator<Item = (&'p Plan, u64)>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut inv = self.settle.prepare_invoke();
        push_settlements(&mut inv, items);
        let _: i64 = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(())
    }

    /// Sends the settlements no admission carried within [`SETTLE_LINGER`],
    /// a batch per round trip, until none is left; then the flusher ends
    /// (the next settlement starts another).
    async fn flush(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SETTLE_LINGER).await;
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if q.pending.is_empty() {
                    q.flushing = false;
                    return;
                }
                let n = q.pending.len().min(MAX_BATCH);
                q.pending.drain(..n).collect::<Vec<_>>()
            };
            if let Err(e) = self.settle_batch(batch.iter().map(|(p, a)| (p, *a))).await {
                tracing::warn!(error = %e, requests = batch.len(), "rate-limit settlement failed; slots free at lease expiry");
            }
        }
    }
}

/// Settlements sent in one settle call at most (bounded script arguments).
const MAX_BATCH: usize = 128;

/// Settlements one admission carries at most (its round trip stays short).
const MAX_CARRIED: usize = 32;

/// How long a finished lease waits for an admission to carry its
/// settlement before it is sent alone. Other gateways see the slot released
/// this much later; this gateway's own admissions settle first.
pub const SETTLE_LINGER: Duration = Duration::from_millis(5);

/// Appends a plan's keys in the scripts' order: `buckets` (all of the
/// plan's for admission, its token buckets for settlement), its concurrency
/// sets, its daily counter.
fn push_keys<'a>(
    inv: &mut redis::ScriptInvocation<'_>,
    plan: &Plan,
    buckets: impl Iterator<Item = &'a super::BucketSpec>,
) {
    for b in buckets {
        inv.key(&*b.key);
    }
    for s in &plan.slots {
        inv.key(&*s.key);
    }
    if let Some(d) = &plan.daily {
        inv.key(&*d.key);
    }
}

/// Appends settlements to a script call in settle.lua's layout: their keys,
/// then the count and each one's arguments.
fn push_settlements<'p>(inv: &mut redis::ScriptInvocation<'_>, items: impl ExactSizeIterator<Item = (&'p Plan, u64)>) {
    inv.arg(items.len());
    for (plan, actual) in items {
        let tokens = || plan.buckets.iter().filter(|b| b.kind == LimitKind::TokensPerMinute);
        let refund =
            i64::try_from(plan.reserved_tokens).unwrap_or(i64::MAX) - i64::try_from(actual).unwrap_or(i64::MAX);
        push_keys(inv, plan, tokens());
        inv.arg(&*plan.request_id)
            .arg(tokens().count())
            .arg(plan.slots.len())
            .arg(u8::from(plan.daily.is_some()))
            .arg(refund);
        for b in tokens() {
            inv.arg(b.capacity);
        }
    }
}

/// Settlements waiting for the flusher.
#[derive(Default)]
struct SettleQueue {
    pending: Vec<(Plan, u64)>,
    /// A flusher runs (and will see what is pushed before it clears this).
    flushing: bool,
}

fn parse_admit(plan: &Plan, reply: &[String]) -> Result<Decision, StoreError> {
    let bad = || StoreError(format!("unexpected script reply {reply:?}"));
    match reply.first().map(String::as_str) {
        Some("1") => {
            let remaining = reply[1..]
                .iter()
                .map(|v| v.parse::<f64>().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            Ok(Decision::Admitted { remaining })
        }
        Some("0") => {
            let idx: usize = reply.get(1).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let retry: i64 = reply.get(2).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let retry_after_ms = u64::try_from(retry).ok();
            let (nb, ns) = (plan.buckets.len(), plan.slots.len());
            let refusal = if idx >= 1 && idx <= nb {
                let b = &plan.buckets[idx - 1];
                Refusal {
                    layer: b.layer,
                    kind: b.kind,
                    limit: b.capacity,
                    retry_after_ms,
                }
            } else if idx > nb && idx <= nb + ns {
                let s = &plan.slots[idx - nb - 1];
                Refusal {
                    layer: s.layer,
                    kind: LimitKind::Concurrency,
                    limit: s.limit,
                    retry_after_ms,
                }
            } else {
                let d = plan.daily.as_ref().ok_or_else(bad)?;
                Refusal {
                    layer: d.layer,
                    kind: LimitKind::TokensPerDay,
                    limit: d.quota,
                    retry_after_ms,
                }
            };
            Ok(Decision::Refused(refusal))
        }
        _ => Err(bad()),
    }
}

impl LimitStore for RedisStore {
    fn admit<'a>(&'a self, plan: &'a Plan) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(self.admit_plan(plan))
    }

    fn settle<'a>(&'a self, plan: &'a Plan, actual_tokens: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.settle_batch(std::iter::once((plan, actual_tokens))).await })
    }

    /// Queues the settlement for the next admission to carry; a flusher on
    /// `tasks` sends what none carried within [`SETTLE_LINGER`] (idle, a
    /// lease is settled that much later).
    fn settle_later(self: Arc<Self>, plan: Plan, actual_tokens: u64, tasks: &tokio_util::task::TaskTracker) {
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            q.pending.push((plan, actual_tokens));
            !std::mem::replace(&mut q.flushing, true)
        };
        if start {
            tasks.spawn(self.flush());
        }
    }
}
