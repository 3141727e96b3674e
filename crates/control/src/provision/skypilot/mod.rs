//! The `skypilot` provisioner: a node is one SkyPilot cluster running vLLM and
//! the node agent.
//!
//! The task (resources, environment, setup and run scripts) is rendered by
//! [`render_task`]. Two ways to hand it to SkyPilot:
//!
//! - **CLI** (`cli.rs`, the default): `sky launch` / `sky down` / `sky status`
//!   as child processes. The task file on disk holds no secret: the node
//!   token (and the JuiceFS metadata URL) reach `sky` through the child's
//!   environment only, named by `--secret NAME`.
//! - **REST** (`rest.rs`, when [`SkyPilotConfig::api_server_url`] is set): the
//!   SkyPilot API server's asynchronous API (`POST /launch`, `/down`,
//!   `/status`, then `GET /api/get` for the verdict and `GET /api/stream` for
//!   the logs). The task sent there carries the secret values, as SkyPilot's
//!   own client does.
//!
//! Either way every line of progress goes to the job's [`JobLog`].

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::{BoxFuture, JobLog, LaunchHandle, LaunchSpec, ProvisionError, Provisioner};

mod cli;
mod rest;
pub mod state;
mod task;
pub mod verify;

pub use task::render_task;

/// Where the agent binary lands on the node (SkyPilot `file_mounts` target).
pub const REMOTE_AGENT_PATH: &str = "~/.crosslogic/crosslogic";

/// Where the JuiceFS model volume is mounted on the node.
pub const MODELS_MOUNT: &str = "/mnt/models";

/// Settings of the SkyPilot provisioner.
#[derive(Debug, Clone)]
pub struct SkyPilotConfig {
    /// Base URL of a SkyPilot API server (e.g. `http://127.0.0.1:46580`);
    /// when set the REST API is used, otherwise the `sky` CLI.
    pub api_server_url: Option<String>,
    /// Bearer token for an API server that requires authentication (a
    /// SkyPilot service-account token); `None` = no `Authorization` header.
    pub api_server_token: Option<SecretString>,
    /// The `sky` executable (CLI mode).
    pub sky_binary: PathBuf,
    /// Where rendered task files go: `<work_dir>/<cluster>.yaml`.
    pub work_dir: PathBuf,
    /// Boot disk size in GB.
    pub disk_size_gb: u32,
    /// Port vLLM listens on (opened to the outside by SkyPilot).
    pub engine_port: u16,
    /// JuiceFS metadata URL (`redis://…`); when set the node mounts the
    /// volume at `/mnt/models` and keeps the Hugging Face cache there.
    pub juicefs_meta_url: Option<SecretString>,
    /// Local path of the `crosslogic` executable uploaded to the node (in
    /// REST mode: a path the API server can read).
    pub agent_binary: PathBuf,
    /// vLLM to install: a version (`0.8.5`), a version specifier
    /// (`>=0.8,<0.9`) or a full requirement (`vllm==0.8.5`); `None` = the
    /// latest `vllm`.
    pub vllm_version: Option<String>,
}

impl SkyPilotConfig {
    /// A configuration with the defaults: CLI mode with `sky` from `PATH`,
    /// 256 GB disk, engine port 8000, no JuiceFS, latest vLLM.
    pub fn new(work_dir: impl Into<PathBuf>, agent_binary: impl Into<PathBuf>) -> SkyPilotConfig {
        SkyPilotConfig {
            api_server_url: None,
            api_server_token: None,
            sky_binary: PathBuf::from("sky"),
            work_dir: work_dir.into(),
            disk_size_gb: 256,
            engine_port: 8000,
            juicefs_meta_url: None,
            agent_binary: agent_binary.into(),
            vllm_version: None,
        }
    }
}

/// Which SkyPilot interface a provisioner drives.
#[derive(Debug)]
enum Backend {
    Cli(cli::SkyCli),
    Rest(rest::SkyRest),
}

/// Launches nodes as SkyPilot clusters (through the `sky` CLI or a SkyPilot
/// API server).
#[derive(Debug)]
pub struct SkyPilotProvisioner {
    cfg: SkyPilotConfig,
    backend: Backend,
}

impl SkyPilotProvisioner {
    /// Checks the configuration and builds the provisioner: REST mode when
    /// [`SkyPilotConfig::api_server_url`] is set, CLI mode otherwise. A
    /// relative `agent_binary` is made absolute against the current directory.
    pub fn new(mut cfg: SkyPilotConfig) -> Result<SkyPilotProvisioner, ProvisionError> {
        if let Some(spec) = &cfg.vllm_version {
            task::vllm_requirement(Some(spec))?;
        }
        if cfg.agent_binary.as_os_str().is_empty() {
            return Err(ProvisionError::Failed("skypilot: agent_binary is empty".into()));
        }
        if cfg.agent_binary.is_relative() {
            cfg.agent_binary = std::path::absolute(&cfg.agent_binary)?;
        }
        let backend = match &cfg.api_server_url {
            Some(url) => Backend::Rest(rest::SkyRest::new(url, cfg.api_server_token.clone())?),
            None => Backend::Cli(cli::SkyCli::new(cfg.sky_binary.clone(), cfg.work_dir.clone())),
        };
        Ok(SkyPilotProvisioner { cfg, backend })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SkyPilotConfig {
        &self.cfg
    }

    async fn do_launch(&self, spec: LaunchSpec, log: JobLog) -> Result<LaunchHandle, ProvisionError> {
        check_cluster_name(&spec.cluster_name)?;
        match &self.backend {
            Backend::Cli(sky) => sky.launch(&spec, &self.cfg, &log).await?,
            Backend::Rest(api) => api.launch(&spec, &self.cfg, &log).await?,
        }
        tracing::info!(cluster = %spec.cluster_name, "skypilot cluster launched");
        Ok(LaunchHandle {
            cluster_name: spec.cluster_name,
            endpoint_url: None,
        })
    }

    async fn do_terminate(&self, cluster: &str, log: JobLog) -> Result<(), ProvisionError> {
        check_cluster_name(cluster)?;
        match &self.backend {
            Backend::Cli(sky) => sky.down(cluster, &log).await?,
            Backend::Rest(api) => api.down(cluster, &log).await?,
        }
        tracing::info!(cluster, "skypilot cluster terminated");
        Ok(())
    }

    async fn do_list(&self) -> Result<Vec<String>, ProvisionError> {
        let status = async {
            match &self.backend {
                Backend::Cli(sky) => sky.status().await,
                Backend::Rest(api) => api.status().await,
            }
        };
        let mut names = tokio::time::timeout(LIST_TIMEOUT, status)
            .await
            .map_err(|_| ProvisionError::Failed(format!("SkyPilot status did not answer within {LIST_TIMEOUT:?}")))??;
        names.retain(|n| n.starts_with(CLUSTER_PREFIX));
        names.sort();
        names.dedup();
        Ok(names)
    }
}

impl Provisioner for SkyPilotProvisioner {
    fn launch(&self, spec: LaunchSpec, log: JobLog) -> BoxFuture<'_, Result<LaunchHandle, ProvisionError>> {
        Box::pin(self.do_launch(spec, log))
    }

    fn terminate<'a>(&'a self, cluster_name: &'a str, log: JobLog) -> BoxFuture<'a, Result<(), ProvisionError>> {
        Box::pin(self.do_terminate(cluster_name, log))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ProvisionError>> {
        Box::pin(self.do_list())
    }
}

/// How long listing clusters may take (no refresh: SkyPilot answers from its
/// state database; the first CLI call may also start a local API server).
const LIST_TIMEOUT: Duration = Duration::from_secs(300);

/// Prefix of every cluster the control plane names (`core::placement`).
const CLUSTER_PREFIX: &str = "cic-";

/// Cluster names go on a command line and into file names: letters, digits,
/// `-` and `_`, starting with a letter or digit (never an option).
fn check_cluster_name(name: &str) -> Result<(), ProvisionError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ProvisionError::Failed(format!("invalid cluster name {name:?}")))
    }
}

/// Removes ANSI escape sequences (colours, cursor movement) and trailing
/// whitespace from one line of SkyPilot output.
fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ parameters… final byte in @..~
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] … terminated by BEL or ESC \
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            // Two-character escapes (ESC 7, ESC (B …).
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_checked() {
        assert!(check_cluster_name("cic-aws-us-east-1-a10g-spot-7f3a").is_ok());
        assert!(check_cluster_name("").is_err());
        assert!(check_cluster_name("-y").is_err());
        assert!(check_cluster_name("a b").is_err());
        assert!(check_cluster_name("a/../b").is_err());
    }

    #[test]
    fn ansi_sequences_are_stripped() {
        assert_eq!(clean_line("\u{1b}[1mNAME\u{1b}[0m   STATUS   "), "NAME   STATUS");
        assert_eq!(clean_line("\u{1b}[32mUP\u{1b}[39m"), "UP");
        assert_eq!(clean_line("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{7}"), "link");
        assert_eq!(clean_line("plain"), "plain");
    }
}
