//! In-process limit store for a single gateway: one mutex over all state, so
//! checking every limit and charging them is atomic. State is lost on
//! restart (buckets start full), which is what a single instance wants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crosslogic_core::limits::{Bucket, LimitKind};
use futures_util::future::{self, BoxFuture};

use super::{Decision, LimitStore, Plan, Refusal, StoreError};

#[derive(Default)]
struct State {
    buckets: HashMap<Arc<str>, Bucket>,
    /// Slot key → request id → lease expiry (ms).
    slots: HashMap<Arc<str>, HashMap<Arc<str>, u64>>,
    /// Daily key → tokens used.
    daily: HashMap<Arc<str>, u64>,
}

/// Limits kept in this process's memory.
pub struct LocalStore {
    state: Mutex<State>,
    lease_ms: u64,
    epoch: Instant,
    epoch_ms: u64,
}

impl LocalStore {
    /// A store whose concurrency leases last `lease_ttl`.
    pub fn new(lease_ttl: std::time::Duration) -> LocalStore {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        LocalStore {
            state: Mutex::default(),
            lease_ms: lease_ttl.as_millis() as u64,
            epoch: Instant::now(),
            epoch_ms,
        }
    }

    /// Monotonic milliseconds (wall-clock based at start, never going back).
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.epoch.elapsed().as_millis() as u64
    }

    fn admit_now(&self, plan: &Plan, now: u64) -> Result<Decision, StoreError> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| StoreError("limit state poisoned".into()))?;
        let mut next = Vec::with_capacity(plan.buckets.len());
        for b in &plan.buckets {
            let cur = st
                .buckets
                .get(&b.key)
                .copied()
                .unwrap_or_else(|| Bucket::full(b.capacity, now));
            match cur.take(b.capacity, b.cost, now) {
                Ok(n) => next.push(n),
                Err(retry_after_ms) => {
                    return Ok(Decision::Refused(Refusal {
                        layer: b.layer,
                        kind: b.kind,
                        limit: b.capacity,
                        retry_after_ms,
                    }));
                }
            }
        }
        for s in &plan.slots {
            let held = st.slots.entry(s.key.clone()).or_default();
            // Expired leases (of requests whose settlement never ran) only
            // matter at the limit: swept then, not on every admission.
            if held.len() as u64 >= s.limit {
                held.retain(|_, exp| *exp > now);
            }
            if held.len() as u64 >= s.limit {
                return Ok(Decision::Refused(Refusal {
                    layer: s.layer,
                    kind: LimitKind::Concurrency,
                    limit: s.limit,
                    retry_after_ms: Some(1000),
                }));
            }
        }
        if let Some(d) = &plan.daily {
            let used = st.daily.get(&d.key).copied().unwrap_or(0);
            if used + d.cost > d.quota {
                return Ok(Decision::Refused(Refusal {
                    layer: d.layer,
                    kind: LimitKind::TokensPerDay,
                    limit: d.quota,
                    retry_after_ms: if d.cost > d.quota { None } else { Some(d.ms_to_reset) },
                }));
            }
        }
        // Everything fits: charge it all.
        let remaining = next.iter().map(|b| b.level).collect();
        for (b, n) in plan.buckets.iter().zip(next) {
            st.buckets.insert(b.key.clone(), n);
        }
        for s in &plan.slots {
            st.slots
                .entry(s.key.clone())
                .or_default()
                .insert(plan.request_id.clone(), now + self.lease_ms);
        }
        if let Some(d) = &plan.daily {
            *st.daily.entry(d.key.clone()).or_default() += d.cost;
        }
        Ok(Decision::Admitted { remaining })
    }

    fn settle_now(&self, plan: &Plan, actual: u64, now: u64) -> Result<(), StoreError> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| StoreError("limit state poisoned".into()))?;
        let refund =
            i64::try_from(plan.reserved_tokens).unwrap_or(i64::MAX) - i64::try_from(actual).unwrap_or(i64::MAX);
        for b in plan.buckets.iter().filter(|b| b.kind == LimitKind::TokensPerMinute) {
            let cur = st
                .buckets
                .get(&b.key)
                .copied()
                .unwrap_or_else(|| Bucket::full(b.capacity, now));
            st.buckets.insert(b.key.clone(), cur.settle(b.capacity, refund, now));
        }
        for s in &plan.slots {
            if let Some(held) = st.slots.get_mut(&s.key) {
                held.remove(&plan.request_id);
            }
        }
        if let Some(d) = &plan.daily {
            let used = st.daily.entry(d.key.clone()).or_default();
            *used = used.saturating_add_signed(-refund);
        }
        Ok(())
    }
}

impl LimitStore for LocalStore {
    fn admit<'a>(&'a self, plan: &'a Plan) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(future::ready(self.admit_now(plan, self.now_ms())))
    }

    fn settle<'a>(&'a self, plan: &'a Plan, actual_tokens: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(future::ready(self.settle_now(plan, actual_tokens, self.now_ms())))
    }

    /// In memory settling is immediate: no task is needed.
    fn settle_later(self: std::sync::Arc<Self>, plan: Plan, actual_tokens: u64, _: &tokio_util::task::TaskTracker) {
        // Infallible in memory; the signature is shared with Redis.
        let _ = self.settle_now(&plan, actual_tokens, self.now_ms());
    }
}
