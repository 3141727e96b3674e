//! The `hedged` capacity policy: how many spot and on-demand replicas a
//! deployment keeps for a target of `N` serving replicas.
//!
//! After SkyServe's SpotHedge (Mao et al., EuroSys 2025):
//!
//! * a **base** of on-demand replicas that are never spot
//!   (`on_demand_base`, at most `N`);
//! * the rest of the target, `N − base`, on **spot**, plus
//!   `spot_overprovision` **extra** spot replicas, so that losing a few spot
//!   replicas at once (one zone reclaimed) leaves enough serving; the
//!   reconciler spreads spot replicas over pools (provider × region × GPU:
//!   fewest spot replicas first, then the region-spread and price order) so
//!   one correlated preemption cannot take most of them;
//! * a dynamic **on-demand fallback** of `max(0, (N − base) − ready spot)`
//!   replicas: while spot replicas are missing (preempted, not launchable,
//!   still booting) on-demand covers the gap, and once enough spot replicas
//!   are ready again the fallback is drained. The extra spot replicas count
//!   as ready ones, so a single preemption within the over-provision never
//!   starts an on-demand launch.
//!
//! Replicas that received a preemption notice are draining, so they count
//! for nothing here: their replacement is launched on the notice, not at
//! their death.

use serde::{Deserialize, Serialize};

/// A deployment's hedged replicas, as the reconciler counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fleet {
    /// Spot replicas launching or live (not draining).
    pub spot: u32,
    /// …of which are serving (`active`).
    pub spot_ready: u32,
    /// On-demand replicas launching or live (not draining).
    pub on_demand: u32,
}

/// What a pass should do to reach the hedged composition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Moves {
    /// Spot replicas wanted in all.
    pub want_spot: u32,
    /// On-demand replicas wanted in all (base + fallback).
    pub want_on_demand: u32,
    pub launch_spot: u32,
    pub launch_on_demand: u32,
    pub drain_spot: u32,
    pub drain_on_demand: u32,
}

/// The moves from `fleet` to the composition for `target` serving replicas.
pub fn compose(target: u32, on_demand_base: u32, spot_overprovision: u32, fleet: Fleet) -> Moves {
    let base = on_demand_base.min(target);
    let spot_target = target - base;
    let extra = if spot_target > 0 { spot_overprovision } else { 0 };
    let want_spot = spot_target.saturating_add(extra);
    let fallback = spot_target.saturating_sub(fleet.spot_ready);
    let want_on_demand = base + fallback;
    Moves {
        want_spot,
        want_on_demand,
        launch_spot: want_spot.saturating_sub(fleet.spot),
        launch_on_demand: want_on_demand.saturating_sub(fleet.on_demand),
        drain_spot: fleet.spot.saturating_sub(want_spot),
        drain_on_demand: fleet.on_demand.saturating_sub(want_on_demand),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fleet(spot: u32, spot_ready: u32, on_demand: u32) -> Fleet {
        Fleet {
            spot,
            spot_ready,
            on_demand,
        }
    }

    #[test]
    fn steady_state_is_spot_plus_extra_and_the_base() {
        let m = compose(4, 1, 1, fleet(4, 4, 1));
        assert_eq!((m.want_spot, m.want_on_demand), (4, 1));
        assert_eq!(
            m,
            Moves {
                want_spot: 4,
                want_on_demand: 1,
                ..Moves::default()
            }
        );
    }

    #[test]
    fn a_cold_start_launches_spot_and_covers_it_with_on_demand_until_ready() {
        let m = compose(3, 0, 1, fleet(0, 0, 0));
        assert_eq!((m.launch_spot, m.launch_on_demand), (4, 3));
        // Spot is ready: the fallback goes.
        let m = compose(3, 0, 1, fleet(4, 4, 3));
        assert_eq!((m.launch_spot, m.launch_on_demand, m.drain_on_demand), (0, 0, 3));
    }

    #[test]
    fn one_preemption_within_the_overprovision_starts_no_on_demand() {
        // Target 3 + 1 extra; one spot replica got its notice (draining, so
        // not counted): a spot replacement, no on-demand.
        let m = compose(3, 0, 1, fleet(3, 3, 0));
        assert_eq!((m.launch_spot, m.launch_on_demand), (1, 0));
    }

    #[test]
    fn a_drought_falls_back_to_on_demand_and_returns_to_spot() {
        // Every spot replica reclaimed and none launchable.
        let m = compose(4, 1, 1, fleet(0, 0, 1));
        assert_eq!((m.launch_spot, m.launch_on_demand), (4, 3));
        // Spot back and ready: the three fallback replicas drain, the base stays.
        let m = compose(4, 1, 1, fleet(4, 4, 4));
        assert_eq!((m.drain_on_demand, m.want_on_demand), (3, 1));
    }

    #[test]
    fn an_all_on_demand_target_has_no_extra_spot() {
        let m = compose(2, 2, 3, fleet(1, 1, 2));
        assert_eq!((m.want_spot, m.drain_spot, m.want_on_demand), (0, 1, 2));
    }

    proptest! {
        #[test]
        fn the_composition_always_covers_the_target_with_ready_spot_or_on_demand(
            target in 0u32..50, base in 0u32..60, extra in 0u32..5,
            spot in 0u32..60, ready_share in 0u32..=100, on_demand in 0u32..60,
        ) {
            let ready = spot * ready_share / 100;
            let m = compose(target, base, extra, fleet(spot, ready, on_demand));
            let spot_after = spot + m.launch_spot - m.drain_spot;
            let od_after = on_demand + m.launch_on_demand - m.drain_on_demand;
            prop_assert_eq!(spot_after, m.want_spot);
            prop_assert_eq!(od_after, m.want_on_demand);
            // Ready spot (capped at the spot target) plus on-demand reaches the target.
            let base_eff = base.min(target);
            prop_assert!(ready.min(target - base_eff) + od_after >= target);
            // Never both launches and drains of one kind.
            prop_assert!(m.launch_spot == 0 || m.drain_spot == 0);
            prop_assert!(m.launch_on_demand == 0 || m.drain_on_demand == 0);
            prop_assert!(od_after <= target);
        }
    }
}
