//! Usage metering off the request path, and nothing lost.
//!
//! When a request completes — before the last byte of its response goes to
//! the client — its [`UsageRecord`] is appended to the local [`journal`]
//! (one `write(2)`; the process may die at any instant afterwards and the
//! record is replayed at the next start) and queued in memory
//! ([`Metering::record`], never blocks). [`run_writer`] inserts the queue in
//! batches (one `COPY` per batch, two batches in flight, duplicates ignored
//! by `request_id`: see `crosslogic_db::repo::usage::insert_batch`),
//! updates the keys' `last_used_at` in the same round, and
//! tells the journal which records are in PostgreSQL so it can delete its
//! segments. When PostgreSQL is unreachable, the batch's journal segments
//! (or, without a journal, a new [`spool`] file) wait on disk and are
//! replayed later. On shutdown the writer drains its queue before
//! returning.

pub mod journal;
mod spool;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crosslogic_db::repo::{api_keys, usage};
use crosslogic_db::PgPool;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use crosslogic_db::repo::usage::UsageRecord;
pub use journal::Journal;
pub use spool::replay_spool;

use journal::SegmentId;

/// Largest batch written in one statement.
const BATCH: usize = 1_000;
/// Records queued in memory before new ones go straight to the spool.
const QUEUE: usize = 100_000;

type Queued = (UsageRecord, Option<SegmentId>);

/// The handle handlers use to record usage.
#[derive(Clone)]
pub struct Metering {
    tx: mpsc::Sender<Queued>,
    spool_dir: PathBuf,
    journal: Option<Arc<Journal>>,
}

/// The writer's end, passed to [`run_writer`].
pub struct MeteringWriter {
    rx: mpsc::Receiver<Queued>,
    spool_dir: PathBuf,
    journal: Option<Arc<Journal>>,
}

/// A metering handle and its writer; spool files (and the journal, when
/// `journal` is set) go to `spool_dir`.
pub fn channel(spool_dir: PathBuf, journal: bool) -> std::io::Result<(Metering, MeteringWriter)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let journal = if journal {
        Some(Arc::new(Journal::open(&spool_dir)?))
    } else {
        None
    };
    Ok((
        Metering {
            tx,
            spool_dir: spool_dir.clone(),
            journal: journal.clone(),
        },
        MeteringWriter { rx, spool_dir, journal },
    ))
}

impl Metering {
    /// Journals a record, then queues it; if the queue is full or closed,
    /// the record waits on disk for the replay.
    pub fn record(&self, record: UsageRecord) {
        let segment = self.journal.as_ref().and_then(|j| match j.append(&record) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, request_id = %record.request_id, "usage journal append failed");
                None
            }
        });
        if let Err(e) = self.tx.try_send((record, segment)) {
            let (record, segment) = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            match (segment, &self.journal) {
                // Already on disk: the replay picks it up.
                (Some(s), Some(j)) => j.failed(&[s]),
                _ => {
                    if let Err(err) = spool::spool(&self.spool_dir, std::slice::from_ref(&record)) {
                        tracing::error!(error = %err, request_id = %record.request_id, "usage record could not be queued or spooled");
                    }
                }
            }
        }
    }
}

/// Writes one batch, then the keys' `last_used_at` (advisory: its failure
/// is logged, not the batch's — the rows are in).
async fn write(pool: &PgPool, batch: &[UsageRecord]) -> Result<u64, crosslogic_db::DbError> {
    // Ordered by key id: writers running at once lock the keys' rows in
    // the same order, so they cannot deadlock on them.
    let mut last_used: BTreeMap<Uuid, DateTime<Utc>> = BTreeMap::new();
    for r in batch {
        if let Some(k) = r.api_key_id {
            let e = last_used.entry(k).or_insert(r.timestamp);
            *e = (*e).max(r.timestamp);
        }
    }
    let mut inserted = 0;
    for chunk in batch.chunks(BATCH) {
        inserted += usage::insert_batch(pool, chunk).await?;
    }
    crate::telemetry::usage_rows_inserted(inserted);
    if !last_used.is_empty() {
        let (ids, at): (Vec<Uuid>, Vec<DateTime<Utc>>) = last_used.into_iter().unzip();
        if let Err(e) = api_keys::touch_last_used(pool, &ids, &at).await {
            tracing::warn!(error = %e, keys = ids.len(), "could not update the keys' last_used_at");
        }
    }
    Ok(inserted)
}

/// What the writer needs to write a batch or replay the spool.
struct Sink {
    pool: PgPool,
    spool_dir: PathBuf,
    journal: Option<Arc<Journal>>,
}

/// Writes a batch; on failure its records stay on disk (journal segments
/// marked for replay, or a new spool file). Returns whether it was written.
async fn flush(sink: &Sink, batch: Vec<Queued>) -> bool {
    let (records, segments): (Vec<UsageRecord>, Vec<Option<SegmentId>>) = batch.into_iter().unzip();
    let journaled: Vec<SegmentId> = segments.iter().filter_map(|s| *s).collect();
    match write(&sink.pool, &records).await {
        Ok(n) => {
            crate::telemetry::usage_records("written", records.len() as u64);
            tracing::debug!(records = records.len(), inserted = n, "usage batch written");
            if let Some(j) = &sink.journal {
                j.inserted(&journaled);
            }
            true
        }
        Err(e) => {
            if let Some(j) = &sink.journal {
                j.failed(&journaled);
            }
            // Records that never reached the journal go to a spool file.
            let loose: Vec<UsageRecord> = records
                .iter()
                .zip(&segments)
                .filter(|(_, s)| s.is_none())
                .map(|(r, _)| r.clone())
                .collect();
            crate::telemetry::usage_records("spooled", records.len() as u64);
            tracing::warn!(error = %e, records = records.len(), "database unavailable; usage kept on disk for replay");
            if !loose.is_empty() {
                if let Err(io) = spool::spool(&sink.spool_dir, &loose) {
                    tracing::error!(error = %e, spool_error = %io, records = loose.len(), "usage LOST: neither written nor spooled");
                }
            }
            false
        }
    }
}

/// Batches written at once, each on its own connection: PostgreSQL works
/// on a batch in one backend (parsing, index entries, reference checks),
/// so two batches in flight use two cores where one would use one.
const IN_FLIGHT: usize = 2;

/// Longest a record waits for others to share its batch: at a few hundred
/// requests per second a batch per record would cost PostgreSQL a
/// transaction each (its CPU, on the gateway's cores); 100 ms makes them
/// batches of tens to hundreds. The journal has every record meanwhile.
const LINGER: Duration = Duration::from_millis(100);

/// What finished in the writer's set of work.
enum Done {
    Flushed(bool),
    /// Records replayed by a pass over the spool.
    Replayed(usize),
}

/// Batches queued records into the database until `shutdown`, then drains.
///
/// A batch is written when it is full ([`BATCH`]) or its oldest record
/// has waited [`LINGER`]; up to [`IN_FLIGHT`] at once. Spool files (batches
/// that failed, journals of a process that died) are replayed at start,
/// every 5 s, as soon as a write succeeds after one failed (PostgreSQL is
/// back), and again right after a pass that replayed something — one pass
/// at a time, beside the live batches.
pub async fn run_writer(w: MeteringWriter, pool: PgPool, shutdown: CancellationToken) {
    let MeteringWriter {
        mut rx,
        spool_dir,
        journal,
    } = w;
    let sink = Sink {
        pool,
        spool_dir,
        journal,
    };
    let sink = &sink;
    let mut work = FuturesUnordered::new();
    let mut flushing = 0;
    let mut replaying = true;
    work.push(replay_spool(&sink.pool, &sink.spool_dir).map(Done::Replayed).boxed());
    // Set when a write failed: the next success replays what it left.
    let mut failed = false;
    let mut replay = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    );
    replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rotate = tokio::time::interval(Duration::from_millis(250));
    rotate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closed = false;
    // Records received and not yet handed to a flush, and when they must be.
    let mut pending: Vec<Queued> = Vec::new();
    let mut incoming: Vec<Queued> = Vec::new();
    let mut due = tokio::time::Instant::now();
    loop {
        let can_flush = flushing < IN_FLIGHT && !pending.is_empty();
        if can_flush && (pending.len() >= BATCH || due <= tokio::time::Instant::now()) {
            flushing += 1;
            work.push(flush(sink, std::mem::take(&mut pending)).map(Done::Flushed).boxed());
            continue;
        }
        let mut start_replay = false;
        let room = BATCH.saturating_sub(pending.len());
        tokio::select! {
            n = rx.recv_many(&mut incoming, room), if room > 0 && !closed => {
                if n == 0 {
                    closed = true; // every sender is gone
                } else {
                    if pending.is_empty() {
                        due = tokio::time::Instant::now() + LINGER;
                    }
                    pending.append(&mut incoming);
                }
            }
            () = tokio::time::sleep_until(due), if can_flush => {}
            Some(done) = work.next() => match done {
                Done::Flushed(true) => {
                    flushing -= 1;
                    // Kept while a pass runs: it may have listed the files
                    // before the failed batch's became one.
                    if failed && !replaying {
                        failed = false;
                        start_replay = true;
                    }
                }
                Done::Flushed(false) => {
                    flushing -= 1;
                    failed = true;
                }
                Done::Replayed(n) => {
                    replaying = false;
                    // More files may have been closed meanwhile (a backlog
                    // after an outage): go on until a pass finds none.
                    start_replay = n > 0;
                }
            },
            _ = replay.tick() => start_replay = true,
            _ = rotate.tick() => {
                if let Some(j) = &sink.journal {
                    j.rotate_idle();
                }
            }
            () = shutdown.cancelled(), if !closed => closed = true,
        }
        if start_replay && !replaying {
            replaying = true;
            work.push(replay_spool(&sink.pool, &sink.spool_dir).map(Done::Replayed).boxed());
        }
        if closed {
            break;
        }
    }
    // Write what is queued — requests finished before shutdown reached
    // here — beside what is in flight (a replay pass may be long), then
    // wait for all of it.
    rx.close();
    if !pending.is_empty() {
        work.push(flush(sink, pending).map(Done::Flushed).boxed());
    }
    loop {
        let mut batch = Vec::new();
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            break;
        }
        work.push(flush(sink, batch).map(Done::Flushed).boxed());
    }
    while work.next().await.is_some() {}
    if let Some(j) = &sink.journal {
        j.close();
    }
    replay_spool(&sink.pool, &sink.spool_dir).await;
}
