//! Where the next replica of a deployment is launched, in order of
//! preference, and how long to wait after launches fail.
//!
//! The reconciler launches the first candidate that has not failed
//! recently; when a launch fails (no capacity, quota, spot unavailable) it
//! marks that candidate to be avoided for a while and backs the deployment
//! off exponentially, so the next attempt goes to the next region or GPU
//! shape instead of hammering the same one.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::placement::{choose_regions, GpuChoice, RegionInfo};
use crate::status::{DeploymentStrategy, Provider};

/// One launchable shape in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub provider: Provider,
    pub region: String,
    pub gpu: String,
    pub count: u32,
    pub spot: bool,
    /// Node price in this region (GPU price × count × region multiplier),
    /// micro-dollars per hour.
    pub micros_per_hour: i64,
}

impl Candidate {
    /// Identity used to avoid a candidate after it failed:
    /// `aws/us-east-1/A10G:1/spot`.
    pub fn key(&self) -> String {
        candidate_key(
            self.provider,
            Some(&self.region),
            Some(&self.gpu),
            self.count,
            self.spot,
        )
    }
}

/// The [`Candidate::key`] of any launch (local launches have no region or
/// GPU).
pub fn candidate_key(provider: Provider, region: Option<&str>, gpu: Option<&str>, count: u32, spot: bool) -> String {
    format!(
        "{provider}/{}/{}:{count}/{}",
        region.unwrap_or("-"),
        gpu.unwrap_or("-"),
        if spot { "spot" } else { "od" }
    )
}

/// Every (region, GPU shape) a new replica may launch on, best first.
///
/// Regions: the one `strategy` picks for this replica (see
/// [`choose_regions`]) first; then, unless the deployment forces a region,
/// the other eligible regions — so a failing region is followed by the
/// next. For spread the others are ordered fewest replicas first; for
/// packed, most replicas first; ties by price multiplier, then code.
/// Within a region, the `gpus` shapes (already cheapest first, spot before
/// on-demand) whose provider is in `providers` and sells in that region.
pub fn launch_candidates(
    strategy: DeploymentStrategy,
    forced_region: Option<&str>,
    regions: &[RegionInfo],
    replicas_per_region: &HashMap<String, u32>,
    providers: &[Provider],
    gpus: &[GpuChoice],
) -> Vec<Candidate> {
    let usable: Vec<&RegionInfo> = regions
        .iter()
        .filter(|r| r.usable && r.providers.iter().any(|p| providers.contains(p)))
        .collect();
    let owned: Vec<RegionInfo> = usable.iter().map(|r| (*r).clone()).collect();
    let first = choose_regions(strategy, forced_region, &owned, replicas_per_region, None, 1);
    let held = |r: &RegionInfo| replicas_per_region.get(&r.code).copied().unwrap_or(0);
    let mut rest: Vec<&RegionInfo> = if forced_region.is_some() {
        Vec::new()
    } else {
        usable.iter().copied().filter(|r| !first.contains(&r.code)).collect()
    };
    rest.sort_by(|a, b| {
        let by_count = match strategy {
            DeploymentStrategy::Spread => held(a).cmp(&held(b)),
            DeploymentStrategy::Packed => held(b).cmp(&held(a)),
        };
        by_count
            .then(a.cost_multiplier_milli.cmp(&b.cost_multiplier_milli))
            .then_with(|| a.code.cmp(&b.code))
    });
    let ordered = first
        .iter()
        .filter_map(|code| usable.iter().copied().find(|r| &r.code == code))
        .chain(rest);
    let mut out = Vec::new();
    for region in ordered {
        for g in gpus {
            if !providers.contains(&g.provider) || !region.providers.contains(&g.provider) {
                continue;
            }
            let price = i128::from(g.micros_per_hour) * i128::from(region.cost_multiplier_milli) / 1000;
            out.push(Candidate {
                provider: g.provider,
                region: region.code.clone(),
                gpu: g.gpu.clone(),
                count: g.count,
                spot: g.spot,
                micros_per_hour: i64::try_from(price).unwrap_or(i64::MAX),
            });
        }
    }
    out
}

/// Delay before the next launch after `failures` consecutive failed
/// launches: `base` × 2^(failures−1), at most `max`; zero after none.
pub fn launch_backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn region(code: &str, cost: u32, providers: &[Provider]) -> RegionInfo {
        RegionInfo {
            code: code.into(),
            providers: providers.to_vec(),
            cost_multiplier_milli: cost,
            usable: true,
        }
    }

    fn gpu(name: &str, provider: Provider, spot: bool, price: i64) -> GpuChoice {
        GpuChoice {
            gpu: name.into(),
            count: 1,
            spot,
            provider,
            micros_per_hour: price,
        }
    }

    fn regions() -> Vec<RegionInfo> {
        vec![
            region("us-east-1", 1000, &[Provider::Aws, Provider::Gcp]),
            region("eu-west-1", 1100, &[Provider::Aws]),
            region("asia-1", 1200, &[Provider::Gcp]),
        ]
    }

    fn gpus() -> Vec<GpuChoice> {
        vec![
            gpu("L4", Provider::Gcp, true, 250_000),
            gpu("A10G", Provider::Aws, true, 400_000),
            gpu("L4", Provider::Gcp, false, 700_000),
            gpu("A10G", Provider::Aws, false, 1_000_000),
        ]
    }

    #[test]
    fn spread_starts_in_the_emptiest_region_then_falls_back_to_the_others() {
        let held = HashMap::from([("us-east-1".to_string(), 2), ("eu-west-1".to_string(), 1)]);
        let all = [Provider::Aws, Provider::Gcp];
        let c = launch_candidates(DeploymentStrategy::Spread, None, &regions(), &held, &all, &gpus());
        let regions_in_order: Vec<&str> = c.iter().map(|c| c.region.as_str()).collect();
        // asia-1 holds none; then eu-west-1 (1), then us-east-1 (2).
        assert_eq!(
            regions_in_order,
            [
                "asia-1",
                "asia-1",
                "eu-west-1",
                "eu-west-1",
                "us-east-1",
                "us-east-1",
                "us-east-1",
                "us-east-1"
            ]
        );
        assert_eq!(c[0].key(), "gcp/asia-1/L4:1/spot");
        assert_eq!(c[0].micros_per_hour, 300_000, "region multiplier applied");
        assert_eq!(c[1].key(), "gcp/asia-1/L4:1/od");
        assert_eq!(c[2].key(), "aws/eu-west-1/A10G:1/spot");
    }

    #[test]
    fn a_forced_region_never_falls_back() {
        let c = launch_candidates(
            DeploymentStrategy::Spread,
            Some("eu-west-1"),
            &regions(),
            &HashMap::new(),
            &[Provider::Aws, Provider::Gcp],
            &gpus(),
        );
        assert!(c.iter().all(|c| c.region == "eu-west-1"));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn packed_prefers_the_region_holding_most_and_providers_filter() {
        let held = HashMap::from([("eu-west-1".to_string(), 3)]);
        let c = launch_candidates(
            DeploymentStrategy::Packed,
            None,
            &regions(),
            &held,
            &[Provider::Aws],
            &gpus(),
        );
        assert_eq!(c[0].region, "eu-west-1");
        assert!(c.iter().all(|c| c.provider == Provider::Aws));
        assert!(c.iter().all(|c| c.region != "asia-1"), "asia-1 has no AWS");
        assert_eq!(
            launch_candidates(
                DeploymentStrategy::Packed,
                None,
                &regions(),
                &held,
                &[Provider::Azure],
                &gpus()
            ),
            []
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Duration::from_secs(10);
        let m = Duration::from_secs(300);
        assert_eq!(launch_backoff(0, b, m), Duration::ZERO);
        assert_eq!(launch_backoff(1, b, m), Duration::from_secs(10));
        assert_eq!(launch_backoff(2, b, m), Duration::from_secs(20));
        assert_eq!(launch_backoff(5, b, m), Duration::from_secs(160));
        assert_eq!(launch_backoff(6, b, m), m);
        assert_eq!(launch_backoff(u32::MAX, b, m), m);
    }

    proptest! {
        #[test]
        fn candidates_only_use_allowed_providers_in_regions_that_sell_them(
            held in proptest::collection::vec(0u32..4, 3),
            aws in any::<bool>(),
            gcp in any::<bool>(),
        ) {
            let mut providers = Vec::new();
            if aws { providers.push(Provider::Aws); }
            if gcp { providers.push(Provider::Gcp); }
            let rs = regions();
            let held: HashMap<String, u32> = rs.iter().zip(&held).map(|(r, h)| (r.code.clone(), *h)).collect();
            let c = launch_candidates(DeploymentStrategy::Spread, None, &rs, &held, &providers, &gpus());
            for cand in &c {
                prop_assert!(providers.contains(&cand.provider));
                let r = rs.iter().find(|r| r.code == cand.region).unwrap();
                prop_assert!(r.providers.contains(&cand.provider));
            }
            // Every allowed (region, shape) pair appears exactly once.
            let expected: usize = rs.iter().map(|r| gpus().iter()
                .filter(|g| providers.contains(&g.provider) && r.providers.contains(&g.provider)).count()).sum();
            prop_assert_eq!(c.len(), expected);
        }
    }
}
