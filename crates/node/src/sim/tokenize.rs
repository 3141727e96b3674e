//! The simulator's deterministic tokenizer and text generator.
//!
//! A token is a whitespace-separated word: `count_tokens("Hello, big world!")`
//! is 3. Generated text is made of the same kind of words, each followed by one
//! space, so `count_tokens(generated) == completion_tokens` always holds and a
//! client can check usage against the text it received.

/// Fixed cost of a chat request on top of its messages, standing in for the
/// chat template: every message costs its content's tokens plus
/// [`CHAT_TOKENS_PER_MESSAGE`] (role and separators), and the whole prompt
/// [`CHAT_TOKENS_PER_REQUEST`] (the assistant turn's opening).
pub const CHAT_TOKENS_PER_MESSAGE: u32 = 4;
/// See [`CHAT_TOKENS_PER_MESSAGE`].
pub const CHAT_TOKENS_PER_REQUEST: u32 = 3;

/// The number of tokens in `text` under the simulator's tokenizer: the number
/// of whitespace-separated words (Unicode whitespace). Empty or blank text has
/// 0 tokens. Deterministic and independent of the model name.
pub fn count_tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// Prompt tokens of a chat request: the sum over messages of
/// `count_tokens(content) + 4`, plus 3 (see [`CHAT_TOKENS_PER_MESSAGE`]).
/// `contents` holds each message's text (content parts already joined).
pub(crate) fn chat_prompt_tokens<'a>(contents: impl IntoIterator<Item = &'a str>) -> u32 {
    contents
        .into_iter()
        .map(|c| count_tokens(c).saturating_add(CHAT_TOKENS_PER_MESSAGE))
        .fold(CHAT_TOKENS_PER_REQUEST, u32::saturating_add)
}

/// `count` generated tokens derived from `source`: its words in a cycle, or
/// `token0`, `token1`, … when it has none. Each token is a word followed by a
/// single space.
pub(crate) fn generate(source: &str, count: u32) -> Vec<String> {
    let words: Vec<&str> = source.split_whitespace().collect();
    (0..count as usize)
        .map(|i| match words.get(i % words.len().max(1)) {
            Some(word) if !words.is_empty() => format!("{word} "),
            _ => format!("token{i} "),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whitespace_separated_words() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("   \n\t"), 0);
        assert_eq!(count_tokens("Hello, big world!"), 3);
        assert_eq!(count_tokens(" a\u{00a0}b\nc "), 3);
    }

    #[test]
    fn chat_overhead_is_four_per_message_plus_three() {
        assert_eq!(chat_prompt_tokens(["hi there", ""]), 2 + 4 + 4 + 3);
        assert_eq!(chat_prompt_tokens(std::iter::empty::<&str>()), 3);
    }

    #[test]
    fn generated_text_cycles_the_source_and_counts_back() {
        let words = generate("one two", 5);
        assert_eq!(words.concat(), "one two one two one ");
        assert_eq!(count_tokens(&words.concat()), 5);
        assert_eq!(generate("  ", 3).concat(), "token0 token1 token2 ");
        assert!(generate("x", 0).is_empty());
    }
}
