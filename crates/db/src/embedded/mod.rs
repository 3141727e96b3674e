//! The embedded default: a private PostgreSQL cluster in the data directory.
//!
//! Layout of the data directory:
//!
//! ```text
//! <data_dir>/crosslogic.lock   held (flock) while a process uses the directory
//! <data_dir>/postgres/         the cluster (PGDATA), created by initdb
//! <data_dir>/run/              Unix socket directory (no TCP listener)
//! <data_dir>/postgres.log      server log
//! ```
//!
//! `start` takes the lock (a second process gets a clear error instead of
//! corrupting the cluster), runs `initdb` on first use, stops a server left
//! running by a crashed previous owner, starts `postgres`, waits until it
//! accepts connections and creates the `crosslogic` database. `stop` asks for
//! a fast shutdown (SIGINT) and waits.

mod binaries;
mod privileges;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crosslogic_config::{ExternalDatabase, SslMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use binaries::{find_client_tool, find_server_bin_dir, INSTALL_HINT};
use privileges::RunAs;

/// Superuser role created by initdb and used by the control plane.
pub const EMBEDDED_USER: &str = "crosslogic";
/// Database the control plane uses inside the embedded cluster.
pub const EMBEDDED_DB: &str = "crosslogic";
const PORT: u16 = 5432;
/// Longest Unix socket path (sun_path is 108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Why the embedded database could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// PostgreSQL is not installed or cannot run here; the message says what to do.
    #[error("{0}")]
    Setup(String),
    /// Another process holds the data directory.
    #[error(
        "the data directory {dir} is in use by another crosslogic process{pid}; stop it first, \
         or give this one its own directory with --data-dir / CROSSLOGIC_DATA_DIR"
    )]
    Locked {
        /// The data directory.
        dir: String,
        /// " (pid N)" when known.
        pid: String,
    },
    /// A PostgreSQL tool failed.
    #[error("{what} failed: {detail}")]
    Process {
        /// Which step.
        what: &'static str,
        /// Exit status and the end of its output or log.
        detail: String,
    },
    /// Filesystem error.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let context = context.into();
    move |source| EmbeddedError::Io { context, source }
}

/// A running private PostgreSQL server. Stop it with [`EmbeddedPostgres::stop`];
/// dropping it also asks the server to shut down.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    child: Option<Child>,
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    _lock: File,
}

impl EmbeddedPostgres {
    /// Starts (creating on first use) the cluster in `data_dir`.
    pub async fn start(data_dir: &Path, pg_bin: Option<&Path>) -> Result<EmbeddedPostgres, EmbeddedError> {
        let data_dir = data_dir.to_path_buf();
        let pg_bin = pg_bin.map(Path::to_path_buf);
        let pg = tokio::task::spawn_blocking(move || start_blocking(&data_dir, pg_bin.as_deref()))
            .await
            .map_err(|e| EmbeddedError::Setup(format!("embedded database start task failed: {e}")))??;
        pg.create_database().await?;
        Ok(pg)
    }

    /// How to connect: the Unix socket, as the cluster's superuser.
    pub fn connection(&self) -> ExternalDatabase {
        self.connection_to(EMBEDDED_DB)
    }

    /// Connection to another database of the same cluster.
    pub fn connection_to(&self, dbname: &str) -> ExternalDatabase {
        ExternalDatabase {
            host: self.socket_dir.display().to_string(),
            port: PORT,
            user: EMBEDDED_USER.to_owned(),
            password: None,
            dbname: dbname.to_owned(),
            ssl_mode: SslMode::Disable,
            ssl_root_cert: None,
            source: "embedded",
        }
    }

    /// The PostgreSQL bin directory in use (for pg_dump/psql of the same version).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Fast shutdown (SIGINT), waiting up to a minute, then immediate (SIGQUIT).
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        let child = self.child.take();
        tokio::task::spawn_blocking(move || child.map(shutdown_child).unwrap_or(Ok(())))
            .await
            .map_err(|e| EmbeddedError::Setup(format!("embedded database stop task failed: {e}")))?
    }

    async fn create_database(&self) -> Result<(), EmbeddedError> {
        let opts = crate::pool::connect_options(&self.connection_to("postgres"));
        let map = |e: sqlx::Error| EmbeddedError::Process {
            what: "creating the crosslogic database",
            detail: e.to_string(),
        };
        let mut conn = sqlx::ConnectOptions::connect(&opts).await.map_err(map)?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(EMBEDDED_DB)
            .fetch_one(&mut conn)
            .await
            .map_err(map)?;
        if !exists {
            // Identifiers cannot be bound; EMBEDDED_DB is a constant.
            sqlx::raw_sql("CREATE DATABASE crosslogic")
                .execute(&mut conn)
                .await
                .map_err(map)?;
        }
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            if let Err(e) = shutdown_child(child) {
                tracing::warn!(error = %e, "embedded PostgreSQL did not stop cleanly");
            }
        }
    }
}

fn start_blocking(data_dir: &Path, pg_bin: Option<&Path>) -> Result<EmbeddedPostgres, EmbeddedError> {
    let bin_dir = find_server_bin_dir(pg_bin).map_err(EmbeddedError::Setup)?;
    let run_as = RunAs::detect().map_err(EmbeddedError::Setup)?;
    std::fs::create_dir_all(data_dir).map_err(io(format!("cannot create data directory {}", data_dir.display())))?;
    let data_dir = std::fs::canonicalize(data_dir).map_err(io(format!("cannot resolve {}", data_dir.display())))?;
    let lock = take_lock(&data_dir)?;

    let pgdata = data_dir.join("postgres");
    let socket_dir = socket_dir_for(&data_dir);
    let log_path = data_dir.join("postgres.log");
    if run_as.user.is_some() {
        // The unprivileged user must traverse the data directory itself.
        let mut perms = std::fs::metadata(&data_dir)
            .map_err(io("stat data directory"))?
            .permissions();
        perms.set_mode(perms.mode() | 0o011);
        std::fs::set_permissions(&data_dir, perms).map_err(io("chmod data directory"))?;
        run_as.check_reachable(&pgdata).map_err(EmbeddedError::Setup)?;
        run_as.check_reachable(&socket_dir).map_err(EmbeddedError::Setup)?;
    }
    std::fs::create_dir_all(&socket_dir).map_err(io(format!("cannot create {}", socket_dir.display())))?;
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o700)).map_err(io("chmod socket dir"))?;
    run_as.chown(&socket_dir).map_err(EmbeddedError::Setup)?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io("cannot open postgres.log"))?;
    run_as.chown(&log_path).map_err(EmbeddedError::Setup)?;

    if !pgdata.join("PG_VERSION").is_file() {
        initdb(&bin_dir, &pgdata, &run_as)?;
    }
    stop_orphan(&pgdata)?;
    write_settings(&bin_dir, &pgdata, &socket_dir)?;

    let log = OpenOptions::new()
        .append(true)
        .open(&log_path)
        .map_err(io("cannot open postgres.log"))?;
    let log_err = log.try_clone().map_err(io("cannot open postgres.log"))?;
    let mut cmd = Command::new(bin_dir.join("postgres"));
    cmd.arg("-D")
        .arg(&pgdata)
        .current_dir(&pgdata)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // Own process group: a terminal's Ctrl-C must reach us, not postgres,
    // so that we drain requests before the database stops.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    run_as.apply(&mut cmd);
    let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let mut child = cmd.spawn().map_err(io("cannot start postgres"))?;
    tracing::info!(data_dir = %data_dir.display(), pid = child.id(), "starting embedded PostgreSQL");

    let socket = socket_dir.join(format!(".s.PGSQL.{PORT}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(EmbeddedError::Process {
                what: "starting the embedded PostgreSQL",
                detail: format!(
                    "postgres exited with {status}; log:\n{}",
                    log_tail(&log_path, log_start)
                ),
            });
        }
        if socket.exists() && ready(&pgdata) {
            break;
        }
        if Instant::now() > deadline {
            let _ = shutdown_child(child);
            return Err(EmbeddedError::Process {
                what: "starting the embedded PostgreSQL",
                detail: format!("not ready after 60s; log:\n{}", log_tail(&log_path, log_start)),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(EmbeddedPostgres {
        child: Some(child),
        bin_dir,
        data_dir,
        socket_dir,
        _lock: lock,
    })
}

/// postmaster.pid's 8th line is the server status; "ready" once it accepts connections.
fn ready(pgdata: &Path) -> bool {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .map(|s| s.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
        .unwrap_or(false)
}

fn take_lock(data_dir: &Path) -> Result<File, EmbeddedError> {
    let path = data_dir.join("crosslogic.lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    if file.try_lock().is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(EmbeddedError::Locked {
            dir: data_dir.display().to_string(),
            pid: if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            },
        });
    }
    file.set_len(0).map_err(io("cannot write lock file"))?;
    file.rewind().map_err(io("cannot write lock file"))?;
    write!(file, "{}", std::process::id()).map_err(io("cannot write lock file"))?;
    file.flush().map_err(io("cannot write lock file"))?;
    Ok(file)
}

fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join("run");
    if dir.as_os_str().len() + "/.s.PGSQL.5432".len() <= MAX_SOCKET_PATH {
        return dir;
    }
    // Deep data directories would overflow sun_path: use a short private path.
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("crosslogic-{}", &hex::encode(digest)[..16]))
}

fn initdb(bin_dir: &Path, pgdata: &Path, run_as: &RunAs) -> Result<(), EmbeddedError> {
    std::fs::create_dir_all(pgdata).map_err(io(format!("cannot create {}", pgdata.display())))?;
    std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700)).map_err(io("chmod PGDATA"))?;
    run_as.chown(pgdata).map_err(EmbeddedError::Setup)?;
    let mut cmd = Command::new(bin_dir.join("initdb"));
    cmd.arg("-D")
        .arg(pgdata)
        .args([
            "-U",
            EMBEDDED_USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=reject",
        ])
        .current_dir(pgdata)
        .stdin(Stdio::null());
    run_as.apply(&mut cmd);
    tracing::info!(pgdata = %pgdata.display(), "initialising embedded PostgreSQL cluster");
    let out = cmd.output().map_err(io("cannot run initdb"))?;
    if !out.status.success() {
        return Err(EmbeddedError::Process {
            what: "initdb",
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    let conf = pgdata.join("postgresql.conf");
    let mut f = OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(io("cannot open postgresql.conf"))?;
    writeln!(
        f,
        "\n# Written by crosslogic on every start.\ninclude_if_exists = 'crosslogic.conf'"
    )
    .map_err(io("cannot write postgresql.conf"))?;
    Ok(())
}

/// Settings rewritten at each start (the socket directory may move).
fn write_settings(bin_dir: &Path, pgdata: &Path, socket_dir: &Path) -> Result<(), EmbeddedError> {
    let quote = |p: &Path| p.display().to_string().replace('\'', "''");
    let mut s = format!(
        "# Managed by crosslogic; changes here are overwritten at start.\n\
         listen_addresses = ''\n\
         unix_socket_directories = '{}'\n\
         unix_socket_permissions = 0700\n\
         max_connections = 200\n",
        quote(socket_dir)
    );
    // Enable pg_stat_statements (for `crosslogic db stats`) when installed.
    let lib = bin_dir.parent().map(|p| p.join("lib").join("pg_stat_statements.so"));
    if lib.is_some_and(|l| l.is_file()) {
        s.push_str("shared_preload_libraries = 'pg_stat_statements'\n");
    }
    let path = pgdata.join("crosslogic.conf");
    std::fs::write(&path, s).map_err(io(format!("cannot write {}", path.display())))
}

/// A server still running from a previous owner that crashed (we hold the
/// lock now, so nobody else owns it): ask it to stop before starting ours.
fn stop_orphan(pgdata: &Path) -> Result<(), EmbeddedError> {
    let Ok(text) = std::fs::read_to_string(pgdata.join("postmaster.pid")) else {
        return Ok(());
    };
    let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
        return Ok(());
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("postgres") {
        return Ok(()); // stale pid file; postgres removes it itself
    }
    tracing::warn!(
        pid,
        "stopping an embedded PostgreSQL left running by a previous crosslogic process"
    );
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) {
        if Instant::now() > deadline {
            return Err(EmbeddedError::Process {
                what: "stopping a leftover embedded PostgreSQL",
                detail: format!("pid {pid} did not exit within 60s"),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Whether a process exists and is not a zombie.
fn alive(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => kill(pid, None).is_ok(),
    }
}

fn shutdown_child(mut child: Child) -> Result<(), EmbeddedError> {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    if child.try_wait().ok().flatten().is_some() {
        return Ok(());
    }
    let _ = kill(pid, Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => {
                tracing::info!("embedded PostgreSQL stopped");
                return Ok(());
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            _ => {
                let _ = kill(pid, Signal::SIGQUIT);
                let _ = child.wait();
                return Err(EmbeddedError::Process {
                    what: "stopping the embedded PostgreSQL",
                    detail: "fast shutdown took over 60s; sent SIGQUIT".into(),
                });
            }
        }
    }
}

fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(std::io::SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
