//! `POST /v1/embeddings`.
//!
//! `input` takes the same forms as a completion prompt. Each input gets a unit
//! vector of `embedding_dim` floats that depends only on the input: SHA-256 of
//! the input seeds a SplitMix64 sequence (stable across versions and
//! platforms), whose values in [-1, 1) are normalised to length 1.
//! `encoding_format: "base64"` returns the little-endian `f32` bytes in
//! standard base64, as vLLM does.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::engine::{unix_now, Sim, Usage};
use super::error::ApiError;
use super::metrics::Finish;
use super::request::{parse_json, PromptInput};
use super::{inject, SimState};

#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    model: Option<String>,
    input: PromptInput,
    encoding_format: Option<String>,
    dimensions: Option<i64>,
}

pub(crate) async fn handle(State(sim): SimState, headers: HeaderMap, body: Bytes) -> Response {
    run(sim, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(sim: Arc<Sim>, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    let directives = inject::apply(headers).await?;
    let req: EmbeddingRequest = parse_json(body)?;
    sim.check_model(req.model.as_deref())?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format must be \"float\" or \"base64\", got {other:?}."
            )))
        }
    };
    let dim = sim.cfg.embedding_dim;
    if req.dimensions.is_some_and(|d| usize::try_from(d).ok() != Some(dim)) {
        return Err(ApiError::bad_request(format!(
            "Model \"{}\" does not support matryoshka representation, changing output dimensions will lead \
             to poor results.",
            sim.cfg.served_model_name
        )));
    }
    let prompts = req.input.into_prompts("input")?;
    sim.roll_error()?;
    directives.abort_unary()?;

    let slot = sim.admit().await?;
    let prompt_tokens = prompts.iter().map(|p| p.tokens()).fold(0, u32::saturating_add);
    sim.metrics.add_prompt_tokens(prompt_tokens);
    let data: Vec<Value> = (0u32..)
        .zip(&prompts)
        .map(|(index, prompt)| {
            let vector = embed(&prompt.key(), dim);
            let embedding = if base64 {
                json!(encode_base64(&le_bytes(&vector)))
            } else {
                json!(vector)
            };
            json!({"index": index, "object": "embedding", "embedding": embedding})
        })
        .collect();
    slot.finish(Finish::Stop);

    let usage = Usage {
        prompt_tokens,
        completion_tokens: 0,
    };
    Ok(Json(json!({
        "id": format!("embd-{}", uuid::Uuid::new_v4().simple()),
        "object": "list",
        "created": unix_now(),
        "model": sim.cfg.served_model_name,
        "data": data,
        "usage": usage.to_json(true),
    }))
    .into_response())
}

/// A deterministic unit vector of `dim` floats for `key`.
fn embed(key: &[u8], dim: usize) -> Vec<f32> {
    let digest = Sha256::digest(key);
    let mut seed = digest.iter().take(8).fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let raw: Vec<f64> = (0..dim)
        .map(|_| {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // 53 random bits mapped onto [-1, 1).
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    raw.iter()
        .map(|x| if norm > 0.0 { (x / norm) as f32 } else { 0.0 })
        .collect()
}

fn le_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Standard base64 (RFC 4648, with padding).
fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(encode_base64(plain.as_bytes()), encoded);
        }
        assert_eq!(encode_base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed(b"text:hello", 384);
        assert_eq!(a.len(), 384);
        assert_eq!(a, embed(b"text:hello", 384));
        assert_ne!(a, embed(b"text:hellp", 384));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)));
    }
}
