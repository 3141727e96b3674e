//! Schemas of the OpenAI-compatible request and response bodies for the
//! OpenAPI document. The gateway reads only what it needs of a request
//! (`model`, `stream`, `max_tokens`/`max_completion_tokens`:
//! [`crate::request`]) and passes the rest to the engine unchanged, so
//! these list the fields that matter here and allow every other field
//! OpenAI's API defines.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Who wrote a chat message.
#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A text, or several.
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Texts {
    One(String),
    Many(Vec<String>),
}

/// A message's text, or its content parts (`{"type": "text", "text": …}`).
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

/// A chat message.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChatMessage {
    role: Role,
    #[schema(example = "Hello!")]
    content: Content,
}

/// `stream_options`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StreamOptions {
    /// Ask for a final usage chunk (the gateway always asks the engine for
    /// it, and hides it from clients that did not).
    include_usage: Option<bool>,
}

/// Body of `POST /v1/chat/completions` (OpenAI's; other fields pass through).
#[derive(ToSchema)]
#[schema(example = json!({"model": "llama-3-8b", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64}))]
#[allow(dead_code)]
pub struct ChatCompletionRequest {
    /// A model of `GET /v1/models`.
    model: String,
    #[schema(min_items = 1)]
    messages: Vec<ChatMessage>,
    /// Completion tokens at most (reserved against token limits).
    #[schema(minimum = 1)]
    max_tokens: Option<u64>,
    /// Newer name of `max_tokens` (either is honoured).
    #[schema(minimum = 1)]
    max_completion_tokens: Option<u64>,
    /// Server-sent events (`text/event-stream`, ending with `data: [DONE]`).
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

/// Body of `POST /v1/completions` (OpenAI's; other fields pass through).
#[derive(ToSchema)]
#[schema(example = json!({"model": "llama-3-8b", "prompt": "Once upon a time", "max_tokens": 32}))]
#[allow(dead_code)]
pub struct CompletionRequest {
    model: String,
    prompt: Texts,
    #[schema(minimum = 1)]
    max_tokens: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

/// Body of `POST /v1/embeddings` (OpenAI's; other fields pass through).
#[derive(ToSchema)]
#[schema(example = json!({"model": "bge-large-en", "input": "Hello!"}))]
#[allow(dead_code)]
pub struct EmbeddingRequest {
    model: String,
    input: Texts,
}

/// One server-sent event of a stream, as a client's event parser reads it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StreamEvent {
    /// A JSON chunk (`chat.completion.chunk`, or `text_completion` for
    /// completions); the last event's data is `[DONE]`.
    #[schema(example = r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#)]
    data: String,
}

/// Token counts of a response.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CompletionUsage {
    prompt_tokens: u64,
    completion_tokens: Option<u64>,
    total_tokens: u64,
}

/// A (chat) completion as the engine answers it — or, with `stream`, a
/// `text/event-stream` of `chat.completion.chunk` events ending with
/// `data: [DONE]`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Completion {
    id: String,
    /// `chat.completion` or `text_completion`.
    object: String,
    created: i64,
    model: String,
    #[schema(value_type = Vec<Object>)]
    choices: Vec<Value>,
    usage: Option<CompletionUsage>,
}

/// Embeddings as the engine answers them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Embeddings {
    /// Always `list`.
    object: String,
    #[schema(value_type = Vec<Object>)]
    data: Vec<Value>,
    model: String,
    usage: Option<CompletionUsage>,
}
