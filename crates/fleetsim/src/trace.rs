//! The traces a simulation replays: load (requests per second and tokens per
//! request over time) and spot capacity (per cloud × region × GPU: when spot
//! capacity can be had, preemption waves with their notice, prices).
//!
//! Both are files a user can supply or generate with a documented, seeded
//! generator (`docs/SPOT.md` gives the calibration and its sources). A third
//! reader takes the 0/1 availability traces of SkyPilot's spot studies.

use std::path::Path;

use crosslogic_core::Provider;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn invalid(path: &Path, message: impl Into<String>) -> TraceError {
    TraceError::Invalid {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, TraceError> {
    std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.display().to_string(),
        source,
    })
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/// One row of a load trace: from `second` on (until the next row), requests
/// arrive at `requests_per_second`, each generating `tokens_per_request`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadPoint {
    pub second: u64,
    pub requests_per_second: f64,
    pub tokens_per_request: f64,
}

/// Load over time, piecewise constant.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTrace {
    pub points: Vec<LoadPoint>,
}

impl LoadTrace {
    /// Reads a CSV with the header `second,requests_per_second,tokens_per_request`.
    pub fn read_csv(path: &Path) -> Result<LoadTrace, TraceError> {
        let text = read(path)?;
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut points: Vec<LoadPoint> = Vec::new();
        for (i, row) in reader.deserialize::<LoadPoint>().enumerate() {
            let line = i + 2;
            let p = row.map_err(|e| invalid(path, format!("line {line}: {e}")))?;
            if !(p.requests_per_second.is_finite() && p.requests_per_second >= 0.0) {
                return Err(invalid(path, format!("line {line}: requests_per_second must be ≥ 0")));
            }
            if !(p.tokens_per_request.is_finite() && p.tokens_per_request > 0.0) {
                return Err(invalid(path, format!("line {line}: tokens_per_request must be > 0")));
            }
            if points.last().is_some_and(|prev| prev.second >= p.second) {
                return Err(invalid(path, format!("line {line}: seconds must increase")));
            }
            points.push(p);
        }
        if points.is_empty() {
            return Err(invalid(path, "no rows"));
        }
        Ok(LoadTrace { points })
    }

    /// Writes the CSV [`LoadTrace::read_csv`] reads.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("second,requests_per_second,tokens_per_request\n");
        for p in &self.points {
            out.push_str(&format!(
                "{},{:.3},{:.1}\n",
                p.second, p.requests_per_second, p.tokens_per_request
            ));
        }
        out
    }

    /// The load at `second`.
    pub fn at(&self, second: u64) -> LoadPoint {
        let i = self.points.partition_point(|p| p.second <= second);
        self.points[i.saturating_sub(1)]
    }

    /// A day-shaped load: a diurnal curve between `low` and `high`
    /// requests/s peaking at 15:00, per-minute noise of ±5 %, and bursts
    /// (about one every 3 hours, +20–40 % for 5–20 minutes); tokens per
    /// request 300–500 following the same curve. One row per minute.
    pub fn generate(seed: u64, hours: u64, low: f64, high: f64) -> LoadTrace {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x10ad);
        let minutes = hours * 60;
        let mut bursts: Vec<(u64, u64, f64)> = Vec::new();
        let gap = Exp::new(1.0 / 180.0).unwrap_or_else(|_| unreachable!("positive rate"));
        let mut t = gap.sample(&mut rng);
        while (t as u64) < minutes {
            let len = rng.gen_range(5..=20);
            bursts.push((t as u64, t as u64 + len, rng.gen_range(1.2..1.4)));
            t += gap.sample(&mut rng);
        }
        let points = (0..minutes)
            .map(|m| {
                let day = ((m as f64 / 60.0) - 15.0) / 24.0 * std::f64::consts::TAU;
                let shape = (1.0 + day.cos()) / 2.0; // 1 at 15:00, 0 at 03:00
                let burst = bursts
                    .iter()
                    .filter(|(a, b, _)| (*a..*b).contains(&m))
                    .map(|x| x.2)
                    .fold(1.0, f64::max);
                let noise = rng.gen_range(0.95..1.05);
                LoadPoint {
                    second: m * 60,
                    requests_per_second: (low + (high - low) * shape) * burst * noise,
                    tokens_per_request: 300.0 + 200.0 * shape,
                }
            })
            .collect();
        LoadTrace { points }
    }
}

// ---------------------------------------------------------------------------
// Spot capacity and prices
// ---------------------------------------------------------------------------

/// A correlated preemption: each spot node of the pool is reclaimed with
/// probability `fraction`, its notice arriving within `spread_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub second: u64,
    pub fraction: f64,
    #[serde(default)]
    pub spread_seconds: u64,
}

/// One cloud × region × GPU type: its on-demand price, and its spot
/// capacity over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub provider: Provider,
    pub region: String,
    pub gpu: String,
    pub vram_gb: u32,
    /// On-demand price of one GPU (always available).
    pub on_demand_usd_per_hour: f64,
    /// Spot price of one GPU from each `[second, usd]` on.
    pub spot_usd_per_hour: Vec<(u64, f64)>,
    /// Time between the preemption notice and the reclaim (AWS 120 s,
    /// GCP and Azure 30 s).
    pub notice_seconds: u64,
    /// Independent preemptions per spot node-hour, outside waves.
    pub hazard_per_node_hour: f64,
    /// `[start, end)` seconds in which no spot node can be launched.
    pub unavailable: Vec<(u64, u64)>,
    /// Correlated preemptions.
    pub waves: Vec<Wave>,
}

impl Pool {
    /// `provider/region/GPU`.
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.provider, self.region, self.gpu)
    }

    /// Whether a spot node can be launched at `second`.
    pub fn spot_available(&self, second: u64) -> bool {
        !self.unavailable.iter().any(|(a, b)| (*a..*b).contains(&second))
    }

    /// The spot price of one GPU at `second`.
    pub fn spot_price(&self, second: u64) -> f64 {
        let i = self.spot_usd_per_hour.partition_point(|(s, _)| *s <= second);
        self.spot_usd_per_hour
            .get(i.saturating_sub(1))
            .map_or(self.on_demand_usd_per_hour, |p| p.1)
    }

    /// The mean spot price over `[0, until)`, for the catalog.
    pub fn mean_spot_price(&self, until: u64) -> f64 {
        let mut total = 0.0;
        for (i, (start, price)) in self.spot_usd_per_hour.iter().enumerate() {
            let end = self.spot_usd_per_hour.get(i + 1).map_or(until, |n| n.0).min(until);
            total += price * end.saturating_sub(*start) as f64;
        }
        if until == 0 {
            return self.spot_price(0);
        }
        total / until as f64
    }
}

/// Spot capacity and prices of every pool over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpotTrace {
    /// Free text: where the trace comes from.
    pub description: String,
    pub duration_seconds: u64,
    pub pools: Vec<Pool>,
}

/// The published facts the generator is calibrated on (see `docs/SPOT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpotCalibration {
    /// Mean hours a pool's spot capacity stays available between droughts.
    pub mean_hours_available: f64,
    /// Mean hours of a drought (no spot capacity), at least 30 minutes.
    pub mean_hours_drought: f64,
    /// Mean hours between correlated preemption waves in one pool.
    pub mean_hours_between_waves: f64,
    /// Independent preemptions per node-hour.
    pub hazard_per_node_hour: f64,
}

impl Default for SpotCalibration {
    fn default() -> Self {
        SpotCalibration {
            mean_hours_available: 20.0,
            mean_hours_drought: 2.5,
            mean_hours_between_waves: 12.0,
            hazard_per_node_hour: 0.01,
        }
    }
}

/// A GPU the generator offers: list prices of one GPU, USD per hour.
struct Offer {
    provider: Provider,
    gpu: &'static str,
    vram_gb: u32,
    on_demand: f64,
    /// Spot price as a fraction of on-demand: the range it moves in.
    spot_ratio: (f64, f64),
    notice_seconds: u64,
    /// GCP changes spot prices at most once a month; AWS moves with demand.
    price_moves: bool,
}

/// 2024–2025 list prices of the single-GPU shapes (AWS g5.xlarge and
/// g6.xlarge, GCP g2-standard-4), per hour.
const OFFERS: &[Offer] = &[
    Offer {
        provider: Provider::Aws,
        gpu: "A10G",
        vram_gb: 24,
        on_demand: 1.006,
        spot_ratio: (0.32, 0.45),
        notice_seconds: 120,
        price_moves: true,
    },
    Offer {
        provider: Provider::Aws,
        gpu: "L4",
        vram_gb: 24,
        on_demand: 0.805,
        spot_ratio: (0.30, 0.45),
        notice_seconds: 120,
        price_moves: true,
    },
    Offer {
        provider: Provider::Gcp,
        gpu: "L4",
        vram_gb: 24,
        on_demand: 0.7069,
        spot_ratio: (0.32, 0.32),
        notice_seconds: 30,
        price_moves: false,
    },
];

/// The regions the generator spreads pools over.
pub const REGIONS: &[&str] = &["us-east", "us-west", "eu-west"];

impl SpotTrace {
    /// Reads a trace written by [`SpotTrace::to_json`] (or by hand).
    pub fn read_json(path: &Path) -> Result<SpotTrace, TraceError> {
        let text = read(path)?;
        let trace: SpotTrace = serde_json::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
        trace.check().map_err(|m| invalid(path, m))?;
        Ok(trace)
    }

    /// The trace as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| unreachable!("plain data serialises"))
    }

    /// Refuses what the simulator cannot replay.
    pub fn check(&self) -> Result<(), String> {
        if self.pools.is_empty() {
            return Err("no pools".into());
        }
        for p in &self.pools {
            let name = p.name();
            if !(p.on_demand_usd_per_hour.is_finite() && p.on_demand_usd_per_hour > 0.0) {
                return Err(format!("{name}: on_demand_usd_per_hour must be > 0"));
            }
            if p.spot_usd_per_hour
                .iter()
                .any(|(_, usd)| !(usd.is_finite() && *usd > 0.0))
            {
                return Err(format!("{name}: spot prices must be > 0"));
            }
            if p.waves.iter().any(|w| !(0.0..=1.0).contains(&w.fraction)) {
                return Err(format!("{name}: a wave's fraction must be within 0..1"));
            }
            if p.unavailable.iter().any(|(a, b)| a >= b) {
                return Err(format!("{name}: an unavailable interval must have start < end"));
            }
            if !(p.hazard_per_node_hour.is_finite() && p.hazard_per_node_hour >= 0.0) {
                return Err(format!("{name}: hazard_per_node_hour must be ≥ 0"));
            }
        }
        Ok(())
    }

    /// A seeded trace of `hours` over [`REGIONS`] × the AWS A10G and L4 and
    /// GCP L4 shapes, calibrated by `cal`:
    ///
    /// * droughts: each pool alternates between available and drought
    ///   periods drawn from exponentials (means `mean_hours_available`,
    ///   `mean_hours_drought`, a drought at least 30 minutes); a drought
    ///   starts with every spot node of the pool reclaimed;
    /// * waves: correlated preemptions every `mean_hours_between_waves` on
    ///   average per pool, reclaiming 30–100 % of its nodes, notices spread
    ///   over up to 3 minutes;
    /// * independent preemptions at `hazard_per_node_hour`;
    /// * prices: the spot/on-demand ratio within each offer's published
    ///   range, moving every 1–6 hours where the provider moves prices.
    pub fn generate(seed: u64, hours: u64, cal: SpotCalibration) -> SpotTrace {
        let duration = hours * 3600;
        let mut rng = StdRng::seed_from_u64(seed);
        let exp = |mean_hours: f64| Exp::new(1.0 / (mean_hours * 3600.0)).unwrap_or_else(|_| unreachable!("positive"));
        let mut pools = Vec::new();
        for region in REGIONS {
            for o in OFFERS {
                let mut unavailable = Vec::new();
                let mut waves = Vec::new();
                // Droughts: start in a random phase of an available period.
                let mut t = rng.gen_range(0.0..1.0) * exp(cal.mean_hours_available).sample(&mut rng);
                while (t as u64) < duration {
                    let len = exp(cal.mean_hours_drought).sample(&mut rng).max(1800.0);
                    let (a, b) = (t as u64, ((t + len) as u64).min(duration));
                    if a < b {
                        unavailable.push((a, b));
                        waves.push(Wave {
                            second: a,
                            fraction: 1.0,
                            spread_seconds: 60,
                        });
                    }
                    t += len + exp(cal.mean_hours_available).sample(&mut rng);
                }
                let mut t = exp(cal.mean_hours_between_waves).sample(&mut rng);
                while (t as u64) < duration {
                    waves.push(Wave {
                        second: t as u64,
                        fraction: rng.gen_range(0.3..1.0),
                        spread_seconds: rng.gen_range(0..=180),
                    });
                    t += exp(cal.mean_hours_between_waves).sample(&mut rng);
                }
                waves.sort_by_key(|w| w.second);
                let ratio = |rng: &mut StdRng| {
                    if o.spot_ratio.0 < o.spot_ratio.1 {
                        rng.gen_range(o.spot_ratio.0..o.spot_ratio.1)
                    } else {
                        o.spot_ratio.0
                    }
                };
                let mut prices = vec![(0, round4(o.on_demand * ratio(&mut rng)))];
                if o.price_moves {
                    let mut t = rng.gen_range(3600..6 * 3600);
                    while t < duration {
                        prices.push((t, round4(o.on_demand * ratio(&mut rng))));
                        t += rng.gen_range(3600..6 * 3600);
                    }
                }
                pools.push(Pool {
                    provider: o.provider,
                    region: (*region).to_owned(),
                    gpu: o.gpu.to_owned(),
                    vram_gb: o.vram_gb,
                    on_demand_usd_per_hour: o.on_demand,
                    spot_usd_per_hour: prices,
                    notice_seconds: o.notice_seconds,
                    hazard_per_node_hour: cal.hazard_per_node_hour,
                    unavailable,
                    waves,
                });
            }
        }
        SpotTrace {
            description: format!(
                "generated: seed {seed}, {hours} h, {} (crosslogic fleet trace spot)",
                serde_json::to_string(&cal).unwrap_or_default()
            ),
            duration_seconds: duration,
            pools,
        }
    }

    /// A trace with no preemptions and no droughts at fixed prices: the
    /// accounting baseline.
    pub fn calm(hours: u64) -> SpotTrace {
        let mut t = SpotTrace::generate(0, hours, SpotCalibration::default());
        for p in &mut t.pools {
            p.unavailable.clear();
            p.waves.clear();
            p.hazard_per_node_hour = 0.0;
            p.spot_usd_per_hour.truncate(1);
        }
        t.description = format!("calm: {hours} h, no preemptions, fixed prices");
        t
    }

    /// Replaces (or adds) `pool`'s spot capacity with a SkyPilot spot-study
    /// availability trace: JSON `{"metadata": {"gap_seconds": G, …},
    /// "data": [0, 1, …]}`, one entry per `G` seconds, `1` when the spot
    /// instance was preempted or could not be launched (as in the
    /// `skypilot-org` spot traces). Every 0→1 step is a wave that reclaims
    /// all the pool's nodes; each run of 1s is an unavailable interval.
    pub fn apply_skypilot_availability(&mut self, path: &Path, pool: &str) -> Result<(), TraceError> {
        #[derive(Deserialize)]
        struct Metadata {
            gap_seconds: u64,
        }
        #[derive(Deserialize)]
        struct Availability {
            metadata: Metadata,
            data: Vec<u8>,
        }
        let text = read(path)?;
        let a: Availability = serde_json::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
        if a.metadata.gap_seconds == 0 {
            return Err(invalid(path, "metadata.gap_seconds must be > 0"));
        }
        if let Some(bad) = a.data.iter().find(|v| **v > 1) {
            return Err(invalid(
                path,
                format!("data holds {bad}; expected 0 (available) or 1 (preempted)"),
            ));
        }
        let target = self
            .pools
            .iter_mut()
            .find(|p| p.name().eq_ignore_ascii_case(pool))
            .ok_or_else(|| invalid(path, format!("no pool {pool} in the spot trace (provider/region/GPU)")))?;
        let gap = a.metadata.gap_seconds;
        target.unavailable.clear();
        target.waves.clear();
        target.hazard_per_node_hour = 0.0;
        let mut start: Option<u64> = None;
        for (i, v) in a.data.iter().chain(std::iter::once(&0)).enumerate() {
            let t = i as u64 * gap;
            match (v, start) {
                (1, None) => {
                    start = Some(t);
                    target.waves.push(Wave {
                        second: t,
                        fraction: 1.0,
                        spread_seconds: 0,
                    });
                }
                (0, Some(s)) => {
                    target.unavailable.push((s, t));
                    start = None;
                }
                _ => {}
            }
        }
        self.duration_seconds = self.duration_seconds.max(a.data.len() as u64 * gap);
        self.description.push_str(&format!("; {pool} from {}", path.display()));
        Ok(())
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_and_calibrated() {
        let a = SpotTrace::generate(7, 24, SpotCalibration::default());
        assert_eq!(a, SpotTrace::generate(7, 24, SpotCalibration::default()));
        assert_ne!(a, SpotTrace::generate(8, 24, SpotCalibration::default()));
        assert_eq!(a.pools.len(), REGIONS.len() * OFFERS.len());
        a.check().unwrap();
        for p in &a.pools {
            for (_, usd) in &p.spot_usd_per_hour {
                let r = usd / p.on_demand_usd_per_hour;
                assert!((0.29..=0.46).contains(&r), "{}: ratio {r}", p.name());
            }
            for (s, e) in &p.unavailable {
                assert!(
                    e - s >= 1800 || *e == a.duration_seconds,
                    "droughts last 30 min or more"
                );
                assert!(p.waves.iter().any(|w| w.second == *s && w.fraction == 1.0));
            }
        }
        let waves: usize = a.pools.iter().map(|p| p.waves.len()).sum();
        assert!(waves > 5, "a day has correlated preemptions: {waves}");
    }

    #[test]
    fn load_generation_follows_the_day() {
        let l = LoadTrace::generate(1, 24, 4.0, 20.0);
        assert_eq!(l.points.len(), 1440);
        let night = l.at(3 * 3600).requests_per_second;
        let afternoon = l.at(15 * 3600).requests_per_second;
        assert!(night < 6.0 && afternoon > 15.0, "{night} {afternoon}");
        assert_eq!(l.at(90).second, 60);
        let csv = l.to_csv();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("load.csv");
        std::fs::write(&path, csv).unwrap();
        let back = LoadTrace::read_csv(&path).unwrap();
        assert_eq!(back.points.len(), 1440);
        assert!((back.at(15 * 3600).requests_per_second - afternoon).abs() < 0.001);
    }

    #[test]
    fn bad_load_rows_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("load.csv");
        std::fs::write(
            &path,
            "second,requests_per_second,tokens_per_request\n0,1,100\n0,2,100\n",
        )
        .unwrap();
        let e = LoadTrace::read_csv(&path).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("increase"), "{e}");
        std::fs::write(&path, "second,requests_per_second,tokens_per_request\n0,-1,100\n").unwrap();
        let e = LoadTrace::read_csv(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("≥ 0"), "{e}");
    }

    #[test]
    fn skypilot_availability_becomes_waves_and_droughts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        std::fs::write(
            &path,
            r#"{"metadata": {"gap_seconds": 600, "device": "L4"}, "data": [0, 0, 1, 1, 0, 1]}"#,
        )
        .unwrap();
        let mut t = SpotTrace::calm(1);
        t.apply_skypilot_availability(&path, "gcp/us-east/L4").unwrap();
        let p = t.pools.iter().find(|p| p.name() == "gcp/us-east/L4").unwrap();
        assert_eq!(p.unavailable, vec![(1200, 2400), (3000, 3600)]);
        assert_eq!(p.waves.iter().map(|w| w.second).collect::<Vec<_>>(), [1200, 3000]);
        assert!(!p.spot_available(1500) && p.spot_available(2400));
        let e = t
            .apply_skypilot_availability(&path, "aws/mars/L4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no pool aws/mars/L4"), "{e}");
    }
}
