//! What a person looks at: the summary table, the JSON, and the plots
//! (replicas by spot/on-demand, cost, failed requests over time).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::{Run, Summary};

/// The summary of each run as an aligned text table, with each policy's
/// cost per token against the first `on_demand` run.
pub fn table(runs: &[Run]) -> String {
    let baseline = runs
        .iter()
        .find(|r| r.summary.policy == crosslogic_core::CapacityPolicy::OnDemand)
        .map(|r| r.summary.usd_per_million_tokens);
    let header = [
        "policy",
        "cost $",
        "tokens (M)",
        "$/M tokens",
        "vs on_demand",
        "success %",
        "failed (in flight)",
        "p50 queue s",
        "p99 queue s",
        "preemptions",
        "launches (failed)",
        "min below min",
        "spot h",
        "on-demand h",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let s = &r.summary;
            vec![
                s.policy.to_string(),
                format!("{:.2}", s.cost_usd),
                format!("{:.1}", s.tokens / 1e6),
                format!("{:.4}", s.usd_per_million_tokens),
                baseline.filter(|b| *b > 0.0).map_or("-".into(), |b| {
                    format!("{:+.1} %", (s.usd_per_million_tokens / b - 1.0) * 100.0)
                }),
                format!("{:.3}", s.success_rate * 100.0),
                format!("{:.0} ({:.0})", s.failed, s.failed_in_flight),
                format!("{:.2}", s.p50_queue_seconds),
                format!("{:.2}", s.p99_queue_seconds),
                s.preemptions.to_string(),
                format!("{} ({})", s.launches, s.launch_failures),
                format!("{:.1}", s.minutes_below_min),
                format!("{:.1}", s.spot_node_hours),
                format!("{:.1}", s.on_demand_node_hours),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The summaries as JSON: `{"scenario": …, "policies": [{"policy", "cost_usd",
/// "tokens", "usd_per_million_tokens", "success_rate", …}]}`.
pub fn json(scenario: &serde_json::Value, runs: &[Run]) -> String {
    let policies: Vec<&Summary> = runs.iter().map(|r| &r.summary).collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "scenario": scenario,
        "policies": policies,
    }))
    .unwrap_or_else(|_| unreachable!("plain data serialises"))
}

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PlotError {
    pub path: String,
    pub message: String,
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes, into `dir`, per run `replicas-<policy>.svg` (active spot and
/// on-demand replicas, and launching ones, per minute), and for all runs
/// together `cost.svg` (cumulative dollars) and `failed.svg` (failed
/// requests per minute). Returns the files written.
pub fn plot(dir: &Path, runs: &[Run]) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|e| plot_error(dir, e))?;
    let mut written = Vec::new();
    for run in runs {
        let path = dir.join(format!("replicas-{}.svg", run.summary.policy));
        replicas(&path, run).map_err(|e| plot_error(&path, e))?;
        written.push(path);
    }
    let path = dir.join("cost.svg");
    over_time(&path, runs, "cumulative cost (USD)", |s| s.cost_usd).map_err(|e| plot_error(&path, e))?;
    written.push(path);
    let path = dir.join("failed.svg");
    over_time(&path, runs, "failed requests per minute", |s| s.failed).map_err(|e| plot_error(&path, e))?;
    written.push(path);
    Ok(written)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The series labels, top left on a light box.
fn legend<'a>(chart: &mut Chart<'a, 'a>) -> DrawResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

const SPOT: RGBColor = RGBColor(46, 125, 50);
const ON_DEMAND: RGBColor = RGBColor(198, 40, 40);
const LAUNCHING: RGBColor = RGBColor(120, 120, 120);

fn policy_color(i: usize) -> RGBColor {
    [
        RGBColor(198, 40, 40),
        RGBColor(245, 124, 0),
        RGBColor(46, 125, 50),
        RGBColor(21, 101, 192),
    ][i % 4]
}

fn hours(minute: u64) -> f64 {
    minute as f64 / 60.0
}

fn replicas(path: &Path, run: &Run) -> DrawResult {
    let root = SVGBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let s = &run.series;
    let end = s.last().map_or(1.0, |x| hours(x.minute + 1));
    let top = s
        .iter()
        .map(|x| x.spot_active + x.on_demand_active + x.launching)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("replicas over time: {}", run.summary.policy),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("replicas")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    // Stacked: on-demand at the bottom, spot above it, launching on top.
    let od: Vec<(f64, f64)> = s
        .iter()
        .map(|x| (hours(x.minute), f64::from(x.on_demand_active)))
        .collect();
    let spot: Vec<(f64, f64)> = s
        .iter()
        .map(|x| (hours(x.minute), f64::from(x.on_demand_active + x.spot_active)))
        .collect();
    let all: Vec<(f64, f64)> = s
        .iter()
        .map(|x| {
            (
                hours(x.minute),
                f64::from(x.on_demand_active + x.spot_active + x.launching),
            )
        })
        .collect();
    chart
        .draw_series(AreaSeries::new(all, 0.0, LAUNCHING.mix(0.35)))?
        .label("launching")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], LAUNCHING.mix(0.35).filled()));
    chart
        .draw_series(AreaSeries::new(spot, 0.0, SPOT.mix(0.6)))?
        .label("spot (active)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], SPOT.mix(0.6).filled()));
    chart
        .draw_series(AreaSeries::new(od, 0.0, ON_DEMAND.mix(0.6)))?
        .label("on-demand (active)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], ON_DEMAND.mix(0.6).filled()));
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

fn over_time(path: &Path, runs: &[Run], what: &str, value: impl Fn(&crate::Sample) -> f64) -> DrawResult {
    let root = SVGBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let end = runs
        .iter()
        .filter_map(|r| r.series.last())
        .map(|x| hours(x.minute + 1))
        .fold(1.0, f64::max);
    let top = runs
        .iter()
        .flat_map(|r| r.series.iter().map(&value))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{what} by policy"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart.configure_mesh().x_desc("hours").y_desc(what).draw()?;
    for (i, run) in runs.iter().enumerate() {
        let color = policy_color(i);
        let points: Vec<(f64, f64)> = run.series.iter().map(|x| (hours(x.minute), value(x))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(run.summary.policy.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}
