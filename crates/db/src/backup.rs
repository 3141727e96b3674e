//! `crosslogic db backup` / `restore`: `pg_dump` and `psql` underneath, with
//! `.gz` compression handled in-process. The password is passed through the
//! environment (`PGPASSWORD`), never on the command line.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crosslogic_config::ExternalDatabase;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use secrecy::ExposeSecret;

use crate::embedded::find_client_tool;

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The tool is not installed.
    #[error("{0}")]
    ToolMissing(String),
    /// The tool ran and failed.
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        /// pg_dump or psql.
        tool: &'static str,
        /// Exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// File error.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// libpq environment for a target; the password travels only here.
fn libpq_command(tool: &Path, db: &ExternalDatabase) -> Command {
    let mut cmd = Command::new(tool);
    cmd.env("PGHOST", &db.host)
        .env("PGPORT", db.port.to_string())
        .env("PGUSER", &db.user)
        .env("PGDATABASE", &db.dbname)
        .env("PGSSLMODE", db.ssl_mode.as_str())
        .env("PGAPPNAME", "crosslogic");
    match &db.password {
        Some(pw) => cmd.env("PGPASSWORD", pw.expose_secret()),
        None => cmd.env_remove("PGPASSWORD"),
    };
    if let Some(ca) = &db.ssl_root_cert {
        cmd.env("PGSSLROOTCERT", ca);
    }
    cmd
}

/// Dumps `db` to `file` (plain SQL with `DROP … IF EXISTS` first, so a
/// restore replaces what is there; gzip when the name ends in `.gz`). Writes
/// to `file.partial` and renames on success. Returns the bytes written.
pub async fn backup(db: &ExternalDatabase, tools_dir: Option<&Path>, file: &Path) -> Result<u64, BackupError> {
    let db = db.clone();
    let tools_dir = tools_dir.map(Path::to_path_buf);
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || backup_blocking(&db, tools_dir.as_deref(), &file))
        .await
        .map_err(|e| BackupError::Io {
            context: "backup task".into(),
            source: std::io::Error::other(e),
        })?
}

fn backup_blocking(db: &ExternalDatabase, tools_dir: Option<&Path>, file: &Path) -> Result<u64, BackupError> {
    let tool = find_client_tool("pg_dump", tools_dir).map_err(BackupError::ToolMissing)?;
    let partial = PathBuf::from(format!("{}.partial", file.display()));
    let out = File::create(&partial).map_err(io(format!("cannot create {}", partial.display())))?;
    let mut child = libpq_command(&tool, db)
        .args([
            "--format=plain",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("cannot run pg_dump"))?;
    let stderr = drain_stderr(child.stderr.take());
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| BackupError::ToolMissing("pg_dump has no stdout".into()))?;
    let copied = if is_gz(file) {
        let mut enc = GzEncoder::new(BufWriter::new(out), flate2::Compression::default());
        let n = std::io::copy(&mut stdout, &mut enc).map_err(io("writing backup"))?;
        enc.finish().and_then(|mut w| w.flush()).map_err(io("writing backup"))?;
        n
    } else {
        let mut w = BufWriter::new(out);
        let n = std::io::copy(&mut stdout, &mut w).map_err(io("writing backup"))?;
        w.flush().map_err(io("writing backup"))?;
        n
    };
    let status = child.wait().map_err(io("waiting for pg_dump"))?;
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Tool {
            tool: "pg_dump",
            status: status.to_string(),
            stderr,
        });
    }
    std::fs::rename(&partial, file).map_err(io(format!("cannot move backup to {}", file.display())))?;
    Ok(copied)
}

/// Replays a backup (plain or `.gz`) into `db` with `psql`, in one
/// transaction that stops at the first error.
pub async fn restore(db: &ExternalDatabase, tools_dir: Option<&Path>, file: &Path) -> Result<(), BackupError> {
    let db = db.clone();
    let tools_dir = tools_dir.map(Path::to_path_buf);
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || restore_blocking(&db, tools_dir.as_deref(), &file))
        .await
        .map_err(|e| BackupError::Io {
            context: "restore task".into(),
            source: std::io::Error::other(e),
        })?
}

fn restore_blocking(db: &ExternalDatabase, tools_dir: Option<&Path>, file: &Path) -> Result<(), BackupError> {
    let tool = find_client_tool("psql", tools_dir).map_err(BackupError::ToolMissing)?;
    let input = File::open(file).map_err(io(format!("cannot open {}", file.display())))?;
    let mut reader: Box<dyn Read> = if is_gz(file) {
        Box::new(GzDecoder::new(BufReader::new(input)))
    } else {
        Box::new(BufReader::new(input))
    };
    let mut child = libpq_command(&tool, db)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("cannot run psql"))?;
    let stderr = drain_stderr(child.stderr.take());
    if let Some(mut stdin) = child.stdin.take() {
        // A broken pipe means psql stopped early; its exit status says why.
        let copied = std::io::copy(&mut reader, &mut stdin);
        drop(stdin);
        if let Err(e) = copied {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                let _ = child.kill();
                return Err(BackupError::Io {
                    context: format!("reading {}", file.display()),
                    source: e,
                });
            }
        }
    }
    let status = child.wait().map_err(io("waiting for psql"))?;
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(BackupError::Tool {
            tool: "psql",
            status: status.to_string(),
            stderr,
        });
    }
    Ok(())
}

fn drain_stderr(stderr: Option<std::process::ChildStderr>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s.trim().to_owned()
    })
}
