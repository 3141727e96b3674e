//! Usage metering off the request path.
//!
//! Handlers hand a [`UsageRecord`] to [`Metering::record`] (never blocks);
//! [`run_writer`] inserts them in batches (one multi-row statement per batch,
//! duplicates ignored by `request_id`) and updates the keys' `last_used_at`
//! in the same round. When PostgreSQL is unreachable a batch is appended to
//! a spool file (JSON lines, fsynced) and replayed later; replays cannot
//! duplicate rows because inserts skip known request ids. On shutdown the
//! writer drains its queue before returning.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crosslogic_db::repo::{api_keys, usage};
use crosslogic_db::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use crosslogic_db::repo::usage::UsageRecord;

/// Largest batch written in one statement.
const BATCH: usize = 1_000;
/// Records queued in memory before new ones go straight to the spool.
const QUEUE: usize = 100_000;

/// The handle handlers use to record usage.
#[derive(Clone)]
pub struct Metering {
    tx: mpsc::Sender<UsageRecord>,
    spool_dir: PathBuf,
}

/// The writer's end, passed to [`run_writer`].
pub struct MeteringWriter {
    rx: mpsc::Receiver<UsageRecord>,
    spool_dir: PathBuf,
}

/// A metering handle and its writer; spool files go to `spool_dir`.
pub fn channel(spool_dir: PathBuf) -> (Metering, MeteringWriter) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (
        Metering {
            tx,
            spool_dir: spool_dir.clone(),
        },
        MeteringWriter { rx, spool_dir },
    )
}

impl Metering {
    /// Queues a record; if the queue is full or closed, spools it to disk.
    pub fn record(&self, record: UsageRecord) {
        if let Err(e) = self.tx.try_send(record) {
            let record = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            if let Err(err) = spool(&self.spool_dir, std::slice::from_ref(&record)) {
                tracing::error!(error = %err, request_id = %record.request_id, "usage record could not be queued or spooled");
            }
        }
    }
}

/// Appends records to a new spool file and fsyncs it.
fn spool(dir: &Path, records: &[UsageRecord]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = format!(
        "usage-{}-{}.jsonl",
        Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        Uuid::new_v4().simple()
    );
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for r in records {
        serde_json::to_writer(&mut f, r)?;
        f.write_all(b"\n")?;
    }
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    // Rename after fsync: a replayer never sees a half-written file.
    let path = dir.join(name);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn spooled_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

fn read_spool(path: &Path) -> std::io::Result<Vec<UsageRecord>> {
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    for line in f.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "skipping an unreadable spooled usage record")
            }
        }
    }
    Ok(out)
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

async fn flush(pool: &PgPool, spool_dir: &Path, batch: &mut Vec<UsageRecord>) {
    if batch.is_empty() {
        return;
    }
    match write(pool, batch).await {
        Ok(n) => {
            crate::telemetry::usage_records("written", batch.len() as u64);
            tracing::debug!(records = batch.len(), inserted = n, "usage batch written")
        }
        Err(e) => match spool(spool_dir, batch) {
            Ok(path) => {
                crate::telemetry::usage_records("spooled", batch.len() as u64);
                tracing::warn!(error = %e, records = batch.len(), file = %path.display(), "database unavailable; usage spooled")
            }
            Err(io) => {
                tracing::error!(error = %e, spool_error = %io, records = batch.len(), "usage LOST: neither written nor spooled")
            }
        },
    }
    batch.clear();
}

/// Replays spool files; each is deleted once its records are in the database.
pub async fn replay_spool(pool: &PgPool, spool_dir: &Path) -> usize {
    let mut replayed = 0;
    for path in spooled_files(spool_dir) {
        let records = match read_spool(&path) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "cannot read spool file");
                continue;
            }
        };
        match write(pool, &records).await {
            Ok(_) => {
                replayed += records.len();
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::error!(error = %e, file = %path.display(), "cannot delete replayed spool file");
                }
            }
            // Still unreachable: keep the file and try again later.
            Err(_) => break,
        }
    }
    if replayed > 0 {
        tracing::info!(records = replayed, "replayed spooled usage");
    }
    replayed
}

/// Batches queued records into the database until `shutdown`, then drains.
pub async fn run_writer(mut w: MeteringWriter, pool: PgPool, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut replay = tokio::time::interval(Duration::from_secs(5));
    replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = w.rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break; // every sender is gone
                }
                flush(&pool, &w.spool_dir, &mut batch).await;
            }
            _ = replay.tick() => {
                replay_spool(&pool, &w.spool_dir).await;
            }
            () = shutdown.cancelled() => break,
        }
    }
    // Drain what is queued: requests finished before shutdown reached here.
    w.rx.close();
    while w.rx.recv_many(&mut batch, BATCH).await > 0 {
        flush(&pool, &w.spool_dir, &mut batch).await;
    }
    replay_spool(&pool, &w.spool_dir).await;
}
