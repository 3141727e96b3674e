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
///
/// Most clients send no `stream_options`: the member is then appended to
/// the body's text as it is (one copy, no re-encoding of the prompt). A body
/// that has `stream_options` is passed on untouched when it already asks
/// for usage, and otherwise re-encoded with the member set.
pub fn ask_for_usage(body: &Bytes) -> Result<(Bytes, bool), ApiError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        /// `Some` whenever the member is there, `null` included.
        #[serde(default, deserialize_with = "present")]
        stream_options: Option<Value>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        <Value as serde::Deserialize>::deserialize(d).map(Some)
    }
    let trimmed = body.trim_ascii();
    if let (Some(b'{'), Some(b'}')) = (trimmed.first(), trimmed.last()) {
        match serde_json::from_slice::<Probe>(body) {
            Ok(Probe { stream_options: None }) => {
                const MEMBER: &[u8] = br#""stream_options":{"include_usage":true}"#;
                let close = body.trim_ascii_end().len() - 1; // the closing brace
                let empty = trimmed[1..trimmed.len() - 1].trim_ascii().is_empty();
                let mut out = Vec::with_capacity(body.len() + MEMBER.len() + 1);
                out.extend_from_slice(&body[..close]);
                if !empty {
                    out.push(b',');
                }
                out.extend_from_slice(MEMBER);
                out.extend_from_slice(&body[close..]);
                return Ok((Bytes::from(out), true));
            }
            Ok(Probe {
                stream_options: Some(Value::Object(o)),
            }) if o.get("include_usage") == Some(&Value::Bool(true)) => return Ok((body.clone(), false)),
            // Anything else (other options, a non-object, duplicate keys)
            // takes the general path, which also names what is wrong.
            _ => {}
        }
    }
    reencode(body)
}

fn reencode(body: &[u8]) -> Result<(Bytes, bool), ApiError> {
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
    // `null` means not given (some clients send unset options as null).
    if opts.is_null() {
        *opts = Value::Object(Default::default());
    }
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

    /// The complete events of what arrived, each kept or dropped; an
    /// incomplete last event waits in `buf` for the rest. Engines send
    /// whole events per read, so the usual chunk is passed on as it came
    /// (no copy); only a dropped event or a split one costs a copy.
    fn on_chunk(&mut self, bytes: Bytes) -> Bytes {
        let data = if self.buf.is_empty() {
            bytes
        } else {
            self.buf.extend_from_slice(&bytes);
            self.buf.split().freeze()
        };
        let mut pos = 0;
        // Set once an event is dropped: the kept ones are copied from then on.
        let mut kept: Option<BytesMut> = None;
        while let Some(len) = find_event_end(&data[pos..]) {
            let event = &data[pos..pos + len];
            let keep = self.keep(event);
            match (&mut kept, keep) {
                (None, false) => kept = Some(BytesMut::from(&data[..pos])),
                (Some(out), true) => out.extend_from_slice(event),
                _ => {}
            }
            pos += len;
        }
        if pos < data.len() {
            self.buf.extend_from_slice(&data[pos..]);
        }
        match kept {
            Some(out) => out.freeze(),
            None => data.slice(..pos),
        }
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

/// End (exclusive) of the first complete event, including its blank line
/// (`\n\n` or `\r\n\r\n`).
fn find_event_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match buf.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if i > 0 && buf[i - 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// The `data:` payload of an event (single-line data, as engines send).
fn event_data(event: &[u8]) -> Option<&[u8]> {
    let line = event.split(|b| *b == b'\n').find(|l| l.starts_with(b"data:"))?;
    let data = &line[5..];
    let data = data.strip_prefix(b" ").unwrap_or(data);
    Some(data.strip_suffix(b"\r").unwrap_or(data))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
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
                    let out = self.on_chunk(bytes);
                    self.guard.gateway_time += work.elapsed();
                    if self.done {
                        // `[DONE]` is in `out`: the usage is journaled before
                        // the client can see the response complete.
                        self.guard.finish();
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
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
        assert_eq!(find_event_end(b"data: a\r\ndata: b\r\n\r\n"), Some(20));
        assert_eq!(find_event_end(b"\n\n"), Some(2));
    }

    fn asked(body: &str) -> (serde_json::Value, bool) {
        let (out, hide) = ask_for_usage(&Bytes::from(body.to_owned())).unwrap();
        (serde_json::from_slice(&out).unwrap(), hide)
    }

    #[test]
    fn usage_is_asked_for_without_touching_the_rest_of_the_body() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"a \"}\" b"}],"stream":true}"#;
        let (out, hide) = ask_for_usage(&Bytes::from(body)).unwrap();
        assert!(hide);
        let mut want: serde_json::Value = serde_json::from_str(body).unwrap();
        want["stream_options"] = serde_json::json!({ "include_usage": true });
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&out).unwrap(), want);
        assert!(
            out.starts_with(&body.as_bytes()[..body.len() - 1]),
            "the client's text is kept as it was"
        );
        // Trailing whitespace after the object, pretty-printed bodies.
        let (doc, hide) = asked("{\n  \"model\": \"m\"\n}\n\t ");
        assert!(hide);
        assert_eq!(
            doc,
            serde_json::json!({ "model": "m", "stream_options": { "include_usage": true } })
        );
    }

    #[test]
    fn existing_stream_options_are_kept_or_completed() {
        let body = Bytes::from_static(br#"{"model":"m","stream_options":{"include_usage":true}}"#);
        let (out, hide) = ask_for_usage(&body).unwrap();
        assert!(!hide, "the client asked for usage itself");
        assert_eq!(out, body, "passed on untouched");
        let (doc, hide) = asked(r#"{"model":"m","stream_options":{"include_usage":false,"x":1}}"#);
        assert!(hide);
        assert_eq!(
            doc["stream_options"],
            serde_json::json!({ "include_usage": true, "x": 1 })
        );
        let (doc, hide) = asked(r#"{"model":"m","stream_options":{}}"#);
        assert!(hide);
        assert_eq!(doc["stream_options"], serde_json::json!({ "include_usage": true }));
        // null is "not given": one member in the body sent, set.
        let (out, hide) = ask_for_usage(&Bytes::from_static(br#"{"model":"m","stream_options":null}"#)).unwrap();
        assert!(hide);
        assert_eq!(memchr::memmem::find_iter(&out, b"stream_options").count(), 1, "{out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["stream_options"], serde_json::json!({ "include_usage": true }));
    }

    #[test]
    fn bodies_that_cannot_take_the_option_are_refused_by_name() {
        let e = ask_for_usage(&Bytes::from_static(br#"{"model":"m","stream_options":"yes"}"#)).unwrap_err();
        assert!(format!("{e:?}").contains("stream_options must be an object"), "{e:?}");
        let e = ask_for_usage(&Bytes::from_static(br#"["m"]"#)).unwrap_err();
        assert!(format!("{e:?}").contains("must be a JSON object"), "{e:?}");
        let e = ask_for_usage(&Bytes::from_static(b"{\"model\":")).unwrap_err();
        assert!(format!("{e:?}").contains("could not parse"), "{e:?}");
    }
}
