//! The simulated engine: the scheduler's slots (`max_num_seqs`), the context
//! length check, what each choice generates, and non-streaming generation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::metrics::{Finish, GaugeGuard, Metrics};
use super::tokenize::generate;
use super::SimConfig;

/// State shared by all requests.
#[derive(Debug)]
pub(crate) struct Sim {
    pub(crate) cfg: SimConfig,
    pub(crate) metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    rng: Mutex<StdRng>,
}

impl Sim {
    pub(crate) fn new(cfg: SimConfig) -> Arc<Sim> {
        let permits = cfg.max_num_seqs.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Sim {
            metrics: Arc::new(Metrics::default()),
            slots: Arc::new(Semaphore::new(permits)),
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            cfg,
        })
    }

    /// Refuses a model other than the served one; no model means the served one.
    pub(crate) fn check_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            Some(m) if m != self.cfg.served_model_name => Err(ApiError::unknown_model(m)),
            _ => Ok(()),
        }
    }

    /// Draws whether this request fails (`error_rate`); one draw per call.
    pub(crate) fn roll_error(&self) -> Result<(), ApiError> {
        let rate = self.cfg.error_rate;
        if rate <= 0.0 || rate.is_nan() {
            return Ok(());
        }
        let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if rng.gen_bool(rate.min(1.0)) {
            Err(ApiError::internal("Simulated engine failure (error_rate)."))
        } else {
            Ok(())
        }
    }

    /// Waits (counted in `num_requests_waiting`) for a generation slot.
    /// Dropping the future while waiting leaves the queue cleanly.
    pub(crate) async fn admit(self: &Arc<Self>) -> Result<Slot, ApiError> {
        let waiting = self.metrics.waiting();
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("The engine is shutting down."))?;
        drop(waiting);
        Ok(Slot {
            _permit: permit,
            _running: self.metrics.running(),
            metrics: Arc::clone(&self.metrics),
            done: false,
        })
    }
}

/// A generation slot. Dropped without [`Slot::finish`] (the client went away,
/// or the stream was cut) it counts as `finished_reason="abort"`.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    _running: GaugeGuard,
    metrics: Arc<Metrics>,
    done: bool,
}

impl Slot {
    pub(crate) fn finish(mut self, reason: Finish) {
        self.metrics.finished(reason);
        self.done = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.finished(Finish::Abort);
        }
    }
}

/// How many tokens a request may generate: `max_tokens` if given (at least 1,
/// and the prompt plus it within the context), else what the context has left.
pub(crate) fn token_budget(prompt_tokens: u32, max_tokens: Option<i64>, max_model_len: u32) -> Result<u32, ApiError> {
    match max_tokens {
        Some(m) if m < 1 => Err(ApiError::bad_request(format!(
            "max_tokens must be at least 1, got {m}."
        ))),
        Some(m) => {
            let total = i64::from(prompt_tokens) + m;
            if total > i64::from(max_model_len) {
                return Err(ApiError::bad_request(format!(
                    "This model's maximum context length is {max_model_len} tokens. However, you requested \
                     {total} tokens ({prompt_tokens} in the messages, {m} in the completion). Please reduce the \
                     length of the messages or completion."
                )));
            }
            Ok(u32::try_from(m).unwrap_or(u32::MAX))
        }
        None if prompt_tokens >= max_model_len => Err(ApiError::bad_request(format!(
            "This model's maximum context length is {max_model_len} tokens. However, your request has \
             {prompt_tokens} input tokens. Please reduce the length of the input messages."
        ))),
        None => Ok(max_model_len - prompt_tokens),
    }
}

/// What one choice generates.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    /// The choice's `index` in the response.
    pub(crate) index: u32,
    /// The generated tokens, each a word and a space.
    pub(crate) words: Vec<String>,
    /// `Length` when the budget cut the generation, else `Stop`.
    pub(crate) finish: Finish,
}

impl Choice {
    /// `min(output_tokens, budget)` tokens derived from `source`.
    pub(crate) fn plan(index: u32, source: &str, budget: u32, output_tokens: u32) -> Choice {
        let count = output_tokens.min(budget);
        let finish = if budget < output_tokens {
            Finish::Length
        } else {
            Finish::Stop
        };
        Choice {
            index,
            words: generate(source, count),
            finish,
        }
    }

    pub(crate) fn text(&self) -> String {
        self.words.concat()
    }

    pub(crate) fn tokens(&self) -> u32 {
        u32::try_from(self.words.len()).unwrap_or(u32::MAX)
    }
}

/// Token counts of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u32,
    pub(crate) completion_tokens: u32,
}

impl Usage {
    /// vLLM's `UsageInfo`. Non-streaming responses carry
    /// `"prompt_tokens_details": null`; stream chunks leave it out.
    pub(crate) fn to_json(self, with_details: bool) -> Value {
        let mut usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "total_tokens": u64::from(self.prompt_tokens) + u64::from(self.completion_tokens),
            "completion_tokens": self.completion_tokens,
        });
        if with_details {
            usage["prompt_tokens_details"] = Value::Null;
        }
        usage
    }
}

/// Runs a non-streaming generation: takes a slot, waits `ttft` and then `itl`
/// per further token, and updates the metrics. Returns the usage.
pub(crate) async fn generate_blocking(
    sim: &Arc<Sim>,
    prompt_tokens: u32,
    choices: &[Choice],
    arrived: Instant,
) -> Result<Usage, ApiError> {
    let slot = sim.admit().await?;
    sim.metrics.add_prompt_tokens(prompt_tokens);
    pause(sim.cfg.ttft).await;
    sim.metrics.observe_ttft(arrived.elapsed());
    let steps = choices.iter().map(Choice::tokens).max().unwrap_or(0);
    if steps > 1 {
        pause(sim.cfg.itl.saturating_mul(steps - 1)).await;
    }
    let completion_tokens = choices.iter().map(Choice::tokens).fold(0, u32::saturating_add);
    sim.metrics.add_generation_tokens(completion_tokens);
    slot.finish(choices.first().map_or(Finish::Stop, |c| c.finish));
    Ok(Usage {
        prompt_tokens,
        completion_tokens,
    })
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sleeps for `d` unless it is zero (keeps zero-latency runs free of timer work).
pub(crate) async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_checks_the_context_like_vllm() {
        assert_eq!(token_budget(10, Some(5), 100), Ok(5));
        assert_eq!(token_budget(10, None, 100), Ok(90));
        let err = token_budget(10, Some(91), 100).unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        assert!(token_budget(100, None, 100).is_err());
        assert!(token_budget(1, Some(0), 100).is_err());
    }

    #[test]
    fn choice_is_cut_by_a_small_budget() {
        let c = Choice::plan(0, "a b", 3, 16);
        assert_eq!((c.text().as_str(), c.finish), ("a b a ", Finish::Length));
        let c = Choice::plan(0, "a b", 16, 16);
        assert_eq!((c.tokens(), c.finish), (16, Finish::Stop));
    }

    #[test]
    fn error_rate_is_deterministic_from_the_seed() {
        let cfg = SimConfig {
            error_rate: 0.5,
            seed: 7,
            ..SimConfig::default()
        };
        let draws = |sim: Arc<Sim>| (0..64).map(|_| sim.roll_error().is_err()).collect::<Vec<_>>();
        let a = draws(Sim::new(cfg.clone()));
        assert_eq!(a, draws(Sim::new(cfg)));
        assert!(a.iter().any(|&e| e) && a.iter().any(|&e| !e));
    }
}
