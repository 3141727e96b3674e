//! `POST /v1/completions` (the legacy text-completion API).
//!
//! `prompt` is a string, an array of strings, an array of token ids or an array
//! of such arrays; each prompt yields `n` choices, numbered
//! `prompt_index * n + i` as in vLLM. Prompt tokens are
//! [`super::count_tokens`] per string prompt and the length of a token-id
//! prompt; the text cycles the prompt's words (`token0 token1 …` for ids).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::engine::{generate_blocking, token_budget, unix_now, Choice, Sim};
use super::error::ApiError;
use super::metrics::Finish;
use super::request::{check_stream_options, choices_per_prompt, parse_json, usage_flags, PromptInput, StreamOptions};
use super::stream::{self, ChunkFormat, StreamJob};
use super::{inject, SimState};

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: PromptInput,
    max_tokens: Option<i64>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

pub(crate) async fn handle(State(sim): SimState, headers: HeaderMap, body: Bytes) -> Response {
    run(sim, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(sim: Arc<Sim>, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let directives = inject::apply(headers).await?;
    let req: CompletionRequest = parse_json(body)?;
    sim.check_model(req.model.as_deref())?;
    let stream = req.stream.unwrap_or(false);
    check_stream_options(stream, req.stream_options)?;
    let n = choices_per_prompt(req.n)?;
    let prompts = req.prompt.into_prompts("prompt")?;

    let mut prompt_tokens = 0u32;
    let mut choices = Vec::new();
    for (p, prompt) in (0u32..).zip(&prompts) {
        let tokens = prompt.tokens();
        let budget = token_budget(tokens, req.max_tokens, sim.cfg.max_model_len)?;
        prompt_tokens = prompt_tokens.saturating_add(tokens);
        for i in 0..n {
            let index = p.saturating_mul(n).saturating_add(i);
            choices.push(Choice::plan(index, prompt.source(), budget, sim.cfg.output_tokens));
        }
    }
    sim.roll_error()?;
    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();

    if stream {
        let (include_usage, continuous_usage) = usage_flags(req.stream_options, sim.cfg.force_include_usage);
        let job = StreamJob {
            sim,
            id,
            object: "text_completion",
            created,
            prompt_tokens,
            choices,
            include_usage,
            continuous_usage,
            abort_after: directives.abort_after,
            arrived,
        };
        return Ok(stream::respond(job, CompletionChunks));
    }

    directives.abort_unary()?;
    let usage = generate_blocking(&sim, prompt_tokens, &choices, arrived).await?;
    let choices: Vec<Value> = choices
        .iter()
        .map(|c| {
            json!({
                "index": c.index,
                "text": c.text(),
                "logprobs": null,
                "finish_reason": c.finish.as_str(),
                "stop_reason": null,
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": sim.cfg.served_model_name,
        "choices": choices,
        "usage": usage.to_json(true),
    }))
    .into_response())
}

/// Completion chunks: one `text` entry per token, the last one carrying the
/// `finish_reason` (as vLLM sends them).
struct CompletionChunks;

impl ChunkFormat for CompletionChunks {
    const FINISH_WITH_LAST_TOKEN: bool = true;

    fn entry(&self, index: u32, text: Option<&str>, finish: Option<Finish>) -> Value {
        let mut entry = json!({
            "index": index,
            "text": text.unwrap_or(""),
            "logprobs": null,
            "finish_reason": null,
        });
        if let Some(finish) = finish {
            entry["finish_reason"] = json!(finish.as_str());
            entry["stop_reason"] = Value::Null;
        }
        entry
    }
}
