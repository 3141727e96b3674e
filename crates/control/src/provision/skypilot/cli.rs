//! Drives the `sky` command-line interface: `sky launch`, `sky down` and
//! `sky status` as child processes whose output streams into the job log.
//!
//! Secrets never appear on a command line or in the task file: the child
//! gets them in its environment and `sky launch --secret NAME` copies them
//! into the task.

use std::collections::VecDeque;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::Mutex;

use super::task::{render_task, JUICEFS_SECRET, TOKEN_SECRET};
use super::{clean_line, SkyPilotConfig};
use crate::provision::{JobLog, LaunchSpec, ProvisionError};

/// Output lines kept for an error message.
const TAIL_LINES: usize = 15;
/// Longest output line kept (the rest is cut).
const MAX_LINE: usize = 8 * 1024;

/// The `sky` CLI.
#[derive(Debug)]
pub(super) struct SkyCli {
    binary: PathBuf,
    work_dir: PathBuf,
}

/// What a finished `sky` command printed.
struct Output {
    status: ExitStatus,
    /// Every line (stdout and stderr, in arrival order) when captured, else
    /// the last [`TAIL_LINES`].
    lines: Vec<String>,
}

impl Output {
    fn tail(&self) -> String {
        let start = self.lines.len().saturating_sub(TAIL_LINES);
        self.lines[start..].join("\n")
    }
}

impl SkyCli {
    pub(super) fn new(binary: PathBuf, work_dir: PathBuf) -> SkyCli {
        SkyCli { binary, work_dir }
    }

    /// `sky launch -c <cluster> -y -d --secret … <work_dir>/<cluster>.yaml`.
    pub(super) async fn launch(
        &self,
        spec: &LaunchSpec,
        cfg: &SkyPilotConfig,
        log: &JobLog,
    ) -> Result<(), ProvisionError> {
        let yaml = render_task(spec, cfg, false)?;
        let path = self.task_path(&spec.cluster_name);
        write_private(&self.work_dir, &path, yaml.as_bytes())?;
        log.line(format!("task written to {}", path.display()));

        let mut cmd = self.command();
        cmd.args(["launch", "-c", &spec.cluster_name, "-y", "-d", "--secret", TOKEN_SECRET]);
        cmd.env(TOKEN_SECRET, spec.node_token.expose_secret());
        if let Some(url) = &cfg.juicefs_meta_url {
            cmd.args(["--secret", JUICEFS_SECRET]);
            cmd.env(JUICEFS_SECRET, url.expose_secret());
        }
        cmd.arg(&path);
        let out = run(cmd, log, false).await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ProvisionError::Failed(format!(
                "sky launch -c {} failed ({}); last output:\n{}",
                spec.cluster_name,
                out.status,
                out.tail()
            )))
        }
    }

    /// `sky down -y <cluster>`; a cluster SkyPilot does not know is already
    /// gone.
    pub(super) async fn down(&self, cluster: &str, log: &JobLog) -> Result<(), ProvisionError> {
        let mut cmd = self.command();
        cmd.args(["down", "-y", cluster]);
        let out = run(cmd, log, true).await?;
        let missing = out.lines.iter().any(|l| says_cluster_missing(l));
        if !out.status.success() && !missing {
            return Err(ProvisionError::Failed(format!(
                "sky down {cluster} failed ({}); last output:\n{}",
                out.status,
                out.tail()
            )));
        }
        if missing {
            log.line(format!("cluster {cluster} does not exist (already terminated)"));
        }
        match std::fs::remove_file(self.task_path(cluster)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(cluster, error = %e, "could not remove the task file");
            }
            _ => {}
        }
        Ok(())
    }

    /// Cluster names from `sky status` (no refresh).
    pub(super) async fn status(&self) -> Result<Vec<String>, ProvisionError> {
        let mut cmd = self.command();
        cmd.arg("status");
        let out = run(cmd, &JobLog::discard(), true).await?;
        if !out.status.success() {
            return Err(ProvisionError::Failed(format!(
                "sky status failed ({}); last output:\n{}",
                out.status,
                out.tail()
            )));
        }
        parse_status(&out.lines.join("\n")).map_err(ProvisionError::Failed)
    }

    fn task_path(&self, cluster: &str) -> PathBuf {
        self.work_dir.join(format!("{cluster}.yaml"))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .kill_on_drop(true);
        cmd
    }
}

/// Writes `bytes` to `path` readable by the owner only (mode 0600).
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: set it explicitly.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Runs `cmd`, writing each output line to `log` as it arrives.
async fn run(mut cmd: Command, log: &JobLog, capture_all: bool) -> Result<Output, ProvisionError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| ProvisionError::Failed(format!("cannot run {program}: {e}")))?;
    let lines = Mutex::new(VecDeque::new());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    tokio::try_join!(
        pump(stdout, log, &lines, capture_all),
        pump(stderr, log, &lines, capture_all)
    )?;
    let status = child.wait().await?;
    Ok(Output {
        status,
        lines: lines.into_inner().into(),
    })
}

/// Copies one output stream into `log` and `lines`, line by line (`\n` or
/// `\r` ends a line; invalid UTF-8 is replaced).
async fn pump<R: AsyncRead + Unpin>(
    stream: Option<R>,
    log: &JobLog,
    lines: &Mutex<VecDeque<String>>,
    capture_all: bool,
) -> std::io::Result<()> {
    let Some(stream) = stream else { return Ok(()) };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).await? == 0 {
            return Ok(());
        }
        for segment in buf.split(|&b| b == b'\n' || b == b'\r') {
            let segment = &segment[..segment.len().min(MAX_LINE)];
            let line = clean_line(&String::from_utf8_lossy(segment));
            if line.trim().is_empty() {
                continue;
            }
            log.line(line.clone());
            let mut lines = lines.lock().await;
            lines.push_back(line);
            if !capture_all && lines.len() > TAIL_LINES {
                lines.pop_front();
            }
        }
    }
}

/// Whether a line of `sky down` output says the cluster does not exist.
fn says_cluster_missing(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("does not exist") || (l.contains("cluster") && l.contains("not found"))
}

/// Cluster names from `sky status` output: the first column of the cluster
/// table (header `NAME … RESOURCES …`), up to the first blank line.
/// "No existing clusters." is an empty list; output with neither is an error
/// (an unrecognised format must not look like "everything is gone").
fn parse_status(output: &str) -> Result<Vec<String>, String> {
    let mut lines = output.lines().map(clean_line);
    let mut found_header = false;
    let mut names = Vec::new();
    while let Some(line) = lines.next() {
        let mut cols = line.split_whitespace();
        if cols.next() != Some("NAME") || !cols.any(|c| c == "RESOURCES") {
            continue;
        }
        found_header = true;
        for row in lines.by_ref() {
            if row.trim().is_empty() {
                break;
            }
            if row.chars().all(|c| c.is_whitespace() || "-=+|─━┄┈".contains(c)) {
                continue; // a rule under the header
            }
            if row.starts_with(char::is_whitespace) {
                continue; // a wrapped cell of the previous row
            }
            let mut cells = row.split_whitespace();
            let (Some(name), Some(_)) = (cells.next(), cells.next()) else {
                break; // not a table row
            };
            names.push(name.to_string());
        }
        break;
    }
    if found_header || output.lines().any(|l| l.contains("No existing clusters")) {
        Ok(names)
    } else {
        let excerpt: String = output.chars().take(300).collect();
        Err(format!("unrecognised `sky status` output: {excerpt:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_FORMAT: &str = "\
Clusters
NAME                                  INFRA              RESOURCES                                    STATUS  AUTOSTOP  LAUNCHED
cic-aws-us-east-1-a10g-spot-7f3a      AWS (us-east-1)    1x(gpus=A10G:1, g5.xlarge, cpus=4, ...)      UP      -         12 mins ago
my-dev-box                            GCP (us-central1)  1x(cpus=8, mem=32, n2-standard-8, ...)       STOPPED 1h        3 days ago
cic-gcp-a100-80gb-od-19c0             GCP (us-west1)     1x(gpus=A100-80GB:2, a2-ultragpu-2g, ...)    INIT    -         1 min ago

Managed jobs
No in-progress managed jobs.

Services
No live services.
";

    const OLD_FORMAT: &str = "\
Clusters
NAME                             LAUNCHED     RESOURCES                        STATUS   AUTOSTOP  COMMAND
cic-azure-eastus-t4-od-0b1c      2 hrs ago    1x Azure(Standard_NC4as_T4_v3)   UP       -         sky launch -c cic-azure-eastus...
scratch                          5 days ago   1x AWS(m6i.2xlarge)              STOPPED  10m       sky launch -c scratch task.yaml

Managed jobs
No in-progress managed jobs. (See: sky jobs -h)
";

    #[test]
    fn parses_the_new_status_table() {
        let names = parse_status(NEW_FORMAT).unwrap();
        assert_eq!(
            names,
            [
                "cic-aws-us-east-1-a10g-spot-7f3a",
                "my-dev-box",
                "cic-gcp-a100-80gb-od-19c0"
            ]
        );
    }

    #[test]
    fn parses_the_old_status_table() {
        assert_eq!(
            parse_status(OLD_FORMAT).unwrap(),
            ["cic-azure-eastus-t4-od-0b1c", "scratch"]
        );
    }

    #[test]
    fn parses_colored_output_with_a_user_column() {
        let out = "\u{1b}[1mClusters\u{1b}[0m\n\
\u{1b}[1mNAME\u{1b}[0m                         \u{1b}[1mUSER\u{1b}[0m   INFRA     RESOURCES        STATUS   AUTOSTOP  LAUNCHED\n\
cic-aws-a10g-od-1          alice  AWS       1x(gpus=A10G:1)  \u{1b}[32mUP\u{1b}[0m       -         now\n";
        assert_eq!(parse_status(out).unwrap(), ["cic-aws-a10g-od-1"]);
    }

    #[test]
    fn no_clusters_is_an_empty_list() {
        let out = "Clusters\nNo existing clusters.\n\nManaged jobs\nNo in-progress managed jobs.\n";
        assert_eq!(parse_status(out).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn the_services_table_is_not_read_as_clusters() {
        let out = "Clusters\nNo existing clusters.\n\nServices\n\
NAME       VERSION  UPTIME  STATUS  REPLICAS  ENDPOINT\n\
cic-svc    1        5m      READY   1/1       1.2.3.4:30001\n";
        assert_eq!(parse_status(out).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn unknown_output_is_an_error() {
        assert!(parse_status("").is_err());
        assert!(parse_status("Error: cannot connect to the API server\n").is_err());
    }

    #[test]
    fn missing_cluster_messages() {
        assert!(says_cluster_missing("Cluster(s) not found (tip: see `sky status`)."));
        assert!(says_cluster_missing(
            "sky.exceptions.ClusterDoesNotExist: Cluster 'cic-x' does not exist."
        ));
        assert!(!says_cluster_missing("Terminating cluster cic-x...done."));
    }
}
