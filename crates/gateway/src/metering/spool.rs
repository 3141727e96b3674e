//! Spool files: usage records on disk, as JSON lines, waiting for
//! PostgreSQL (written when a batch could not be inserted, or handed over
//! by the journal), replayed in name order and deleted once inserted.
//! Replays cannot duplicate rows: inserts skip known request ids.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use crosslogic_db::PgPool;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use uuid::Uuid;

use super::UsageRecord;

/// Appends records to a new spool file and fsyncs it.
pub(super) fn spool(dir: &Path, records: &[UsageRecord]) -> std::io::Result<PathBuf> {
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

/// Every record of a spool file; a torn last line (a process killed in the
/// middle of a journal append, before its response was sent) is skipped.
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

enum Replayed {
    /// Its records are in the database (this many) and the file is gone.
    Done(usize),
    /// Unreadable, or refused by the database and set aside.
    Skipped,
    /// The database is unreachable or failing: try again later.
    Later,
}

async fn replay_file(pool: &PgPool, path: PathBuf) -> Replayed {
    let records = match read_spool(&path) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot read spool file");
            return Replayed::Skipped;
        }
    };
    match super::write(pool, &records).await {
        Ok(_) => {
            if let Err(e) = std::fs::remove_file(&path) {
                // Not counted as replayed: the writer would otherwise start
                // pass after pass over the same file.
                tracing::error!(error = %e, file = %path.display(), "cannot delete replayed spool file");
                return Replayed::Skipped;
            }
            Replayed::Done(records.len())
        }
        // The database refused the file's data (a record it cannot
        // take): set it aside so it does not block every later file.
        Err(e) if e.is_refusal() => {
            let aside = path.with_extension("rejected");
            tracing::error!(error = %e, file = %path.display(), records = records.len(),
                            "spooled usage refused by the database; set aside as .rejected for the operator");
            if let Err(io) = std::fs::rename(&path, &aside) {
                tracing::error!(error = %io, file = %path.display(), "cannot set a refused spool file aside");
                return Replayed::Later;
            }
            Replayed::Skipped
        }
        // Unreachable or failing: keep the file and try again later.
        Err(_) => Replayed::Later,
    }
}

/// Replays spool files, oldest first, [`super::IN_FLIGHT`] at a time; each
/// is deleted once its records are in the database. Stops starting files
/// at the first one the database cannot take now (it stays for the next
/// replay); files already being written are finished, never dropped
/// half-way (a COPY cancelled mid-flight would leave its connection out of
/// step). Returns how many records of deleted files were replayed.
pub async fn replay_spool(pool: &PgPool, spool_dir: &Path) -> usize {
    let mut replayed = 0;
    let mut files = spooled_files(spool_dir).into_iter();
    let mut running = FuturesUnordered::new();
    let mut stop = false;
    loop {
        while !stop && running.len() < super::IN_FLIGHT {
            match files.next() {
                Some(path) => running.push(replay_file(pool, path)),
                None => break,
            }
        }
        match running.next().await {
            Some(Replayed::Done(n)) => replayed += n,
            Some(Replayed::Skipped) => {}
            Some(Replayed::Later) => stop = true,
            None => break,
        }
    }
    if replayed > 0 {
        tracing::info!(records = replayed, "replayed spooled usage");
    }
    replayed
}
