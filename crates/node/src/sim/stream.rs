//! Streaming generation as Server-Sent Events, vLLM style.
//!
//! Every chunk is `data: {json}\n\n`; the stream ends with `data: [DONE]\n\n`.
//! After the content chunks (and the finish chunks) comes, when usage is asked
//! for, one chunk with `"choices": []` and the request's `usage`. Like vLLM
//! (which serialises chunks with `exclude_unset`), other chunks carry no
//! `usage` key at all unless `continuous_usage_stats` asks for running usage.
//!
//! The generator runs *inside* the response body: [`ProducerReader`] polls the
//! generation future whenever the server polls the body for bytes. Nothing is
//! spawned, so when the client goes away and the server drops the body, the
//! generation (with its slot and gauges) is dropped at its current await
//! point — nothing keeps generating for a gone client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio_util::io::ReaderStream;

use super::engine::{pause, Choice, Sim, Usage};
use super::metrics::Finish;

/// How an endpoint shapes the `choices` entries of its chunks.
pub(crate) trait ChunkFormat: Send + 'static {
    /// Whether the chunk of a choice's last token carries its `finish_reason`
    /// (completions); otherwise a separate finish chunk follows (chat).
    const FINISH_WITH_LAST_TOKEN: bool;

    /// The choice entry that opens a choice, if the format has one.
    fn opening(&self, _index: u32) -> Option<Value> {
        None
    }

    /// The choice entry for one token (`text`), or a finish-only entry
    /// (`text` is `None`); `finish` is set on the entry that ends the choice.
    fn entry(&self, index: u32, text: Option<&str>, finish: Option<Finish>) -> Value;
}

/// Everything a streaming generation needs.
#[derive(Debug)]
pub(crate) struct StreamJob {
    pub(crate) sim: Arc<Sim>,
    /// `chatcmpl-…` / `cmpl-…`.
    pub(crate) id: String,
    /// `chat.completion.chunk` / `text_completion`.
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) prompt_tokens: u32,
    pub(crate) choices: Vec<Choice>,
    pub(crate) include_usage: bool,
    pub(crate) continuous_usage: bool,
    /// Break the connection after this many content tokens.
    pub(crate) abort_after: Option<u32>,
    pub(crate) arrived: Instant,
}

impl StreamJob {
    fn chunk(&self, choices: Vec<Value>, usage: Option<Usage>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.sim.cfg.served_model_name,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage.to_json(false);
        }
        chunk
    }

    /// Running usage for `continuous_usage_stats`.
    fn running_usage(&self, completion_tokens: u32) -> Option<Usage> {
        self.continuous_usage.then_some(Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens,
        })
    }
}

/// The SSE response for `job`; generation starts when the body is first polled.
pub(crate) fn respond<F: ChunkFormat>(job: StreamJob, format: F) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = ProducerReader {
        producer: Some(Box::pin(produce(job, format, Emitter(tx)))),
        rx,
        pending: Bytes::new(),
        failure: None,
    };
    let content_type = HeaderValue::from_static("text/event-stream; charset=utf-8");
    (
        [(CONTENT_TYPE, content_type)],
        Body::from_stream(ReaderStream::new(reader)),
    )
        .into_response()
}

/// The generation: queue for a slot, wait `ttft`, emit a token every `itl`.
async fn produce<F: ChunkFormat>(job: StreamJob, format: F, out: Emitter) {
    let sim = Arc::clone(&job.sim);
    let Ok(slot) = sim.admit().await else {
        out.fail();
        return;
    };
    sim.metrics.add_prompt_tokens(job.prompt_tokens);
    pause(sim.cfg.ttft).await;
    sim.metrics.observe_ttft(job.arrived.elapsed());

    let mut emitted = vec![0u32; job.choices.len()];
    for choice in &job.choices {
        if let Some(entry) = format.opening(choice.index) {
            out.send(&job.chunk(vec![entry], job.running_usage(0)));
        }
    }
    if job.abort_after == Some(0) {
        out.fail();
        return;
    }
    let steps = job.choices.iter().map(|c| c.words.len()).max().unwrap_or(0);
    for step in 0..steps {
        if step > 0 {
            pause(sim.cfg.itl).await;
        }
        for (choice, emitted) in job.choices.iter().zip(emitted.iter_mut()) {
            let Some(word) = choice.words.get(step) else { continue };
            *emitted += 1;
            let last = step + 1 == choice.words.len();
            let finish = (F::FINISH_WITH_LAST_TOKEN && last).then_some(choice.finish);
            let entry = format.entry(choice.index, Some(word), finish);
            out.send(&job.chunk(vec![entry], job.running_usage(*emitted)));
            sim.metrics.add_generation_tokens(1);
        }
        if job
            .abort_after
            .is_some_and(|n| usize::try_from(n).is_ok_and(|n| n == step + 1))
        {
            out.fail();
            return;
        }
    }
    if job.abort_after.is_some() {
        // Asked to break after more tokens than there are: break before the end.
        out.fail();
        return;
    }
    for (choice, &emitted) in job.choices.iter().zip(&emitted) {
        if !F::FINISH_WITH_LAST_TOKEN || choice.words.is_empty() {
            let entry = format.entry(choice.index, None, Some(choice.finish));
            out.send(&job.chunk(vec![entry], job.running_usage(emitted)));
        }
    }
    // Metrics are final before the client can see the end of the stream.
    slot.finish(job.choices.first().map_or(Finish::Stop, |c| c.finish));
    if job.include_usage {
        let completion_tokens = emitted.iter().copied().fold(0, u32::saturating_add);
        let usage = Usage {
            prompt_tokens: job.prompt_tokens,
            completion_tokens,
        };
        out.send(&job.chunk(Vec::new(), Some(usage)));
    }
    out.done();
}

/// Writes SSE events into the body.
struct Emitter(mpsc::UnboundedSender<io::Result<Bytes>>);

impl Emitter {
    fn push(&self, item: io::Result<Bytes>) {
        // The receiver lives in the same body as this future: it cannot be gone.
        let _ = self.0.send(item);
    }

    fn send(&self, chunk: &Value) {
        self.push(Ok(Bytes::from(format!("data: {chunk}\n\n"))));
    }

    fn done(&self) {
        self.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    }

    /// Ends the body with an error: the server then breaks the connection
    /// instead of ending the chunked body cleanly.
    fn fail(&self) {
        self.push(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "simulated node failure",
        )));
    }
}

type Producer = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An `AsyncRead` over the events of a producer future that it drives itself.
struct ProducerReader {
    producer: Option<Producer>,
    rx: mpsc::UnboundedReceiver<io::Result<Bytes>>,
    pending: Bytes,
    /// The error ending the body, held back for one poll (see `poll_read`).
    failure: Option<io::Error>,
}

impl AsyncRead for ProducerReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut polled = false;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = this.failure.take() {
                return Poll::Ready(Err(e));
            }
            match this.rx.try_recv() {
                Ok(Ok(bytes)) => {
                    this.pending = bytes;
                    continue;
                }
                Ok(Err(e)) => {
                    // Answer `Pending` once before the error: the server flushes
                    // its buffer when the body is pending, but drops it when the
                    // body fails, and a dying node's last tokens do reach the
                    // client.
                    this.producer = None;
                    this.failure = Some(e);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                // The producer finished and everything it wrote was read.
                Err(TryRecvError::Disconnected) => return Poll::Ready(Ok(())),
                Err(TryRecvError::Empty) if polled => return Poll::Pending,
                Err(TryRecvError::Empty) => {}
            }
            let Some(producer) = this.producer.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if producer.as_mut().poll(cx).is_ready() {
                // Dropping it drops the sender: the queue ends after its last item.
                this.producer = None;
            }
            polled = true;
        }
    }
}
