//! The usage journal: every completed request's usage record is appended
//! to a local file *before* the response's last byte goes to the client,
//! so the process can die at any instant afterwards — SIGKILL, OOM, a
//! panic — and the record is still on disk (the kernel has it) to be
//! replayed at the next start. The in-memory batching that keeps the hot
//! path fast is unchanged: the journal only adds one `write(2)` of one
//! JSON line per request, under a mutex (no thread hop, no await).
//!
//! Segments: `usage-<ts>-<id>.open` is being appended to (its writer holds
//! an exclusive file lock); at 10,000 records or 1 s of age it is closed
//! (`.closed`). The writer reports which records reached PostgreSQL: a
//! closed segment whose records are all in the database is deleted; one
//! with a failed batch becomes a spool file (`.jsonl`) that the replay
//! re-inserts (duplicates are skipped by `request_id`). At start, a
//! `.open` segment nobody holds a lock on and every `.closed` one belong to
//! a process that died: they become spool files and are replayed.
//!
//! Why our own: a write-ahead file of JSON lines with this exact
//! lifecycle is ~150 lines; the embeddable WAL crates bring their own
//! formats and fsync policies that the replay would then have to speak.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::UsageRecord;

/// Records per segment before it is closed.
const SEGMENT_RECORDS: u64 = 10_000;
/// Age at which a segment with records is closed.
const SEGMENT_AGE: Duration = Duration::from_secs(1);

/// Where a journaled record is: its segment.
pub type SegmentId = u64;

struct Open {
    id: SegmentId,
    file: File,
    path: PathBuf,
    opened: Instant,
}

struct Info {
    /// Where it is now (`.open`, then `.closed`).
    path: PathBuf,
    appended: u64,
    inserted: u64,
    failed: bool,
    closed: bool,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    next: SegmentId,
    segments: HashMap<SegmentId, Info>,
    /// Written segments to delete once the lock is released: unlinking a
    /// segment of a busy second (megabytes of page cache to free) takes
    /// about a millisecond, which appends must not wait for.
    doomed: Vec<PathBuf>,
}

/// The journal of one gateway process.
pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

impl Journal {
    /// A journal in `dir`; turns segments left by a dead process into spool
    /// files first.
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("closed") => std::fs::rename(&path, with_ext(&path, "jsonl"))?,
                Some("open") => {
                    // Locked: a live process (another gateway on this dir).
                    let f = File::open(&path)?;
                    match f.try_lock() {
                        Ok(()) => std::fs::rename(&path, with_ext(&path, "jsonl"))?,
                        Err(std::fs::TryLockError::WouldBlock) => {}
                        Err(std::fs::TryLockError::Error(e)) => tracing::warn!(
                            error = %e, file = %path.display(),
                            "cannot tell whether a usage journal segment is in use; left as it is"
                        ),
                    }
                }
                _ => {}
            }
        }
        Ok(Journal {
            dir: dir.to_owned(),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one record (one `write(2)`); returns its segment.
    pub fn append(&self, record: &UsageRecord) -> std::io::Result<SegmentId> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut st = self.lock();
        let appended = self.append_locked(&mut st, &line);
        Self::release(st, false);
        appended
    }

    /// Releases the lock, then deletes the segments settled meanwhile — on
    /// a blocking thread when called from the runtime, unless `now`.
    fn release(mut st: std::sync::MutexGuard<'_, State>, now: bool) {
        let doomed = std::mem::take(&mut st.doomed);
        drop(st);
        if doomed.is_empty() {
            return;
        }
        let remove = move || {
            for path in doomed {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::error!(error = %e, file = %path.display(), "cannot delete a written journal segment");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !now => drop(rt.spawn_blocking(remove)),
            _ => remove(),
        }
    }

    fn append_locked(&self, st: &mut State, line: &[u8]) -> std::io::Result<SegmentId> {
        let rotate = match st.open.as_ref() {
            Some(o) => {
                st.segments.get(&o.id).is_none_or(|i| i.appended >= SEGMENT_RECORDS)
                    || o.opened.elapsed() >= SEGMENT_AGE
            }
            None => true,
        };
        if rotate {
            self.close_open(st);
            let id = st.next;
            st.next += 1;
            let path = self.dir.join(format!(
                "usage-{}-{}-{id}.open",
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
                std::process::id()
            ));
            let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
            if let Err(e) = file.try_lock() {
                let _ = std::fs::remove_file(&path);
                return Err(std::io::Error::other(e));
            }
            st.segments.insert(
                id,
                Info {
                    path: path.clone(),
                    appended: 0,
                    inserted: 0,
                    failed: false,
                    closed: false,
                },
            );
            st.open = Some(Open {
                id,
                file,
                path,
                opened: Instant::now(),
            });
        }
        let Some(open) = st.open.as_mut() else {
            return Err(std::io::Error::other("no open journal segment"));
        };
        let id = open.id;
        if let Err(e) = open.file.write_all(line) {
            // A partial line may be on disk: never append after it. The
            // segment goes to the replay as it is (an unreadable last line
            // is skipped there; this record is queued without the journal).
            if let Some(info) = st.segments.get_mut(&id) {
                info.failed = true;
            }
            self.close_open(st);
            return Err(e);
        }
        if let Some(info) = st.segments.get_mut(&id) {
            info.appended += 1;
        }
        Ok(id)
    }

    /// Closes the open segment (and settles it if it is done).
    fn close_open(&self, st: &mut State) {
        let Some(open) = st.open.take() else { return };
        let closed = with_ext(&open.path, "closed");
        drop(open.file);
        if let Err(e) = std::fs::rename(&open.path, &closed) {
            tracing::error!(error = %e, file = %open.path.display(), "cannot close a usage journal segment");
        }
        if let Some(info) = st.segments.get_mut(&open.id) {
            info.closed = true;
            info.path = closed;
        }
        Self::settle(st, open.id);
    }

    /// A closed segment whose records are all in PostgreSQL is deleted; one
    /// with a failed batch becomes a spool file for the replay.
    fn settle(st: &mut State, id: SegmentId) {
        let Some(info) = st.segments.get(&id) else { return };
        if !info.closed {
            return;
        }
        let closed = info.path.clone();
        let closed = closed.as_path();
        if info.failed {
            if let Err(e) = std::fs::rename(closed, with_ext(closed, "jsonl")) {
                tracing::error!(error = %e, file = %closed.display(), "cannot hand a journal segment to the replay");
            }
            st.segments.remove(&id);
        } else if info.inserted >= info.appended {
            st.doomed.push(closed.to_path_buf());
            st.segments.remove(&id);
        }
    }

    /// Records of these segments reached PostgreSQL (one entry per record).
    pub fn inserted(&self, segments: &[SegmentId]) {
        self.report(segments, false);
    }

    /// Records of these segments could not be written (one entry per record).
    pub fn failed(&self, segments: &[SegmentId]) {
        self.report(segments, true);
    }

    fn report(&self, segments: &[SegmentId], failed: bool) {
        if segments.is_empty() {
            return;
        }
        let mut st = self.lock();
        let mut touched: Vec<SegmentId> = Vec::new();
        for id in segments {
            if let Some(info) = st.segments.get_mut(id) {
                if failed {
                    info.failed = true;
                } else {
                    info.inserted += 1;
                }
                if info.closed && !touched.contains(id) {
                    touched.push(*id);
                }
            }
        }
        for id in touched {
            Self::settle(&mut st, id);
        }
        Self::release(st, false);
    }

    /// Closes the open segment once it is old enough (called on the
    /// writer's tick, so idle segments are settled).
    pub fn rotate_idle(&self) {
        let mut st = self.lock();
        if st.open.as_ref().is_some_and(|o| o.opened.elapsed() >= SEGMENT_AGE) {
            self.close_open(&mut st);
        }
        Self::release(st, false);
    }

    /// Closes the open segment (at shutdown, after the writer drained).
    pub fn close(&self) {
        let mut st = self.lock();
        self.close_open(&mut st);
        Self::release(st, true);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crosslogic_core::UsageStatus;

    fn record(n: u32) -> UsageRecord {
        UsageRecord {
            request_id: format!("req_{n}"),
            timestamp: chrono::Utc::now(),
            tenant_id: uuid::Uuid::nil(),
            environment_id: None,
            api_key_id: None,
            region_id: None,
            model_id: None,
            model_name: "m".into(),
            node_id: None,
            prompt_tokens: 1,
            completion_tokens: 1,
            cached_tokens: 0,
            latency_ms: 1,
            cost_microdollars: 0,
            cost_exact: crosslogic_core::Femtos(1),
            status: UsageStatus::Completed,
            metadata: serde_json::json!({}),
        }
    }

    fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect()
    }

    #[test]
    fn a_segment_goes_once_its_records_are_written_and_is_replayed_if_a_batch_failed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let a = j.append(&record(1)).unwrap();
        let b = j.append(&record(2)).unwrap();
        assert_eq!(a, b);
        assert_eq!(files(dir.path(), "open").len(), 1);
        let text = std::fs::read_to_string(&files(dir.path(), "open")[0]).unwrap();
        assert_eq!(text.lines().count(), 2, "on disk before anything else happens");
        j.inserted(&[a, b]);
        j.close();
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "written and closed: deleted"
        );

        let c = j.append(&record(3)).unwrap();
        let d = j.append(&record(4)).unwrap();
        j.inserted(&[c]);
        j.failed(&[d]);
        j.close();
        let spooled = files(dir.path(), "jsonl");
        assert_eq!(spooled.len(), 1, "a failed batch hands the segment to the replay");
        assert_eq!(std::fs::read_to_string(&spooled[0]).unwrap().lines().count(), 2);
    }

    #[test]
    fn segments_of_a_dead_process_are_replayed_and_a_live_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let live = Journal::open(dir.path()).unwrap();
        live.append(&record(1)).unwrap();
        // A crashed process's leftovers: an unlocked open segment, a closed one.
        std::fs::write(dir.path().join("usage-1-999-0.open"), b"{}\n").unwrap();
        std::fs::write(dir.path().join("usage-2-999-1.closed"), b"{}\n").unwrap();
        let _second = Journal::open(dir.path()).unwrap();
        assert_eq!(files(dir.path(), "jsonl").len(), 2);
        assert_eq!(
            files(dir.path(), "open").len(),
            1,
            "the live journal's segment is locked and kept"
        );
    }
}
