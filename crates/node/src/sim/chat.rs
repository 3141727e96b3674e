//! `POST /v1/chat/completions`.
//!
//! Accepts the full OpenAI request; the fields that matter here are `model`,
//! `messages` (string content, or content arrays whose `{"type":"text"}` parts
//! are joined with newlines, as vLLM does), `max_completion_tokens` /
//! `max_tokens`, `n`, `stream` and `stream_options`. Everything else (`tools`,
//! `response_format`, `temperature`, …) is accepted and ignored.
//!
//! Prompt tokens: see [`super::tokenize::chat_prompt_tokens`]. The reply cycles
//! the words of the last user message.

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
use super::request::{check_stream_options, choices_per_prompt, parse_json, usage_flags, StreamOptions};
use super::stream::{self, ChunkFormat, StreamJob};
use super::tokenize::chat_prompt_tokens;
use super::{inject, SimState};

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Vec<Message>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

/// The text of a message's `content`: a string, null, or an array of parts
/// whose text parts are joined with `\n` (other parts, e.g. images, add none).
fn content_text(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Ok(texts.join("\n"))
        }
        _ => Err(ApiError::bad_request(
            "Message content must be a string or an array of content parts.",
        )),
    }
}

pub(crate) async fn handle(State(sim): SimState, headers: HeaderMap, body: Bytes) -> Response {
    run(sim, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(sim: Arc<Sim>, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let directives = inject::apply(headers).await?;
    let req: ChatRequest = parse_json(body)?;
    sim.check_model(req.model.as_deref())?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must not be empty."));
    }
    let stream = req.stream.unwrap_or(false);
    check_stream_options(stream, req.stream_options)?;
    let n = choices_per_prompt(req.n)?;
    let contents = req
        .messages
        .iter()
        .map(|m| content_text(&m.content))
        .collect::<Result<Vec<_>, _>>()?;
    let prompt_tokens = chat_prompt_tokens(contents.iter().map(String::as_str));
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let budget = token_budget(prompt_tokens, max_tokens, sim.cfg.max_model_len)?;
    sim.roll_error()?;

    let source = req
        .messages
        .iter()
        .zip(&contents)
        .rev()
        .find(|(m, _)| m.role == "user")
        .map_or("", |(_, c)| c);
    let choices: Vec<Choice> = (0..n)
        .map(|i| Choice::plan(i, source, budget, sim.cfg.output_tokens))
        .collect();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();

    if stream {
        let (include_usage, continuous_usage) = usage_flags(req.stream_options, sim.cfg.force_include_usage);
        let job = StreamJob {
            sim,
            id,
            object: "chat.completion.chunk",
            created,
            prompt_tokens,
            choices,
            include_usage,
            continuous_usage,
            abort_after: directives.abort_after,
            arrived,
        };
        return Ok(stream::respond(job, ChatChunks));
    }

    directives.abort_unary()?;
    let usage = generate_blocking(&sim, prompt_tokens, &choices, arrived).await?;
    let choices: Vec<Value> = choices
        .iter()
        .map(|c| {
            json!({
                "index": c.index,
                "message": {"role": "assistant", "content": c.text(), "tool_calls": []},
                "logprobs": null,
                "finish_reason": c.finish.as_str(),
                "stop_reason": null,
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": sim.cfg.served_model_name,
        "choices": choices,
        "usage": usage.to_json(true),
    }))
    .into_response())
}

/// Chat chunks: a role chunk, one `{"content": word}` delta per token, then a
/// chunk with an empty delta and the `finish_reason`.
struct ChatChunks;

impl ChunkFormat for ChatChunks {
    const FINISH_WITH_LAST_TOKEN: bool = false;

    fn opening(&self, index: u32) -> Option<Value> {
        Some(json!({
            "index": index,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": null,
        }))
    }

    fn entry(&self, index: u32, text: Option<&str>, finish: Option<Finish>) -> Value {
        let delta = match text {
            Some(text) => json!({"content": text}),
            None => json!({}),
        };
        let mut entry = json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": null});
        if let Some(finish) = finish {
            entry["finish_reason"] = json!(finish.as_str());
            entry["stop_reason"] = Value::Null;
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_arrays_join_their_text_parts() {
        let parts = json!([
            {"type": "text", "text": "hello there"},
            {"type": "image_url", "image_url": {"url": "data:,"}},
            {"type": "text", "text": "world"},
        ]);
        assert_eq!(content_text(&parts).unwrap(), "hello there\nworld");
        assert_eq!(content_text(&Value::Null).unwrap(), "");
        assert!(content_text(&json!(3)).is_err());
    }
}
