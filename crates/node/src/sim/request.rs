//! Request-body pieces shared by the endpoints: JSON parsing into vLLM's 400,
//! prompt/input forms, `stream_options`.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use super::tokenize::count_tokens;

/// Parses a JSON body; any syntax or shape error (missing field, wrong type)
/// is a 400 `BadRequestError`, like vLLM's validation errors. Unknown fields
/// are ignored.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
}

/// `stream_options` of chat and completion requests.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: Option<bool>,
    pub(crate) continuous_usage_stats: Option<bool>,
}

/// vLLM's rule: `(include_usage, continuous_usage)`. Usage is sent when asked
/// for, or always under `--enable-force-include-usage`; running usage on every
/// chunk only when usage is sent and `continuous_usage_stats` is set.
pub(crate) fn usage_flags(options: Option<StreamOptions>, force_include_usage: bool) -> (bool, bool) {
    let options = options.unwrap_or_default();
    let include = force_include_usage || options.include_usage.unwrap_or(false);
    (include, include && options.continuous_usage_stats.unwrap_or(false))
}

/// Refuses `stream_options` on a non-streaming request, as vLLM does.
pub(crate) fn check_stream_options(stream: bool, options: Option<StreamOptions>) -> Result<(), ApiError> {
    if !stream && options.is_some() {
        return Err(ApiError::bad_request(
            "Stream options can only be defined when `stream=True`.",
        ));
    }
    Ok(())
}

/// The largest `n` the simulator accepts (it keeps every choice in memory).
pub(crate) const MAX_N: i64 = 1024;

/// Validates `n` (default 1).
pub(crate) fn choices_per_prompt(n: Option<i64>) -> Result<u32, ApiError> {
    match n.unwrap_or(1) {
        n @ 1..=MAX_N => Ok(u32::try_from(n).unwrap_or(1)),
        n => Err(ApiError::bad_request(format!(
            "n must be between 1 and {MAX_N}, got {n}."
        ))),
    }
}

/// `prompt` of `/v1/completions` and `input` of `/v1/embeddings`: a string,
/// strings, token ids, or lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

/// One prompt of a [`PromptInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

impl PromptInput {
    /// The individual prompts; an empty list is a 400.
    pub(crate) fn into_prompts(self, field: &str) -> Result<Vec<Prompt>, ApiError> {
        let prompts = match self {
            PromptInput::Text(s) => vec![Prompt::Text(s)],
            PromptInput::Texts(v) => v.into_iter().map(Prompt::Text).collect(),
            PromptInput::Ids(ids) => vec![Prompt::Ids(ids)],
            PromptInput::IdLists(v) => v.into_iter().map(Prompt::Ids).collect(),
        };
        if prompts.is_empty() {
            return Err(ApiError::bad_request(format!("`{field}` must not be empty.")));
        }
        Ok(prompts)
    }
}

impl Prompt {
    /// Tokens: [`count_tokens`] of a text, the length of a token-id list.
    pub(crate) fn tokens(&self) -> u32 {
        match self {
            Prompt::Text(s) => count_tokens(s),
            Prompt::Ids(ids) => u32::try_from(ids.len()).unwrap_or(u32::MAX),
        }
    }

    /// The words generation cycles through (none for token ids).
    pub(crate) fn source(&self) -> &str {
        match self {
            Prompt::Text(s) => s,
            Prompt::Ids(_) => "",
        }
    }

    /// A stable byte key identifying the prompt (embeddings hash it).
    pub(crate) fn key(&self) -> Vec<u8> {
        match self {
            Prompt::Text(s) => [b"text:".as_slice(), s.as_bytes()].concat(),
            Prompt::Ids(ids) => {
                let mut key = b"ids:".to_vec();
                for id in ids {
                    key.extend_from_slice(&id.to_le_bytes());
                }
                key
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(json: &str) -> Result<Vec<Prompt>, ApiError> {
        parse_json::<PromptInput>(json.as_bytes())?.into_prompts("prompt")
    }

    #[test]
    fn prompt_forms() {
        assert_eq!(prompts(r#""a b""#).unwrap(), vec![Prompt::Text("a b".into())]);
        assert_eq!(
            prompts(r#"["a","b c"]"#)
                .unwrap()
                .iter()
                .map(Prompt::tokens)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(prompts("[1,2,3]").unwrap(), vec![Prompt::Ids(vec![1, 2, 3])]);
        assert_eq!(prompts("[[1],[2,3]]").unwrap().len(), 2);
        assert!(prompts("[]").is_err());
        assert!(prompts("{}").is_err());
    }

    #[test]
    fn usage_flags_follow_vllm() {
        let opts = |u, c| {
            Some(StreamOptions {
                include_usage: u,
                continuous_usage_stats: c,
            })
        };
        assert_eq!(usage_flags(None, false), (false, false));
        assert_eq!(usage_flags(None, true), (true, false));
        assert_eq!(usage_flags(opts(Some(true), None), false), (true, false));
        assert_eq!(usage_flags(opts(Some(false), Some(true)), false), (false, false));
        assert_eq!(usage_flags(opts(Some(true), Some(true)), false), (true, true));
    }

    #[test]
    fn n_is_bounded() {
        assert_eq!(choices_per_prompt(None).unwrap(), 1);
        assert_eq!(choices_per_prompt(Some(3)).unwrap(), 3);
        assert!(choices_per_prompt(Some(0)).is_err());
    }
}
