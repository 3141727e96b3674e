//! The `local` provisioner: a "node" is two processes on this machine — an
//! engine (`crosslogic engine-sim`, or a configured command such as
//! `vllm serve {model} --port {port}`) and `crosslogic node-agent` — each in
//! its own process group. Each cluster is recorded in
//! `state_dir/<cluster>.json` so a restarted control plane can adopt or
//! clean up what an earlier one launched.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{BoxFuture, JobLog, LaunchHandle, LaunchSpec, ProvisionError, Provisioner};

/// How long `terminate` waits for SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// What `state_dir/<cluster>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    cluster_name: String,
    /// Process (and process group) ids: agent first, then engine.
    pids: Vec<u32>,
    /// Each process's start time (clock ticks since boot), so a pid reused
    /// by an unrelated process after a reboot or crash is never signalled.
    #[serde(default)]
    started: Vec<Option<u64>>,
    port: u16,
}

impl Record {
    /// The recorded processes still running as themselves.
    fn live_pids(&self, prov: &LocalProvisioner) -> Vec<u32> {
        self.pids
            .iter()
            .enumerate()
            .filter(|&(i, &pid)| {
                prov.alive(pid)
                    && match self.started.get(i).copied().flatten() {
                        Some(want) => start_ticks(pid) == Some(want),
                        None => true,
                    }
            })
            .map(|(_, &pid)| pid)
            .collect()
    }
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`); `None` when it is gone or not readable.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its closing parenthesis, where field 3 is index 0.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Launches nodes as local processes.
#[derive(Debug)]
pub struct LocalProvisioner {
    /// The `crosslogic` executable.
    pub binary: PathBuf,
    /// Where cluster records and process logs go.
    pub state_dir: PathBuf,
    /// Engine command with `{model}` and `{port}` placeholders (split on
    /// whitespace, no shell); `None` = `crosslogic engine-sim`.
    pub engine_command: Option<String>,
    /// Extra arguments for every node agent (e.g. `--cloud aws
    /// --metadata-url http://…` to watch a simulated spot-notice service).
    pub agent_args: Vec<String>,
    /// Children this process spawned, so they are reaped (not zombies).
    children: Mutex<HashMap<u32, Child>>,
}

impl LocalProvisioner {
    /// A provisioner running `binary` and keeping its records in `state_dir`.
    pub fn new(binary: PathBuf, state_dir: PathBuf, engine_command: Option<String>) -> LocalProvisioner {
        LocalProvisioner {
            binary,
            state_dir,
            engine_command,
            agent_args: Vec::new(),
            children: Mutex::new(HashMap::new()),
        }
    }

    /// The current executable as the `crosslogic` binary.
    pub fn from_current_exe(state_dir: PathBuf) -> std::io::Result<LocalProvisioner> {
        Ok(LocalProvisioner::new(std::env::current_exe()?, state_dir, None))
    }

    fn record_path(&self, cluster: &str) -> PathBuf {
        self.state_dir.join(format!("{cluster}.json"))
    }

    fn log_file(&self, cluster: &str, what: &str) -> std::io::Result<File> {
        File::create(self.state_dir.join(format!("{cluster}.{what}.log")))
    }

    fn engine_command(&self, model: &str, port: u16) -> Command {
        match &self.engine_command {
            Some(template) => {
                let mut parts = template
                    .split_whitespace()
                    .map(|p| p.replace("{model}", model).replace("{port}", &port.to_string()));
                let program = parts.next().unwrap_or_default();
                let mut cmd = Command::new(program);
                cmd.args(parts);
                cmd
            }
            None => {
                let mut cmd = Command::new(&self.binary);
                cmd.args(["engine-sim", "--served-model-name", model, "--port", &port.to_string()]);
                cmd
            }
        }
    }

    fn spawn(&self, mut cmd: Command, cluster: &str, what: &str) -> Result<u32, ProvisionError> {
        let log = self.log_file(cluster, what)?;
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        self.lock().insert(pid, child);
        Ok(pid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Child>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a process is still running (reaps our own exited children).
    fn alive(&self, pid: u32) -> bool {
        if let Some(child) = self.lock().get_mut(&pid) {
            return matches!(child.try_wait(), Ok(None));
        }
        let Ok(raw) = i32::try_from(pid) else { return false };
        !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
    }

    fn signal_group(pid: u32, sig: Signal) {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = killpg(Pid::from_raw(raw), sig);
        }
    }

    async fn wait_gone(&self, pids: &[u32], until: Instant) -> bool {
        loop {
            if pids.iter().all(|&p| !self.alive(p)) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn read_records(&self) -> Result<Vec<Record>, ProvisionError> {
        let mut out = Vec::new();
        let dir = match std::fs::read_dir(&self.state_dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for entry in dir {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(r) = read_record(&path) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
        Ok(out)
    }

    async fn do_launch(&self, spec: LaunchSpec, log: JobLog) -> Result<LaunchHandle, ProvisionError> {
        let name = &spec.cluster_name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ProvisionError::Failed(format!("invalid cluster name {name:?}")));
        }
        std::fs::create_dir_all(&self.state_dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let engine_url = format!("http://127.0.0.1:{port}");
        let engine_cmd = self.engine_command(&spec.model, port);
        log.line(format!("starting engine: {}", describe(&engine_cmd)));
        let engine = self.spawn(engine_cmd, name, "engine")?;
        log.line(format!("engine pid {engine} on port {port}"));
        let mut agent = Command::new(&self.binary);
        agent
            .args(["node-agent", "--control-url", &spec.control_url])
            .args(["--engine-url", &engine_url, "--advertise-url", &engine_url])
            .args(["--node-id", &spec.node_id.to_string(), "--model", &spec.model])
            .env("CROSSLOGIC_NODE_TOKEN", spec.node_token.expose_secret());
        if let Some(region) = &spec.region {
            agent.args(["--region", region]);
        }
        agent.args(&self.agent_args);
        log.line(format!("starting node agent: {}", describe(&agent)));
        let agent = match self.spawn(agent, name, "agent") {
            Ok(pid) => {
                log.line(format!("node agent pid {pid}"));
                pid
            }
            Err(e) => {
                Self::signal_group(engine, Signal::SIGKILL);
                return Err(e);
            }
        };
        let record = Record {
            cluster_name: name.clone(),
            pids: vec![agent, engine],
            started: vec![start_ticks(agent), start_ticks(engine)],
            port,
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| ProvisionError::Failed(e.to_string()))?;
        std::fs::write(self.record_path(name), json)?;
        tracing::info!(cluster = %name, agent, engine, port, "local node launched");
        Ok(LaunchHandle {
            cluster_name: name.clone(),
            endpoint_url: Some(engine_url),
        })
    }

    async fn do_terminate(&self, cluster: &str, log: JobLog) -> Result<(), ProvisionError> {
        let path = self.record_path(cluster);
        let Some(mut record) = read_record(&path) else {
            log.line(format!("{cluster} has no record: already gone"));
            return Ok(());
        };
        // Only processes that are still ours get signals.
        let live = record.live_pids(self);
        if live.len() < record.pids.len() {
            record.pids.retain(|p| live.contains(p));
            record.started.clear();
        }
        log.line(format!("stopping node agent then engine (pids {:?})", record.pids));
        let deadline = Instant::now() + TERM_GRACE;
        // Agent first, so it deregisters the node while the engine still runs.
        if let Some((&agent, engines)) = record.pids.split_first() {
            Self::signal_group(agent, Signal::SIGTERM);
            self.wait_gone(&[agent], deadline).await;
            for &pid in engines {
                Self::signal_group(pid, Signal::SIGTERM);
            }
        }
        if !self.wait_gone(&record.pids, deadline).await {
            log.line(format!("still running after {TERM_GRACE:?}: SIGKILL"));
            for &pid in &record.pids {
                Self::signal_group(pid, Signal::SIGKILL);
            }
            self.wait_gone(&record.pids, Instant::now() + Duration::from_secs(5))
                .await;
        }
        {
            let mut children = self.lock();
            for pid in &record.pids {
                if let Some(mut child) = children.remove(pid) {
                    let _ = child.try_wait();
                }
            }
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        tracing::info!(cluster, "local node terminated");
        Ok(())
    }
}

/// A command line for the log (the environment, which holds the node's
/// credential, is not shown).
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_record(path: &Path) -> Option<Record> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Provisioner for LocalProvisioner {
    fn launch(&self, spec: LaunchSpec, log: JobLog) -> BoxFuture<'_, Result<LaunchHandle, ProvisionError>> {
        Box::pin(self.do_launch(spec, log))
    }

    fn terminate<'a>(&'a self, cluster_name: &'a str, log: JobLog) -> BoxFuture<'a, Result<(), ProvisionError>> {
        Box::pin(self.do_terminate(cluster_name, log))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ProvisionError>> {
        Box::pin(async move {
            let mut alive = Vec::new();
            for r in self.read_records()? {
                if !r.live_pids(self).is_empty() {
                    alive.push(r.cluster_name);
                } else {
                    // Every process is gone (killed, machine rebooted): the
                    // record describes nothing any more.
                    let _ = std::fs::remove_file(self.record_path(&r.cluster_name));
                }
            }
            Ok(alive)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_ours() {
        let prov = LocalProvisioner::new("crosslogic".into(), std::env::temp_dir(), None);
        let me = std::process::id();
        let started = start_ticks(me);
        assert!(started.is_some(), "own start time readable from /proc");
        let record = |started: Vec<Option<u64>>| Record {
            cluster_name: "cic-local-x".into(),
            pids: vec![me],
            started,
            port: 1,
        };
        assert_eq!(record(vec![started]).live_pids(&prov), [me]);
        // Same pid, another process start: never signalled.
        let other = started.map(|t| t + 1);
        assert!(record(vec![other]).live_pids(&prov).is_empty());
        // Records written before start times were kept still work.
        assert_eq!(record(Vec::new()).live_pids(&prov), [me]);
    }
}
