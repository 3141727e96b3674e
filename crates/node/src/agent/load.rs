//! The engine's load, read from vLLM's Prometheus text: requests running and
//! waiting, KV-cache usage, and the generation-token counter whose growth
//! between two scrapes gives tokens per second.

use std::time::Instant;

const RUNNING: &str = "vllm:num_requests_running";
const WAITING: &str = "vllm:num_requests_waiting";
const KV_CACHE: &str = "vllm:kv_cache_usage_perc";
/// The KV-cache gauge's name before vLLM renamed it.
const KV_CACHE_OLD: &str = "vllm:gpu_cache_usage_perc";
const GENERATION_TOKENS: &str = "vllm:generation_tokens_total";

/// One scrape of the engine's metrics. Missing metrics read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EngineLoad {
    /// Requests in the running batch (summed over all series, e.g. over the
    /// engines of a data-parallel deployment).
    pub running: u32,
    /// Requests queued for a slot (summed over all series).
    pub waiting: u32,
    /// KV-cache usage in 0..=1: `vllm:kv_cache_usage_perc`, or the older
    /// `vllm:gpu_cache_usage_perc` when the newer is absent; the fullest
    /// series when there are several.
    pub kv_cache_usage: f64,
    /// The `vllm:generation_tokens_total` counter (summed over all series).
    pub generation_tokens_total: f64,
}

/// Reads the load out of a Prometheus text exposition. Pure: tokens per
/// second need two scrapes, see [`TokenRate`].
pub fn parse_engine_metrics(prometheus_text: &str) -> EngineLoad {
    let mut running = 0.0;
    let mut waiting = 0.0;
    let mut kv: Option<f64> = None;
    let mut kv_old: Option<f64> = None;
    let mut generated = 0.0;
    for (name, value) in prometheus_text.lines().filter_map(parse_sample) {
        if !value.is_finite() {
            continue;
        }
        match name {
            RUNNING => running += value,
            WAITING => waiting += value,
            KV_CACHE => kv = Some(kv.map_or(value, |k| k.max(value))),
            KV_CACHE_OLD => kv_old = Some(kv_old.map_or(value, |k| k.max(value))),
            GENERATION_TOKENS => generated += value,
            _ => {}
        }
    }
    EngineLoad {
        running: count(running),
        waiting: count(waiting),
        kv_cache_usage: kv.or(kv_old).unwrap_or(0.0).clamp(0.0, 1.0),
        generation_tokens_total: generated.max(0.0),
    }
}

/// A gauge value as a request count.
fn count(value: f64) -> u32 {
    if value > 0.0 {
        // Saturating float-to-int conversion.
        value.round() as u32
    } else {
        0
    }
}

/// The metric name and value of one sample line, `None` for comments, blank
/// lines and lines that do not parse. Label values may hold spaces, braces and
/// escaped quotes.
fn parse_sample(line: &str) -> Option<(&str, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    if rest.starts_with('{') {
        rest = rest.get(labels_end(rest)?..)?;
    }
    let value = rest.split_ascii_whitespace().next()?.parse().ok()?;
    Some((name, value))
}

/// The index just past the `}` closing the label set that `s` starts with.
fn labels_end(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'}' if !in_quotes => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Tokens per second from successive readings of a monotonic counter.
#[derive(Debug, Clone, Default)]
pub struct TokenRate {
    last: Option<(Instant, f64)>,
}

impl TokenRate {
    /// Records the counter's value at `now` and returns the rate since the
    /// previous reading: 0 for the first reading and after a counter reset (an
    /// engine restart).
    pub fn update(&mut self, total: f64, now: Instant) -> f64 {
        let rate = match self.last {
            Some((then, previous)) if total >= previous => {
                let secs = now.saturating_duration_since(then).as_secs_f64();
                if secs > 0.0 {
                    (total - previous) / secs
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        self.last = Some((now, total));
        rate
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CURRENT: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="llama"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="llama"} 2.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="llama"} 0.42
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="llama"} 1234.0
vllm:generation_tokens_created{model_name="llama"} 1.7e9
vllm:prompt_tokens_total{model_name="llama"} 99.0
"#;

    #[test]
    fn reads_the_current_metric_names() {
        let load = parse_engine_metrics(CURRENT);
        assert_eq!(
            load,
            EngineLoad {
                running: 3,
                waiting: 2,
                kv_cache_usage: 0.42,
                generation_tokens_total: 1234.0,
            }
        );
    }

    #[test]
    fn reads_the_older_kv_cache_name() {
        let text = "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.75\nvllm:num_requests_running 1\n";
        let load = parse_engine_metrics(text);
        assert_eq!(load.kv_cache_usage, 0.75);
        assert_eq!(load.running, 1);
    }

    #[test]
    fn prefers_the_newer_kv_cache_name_when_both_are_present() {
        let text = "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.3\n";
        assert_eq!(parse_engine_metrics(text).kv_cache_usage, 0.3);
    }

    #[test]
    fn missing_metrics_read_as_zero() {
        assert_eq!(parse_engine_metrics(""), EngineLoad::default());
        let unrelated = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\ngarbage line\n";
        assert_eq!(parse_engine_metrics(unrelated), EngineLoad::default());
    }

    #[test]
    fn sums_series_and_keeps_the_fullest_cache() {
        let text = r#"vllm:num_requests_running{engine="0",model_name="m"} 2
vllm:num_requests_running{engine="1",model_name="m"} 5
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6
vllm:generation_tokens_total{engine="0",model_name="m"} 10 1700000000000
vllm:generation_tokens_total{engine="1",model_name="m"} 15
"#;
        let load = parse_engine_metrics(text);
        assert_eq!(load.running, 7);
        assert_eq!(load.kv_cache_usage, 0.6);
        assert_eq!(load.generation_tokens_total, 25.0);
    }

    #[test]
    fn label_values_may_hold_spaces_braces_and_quotes() {
        let text = r#"vllm:num_requests_waiting{model_name="a} \"b\" {c"} 4"#;
        assert_eq!(parse_engine_metrics(text).waiting, 4);
    }

    #[test]
    fn odd_values_do_not_poison_the_load() {
        let text = "vllm:num_requests_running NaN\nvllm:num_requests_waiting -1\nvllm:kv_cache_usage_perc +Inf\n";
        assert_eq!(parse_engine_metrics(text), EngineLoad::default());
        assert_eq!(parse_engine_metrics("vllm:kv_cache_usage_perc 1.5").kv_cache_usage, 1.0);
    }

    #[test]
    fn token_rate_is_the_counter_delta_over_elapsed_time() {
        let t0 = Instant::now();
        let mut rate = TokenRate::default();
        assert_eq!(rate.update(100.0, t0), 0.0);
        assert_eq!(rate.update(300.0, t0 + Duration::from_secs(2)), 100.0);
        assert_eq!(rate.update(300.0, t0 + Duration::from_secs(4)), 0.0);
        // The engine restarted: its counter went back to zero.
        assert_eq!(rate.update(10.0, t0 + Duration::from_secs(5)), 0.0);
        assert_eq!(rate.update(40.0, t0 + Duration::from_secs(8)), 10.0);
    }
}
