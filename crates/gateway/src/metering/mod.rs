//! Usage metering off the request path, and nothing lost.
//!
//! When a request completes — before the last byte of its response goes to
//! the client — its [`UsageRecord`] is appended to the local [`journal`]
//! (one `write(2)`; the process may die at any instant afterwards and the
//! record is replayed at the next start) and queued in memory
//! ([`Metering::record`], never blocks). [`run_writer`] inserts the queue in
//! batches (one multi-row statement per batch, duplicates ignored by
//! `request_id`), updates the keys' `last_used_at` in the same round, and
//! tells the journal which records are in PostgreSQL so it can delete its
//! segments. When PostgreSQL is unreachable, the batch's journal segments
//! (or, without a journal, a new [`spool`] file) wait on disk and are
//! replayed later. On shutdown the writer drains its queue before
//! returning.

pub mod journal;
mod spool;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crosslogic_db::repo::{api_keys, usage};
use crosslogic_db::PgPool;
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

/// Writes one batch and the keys' `last_used_at`.
async fn write(pool: &PgPool, batch: &[UsageRecord]) -> Result<u64, crosslogic_db::DbError> {
    let mut last_used: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
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
    if !last_used.is_empty() {
        let (ids, at): (Vec<Uuid>, Vec<DateTime<Utc>>) = last_used.into_iter().unzip();
        api_keys::touch_last_used(pool, &ids, &at).await?;
    }
    Ok(inserted)
}

async fn flush(pool: &PgPool, w: &MeteringWriter, batch: &mut Vec<Queued>) {
    if batch.is_empty() {
        return;
    }
    let records: Vec<UsageRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
    let segments: Vec<SegmentId> = batch.iter().filter_map(|(_, s)| *s).collect();
    match write(pool, &records).await {
        Ok(n) => {
            crate::telemetry::usage_records("written", records.len() as u64);
            tracing::debug!(records = records.len(), inserted = n, "usage batch written");
            if let Some(j) = &w.journal {
                j.inserted(&segments);
            }
        }
        Err(e) => {
            if let Some(j) = &w.journal {
                j.failed(&segments);
            }
            // Records that never reached the journal go to a spool file.
            let loose: Vec<UsageRecord> = batch
                .iter()
                .filter(|(_, s)| s.is_none())
                .map(|(r, _)| r.clone())
                .collect();
            crate::telemetry::usage_records("spooled", records.len() as u64);
            tracing::warn!(error = %e, records = records.len(), "database unavailable; usage kept on disk for replay");
            if !loose.is_empty() {
                if let Err(io) = spool::spool(&w.spool_dir, &loose) {
                    tracing::error!(error = %e, spool_error = %io, records = loose.len(), "usage LOST: neither written nor spooled");
                }
            }
        }
    }
    batch.clear();
}

/// Batches queued records into the database until `shutdown`, then drains.
pub async fn run_writer(mut w: MeteringWriter, pool: PgPool, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut replay = tokio::time::interval(Duration::from_secs(5));
    replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rotate = tokio::time::interval(Duration::from_millis(250));
    rotate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = w.rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break; // every sender is gone
                }
                flush(&pool, &w, &mut batch).await;
            }
            _ = replay.tick() => {
                replay_spool(&pool, &w.spool_dir).await;
            }
            _ = rotate.tick() => {
                if let Some(j) = &w.journal {
                    j.rotate_idle();
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    // Drain what is queued: requests finished before shutdown reached here.
    w.rx.close();
    while w.rx.recv_many(&mut batch, BATCH).await > 0 {
        flush(&pool, &w, &mut batch).await;
    }
    if let Some(j) = &w.journal {
        j.close();
    }
    replay_spool(&pool, &w.spool_dir).await;
}
