//! Redis limit store: limits shared by every gateway. One Lua script
//! (`limits.lua`, atomic on the server; EVALSHA after the first call)
//! settles finished requests and admits new ones in one round trip.
//!
//! - **Admissions are batched.** An admission made while no call of this
//!   gateway is in flight goes out at once, alone. Admissions that arrive
//!   while calls are in flight wait for one of [`MAX_CALLS`] calls and go
//!   together in the next: one round trip, and one read and one write per
//!   key for the whole batch, however many of its requests share the key.
//!   Each admission stays all-or-nothing on its own.
//! - **Settlements ride along.** A finished lease waits in a queue and the
//!   next call carries every queued settlement; what no call took within
//!   [`SETTLE_LINGER`] goes in a call of its own.
//! - **Cancelled admissions are settled.** A request dropped while its
//!   admission was in a batch (its client went away) is settled as soon as
//!   the answer comes, so it holds no slot until its lease expires.
//!
//! Redis's clock is used so gateways agree on time. Connection loss is
//! reported as [`StoreError`] and handled by the limiter's failure mode.
//!
//! Key layout: `<prefix>:{req,tok}:<scope>` (token buckets: a string
//! "<level> <at_ms>"), `<prefix>:conc:<scope>` (a sorted set of leases) and
//! `<prefix>:day:env:<id>:<yyyymmdd>`. One script touches the global,
//! tenant, environment and key entries of a request together, so this store
//! targets a single Redis primary (with replicas), not Redis Cluster.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crosslogic_core::limits::LimitKind;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::{Decision, LimitStore, Plan, Refusal, StoreError};

/// Limits kept in Redis.
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Connected on first use (so a gateway can start while Redis is down);
    /// the manager reconnects by itself afterwards.
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// After a failed connection attempt, calls fail fast until this instant
    /// (so a dead Redis costs requests nothing under fail-open).
    retry_at: Mutex<Option<std::time::Instant>>,
    script: Script,
    lease_ms: u64,
    /// Admissions and settlements waiting for a call.
    queue: Mutex<Queue>,
    /// Where batch calls and the settlement flusher run (the gateway's).
    tasks: TaskTracker,
    /// Script calls made (each one round trip).
    calls: std::sync::atomic::AtomicU64,
}

/// An admission waiting for the next batch; the answer goes to `reply`.
struct Waiter {
    plan: Plan,
    reply: oneshot::Sender<Result<Decision, StoreError>>,
}

/// What waits for a call.
#[derive(Default)]
struct Queue {
    /// Admissions, in arrival order.
    admissions: Vec<Waiter>,
    /// Script calls in flight that admit (at most [`MAX_CALLS`]).
    calls: usize,
    /// Finished leases to settle.
    settlements: Vec<(Plan, u64)>,
    /// A settlement flusher runs (and will see what is pushed before it
    /// clears this).
    flushing: bool,
}

impl Queue {
    /// The next batch: queued admissions and settlements, bounded.
    fn take(&mut self) -> (Vec<(Plan, u64)>, Vec<Waiter>) {
        let n = self.admissions.len().min(MAX_ADMISSIONS);
        let m = self.settlements.len().min(MAX_SETTLEMENTS);
        (
            self.settlements.drain(..m).collect(),
            self.admissions.drain(..n).collect(),
        )
    }
}

/// Script calls that admit, in flight at once per gateway. Admissions that
/// find them all busy wait for the next (batched). Two keep Redis busy
/// while one answer travels back, without splitting batches thin.
const MAX_CALLS: usize = 2;

/// Admissions in one call at most.
const MAX_ADMISSIONS: usize = 128;

/// Settlements in one call at most (bounded script arguments).
const MAX_SETTLEMENTS: usize = 256;

/// How long a finished lease waits for an admission to carry its
/// settlement before it is sent alone. Other gateways see the slot released
/// this much later; this gateway's own admissions settle first.
pub const SETTLE_LINGER: Duration = Duration::from_millis(5);

impl RedisStore {
    /// A store for `url` (`redis://…`); leases last `lease_ttl`; batch
    /// calls run on `tasks`. Only the URL is checked here; the connection
    /// is made on first use.
    pub fn new(url: &str, lease_ttl: Duration, tasks: TaskTracker) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(format!("invalid REDIS_URL: {e}")))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                conn: tokio::sync::OnceCell::new(),
                retry_at: Mutex::new(None),
                script: Script::new(include_str!("limits.lua")),
                lease_ms: lease_ttl.as_millis() as u64,
                queue: Mutex::new(Queue::default()),
                tasks,
                calls: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Script calls made so far, each one round trip (admissions in batches
    /// and settlements share calls, so this grows slower than requests).
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn admit_plan(&self, plan: &Plan) -> Result<Decision, StoreError> {
        let inner = &self.inner;
        let (carried, batch, rx) = {
            let mut q = inner.queue();
            if q.calls == 0 {
                // Nothing in flight: this admission goes at once, alone.
                q.calls = 1;
                let m = q.settlements.len().min(MAX_SETTLEMENTS);
                (q.settlements.drain(..m).collect::<Vec<_>>(), None, None)
            } else {
                let (tx, rx) = oneshot::channel();
                q.admissions.push(Waiter {
                    plan: plan.clone(),
                    reply: tx,
                });
                let batch = (q.calls < MAX_CALLS).then(|| {
                    q.calls += 1;
                    q.take()
                });
                (Vec::new(), batch, Some(rx))
            }
        };
        let Some(rx) = rx else {
            let mut call = InlineCall {
                inner,
                plan,
                done: false,
            };
            let decided = inner.call(&carried, &[plan]).await.map(|mut d| d.remove(0));
            call.done = true;
            drop(call);
            return decided;
        };
        if let Some((settlements, admissions)) = batch {
            inner.tasks.spawn(Arc::clone(inner).run(settlements, admissions));
        }
        let mut waiting = Waiting {
            inner,
            plan,
            rx,
            done: false,
        };
        let decided = (&mut waiting.rx)
            .await
            .unwrap_or_else(|_| Err(StoreError("admission abandoned at shutdown".into())));
        waiting.done = true;
        decided
    }
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// One script call: settles `settlements`, then admits `plans` in
    /// order; one decision per plan.
    async fn call(&self, settlements: &[(Plan, u64)], plans: &[&Plan]) -> Result<Vec<Decision>, StoreError> {
        let result = self.invoke(settlements, plans).await;
        if let Err(e) = &result {
            if !settlements.is_empty() {
                tracing::warn!(error = %e, requests = settlements.len(), "rate-limit settlement failed; slots free at lease expiry");
            }
        }
        result
    }

    async fn invoke(&self, settlements: &[(Plan, u64)], plans: &[&Plan]) -> Result<Vec<Decision>, StoreError> {
        let mut conn = self.conn().await?;
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::telemetry::limit_store_call(plans.len());
        let mut inv = self.script.prepare_invoke();
        inv.arg(self.lease_ms);
        push_settlements(&mut inv, settlements);
        inv.arg(plans.len());
        for plan in plans {
            push_keys(&mut inv, plan, plan.buckets.iter());
            inv.arg(&*plan.request_id)
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
        }
        let reply: Vec<Vec<String>> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        if reply.len() != plans.len() {
            return Err(StoreError(format!(
                "script answered {} admissions of {}",
                reply.len(),
                plans.len()
            )));
        }
        plans.iter().zip(&reply).map(|(p, r)| parse_admit(p, r)).collect()
    }

    /// Runs batch calls until no admission waits: each answer goes to its
    /// waiter; one whose request was dropped meanwhile is settled at once.
    async fn run(self: Arc<Self>, mut settlements: Vec<(Plan, u64)>, mut admissions: Vec<Waiter>) {
        loop {
            let plans: Vec<&Plan> = admissions.iter().map(|w| &w.plan).collect();
            let decided = self.call(&settlements, &plans).await;
            let mut abandoned = Vec::new();
            match decided {
                Ok(decisions) => {
                    for (w, d) in admissions.into_iter().zip(decisions) {
                        if let Err(Ok(Decision::Admitted { .. })) = w.reply.send(Ok(d)) {
                            abandoned.push((w.plan, 0));
                        }
                    }
                }
                Err(e) => {
                    for w in admissions {
                        let _ = w.reply.send(Err(e.clone()));
                    }
                }
            }
            for (plan, actual) in abandoned {
                Arc::clone(&self).settle_queued(plan, actual, &self.tasks);
            }
            let mut q = self.queue();
            if q.admissions.is_empty() {
                q.calls -= 1;
                return;
            }
            (settlements, admissions) = q.take();
        }
    }

    /// A call ended (or was cancelled): the admissions that waited for it
    /// go in the next batch call.
    fn call_done(self: &Arc<Self>) {
        let mut q = self.queue();
        if q.admissions.is_empty() {
            q.calls -= 1;
        } else {
            let (settlements, admissions) = q.take();
            drop(q);
            self.tasks.spawn(Arc::clone(self).run(settlements, admissions));
        }
    }

    /// Settles `items` with one script call (one round trip).
    async fn settle_batch(&self, items: &[(Plan, u64)]) -> Result<(), StoreError> {
        self.call(items, &[]).await.map(drop)
    }

    /// Queues a settlement for the next call to carry; a flusher on `tasks`
    /// sends what none carried within [`SETTLE_LINGER`].
    fn settle_queued(self: Arc<Self>, plan: Plan, actual_tokens: u64, tasks: &TaskTracker) {
        let start = {
            let mut q = self.queue();
            q.settlements.push((plan, actual_tokens));
            !std::mem::replace(&mut q.flushing, true)
        };
        if start {
            tasks.spawn(self.flush());
        }
    }

    /// Sends the settlements no admission carried within [`SETTLE_LINGER`],
    /// a batch per round trip, until none is left; then the flusher ends
    /// (the next settlement starts another).
    async fn flush(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SETTLE_LINGER).await;
            let batch = {
                let mut q = self.queue();
                if q.settlements.is_empty() {
                    q.flushing = false;
                    return;
                }
                let n = q.settlements.len().min(MAX_SETTLEMENTS);
                q.settlements.drain(..n).collect::<Vec<_>>()
            };
            // A failure is logged by `call`.
            let _ = self.settle_batch(&batch).await;
        }
    }
}

/// The admission a request makes itself while nothing else is in flight.
/// If the request is dropped mid-call, the plan is settled (its slots
/// released; its tokens stay charged, as its outcome is unknown) and the
/// admissions that queued behind it are sent.
struct InlineCall<'a> {
    inner: &'a Arc<Inner>,
    plan: &'a Plan,
    done: bool,
}

impl Drop for InlineCall<'_> {
    fn drop(&mut self) {
        if !self.done && tokio::runtime::Handle::try_current().is_ok() {
            let (inner, plan) = (Arc::clone(self.inner), self.plan.clone());
            let reserved = plan.reserved_tokens;
            Arc::clone(&inner).settle_queued(plan, reserved, &inner.tasks);
        }
        self.inner.call_done();
    }
}

/// An admission waiting in a batch. If the request is dropped first, an
/// answer that admitted it is settled (nothing used), by the batch if the
/// answer comes later.
struct Waiting<'a> {
    inner: &'a Arc<Inner>,
    plan: &'a Plan,
    rx: oneshot::Receiver<Result<Decision, StoreError>>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.rx.close();
        if let Ok(Ok(Decision::Admitted { .. })) = self.rx.try_recv() {
            if tokio::runtime::Handle::try_current().is_ok() {
                Arc::clone(self.inner).settle_queued(self.plan.clone(), 0, &self.inner.tasks);
            }
        }
    }
}

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
fn push_settlements(inv: &mut redis::ScriptInvocation<'_>, items: &[(Plan, u64)]) {
    inv.arg(items.len());
    for (plan, actual) in items {
        let actual = *actual;
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
        Box::pin(async move { self.inner.settle_batch(&[(plan.clone(), actual_tokens)]).await })
    }

    /// Queues the settlement for the next call to carry; a flusher on
    /// `tasks` sends what none carried within [`SETTLE_LINGER`] (idle, a
    /// lease is settled that much later).
    fn settle_later(self: Arc<Self>, plan: Plan, actual_tokens: u64, tasks: &TaskTracker) {
        Arc::clone(&self.inner).settle_queued(plan, actual_tokens, tasks);
    }
}
