//! Autoscaling decisions: how many replicas a deployment wants, and whether
//! the reconciler should launch or drain nodes on this pass. Pure functions;
//! the reconciler passes the clock in (`now_ms`) and keeps [`ScalingState`]
//! between passes.
//!
//! The raw need from load is the larger of
//!
//! * `ceil((in_flight + queued) / target_in_flight_per_replica)` — requests
//!   being served or waiting, per replica, and
//! * `ceil(tokens_per_second / (capacity × target_utilization))` — generated
//!   tokens per second against the model's per-replica throughput,
//!
//! clamped to `[min, max]`. Scaling is fast up and slow down: the need must
//! stay above (below) the current size for `upscale_delay`
//! (`downscale_delay`) before nodes are launched (drained), and then the
//! size moves only as far as the need held over the whole window — the
//! lowest need seen while above, the highest seen while below (as
//! Kubernetes' HPA stabilization window does) — so a burst or a lull in the
//! last sample before the timer runs out does not set the size. Falling below
//! `min` (nodes died, were preempted) or rising above `max` (the operator
//! lowered it) is corrected at once. Nodes that are still launching count
//! toward the current size, so a slow launch never triggers a second one.
//!
//! # Defaults, compared with SkyServe
//!
//! | | CrossLogic | SkyServe |
//! |---|---|---|
//! | load signal | in-flight + queued requests per replica (8), tokens/s at 70 % of capacity | target QPS per replica |
//! | upscale delay | 30 s | 300 s |
//! | downscale delay | 600 s | 1200 s |
//!
//! LLM requests are long (seconds to minutes) and a new GPU node takes
//! minutes to launch and load weights, so waiting five more minutes before
//! even starting would leave a burst queued for far too long: CrossLogic
//! reacts after 30 s of sustained pressure. Scaling down stays conservative
//! (10 min) because a drained GPU node is expensive to get back; SkyServe's
//! 20 min is safer still against flapping, at twice the idle cost. Both
//! delays are configurable per policy. Concurrency (in-flight + queued) is a
//! better per-replica signal than QPS for LLM serving, where one request may
//! hold a replica for a minute.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a deployment scales with load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingPolicy {
    /// In-flight plus queued requests one replica should carry (default 8).
    pub target_in_flight_per_replica: f64,
    /// Fraction of a replica's tokens/s capacity to aim for (default 0.7).
    pub target_utilization: f64,
    /// How long the need must stay above the current size before launching
    /// (default 30 s; SkyServe: 300 s).
    pub upscale_delay: Duration,
    /// How long the need must stay below the current size before draining
    /// (default 600 s; SkyServe: 1200 s).
    pub downscale_delay: Duration,
}

impl ScalingPolicy {
    /// Default target of in-flight + queued requests per replica.
    pub const DEFAULT_TARGET_IN_FLIGHT: f64 = 8.0;
    /// Default target utilization of tokens/s capacity.
    pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;
    /// Default upscale delay (SkyServe: 300 s).
    pub const DEFAULT_UPSCALE_DELAY: Duration = Duration::from_secs(30);
    /// Default downscale delay (SkyServe: 1200 s).
    pub const DEFAULT_DOWNSCALE_DELAY: Duration = Duration::from_secs(600);
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        ScalingPolicy {
            target_in_flight_per_replica: Self::DEFAULT_TARGET_IN_FLIGHT,
            target_utilization: Self::DEFAULT_TARGET_UTILIZATION,
            upscale_delay: Self::DEFAULT_UPSCALE_DELAY,
            downscale_delay: Self::DEFAULT_DOWNSCALE_DELAY,
        }
    }
}

/// Load of a deployment, summed over its live replicas.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LoadSample {
    /// Requests being served.
    pub in_flight: u32,
    /// Requests waiting in the engines' queues.
    pub queued: u32,
    /// Tokens generated per second.
    pub tokens_per_second: f64,
}

/// What the reconciler remembers between passes: since when (milliseconds)
/// the need has been above, or below, the current size, and the need that
/// held all that time. At most one side is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScalingState {
    /// The need has exceeded the current size since then.
    pub above_since: Option<u64>,
    /// The need has been under the current size since then.
    pub below_since: Option<u64>,
    /// While above: the lowest need seen since `above_since`; while below:
    /// the highest since `below_since`.
    #[serde(default)]
    pub held_need: Option<u32>,
}

/// What to do on this reconciler pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScaleDecision {
    /// Nothing to do.
    Hold,
    /// Launch this many new nodes.
    Launch(u32),
    /// Drain (then terminate) this many live nodes; see
    /// [`crate::placement::pick_victims`].
    Drain(u32),
}

/// `ceil(numerator / denominator)` as a replica count; a non-positive or
/// non-finite denominator contributes nothing, huge values saturate.
fn replicas_for(numerator: f64, denominator: f64) -> u32 {
    if !(denominator.is_finite() && denominator > 0.0) || numerator.is_nan() || numerator <= 0.0 {
        return 0;
    }
    // `as` saturates at u32::MAX (and maps NaN to 0).
    (numerator / denominator).ceil() as u32
}

/// Replicas the load needs, clamped to `[min, max]` (never below `min`, even
/// with zero load). `max < min` is treated as `max = min`.
///
/// `current_live` does not enter the formula (the load is already summed
/// over the live replicas); it is taken so the signature matches [`decide`].
pub fn desired_replicas(
    min: u32,
    max: u32,
    current_live: u32,
    load: &LoadSample,
    model_tokens_per_second_capacity: f64,
    policy: &ScalingPolicy,
) -> u32 {
    let _ = current_live;
    let max = max.max(min);
    let work = f64::from(load.in_flight) + f64::from(load.queued);
    let by_requests = replicas_for(work, policy.target_in_flight_per_replica);
    let by_tokens = replicas_for(
        load.tokens_per_second,
        model_tokens_per_second_capacity * policy.target_utilization,
    );
    by_requests.max(by_tokens).clamp(min, max)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Decides whether to launch or drain on this pass, updating `state`.
///
/// * live + launching below `min` → launch the shortfall at once;
/// * live + launching above `max` → drain the excess at once;
/// * need (clamped) above live + launching for at least `upscale_delay` →
///   launch up to the lowest need seen in that time;
/// * need below live + launching for at least `downscale_delay` → drain
///   down to the highest need seen in that time;
/// * otherwise hold. A timer restarts whenever its condition stops holding.
///
/// Launching nodes count toward the size (no relaunch storms), and a drain
/// never leaves fewer than `min` live nodes.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    min: u32,
    max: u32,
    current_live: u32,
    launching: u32,
    load: &LoadSample,
    model_tokens_per_second_capacity: f64,
    policy: &ScalingPolicy,
    state: &mut ScalingState,
    now_ms: u64,
) -> ScaleDecision {
    let max = max.max(min);
    let current = current_live.saturating_add(launching);
    let desired = desired_replicas(min, max, current_live, load, model_tokens_per_second_capacity, policy);
    // At most this many live nodes may go without dropping below `min`.
    let drainable = current_live.saturating_sub(min);

    if current < min {
        *state = ScalingState::default();
        return ScaleDecision::Launch(min - current);
    }
    if current > max {
        *state = ScalingState::default();
        return drain((current - max).min(drainable));
    }
    if desired > current {
        if state.above_since.is_none() {
            *state = ScalingState::default();
        }
        state.below_since = None;
        let since = *state.above_since.get_or_insert(now_ms);
        let held = state.held_need.map_or(desired, |n| n.min(desired));
        state.held_need = Some(held);
        if now_ms.saturating_sub(since) >= millis(policy.upscale_delay) {
            *state = ScalingState::default();
            // Zero when the size grew meanwhile to what held: a new window starts.
            let n = held.saturating_sub(current);
            return if n == 0 {
                ScaleDecision::Hold
            } else {
                ScaleDecision::Launch(n)
            };
        }
    } else if desired < current {
        if state.below_since.is_none() {
            *state = ScalingState::default();
        }
        state.above_since = None;
        let since = *state.below_since.get_or_insert(now_ms);
        let held = state.held_need.map_or(desired, |n| n.max(desired));
        state.held_need = Some(held);
        if now_ms.saturating_sub(since) >= millis(policy.downscale_delay) {
            *state = ScalingState::default();
            return drain(current.saturating_sub(held).min(drainable));
        }
    } else {
        *state = ScalingState::default();
    }
    ScaleDecision::Hold
}

fn drain(n: u32) -> ScaleDecision {
    if n == 0 {
        ScaleDecision::Hold
    } else {
        ScaleDecision::Drain(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAP: f64 = 1000.0;

    fn load(in_flight: u32, queued: u32, tps: f64) -> LoadSample {
        LoadSample {
            in_flight,
            queued,
            tokens_per_second: tps,
        }
    }

    fn policy() -> ScalingPolicy {
        ScalingPolicy::default()
    }

    #[test]
    fn defaults_are_documented_values() {
        let p = policy();
        assert_eq!(p.target_in_flight_per_replica, 8.0);
        assert_eq!(p.target_utilization, 0.7);
        assert_eq!(p.upscale_delay, Duration::from_secs(30));
        assert_eq!(p.downscale_delay, Duration::from_secs(600));
    }

    #[test]
    fn desired_takes_the_larger_of_requests_and_tokens() {
        // 20 requests / 8 = 2.5 → 3; 1500 tps / 700 = 2.14 → 3.
        assert_eq!(desired_replicas(1, 10, 1, &load(12, 8, 1500.0), CAP, &policy()), 3);
        // tokens dominate: 3000 / 700 = 4.3 → 5.
        assert_eq!(desired_replicas(1, 10, 1, &load(1, 0, 3000.0), CAP, &policy()), 5);
        // clamped to max.
        assert_eq!(desired_replicas(1, 4, 1, &load(1000, 0, 0.0), CAP, &policy()), 4);
        // unknown capacity: the token term is ignored.
        assert_eq!(desired_replicas(1, 10, 1, &load(16, 0, 1e9), 0.0, &policy()), 2);
    }

    #[test]
    fn zero_load_keeps_min() {
        assert_eq!(desired_replicas(2, 5, 4, &load(0, 0, 0.0), CAP, &policy()), 2);
        let mut st = ScalingState::default();
        assert_eq!(
            decide(0, 5, 0, 0, &load(0, 0, 0.0), CAP, &policy(), &mut st, 0),
            ScaleDecision::Hold
        );
        // Two live at min 2 with no load: never drained below min.
        for t in [0, 700_000, 10_000_000] {
            assert_eq!(
                decide(2, 5, 2, 0, &load(0, 0, 0.0), CAP, &policy(), &mut st, t),
                ScaleDecision::Hold
            );
        }
    }

    #[test]
    fn scales_up_fast_only_after_the_upscale_delay() {
        let p = policy();
        let mut st = ScalingState::default();
        let busy = load(40, 0, 0.0); // needs 5
        assert_eq!(decide(1, 10, 2, 0, &busy, CAP, &p, &mut st, 1_000), ScaleDecision::Hold);
        assert_eq!(st.above_since, Some(1_000));
        assert_eq!(
            decide(1, 10, 2, 0, &busy, CAP, &p, &mut st, 30_999),
            ScaleDecision::Hold
        );
        assert_eq!(
            decide(1, 10, 2, 0, &busy, CAP, &p, &mut st, 31_000),
            ScaleDecision::Launch(3)
        );
    }

    #[test]
    fn the_timer_resets_when_the_condition_stops() {
        let p = policy();
        let mut st = ScalingState::default();
        let busy = load(40, 0, 0.0);
        let calm = load(16, 0, 0.0); // exactly 2
        decide(1, 10, 2, 0, &busy, CAP, &p, &mut st, 0);
        assert_eq!(
            decide(1, 10, 2, 0, &calm, CAP, &p, &mut st, 20_000),
            ScaleDecision::Hold
        );
        assert_eq!(st, ScalingState::default());
        assert_eq!(
            decide(1, 10, 2, 0, &busy, CAP, &p, &mut st, 40_000),
            ScaleDecision::Hold
        );
        assert_eq!(
            decide(1, 10, 2, 0, &busy, CAP, &p, &mut st, 69_999),
            ScaleDecision::Hold
        );
        assert_eq!(
            decide(1, 10, 2, 0, &busy, CAP, &p, &mut st, 70_000),
            ScaleDecision::Launch(3)
        );
    }

    #[test]
    fn scales_down_slowly_only_after_the_downscale_delay() {
        let p = policy();
        let mut st = ScalingState::default();
        let light = load(8, 0, 0.0); // needs 1
        assert_eq!(decide(1, 10, 4, 0, &light, CAP, &p, &mut st, 0), ScaleDecision::Hold);
        assert_eq!(st.below_since, Some(0));
        assert_eq!(
            decide(1, 10, 4, 0, &light, CAP, &p, &mut st, 599_999),
            ScaleDecision::Hold
        );
        assert_eq!(
            decide(1, 10, 4, 0, &light, CAP, &p, &mut st, 600_000),
            ScaleDecision::Drain(3)
        );
    }

    #[test]
    fn a_burst_at_the_end_of_the_window_launches_only_what_held_all_along() {
        let p = policy();
        let mut st = ScalingState::default();
        // Two live nodes; the need is 3 for 30 s, then one sample needs 10.
        let steady = load(24, 0, 0.0);
        let burst = load(60, 20, 0.0);
        assert_eq!(decide(1, 20, 2, 0, &steady, CAP, &p, &mut st, 0), ScaleDecision::Hold);
        assert_eq!(
            decide(1, 20, 2, 0, &steady, CAP, &p, &mut st, 20_000),
            ScaleDecision::Hold
        );
        assert_eq!(
            decide(1, 20, 2, 0, &burst, CAP, &p, &mut st, 30_000),
            ScaleDecision::Launch(1),
            "the burst of the last sample must not set the size"
        );
        assert_eq!(st, ScalingState::default());
    }

    #[test]
    fn a_lull_at_the_end_of_the_window_drains_only_what_stayed_idle() {
        let p = policy();
        let mut st = ScalingState::default();
        // Six live nodes; the need is 4 for ten minutes, then one idle sample.
        let light = load(32, 0, 0.0);
        assert_eq!(decide(1, 20, 6, 0, &light, CAP, &p, &mut st, 0), ScaleDecision::Hold);
        assert_eq!(
            decide(1, 20, 6, 0, &light, CAP, &p, &mut st, 300_000),
            ScaleDecision::Hold
        );
        assert_eq!(
            decide(1, 20, 6, 0, &load(0, 0, 0.0), CAP, &p, &mut st, 600_000),
            ScaleDecision::Drain(2)
        );
        // The window starts over after a decision.
        assert_eq!(st, ScalingState::default());
    }

    #[test]
    fn scale_down_never_goes_below_min() {
        let p = ScalingPolicy {
            downscale_delay: Duration::ZERO,
            ..policy()
        };
        let mut st = ScalingState::default();
        assert_eq!(
            decide(3, 10, 5, 0, &load(0, 0, 0.0), CAP, &p, &mut st, 0),
            ScaleDecision::Drain(2)
        );
        // Launching nodes make the total exceed the need, but live is at min.
        assert_eq!(
            decide(3, 10, 3, 2, &load(0, 0, 0.0), CAP, &p, &mut st, 0),
            ScaleDecision::Hold
        );
    }

    #[test]
    fn launching_nodes_count_toward_the_size() {
        let p = ScalingPolicy {
            upscale_delay: Duration::ZERO,
            ..policy()
        };
        let mut st = ScalingState::default();
        let busy = load(40, 0, 0.0); // needs 5
        assert_eq!(decide(1, 10, 2, 3, &busy, CAP, &p, &mut st, 0), ScaleDecision::Hold);
        assert_eq!(
            decide(1, 10, 2, 2, &busy, CAP, &p, &mut st, 0),
            ScaleDecision::Launch(1)
        );
        // Below min, but the replacements are already launching.
        assert_eq!(
            decide(3, 10, 1, 2, &load(0, 0, 0.0), CAP, &p, &mut st, 0),
            ScaleDecision::Hold
        );
    }

    #[test]
    fn below_min_launches_immediately() {
        let mut st = ScalingState {
            above_since: None,
            below_since: Some(5),
            held_need: Some(1),
        };
        assert_eq!(
            decide(3, 10, 1, 0, &load(0, 0, 0.0), CAP, &policy(), &mut st, 10),
            ScaleDecision::Launch(2)
        );
        assert_eq!(st, ScalingState::default());
    }

    #[test]
    fn above_max_drains_immediately() {
        let mut st = ScalingState::default();
        assert_eq!(
            decide(1, 3, 5, 0, &load(1000, 0, 0.0), CAP, &policy(), &mut st, 10),
            ScaleDecision::Drain(2)
        );
    }

    #[test]
    fn max_below_min_is_treated_as_min() {
        assert_eq!(desired_replicas(3, 1, 0, &load(100, 0, 0.0), CAP, &policy()), 3);
    }

    proptest! {
        #[test]
        fn desired_is_within_bounds(
            min in 0u32..20, extra in 0u32..20, live in 0u32..40,
            inf in any::<u32>(), q in any::<u32>(), tps in 0.0f64..1e9,
            cap in -10.0f64..1e5, target in -1.0f64..64.0, util in -0.5f64..1.5,
        ) {
            let p = ScalingPolicy { target_in_flight_per_replica: target, target_utilization: util, ..policy() };
            let d = desired_replicas(min, min + extra, live, &load(inf, q, tps), cap, &p);
            prop_assert!(d >= min && d <= min + extra);
        }

        #[test]
        fn decide_never_overlaunches_nor_drains_below_min(
            min in 0u32..10, extra in 0u32..10, live in 0u32..25, launching in 0u32..10,
            inf in 0u32..500, q in 0u32..500, tps in 0.0f64..20_000.0,
            steps in proptest::collection::vec(0u64..400_000, 1..20),
            above in proptest::option::of(0u64..1_000_000), below in proptest::option::of(0u64..1_000_000),
        ) {
            let p = policy();
            let l = load(inf, q, tps);
            let max = min + extra;
            let desired = desired_replicas(min, max, live, &l, CAP, &p);
            let mut st = ScalingState { above_since: above, below_since: below, held_need: None };
            let mut now = 1_000_000u64;
            for dt in steps {
                now += dt;
                match decide(min, max, live, launching, &l, CAP, &p, &mut st, now) {
                    ScaleDecision::Launch(n) => {
                        prop_assert!(n > 0);
                        prop_assert!(live + launching < desired);
                        prop_assert!(live + launching + n <= desired);
                    }
                    ScaleDecision::Drain(n) => {
                        prop_assert!(n > 0);
                        prop_assert!(live - n >= min);
                        prop_assert!(live + launching - n >= desired);
                    }
                    ScaleDecision::Hold => {}
                }
                prop_assert!(st.above_since.is_none() || st.below_since.is_none());
            }
        }
    }
}
