//! Placement decisions: which GPU shape a new replica runs on, which region
//! it goes to, what its cluster is called, and which nodes go first when a
//! deployment scales down. Pure functions over catalog data the reconciler
//! has already loaded.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::status::{DeploymentStrategy, NodeStatus, Provider};

/// One GPU type as sold by one provider (a row of the GPU catalog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuOffer {
    /// Catalog name, e.g. `A100-80GB`.
    pub gpu: String,
    /// Memory of one GPU.
    pub vram_gb: u32,
    /// Who sells it.
    pub provider: Provider,
    /// On-demand price of one GPU, micro-dollars per hour.
    pub on_demand_micros_per_hour: i64,
    /// Spot price of one GPU, if the provider sells it as spot.
    pub spot_micros_per_hour: Option<i64>,
    /// Whether it may be launched at all.
    pub available: bool,
}

/// A region as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionInfo {
    /// Region code, e.g. `us-east-1`.
    pub code: String,
    /// Providers that can launch there.
    pub providers: Vec<Provider>,
    /// Price multiplier in thousandths (1000 = list price).
    pub cost_multiplier_milli: u32,
    /// Status `active` or `degraded`: new replicas may go there.
    pub usable: bool,
}

/// What GPU a deployment asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GpuRequest {
    /// `gpu_type = auto`: the cheapest type and count that fit.
    Auto,
    /// A named type (case-insensitive), with a fixed count or the smallest
    /// count that fits.
    Named { gpu: String, count: Option<u32> },
}

/// One launchable GPU shape, with its hourly price for the whole node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuChoice {
    /// Catalog name of the GPU.
    pub gpu: String,
    /// GPUs per node.
    pub count: u32,
    /// Spot (preemptible) capacity.
    pub spot: bool,
    /// Who sells it.
    pub provider: Provider,
    /// Price of `count` GPUs, micro-dollars per hour.
    pub micros_per_hour: i64,
}

/// Whether `count` GPUs of `vram_gb` each hold a model of `model_vram_gb`
/// with `headroom` (1.2 = 20 % over the model's size) for KV cache and
/// activations. A non-finite headroom fits nothing.
pub fn fits(model_vram_gb: u32, headroom: f64, vram_gb: u32, count: u32) -> bool {
    let needed = f64::from(model_vram_gb) * headroom;
    needed.is_finite() && f64::from(vram_gb) * f64::from(count) >= needed
}

/// Every GPU shape that fits the model, cheapest first.
///
/// For each available offer (of `provider`, when given; of the named type
/// for [`GpuRequest::Named`]) the count is the requested one, else the
/// smallest power of two up to `max_count` that fits: 1, 2, 4, 8 are the
/// node shapes clouds sell and the tensor-parallel sizes vLLM accepts. Each
/// shape yields an on-demand choice — always present, the fallback when spot
/// capacity runs out — and, when `allow_spot` and the offer has a spot
/// price, a spot choice.
///
/// Sorted by the node's hourly price (GPU price × count); at equal price
/// spot comes first, then fewer GPUs, then GPU name and provider, so the
/// order is deterministic. A named type with too little memory yields
/// nothing.
pub fn choose_gpu(
    model_vram_gb: u32,
    requested: GpuRequest,
    allow_spot: bool,
    provider: Option<Provider>,
    offers: &[GpuOffer],
    headroom: f64,
    max_count: u32,
) -> Vec<GpuChoice> {
    let mut out = Vec::new();
    for offer in offers {
        if !offer.available || provider.is_some_and(|p| p != offer.provider) {
            continue;
        }
        let count = match &requested {
            GpuRequest::Auto => smallest_fitting_count(model_vram_gb, headroom, offer, max_count),
            GpuRequest::Named { gpu, count } => {
                if !gpu.eq_ignore_ascii_case(&offer.gpu) {
                    continue;
                }
                match count {
                    Some(c) => Some(*c).filter(|&c| c > 0 && fits(model_vram_gb, headroom, offer.vram_gb, c)),
                    None => smallest_fitting_count(model_vram_gb, headroom, offer, max_count),
                }
            }
        };
        let Some(count) = count else { continue };
        let price = |per_gpu: i64| per_gpu.saturating_mul(i64::from(count));
        if allow_spot {
            if let Some(spot) = offer.spot_micros_per_hour {
                out.push(GpuChoice {
                    gpu: offer.gpu.clone(),
                    count,
                    spot: true,
                    provider: offer.provider,
                    micros_per_hour: price(spot),
                });
            }
        }
        out.push(GpuChoice {
            gpu: offer.gpu.clone(),
            count,
            spot: false,
            provider: offer.provider,
            micros_per_hour: price(offer.on_demand_micros_per_hour),
        });
    }
    out.sort_by(|a, b| {
        a.micros_per_hour
            .cmp(&b.micros_per_hour)
            .then(b.spot.cmp(&a.spot))
            .then(a.count.cmp(&b.count))
            .then_with(|| a.gpu.cmp(&b.gpu))
            .then_with(|| a.provider.as_str().cmp(b.provider.as_str()))
    });
    out
}

fn smallest_fitting_count(model_vram_gb: u32, headroom: f64, offer: &GpuOffer, max_count: u32) -> Option<u32> {
    std::iter::successors(Some(1u32), |c| c.checked_mul(2))
        .take_while(|&c| c <= max_count)
        .find(|&c| fits(model_vram_gb, headroom, offer.vram_gb, c))
}

/// The region of each of `n` new replicas, in launch order.
///
/// Only usable regions that offer `provider` (when given) are eligible. A
/// forced region pins every replica there, whatever the strategy (empty if
/// it is not eligible). Otherwise:
///
/// * `spread`: each replica goes to the region with the fewest replicas,
///   counting those already placed (`replicas_per_region`) and those assigned
///   by this call; ties go to the lowest `cost_multiplier_milli`, then the
///   lowest code.
/// * `packed`: all to the eligible region already holding the most replicas
///   (ties: cheapest, then code), else the cheapest eligible region.
///
/// Returns exactly `n` codes, or nothing when no region is eligible.
pub fn choose_regions(
    strategy: DeploymentStrategy,
    forced_region: Option<&str>,
    regions: &[RegionInfo],
    replicas_per_region: &HashMap<String, u32>,
    provider: Option<Provider>,
    n: u32,
) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut eligible: Vec<&RegionInfo> = regions
        .iter()
        .filter(|r| r.usable && provider.is_none_or(|p| r.providers.contains(&p)))
        .filter(|r| seen.insert(r.code.as_str()))
        .collect();
    // Cheapest first, then code: the tie order used everywhere below.
    eligible.sort_by(|a, b| {
        a.cost_multiplier_milli
            .cmp(&b.cost_multiplier_milli)
            .then_with(|| a.code.cmp(&b.code))
    });
    let n = n as usize;
    let held = |r: &RegionInfo| replicas_per_region.get(&r.code).copied().unwrap_or(0);

    if let Some(forced) = forced_region {
        return match eligible.iter().find(|r| r.code == forced) {
            Some(r) => vec![r.code.clone(); n],
            None => Vec::new(),
        };
    }
    match strategy {
        DeploymentStrategy::Packed => {
            // max_by_key keeps the last maximum; iterate in reverse so the
            // cheapest region wins ties.
            let holding = eligible.iter().rev().filter(|r| held(r) > 0).max_by_key(|r| held(r));
            match holding.or(eligible.first()) {
                Some(r) => vec![r.code.clone(); n],
                None => Vec::new(),
            }
        }
        DeploymentStrategy::Spread => {
            if eligible.is_empty() {
                return Vec::new();
            }
            let mut counts: Vec<u32> = eligible.iter().map(|r| held(r)).collect();
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                // `eligible` is in tie order, so the first minimum wins.
                let (i, _) = counts
                    .iter()
                    .enumerate()
                    .min_by_key(|&(i, c)| (*c, i))
                    .unwrap_or((0, &0));
                counts[i] = counts[i].saturating_add(1);
                out.push(eligible[i].code.clone());
            }
            out
        }
    }
}

/// Longest cluster name: GCP and Kubernetes limit resource names to 63.
pub const MAX_CLUSTER_NAME: usize = 63;
/// The id keeps at least this many characters when region or GPU names are
/// so long that something else must be shortened.
const MIN_ID_CHARS: usize = 8;

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The cluster name of a node: `cic-{provider}-{region}-{gpu}-{spot|od}-{id}`,
/// lowercased, every character outside `[a-z0-9-]` replaced by `-`, at most
/// 63 characters and never ending in `-`. The id is shortened first; region
/// and GPU only when they alone leave the id fewer than 8 characters.
///
/// `cluster_name(Provider::Aws, "us-east-1", "A100-80GB", true, "7f3a")` is
/// `cic-aws-us-east-1-a100-80gb-spot-7f3a`.
pub fn cluster_name(provider: Provider, region: &str, gpu: &str, spot: bool, id: &str) -> String {
    let kind = if spot { "spot" } else { "od" };
    let mut region = sanitize(region);
    let mut gpu = sanitize(gpu);
    let mut id = sanitize(id);
    let fixed = |region: &str, gpu: &str| {
        // "cic-" + provider + "-" + region + "-" + gpu + "-" + kind + "-"
        4 + provider.as_str().len() + 1 + region.len() + 1 + gpu.len() + 1 + kind.len() + 1
    };
    let room = MAX_CLUSTER_NAME.saturating_sub(fixed(&region, &gpu));
    if id.len() > room {
        id.truncate(room.max(MIN_ID_CHARS.min(id.len())));
    }
    // Still too long: shorten the longer of region and GPU, one at a time.
    while fixed(&region, &gpu) + id.len() > MAX_CLUSTER_NAME && (region.len() > 1 || gpu.len() > 1) {
        if region.len() >= gpu.len() {
            region.pop();
        } else {
            gpu.pop();
        }
    }
    let mut name = format!("cic-{provider}-{region}-{gpu}-{kind}-{id}");
    name.truncate(MAX_CLUSTER_NAME);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// Which nodes to drain when scaling down by `n`: unhealthy and dead nodes
/// first, then the fewest requests in flight, then the newest (largest
/// `created_ms`); input order breaks remaining ties. Nodes already draining
/// or terminated are never picked. Returns at most `n` ids.
pub fn pick_victims<I: Clone>(nodes: &[(I, NodeStatus, u32, u64)], n: u32) -> Vec<I> {
    let mut candidates: Vec<&(I, NodeStatus, u32, u64)> = nodes
        .iter()
        .filter(|(_, s, _, _)| !matches!(s, NodeStatus::Draining | NodeStatus::Terminated))
        .collect();
    let healthy = |s: NodeStatus| !matches!(s, NodeStatus::Unhealthy | NodeStatus::Dead);
    candidates.sort_by(|a, b| healthy(a.1).cmp(&healthy(b.1)).then(a.2.cmp(&b.2)).then(b.3.cmp(&a.3)));
    candidates
        .into_iter()
        .take(n as usize)
        .map(|(id, _, _, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offer(gpu: &str, vram: u32, provider: Provider, od: i64, spot: Option<i64>) -> GpuOffer {
        GpuOffer {
            gpu: gpu.into(),
            vram_gb: vram,
            provider,
            on_demand_micros_per_hour: od,
            spot_micros_per_hour: spot,
            available: true,
        }
    }

    fn catalog() -> Vec<GpuOffer> {
        vec![
            offer("A100-80GB", 80, Provider::Aws, 4_000_000, Some(1_500_000)),
            offer("A10G", 24, Provider::Aws, 1_000_000, Some(400_000)),
            offer("H100", 80, Provider::Gcp, 9_000_000, None),
            offer("L4", 24, Provider::Gcp, 700_000, Some(250_000)),
        ]
    }

    fn region(code: &str, cost: u32, providers: &[Provider], usable: bool) -> RegionInfo {
        RegionInfo {
            code: code.into(),
            providers: providers.to_vec(),
            cost_multiplier_milli: cost,
            usable,
        }
    }

    fn four_regions() -> Vec<RegionInfo> {
        use Provider::*;
        vec![
            region("us-west-2", 1100, &[Aws], true),
            region("eu-west-1", 1300, &[Aws, Gcp], true),
            region("us-east-1", 1000, &[Aws, Gcp], true),
            region("ap-south-1", 1200, &[Aws], true),
            region("sa-east-1", 900, &[Aws], false),
        ]
    }

    fn tally(codes: &[String]) -> HashMap<String, u32> {
        let mut m = HashMap::new();
        for c in codes {
            *m.entry(c.clone()).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn auto_picks_the_cheapest_fitting_shape_spot_first_with_on_demand_fallback() {
        // 70 GB × 1.2 = 84 GB: A100-80GB ×2, A10G ×4, H100 ×2, L4 ×4.
        let got = choose_gpu(70, GpuRequest::Auto, true, None, &catalog(), 1.2, 8);
        let summary: Vec<_> = got
            .iter()
            .map(|c| (c.gpu.as_str(), c.count, c.spot, c.micros_per_hour))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("L4", 4, true, 1_000_000),
                ("A10G", 4, true, 1_600_000),
                ("L4", 4, false, 2_800_000),
                ("A100-80GB", 2, true, 3_000_000),
                ("A10G", 4, false, 4_000_000),
                ("A100-80GB", 2, false, 8_000_000),
                ("H100", 2, false, 18_000_000),
            ]
        );
        // Without spot: on-demand only, same order.
        let od = choose_gpu(70, GpuRequest::Auto, false, None, &catalog(), 1.2, 8);
        assert!(od.iter().all(|c| !c.spot));
        assert_eq!(od[0].gpu, "L4");
        assert_eq!(od.len(), 4);
    }

    #[test]
    fn spot_comes_before_on_demand_at_equal_price() {
        let offers = [offer("T4", 16, Provider::Aws, 500, Some(500))];
        let got = choose_gpu(8, GpuRequest::Auto, true, None, &offers, 1.2, 8);
        assert_eq!(got.len(), 2);
        assert!(got[0].spot && !got[1].spot);
    }

    #[test]
    fn provider_max_count_and_availability_filter_offers() {
        let got = choose_gpu(70, GpuRequest::Auto, true, Some(Provider::Aws), &catalog(), 1.2, 2);
        assert!(got.iter().all(|c| c.gpu == "A100-80GB" && c.count == 2));
        let mut offers = catalog();
        for o in &mut offers {
            o.available = o.gpu == "H100";
        }
        let got = choose_gpu(70, GpuRequest::Auto, true, None, &offers, 1.2, 8);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].gpu, "H100");
    }

    #[test]
    fn named_gpu_uses_the_count_asked_or_the_smallest_that_fits() {
        let named = |count| GpuRequest::Named {
            gpu: "a100-80gb".into(),
            count,
        };
        let got = choose_gpu(70, named(None), false, None, &catalog(), 1.2, 8);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].count, got[0].micros_per_hour), (2, 8_000_000));
        let got = choose_gpu(70, named(Some(4)), false, None, &catalog(), 1.2, 8);
        assert_eq!(got[0].count, 4);
    }

    #[test]
    fn named_gpu_with_too_little_memory_yields_nothing() {
        let req = GpuRequest::Named {
            gpu: "A10G".into(),
            count: Some(2),
        };
        assert!(choose_gpu(70, req, true, None, &catalog(), 1.2, 8).is_empty());
        let req = GpuRequest::Named {
            gpu: "L4".into(),
            count: None,
        };
        // 170 GB × 1.2 = 204 GB > 8 × 24 GB = 192 GB.
        assert!(choose_gpu(170, req, true, None, &catalog(), 1.2, 8).is_empty());
    }

    #[test]
    fn spread_distributes_six_over_four_regions_cheapest_first_on_ties() {
        let got = choose_regions(
            DeploymentStrategy::Spread,
            None,
            &four_regions(),
            &HashMap::new(),
            None,
            6,
        );
        assert_eq!(
            got,
            [
                "us-east-1",
                "us-west-2",
                "ap-south-1",
                "eu-west-1",
                "us-east-1",
                "us-west-2"
            ]
        );
        let t = tally(&got);
        assert_eq!(t["us-east-1"], 2);
        assert_eq!(t["us-west-2"], 2);
        assert_eq!(t["ap-south-1"], 1);
        assert_eq!(t["eu-west-1"], 1);
        assert!(!t.contains_key("sa-east-1"), "unusable region skipped");
    }

    #[test]
    fn spread_fills_the_emptiest_regions_first() {
        let held = HashMap::from([("us-east-1".to_string(), 3), ("us-west-2".to_string(), 1)]);
        let got = choose_regions(DeploymentStrategy::Spread, None, &four_regions(), &held, None, 3);
        assert_eq!(got, ["ap-south-1", "eu-west-1", "us-west-2"]);
    }

    #[test]
    fn spread_respects_the_provider() {
        let got = choose_regions(
            DeploymentStrategy::Spread,
            None,
            &four_regions(),
            &HashMap::new(),
            Some(Provider::Gcp),
            3,
        );
        assert_eq!(got, ["us-east-1", "eu-west-1", "us-east-1"]);
        let none = choose_regions(
            DeploymentStrategy::Spread,
            None,
            &four_regions(),
            &HashMap::new(),
            Some(Provider::Azure),
            3,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn packed_keeps_one_region() {
        let regions = four_regions();
        let empty = HashMap::new();
        let got = choose_regions(DeploymentStrategy::Packed, None, &regions, &empty, None, 3);
        assert_eq!(got, ["us-east-1"; 3]);
        let held = HashMap::from([("ap-south-1".to_string(), 2)]);
        let got = choose_regions(DeploymentStrategy::Packed, None, &regions, &held, None, 2);
        assert_eq!(got, ["ap-south-1"; 2]);
        let got = choose_regions(DeploymentStrategy::Packed, Some("eu-west-1"), &regions, &held, None, 2);
        assert_eq!(got, ["eu-west-1"; 2]);
        // A forced region that is not usable places nothing.
        let got = choose_regions(DeploymentStrategy::Packed, Some("sa-east-1"), &regions, &empty, None, 2);
        assert!(got.is_empty());
    }

    #[test]
    fn packed_ties_between_holding_regions_go_to_the_cheapest() {
        let held = HashMap::from([("eu-west-1".to_string(), 2), ("us-west-2".to_string(), 2)]);
        let got = choose_regions(DeploymentStrategy::Packed, None, &four_regions(), &held, None, 1);
        assert_eq!(got, ["us-west-2"]);
    }

    #[test]
    fn cluster_names() {
        assert_eq!(
            cluster_name(Provider::Aws, "us-east-1", "A100-80GB", true, "7f3a"),
            "cic-aws-us-east-1-a100-80gb-spot-7f3a"
        );
        assert_eq!(
            cluster_name(Provider::OnPrem, "DC_1", "RTX 4090", false, "Node.01"),
            "cic-on-prem-dc-1-rtx-4090-od-node-01"
        );
        let long_id = "0123456789abcdef0123456789abcdef0123456789";
        let name = cluster_name(Provider::Gcp, "europe-west4", "H100:8", false, long_id);
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("cic-gcp-europe-west4-h100-8-od-0123456789"));
        let name = cluster_name(Provider::Gcp, &"r".repeat(60), &"g".repeat(60), true, long_id);
        assert!(name.len() <= 63);
        assert!(name.ends_with("-spot-01234567"), "{name}");
    }

    #[test]
    fn victims_unhealthy_first_then_least_loaded_then_newest() {
        use NodeStatus::*;
        let nodes = [
            ("a", Active, 3, 100),
            ("b", Active, 0, 100),
            ("c", Active, 0, 200),
            ("d", Unhealthy, 9, 50),
            ("e", Draining, 0, 300),
            ("f", Dead, 0, 10),
            ("g", Terminated, 0, 400),
        ];
        assert_eq!(pick_victims(&nodes, 4), ["f", "d", "c", "b"]);
        assert_eq!(pick_victims(&nodes, 10), ["f", "d", "c", "b", "a"]);
        assert!(pick_victims(&nodes, 0).is_empty());
    }

    fn arb_regions() -> impl Strategy<Value = Vec<RegionInfo>> {
        proptest::collection::vec((500u32..2000, any::<bool>(), any::<bool>()), 0..8).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (cost, usable, gcp))| {
                    let providers = if gcp {
                        vec![Provider::Aws, Provider::Gcp]
                    } else {
                        vec![Provider::Aws]
                    };
                    region(&format!("r{i}"), cost, &providers, usable)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn regions_are_exactly_n_and_all_eligible(
            regions in arb_regions(),
            held in proptest::collection::vec(0u32..5, 8),
            packed in any::<bool>(),
            gcp in any::<bool>(),
            n in 0u32..30,
        ) {
            let strategy = if packed { DeploymentStrategy::Packed } else { DeploymentStrategy::Spread };
            let provider = gcp.then_some(Provider::Gcp);
            let held: HashMap<String, u32> =
                held.iter().enumerate().map(|(i, c)| (format!("r{i}"), *c)).collect();
            let got = choose_regions(strategy, None, &regions, &held, provider, n);
            let eligible: Vec<&RegionInfo> = regions
                .iter()
                .filter(|r| r.usable && provider.is_none_or(|p| r.providers.contains(&p)))
                .collect();
            if eligible.is_empty() {
                prop_assert!(got.is_empty());
            } else {
                prop_assert_eq!(got.len(), n as usize);
                for code in &got {
                    prop_assert!(eligible.iter().any(|r| &r.code == code));
                }
                if packed {
                    prop_assert!(tally(&got).len() <= 1);
                }
            }
        }

        #[test]
        fn spread_from_equal_counts_stays_balanced(
            regions in arb_regions(), start in 0u32..5, n in 0u32..40,
        ) {
            let held: HashMap<String, u32> =
                regions.iter().map(|r| (r.code.clone(), start)).collect();
            let got = choose_regions(DeploymentStrategy::Spread, None, &regions, &held, None, n);
            let t = tally(&got);
            let finals: Vec<u32> = regions
                .iter()
                .filter(|r| r.usable)
                .map(|r| start + t.get(&r.code).copied().unwrap_or(0))
                .collect();
            if let (Some(lo), Some(hi)) = (finals.iter().min(), finals.iter().max()) {
                prop_assert!(hi - lo <= 1, "{:?}", finals);
            }
        }

        #[test]
        fn every_choice_fits_the_model_with_headroom(
            model in 1u32..700,
            headroom in 1.0f64..2.0,
            offers in proptest::collection::vec(
                (8u32..200, 1i64..10_000_000, proptest::option::of(1i64..10_000_000), any::<bool>()), 0..10),
            allow_spot in any::<bool>(),
            max_count in 1u32..16,
        ) {
            let offers: Vec<GpuOffer> = offers
                .into_iter()
                .enumerate()
                .map(|(i, (vram, od, spot, available))| GpuOffer {
                    available,
                    ..offer(&format!("g{i}"), vram, Provider::Aws, od, spot)
                })
                .collect();
            let got = choose_gpu(model, GpuRequest::Auto, allow_spot, None, &offers, headroom, max_count);
            for c in &got {
                let o = offers.iter().find(|o| o.gpu == c.gpu).unwrap();
                prop_assert!(o.available);
                prop_assert!(f64::from(o.vram_gb * c.count) >= f64::from(model) * headroom);
                prop_assert!(c.count <= max_count);
                prop_assert!(allow_spot || !c.spot);
                // every spot choice has its on-demand fallback
                if c.spot {
                    prop_assert!(got.iter().any(|d| !d.spot && d.gpu == c.gpu && d.count == c.count));
                }
            }
            prop_assert!(got.windows(2).all(|w| w[0].micros_per_hour <= w[1].micros_per_hour));
        }

        #[test]
        fn cluster_names_are_valid(
            region in ".{0,40}", gpu in ".{0,40}", id in "[a-z0-9]{1,40}", spot in any::<bool>(),
        ) {
            let name = cluster_name(Provider::OnPrem, &region, &gpu, spot, &id);
            prop_assert!(name.len() <= MAX_CLUSTER_NAME);
            prop_assert!(name.starts_with("cic-on-prem-"));
            prop_assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            prop_assert!(!name.ends_with('-'));
        }
    }
}
