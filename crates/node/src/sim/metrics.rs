//! `GET /metrics`: the engine metrics a vLLM node exports, in Prometheus text.
//!
//! Hand-rolled with atomics on purpose: what matters is imitating vLLM's exact
//! metric names, label names (`model_name`, `finished_reason`, `le`) and
//! histogram buckets, so that whatever scrapes a real node (the control plane's
//! load signals, dashboards) reads the simulator unchanged. A metrics library
//! would add its own naming rules and series; a few atomics render exactly what
//! vLLM renders.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds (seconds) of `vllm:time_to_first_token_seconds`, as in vLLM.
const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Why a request finished: the `finished_reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The generation ended by itself.
    Stop,
    /// `max_tokens` cut it.
    Length,
    /// The client went away or the simulator cut the stream.
    Abort,
}

impl Finish {
    /// The OpenAI `finish_reason` / vLLM `finished_reason` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::Abort => "abort",
        }
    }
}

/// The simulator's counters and gauges.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    running: AtomicU64,
    waiting: AtomicU64,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    success_stop: AtomicU64,
    success_length: AtomicU64,
    success_abort: AtomicU64,
    /// Observations per bucket (not cumulative), the last one being `+Inf`.
    ttft_buckets: [AtomicU64; TTFT_BUCKETS.len() + 1],
    ttft_sum_nanos: AtomicU64,
    ttft_count: AtomicU64,
}

/// The two request gauges.
#[derive(Debug, Clone, Copy)]
enum Gauge {
    Running,
    Waiting,
}

/// Holds a gauge up by one until dropped, so a cancelled request (a client
/// that went away) cannot leave it high.
#[derive(Debug)]
pub(crate) struct GaugeGuard {
    metrics: Arc<Metrics>,
    gauge: Gauge,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.metrics.gauge(self.gauge).fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn gauge(&self, gauge: Gauge) -> &AtomicU64 {
        match gauge {
            Gauge::Running => &self.running,
            Gauge::Waiting => &self.waiting,
        }
    }

    fn hold(self: &Arc<Self>, gauge: Gauge) -> GaugeGuard {
        self.gauge(gauge).fetch_add(1, Ordering::Relaxed);
        GaugeGuard {
            metrics: Arc::clone(self),
            gauge,
        }
    }

    /// Counts a request waiting for a slot until the guard drops.
    pub(crate) fn waiting(self: &Arc<Self>) -> GaugeGuard {
        self.hold(Gauge::Waiting)
    }

    /// Counts a request generating until the guard drops.
    pub(crate) fn running(self: &Arc<Self>) -> GaugeGuard {
        self.hold(Gauge::Running)
    }

    pub(crate) fn add_prompt_tokens(&self, n: u32) {
        self.prompt_tokens.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    pub(crate) fn add_generation_tokens(&self, n: u32) {
        self.generation_tokens.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    pub(crate) fn finished(&self, reason: Finish) {
        let counter = match reason {
            Finish::Stop => &self.success_stop,
            Finish::Length => &self.success_length,
            Finish::Abort => &self.success_abort,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe_ttft(&self, ttft: Duration) {
        let secs = ttft.as_secs_f64();
        let bucket = TTFT_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(TTFT_BUCKETS.len());
        if let Some(b) = self.ttft_buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(ttft.as_nanos()).unwrap_or(u64::MAX);
        self.ttft_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.ttft_count.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self, model: &str, max_num_seqs: usize) -> String {
        let label = format!("model_name=\"{}\"", escape_label(model));
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let running = load(&self.running);
        let usage = if max_num_seqs == 0 {
            0.0
        } else {
            running / max_num_seqs as f64
        };
        let mut out = String::new();

        let gauges = [
            (
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                running,
            ),
            (
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                load(&self.waiting),
            ),
            (
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage.",
                usage,
            ),
            (
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                usage,
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "{name}{{{label}}} {value:?}");
        }

        let counters = [
            (
                "vllm:prompt_tokens_total",
                "Number of prefill tokens processed.",
                &self.prompt_tokens,
            ),
            (
                "vllm:generation_tokens_total",
                "Number of generation tokens processed.",
                &self.generation_tokens,
            ),
        ];
        for (name, help, value) in counters {
            header(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name}{{{label}}} {:?}", load(value));
        }

        let name = "vllm:request_success_total";
        header(&mut out, name, "Count of successfully processed requests.", "counter");
        for (reason, value) in [
            (Finish::Stop, &self.success_stop),
            (Finish::Length, &self.success_length),
            (Finish::Abort, &self.success_abort),
        ] {
            let reason = reason.as_str();
            let _ = writeln!(out, "{name}{{finished_reason=\"{reason}\",{label}}} {:?}", load(value));
        }

        let name = "vllm:time_to_first_token_seconds";
        header(
            &mut out,
            name,
            "Histogram of time to first token in seconds.",
            "histogram",
        );
        let mut cumulative = 0u64;
        for (i, bucket) in self.ttft_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = TTFT_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |le| format!("{le:?}"));
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\",{label}}} {:?}", cumulative as f64);
        }
        let sum = Duration::from_nanos(self.ttft_sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_count{{{label}}} {:?}", load(&self.ttft_count));
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum:?}");
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value per the text format (backslash, quote, newline).
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vllm_names_and_cumulative_buckets() {
        let m = Arc::new(Metrics::default());
        let _running = m.running();
        m.add_prompt_tokens(7);
        m.add_generation_tokens(5);
        m.finished(Finish::Length);
        m.observe_ttft(Duration::from_millis(30));
        m.observe_ttft(Duration::from_secs(60));
        let text = m.render("m\"1", 4);
        assert!(text.contains("# TYPE vllm:num_requests_running gauge\n"));
        assert!(text.contains("vllm:num_requests_running{model_name=\"m\\\"1\"} 1.0\n"));
        assert!(text.contains("vllm:kv_cache_usage_perc{model_name=\"m\\\"1\"} 0.25\n"));
        assert!(text.contains("vllm:prompt_tokens_total{model_name=\"m\\\"1\"} 7.0\n"));
        assert!(text.contains("vllm:request_success_total{finished_reason=\"length\",model_name=\"m\\\"1\"} 1.0\n"));
        assert!(text.contains("_bucket{le=\"0.02\",model_name=\"m\\\"1\"} 0.0\n"));
        assert!(text.contains("_bucket{le=\"0.04\",model_name=\"m\\\"1\"} 1.0\n"));
        assert!(text.contains("_bucket{le=\"10.0\",model_name=\"m\\\"1\"} 1.0\n"));
        assert!(text.contains("_bucket{le=\"+Inf\",model_name=\"m\\\"1\"} 2.0\n"));
        assert!(text.contains("vllm:time_to_first_token_seconds_count{model_name=\"m\\\"1\"} 2.0\n"));
    }

    #[test]
    fn guards_restore_gauges() {
        let m = Arc::new(Metrics::default());
        {
            let _w = m.waiting();
            let _r = m.running();
            assert_eq!(m.waiting.load(Ordering::Relaxed), 1);
        }
        assert_eq!(m.waiting.load(Ordering::Relaxed), 0);
        assert_eq!(m.running.load(Ordering::Relaxed), 0);
    }
}
