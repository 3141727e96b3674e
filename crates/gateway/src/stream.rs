//! Usage of streamed completions, both halves in one place: the gateway
//! always asks the engine for the usage chunk ([`ask_for_usage`], which
//! sets `stream_options.include_usage`), and when the client did not ask
//! for it, the usage-only chunk (`"choices": []`) is removed from what the
//! client sees ([`MeteredStream`]). Engine bytes pass through as they
//! arrive while the server-sent events are watched for that chunk.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use crosslogic_core::UsageStatus;
use crosslogic_http::ApiError;
use futures_util::Stream;
use serde_json::Value;

use crate::usage::{RequestGuard, Usage};

/// Sets `stream_options.include_usage` in a streamed request's `body` so
/// the engine reports usage. Returns the body to send and whether the
/// client did not ask for usage itself (its chunk is then hidden).
pub fn ask_for_usage(body: &[u8]) -> Result<(Bytes, bool), ApiError> {
    let mut doc: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_request(format!("We could not parse the JSON body of your request: {e}."), None)
    })?;
    let Some(obj) = doc.as_object_mut() else {
        return Err(ApiError::invalid_request(
            "The request body must be a JSON object.",
            None,
        ));
    };
    let opts = obj
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(opts) = opts.as_object_mut() else {
        return Err(ApiError::invalid_request(
            "stream_options must be an object.",
            Some("stream_options"),
        ));
    };
    let hide = opts.get("include_usage").and_then(Value::as_bool) != Some(true);
    opts.insert("include_usage".into(), Value::Bool(true));
    let body = serde_json::to_vec(&doc).map_err(|e| {
        tracing::error!(error = %e, "cannot re-encode a request body");
        ApiError::internal()
    })?;
    Ok((Bytes::from(body), hide))
}

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The client-facing body of a streamed completion.
pub struct MeteredStream {
    upstream: Upstream,
    buf: BytesMut,
    hide_usage: bool,
    done: bool,
    /// Recorded when this stream is dropped: completed, broken or abandoned.
    guard: RequestGuard,
}

impl MeteredStream {
    pub fn new(upstream: Upstream, hide_usage: bool, mut guard: RequestGuard) -> MeteredStream {
        // Until the stream ends cleanly, assume the client went away.
        guard.status = UsageStatus::Cancelled;
        MeteredStream {
            upstream,
            buf: BytesMut::new(),
            hide_usage,
            done: false,
            guard,
        }
    }

    /// Moves every complete event out of `buf`, keeping or dropping each.
    fn drain_events(&mut self) -> BytesMut {
        let mut out = BytesMut::new();
        while let Some(end) = find_event_end(&self.buf) {
            let event = self.buf.split_to(end);
            if self.keep(&event) {
                out.extend_from_slice(&event);
            }
        }
        out
    }

    fn keep(&mut self, event: &[u8]) -> bool {
        let Some(data) = event_data(event) else { return true };
        if data == b"[DONE]" {
            // The response is complete once [DONE] passes, even if the client
            // hangs up before the connection's end (the SDKs do).
            self.done = true;
            self.guard.status = UsageStatus::Completed;
            return true;
        }
        // Parse only chunks that carry a usage object (others have no usage
        // key, or `"usage":null` with some engines).
        if contains(data, b"\"usage\":{") || contains(data, b"\"usage\": {") {
            if let Ok(chunk) = serde_json::from_slice::<UsageChunk>(data) {
                if let Some(u) = chunk.usage {
                    self.guard.usage = Some(u);
                }
                if chunk.choices.as_ref().is_some_and(Vec::is_empty) {
                    return !self.hide_usage;
                }
            }
        }
        self.guard.chunks = self.guard.chunks.saturating_add(1);
        true
    }
}

#[derive(serde::Deserialize)]
struct UsageChunk {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// End (exclusive) of the first complete event, including its blank line.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The `data:` payload of an event (single-line data, as engines send).
fn event_data(event: &[u8]) -> Option<&[u8]> {
    let line = event.split(|b| *b == b'\n').find(|l| l.starts_with(b"data:"))?;
    let data = &line[5..];
    let data = data.strip_prefix(b" ").unwrap_or(data);
    Some(data.strip_suffix(b"\r").unwrap_or(data))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Stream for MeteredStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => {
                    // Only this chunk's handling is the gateway's time; the
                    // wait for it is the node's.
                    let work = std::time::Instant::now();
                    self.buf.extend_from_slice(&bytes);
                    let out = self.drain_events();
                    self.guard.gateway_time += work.elapsed();
                    if self.done {
                        // `[DONE]` is in `out`: the usage is journaled before
                        // the client can see the response complete.
                        self.guard.finish();
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out.freeze())));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // The node broke off mid-stream: record what was produced,
                    // and break the client's stream too (no fake clean end).
                    self.guard.status = UsageStatus::Failed;
                    tracing::warn!(request_id = %self.guard.ctx.request_id, error = %e, "upstream stream failed");
                    self.guard.node.record_failure();
                    crate::telemetry::upstream_error("stream");
                    return Poll::Ready(Some(Err(std::io::Error::other("upstream stream failed"))));
                }
                Poll::Ready(None) => {
                    let rest = self.buf.split();
                    self.guard.status = if self.done {
                        UsageStatus::Completed
                    } else {
                        UsageStatus::Failed
                    };
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(rest.freeze())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines() {
        assert_eq!(find_event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(find_event_end(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(find_event_end(b"data: a\n"), None);
        assert_eq!(event_data(b"data: {\"x\":1}\n\n"), Some(&b"{\"x\":1}"[..]));
        assert_eq!(event_data(b": comment\n\n"), None);
    }
}
