#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The vLLM simulator over real HTTP: a server on 127.0.0.1:0 started with
//! `serve`, reqwest as the client.

use std::time::Duration;

use crosslogic_node::sim::{count_tokens, serve, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const MODEL: &str = "sim-model";

struct Server {
    base: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(cfg: SimConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, cfg, shutdown.clone()));
        Server {
            base,
            client: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    async fn default() -> Server {
        Server::start(SimConfig::default()).await
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self.post(path).json(&body).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn stream_events(&self, path: &str, body: Value) -> Vec<String> {
        let resp = self.post(path).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        sse_events(&resp.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The `data:` payloads of an SSE body, in order.
fn sse_events(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "SSE body must end with a blank line: {body:?}");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_owned()
        })
        .collect()
}

/// The JSON chunks of a stream that ended with `[DONE]`.
fn json_chunks(events: &[String]) -> Vec<Value> {
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(done, "[DONE]");
    chunks.iter().map(|c| serde_json::from_str(c).unwrap()).collect()
}

/// The value of a metric series whose line starts with `series` (name plus
/// the start of its labels).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn gauge(text: &str, name: &str) -> f64 {
    metric(text, &format!("{name}{{model_name=\"{MODEL}\"}}"))
}

fn chat_body(user: &str) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": user}],
    })
}

#[tokio::test]
async fn health_and_models_answer_like_vllm() {
    let s = Server::start(SimConfig {
        max_model_len: 4096,
        ..SimConfig::default()
    })
    .await;
    let health = s.client.get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "");

    let models: Value = s
        .client
        .get(format!("{}/v1/models", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let card = &models["data"][0];
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    assert_eq!(card["id"], MODEL);
    assert_eq!(card["object"], "model");
    assert_eq!(card["owned_by"], "vllm");
    assert_eq!(card["root"], MODEL);
    assert_eq!(card["parent"], Value::Null);
    assert_eq!(card["max_model_len"], 4096);
    assert!(card["created"].as_u64().unwrap() > 1_600_000_000);
}

#[tokio::test]
async fn chat_completion_returns_deterministic_text_and_usage() {
    let s = Server::default().await;
    let (status, body) = s.post_json("/v1/chat/completions", chat_body("hello big world")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["tool_calls"], json!([]));
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("hello big world hello big world "));
    assert_eq!(count_tokens(content), 16);
    // (2 + 4) + (3 + 4) + 3
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 16, "completion_tokens": 16, "total_tokens": 32, "prompt_tokens_details": null})
    );

    // A smaller max_tokens cuts the text; n multiplies the completion tokens.
    let mut req = chat_body("hello big world");
    req["max_tokens"] = json!(5);
    req["n"] = json!(2);
    req["temperature"] = json!(0.7);
    req["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    req["response_format"] = json!({"type": "json_object"});
    req["some_future_field"] = json!({"x": 1});
    let (status, body) = s.post_json("/v1/chat/completions", req).await;
    assert_eq!(status, StatusCode::OK);
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["finish_reason"], "length");
        assert_eq!(c["message"]["content"], "hello big world hello big ");
    }
    assert_eq!(body["usage"]["completion_tokens"], 10);
    assert_eq!(body["usage"]["total_tokens"], 26);

    // max_completion_tokens wins over max_tokens, as in vLLM.
    let mut req = chat_body("x");
    req["max_tokens"] = json!(9);
    req["max_completion_tokens"] = json!(2);
    let (_, body) = s.post_json("/v1/chat/completions", req).await;
    assert_eq!(body["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn chat_accepts_content_arrays() {
    let s = Server::default().await;
    let req = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "describe this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "picture"},
        ]}],
        "max_tokens": 4,
    });
    let (status, body) = s.post_json("/v1/chat/completions", req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "describe this picture describe "
    );
    assert_eq!(body["usage"]["prompt_tokens"], 3 + 4 + 3);
}

#[tokio::test]
async fn completions_handle_strings_arrays_and_token_ids() {
    let s = Server::default().await;
    let (status, body) = s
        .post_json(
            "/v1/completions",
            json!({"model": MODEL, "prompt": "once upon a time", "max_tokens": 6}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["choices"][0]["text"], "once upon a time once upon ");
    assert_eq!(body["choices"][0]["logprobs"], Value::Null);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10, "prompt_tokens_details": null})
    );

    let (_, body) = s
        .post_json(
            "/v1/completions",
            json!({"model": MODEL, "prompt": ["a b", "c"], "n": 2}),
        )
        .await;
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4);
    let indexes: Vec<u64> = choices.iter().map(|c| c["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert!(choices[0]["text"].as_str().unwrap().starts_with("a b a b "));
    assert!(choices[2]["text"].as_str().unwrap().starts_with("c c "));
    assert!(choices.iter().all(|c| c["finish_reason"] == "stop"));
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["completion_tokens"], 64);

    let (_, body) = s
        .post_json(
            "/v1/completions",
            json!({"model": MODEL, "prompt": [[1, 2, 3], [4]], "max_tokens": 2}),
        )
        .await;
    assert_eq!(body["choices"][0]["text"], "token0 token1 ");
    assert_eq!(body["choices"].as_array().unwrap().len(), 2);
    assert_eq!(body["usage"]["prompt_tokens"], 4);
}

#[tokio::test]
async fn chat_stream_without_include_usage_has_no_usage_chunk() {
    let s = Server::default().await;
    let mut req = chat_body("alpha beta");
    req["max_tokens"] = json!(3);
    let (_, unary) = s.post_json("/v1/chat/completions", req.clone()).await;
    req["stream"] = json!(true);
    let chunks = json_chunks(&s.stream_events("/v1/chat/completions", req).await);

    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none() && c["object"] == "chat.completion.chunk"));
    let id = &chunks[0]["id"];
    assert!(id.as_str().unwrap().starts_with("chatcmpl-"));
    assert!(chunks.iter().all(|c| &c["id"] == id && c["model"] == MODEL));
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks.len(), 1 + 3 + 1);
    let text: String = chunks[1..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "alpha beta alpha ");
    assert_eq!(text, unary["choices"][0]["message"]["content"].as_str().unwrap());
    assert!(chunks[..4].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    let last = &chunks[4]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "length");
}

#[tokio::test]
async fn chat_stream_with_include_usage_ends_with_the_usage_chunk() {
    let s = Server::default().await;
    let req = chat_body("one two three");
    let (_, unary) = s.post_json("/v1/chat/completions", req.clone()).await;
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let chunks = json_chunks(&s.stream_events("/v1/chat/completions", streamed).await);

    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(usage_chunk["usage"][field], unary["usage"][field], "{field}");
    }
    assert!(rest.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // continuous_usage_stats: every chunk carries the running usage.
    let mut streamed = req;
    streamed["stream"] = json!(true);
    streamed["max_tokens"] = json!(2);
    streamed["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
    let chunks = json_chunks(&s.stream_events("/v1/chat/completions", streamed).await);
    let running: Vec<u64> = chunks
        .iter()
        .map(|c| c["usage"]["completion_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(running, [0, 1, 2, 2, 2]);
}

#[tokio::test]
async fn force_include_usage_always_sends_usage() {
    let s = Server::start(SimConfig {
        force_include_usage: true,
        output_tokens: 4,
        ..SimConfig::default()
    })
    .await;
    let mut req = chat_body("x y");
    req["stream"] = json!(true);
    let chunks = json_chunks(&s.stream_events("/v1/chat/completions", req).await);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 2 + 4 + 2 + 4 + 3);
    assert_eq!(last["usage"]["completion_tokens"], 4);
    assert_eq!(last["usage"]["total_tokens"], 19);
}

#[tokio::test]
async fn completion_stream_over_a_prompt_array() {
    let s = Server::default().await;
    let req = json!({
        "model": MODEL, "prompt": ["red green", "blue"], "max_tokens": 2, "stream": true,
        "stream_options": {"include_usage": true},
    });
    let chunks = json_chunks(&s.stream_events("/v1/completions", req).await);
    // 2 prompts x 2 tokens, then the usage chunk.
    assert_eq!(chunks.len(), 5);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let text_of = |index: u64| -> String {
        chunks[..4]
            .iter()
            .filter(|c| c["choices"][0]["index"] == index)
            .map(|c| c["choices"][0]["text"].as_str().unwrap())
            .collect()
    };
    assert_eq!(text_of(0), "red green ");
    assert_eq!(text_of(1), "blue blue ");
    let finishes: Vec<&Value> = chunks[..4].iter().map(|c| &c["choices"][0]["finish_reason"]).collect();
    assert_eq!(
        finishes,
        [&Value::Null, &Value::Null, &json!("length"), &json!("length")]
    );
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(
        chunks[4]["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
    );
}

fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let mut out = Vec::new();
    for quad in s.as_bytes().chunks(4) {
        let data: Vec<u8> = quad.iter().copied().filter(|&c| c != b'=').collect();
        let n = data.iter().fold(0u32, |acc, &c| (acc << 6) | value(c)) << (6 * (4 - data.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..data.len()]);
    }
    out
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let s = Server::start(SimConfig {
        embedding_dim: 64,
        ..SimConfig::default()
    })
    .await;
    let req = json!({"model": MODEL, "input": ["hello world", "other text here"]});
    let (status, body) = s.post_json("/v1/embeddings", req.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 5);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let vectors: Vec<Vec<f32>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i);
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    for v in &vectors {
        assert_eq!(v.len(), 64);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert_ne!(vectors[0], vectors[1]);
    let (_, again) = s
        .post_json("/v1/embeddings", json!({"model": MODEL, "input": "hello world"}))
        .await;
    assert_eq!(again["data"][0]["embedding"], data[0]["embedding"]);

    let (_, b64) = s
        .post_json(
            "/v1/embeddings",
            json!({"model": MODEL, "input": "hello world", "encoding_format": "base64"}),
        )
        .await;
    let bytes = decode_base64(b64["data"][0]["embedding"].as_str().unwrap());
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(floats, vectors[0]);

    let (_, ids) = s
        .post_json("/v1/embeddings", json!({"model": MODEL, "input": [1, 2, 3]}))
        .await;
    assert_eq!(ids["usage"]["prompt_tokens"], 3);
}

async fn assert_error(resp: reqwest::Response, status: StatusCode, kind: &str) -> String {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], status.as_u16());
    assert_eq!(error["param"], Value::Null);
    error["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn errors_use_vllm_envelope() {
    let s = Server::start(SimConfig {
        max_model_len: 100,
        ..SimConfig::default()
    })
    .await;
    let chat = "/v1/chat/completions";

    let resp = s
        .post(chat)
        .json(&json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}));
    let msg = assert_error(resp.send().await.unwrap(), StatusCode::NOT_FOUND, "NotFoundError").await;
    assert_eq!(msg, "The model `gpt-4` does not exist.");

    let resp = s
        .post(chat)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "BadRequestError").await;

    let resp = s.post(chat).json(&json!({"model": MODEL})).send().await.unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "BadRequestError").await;
    let resp = s
        .post("/v1/completions")
        .json(&json!({"model": MODEL}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "BadRequestError").await;
    let resp = s
        .post("/v1/embeddings")
        .json(&json!({"model": MODEL}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "BadRequestError").await;

    let mut req = chat_body("hi");
    req["max_tokens"] = json!(0);
    let resp = s.post(chat).json(&req).send().await.unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "BadRequestError").await;

    // Prompt (2+4)+(1+4)+3 = 14 tokens, plus 90 > 100.
    req["max_tokens"] = json!(90);
    let resp = s.post(chat).json(&req).send().await.unwrap();
    let msg = assert_error(resp, StatusCode::BAD_REQUEST, "BadRequestError").await;
    assert_eq!(
        msg,
        "This model's maximum context length is 100 tokens. However, you requested 104 tokens (14 in the \
         messages, 90 in the completion). Please reduce the length of the messages or completion."
    );

    let resp = s
        .post(chat)
        .header("X-Return-Error", "503")
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableError").await;
    let mut streamed = chat_body("hi");
    streamed["stream"] = json!(true);
    let resp = s
        .post(chat)
        .header("X-Return-Error", "429")
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::TOO_MANY_REQUESTS, "RateLimitError").await;

    // The delay header only delays.
    let resp = s
        .post(chat)
        .header("X-Sim-Delay-Ms", "20")
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn error_rate_is_deterministic_from_the_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let s = Server::start(SimConfig {
            error_rate: 0.5,
            seed,
            ..SimConfig::default()
        })
        .await;
        let mut out = Vec::new();
        for _ in 0..24 {
            let resp = s
                .post("/v1/chat/completions")
                .json(&chat_body("hi"))
                .send()
                .await
                .unwrap();
            out.push(resp.status().as_u16());
        }
        out
    }
    let first = statuses(42).await;
    assert_eq!(first, statuses(42).await);
    assert!(first.contains(&500) && first.contains(&200), "{first:?}");

    let s = Server::start(SimConfig {
        error_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let resp = s
        .post("/v1/completions")
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError").await;
}

#[tokio::test]
async fn abort_after_breaks_the_stream_without_done() {
    let s = Server::default().await;
    let mut req = chat_body("a b c");
    req["stream"] = json!(true);
    let mut resp = s
        .post("/v1/chat/completions")
        .header("X-Sim-Abort-After", "3")
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut received = Vec::new();
    let ended_with_error = loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(ended_with_error, "the body must end with a broken connection");
    let text = String::from_utf8(received).unwrap();
    assert!(!text.contains("[DONE]"));
    let events = sse_events(&text);
    // The role chunk and three tokens.
    assert_eq!(events.len(), 4, "{events:?}");

    let resp = s
        .post("/v1/chat/completions")
        .header("X-Sim-Abort-After", "3")
        .json(&chat_body("a"))
        .send();
    assert_error(
        resp.await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
    )
    .await;
    let metrics = s.metrics().await;
    assert_eq!(
        metric(&metrics, "vllm:request_success_total{finished_reason=\"abort\""),
        1.0
    );
}

/// Polls /metrics until `pred` holds (bounded: 20 s).
async fn wait_for_metrics(s: &Server, what: &str, pred: impl Fn(&str) -> bool) -> String {
    for _ in 0..400 {
        let text = s.metrics().await;
        if pred(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("metrics never showed {what}:\n{}", s.metrics().await);
}

#[tokio::test]
async fn slots_queue_requests_and_a_gone_client_frees_its_slot() {
    let cfg = SimConfig {
        max_num_seqs: 1,
        ttft: Duration::from_millis(300),
        itl: Duration::from_millis(20),
        output_tokens: 1000,
        ..SimConfig::default()
    };
    let s = Server::start(cfg).await;
    let mut req = chat_body("slow stream");
    req["stream"] = json!(true);

    let mut first = s.post("/v1/chat/completions").json(&req).send().await.unwrap();
    let second = s.post("/v1/chat/completions").json(&req).send().await.unwrap();
    let text = wait_for_metrics(&s, "one running and one waiting", |m| {
        gauge(m, "vllm:num_requests_running") == 1.0 && gauge(m, "vllm:num_requests_waiting") == 1.0
    })
    .await;
    assert_eq!(gauge(&text, "vllm:kv_cache_usage_perc"), 1.0);
    assert_eq!(gauge(&text, "vllm:gpu_cache_usage_perc"), 1.0);

    // Read a little of the first stream, then go away mid-way.
    let chunk = first.chunk().await.unwrap().unwrap();
    assert!(chunk.starts_with(b"data: "));
    drop(first);
    // The queued request gets the slot...
    wait_for_metrics(&s, "the second running", |m| {
        gauge(m, "vllm:num_requests_running") == 1.0 && gauge(m, "vllm:num_requests_waiting") == 0.0
    })
    .await;
    // ...and once its client goes too, nothing generates any more.
    drop(second);
    let text = wait_for_metrics(&s, "nothing running", |m| gauge(m, "vllm:num_requests_running") == 0.0).await;
    assert_eq!(gauge(&text, "vllm:num_requests_waiting"), 0.0);
    assert_eq!(
        metric(&text, "vllm:request_success_total{finished_reason=\"abort\""),
        2.0
    );
    // Stopped generators add no tokens.
    let generated = metric(&text, "vllm:generation_tokens_total");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metric(&s.metrics().await, "vllm:generation_tokens_total"), generated);
}

#[tokio::test]
async fn metrics_counters_add_up_to_the_usage_returned() {
    let s = Server::default().await;
    let mut usages = Vec::new();
    let (_, body) = s.post_json("/v1/chat/completions", chat_body("counting tokens")).await;
    usages.push(body["usage"].clone());
    let mut req = chat_body("cut short");
    req["max_tokens"] = json!(3);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let chunks = json_chunks(&s.stream_events("/v1/chat/completions", req).await);
    usages.push(chunks.last().unwrap()["usage"].clone());
    let (_, body) = s
        .post_json("/v1/completions", json!({"prompt": ["p q r", "s"], "max_tokens": 20}))
        .await;
    usages.push(body["usage"].clone());
    let (_, body) = s
        .post_json("/v1/embeddings", json!({"input": "embed these words"}))
        .await;
    usages.push(body["usage"].clone());

    let sum = |field: &str| usages.iter().map(|u| u[field].as_u64().unwrap_or(0)).sum::<u64>() as f64;
    let text = s.metrics().await;
    for name in [
        "num_requests_running",
        "num_requests_waiting",
        "prompt_tokens_total",
        "time_to_first_token_seconds",
    ] {
        assert!(text.contains(&format!("# HELP vllm:{name} ")), "{name}");
        assert!(text.contains(&format!("# TYPE vllm:{name} ")), "{name}");
    }
    assert_eq!(gauge(&text, "vllm:prompt_tokens_total"), sum("prompt_tokens"));
    assert_eq!(gauge(&text, "vllm:generation_tokens_total"), sum("completion_tokens"));
    let success = |reason: &str| {
        metric(
            &text,
            &format!("vllm:request_success_total{{finished_reason=\"{reason}\""),
        )
    };
    assert_eq!((success("stop"), success("length"), success("abort")), (3.0, 1.0, 0.0));
    // Three generations observed a first token; buckets are cumulative up to +Inf.
    let ttft = "vllm:time_to_first_token_seconds";
    assert_eq!(gauge(&text, &format!("{ttft}_count")), 3.0);
    assert_eq!(metric(&text, &format!("{ttft}_bucket{{le=\"+Inf\"")), 3.0);
    assert_eq!(metric(&text, &format!("{ttft}_bucket{{le=\"10.0\"")), 3.0);
    assert_eq!(gauge(&text, "vllm:num_requests_running"), 0.0);
}

#[tokio::test]
async fn serve_returns_when_shutdown_fires() {
    let mut s = Server::default().await;
    let resp = s.client.get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), &mut s.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
