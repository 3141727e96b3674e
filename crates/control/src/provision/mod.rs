//! Provisioners: what launches and terminates a GPU node for the reconciler.
//!
//! A node is one cluster (`cluster_name`); the provisioner starts the engine
//! and the node agent on it, and the agent registers with the control plane
//! using the per-node credential of [`LaunchSpec::node_token`].
//!
//! Launch and terminate can take minutes (a cloud VM boots, installs the
//! engine, downloads weights), so they never run inside an HTTP request or
//! the reconciler's pass: [`crate::jobs`] runs them as background jobs and
//! records every line a provisioner writes to its [`JobLog`].

use std::future::Future;
use std::pin::Pin;

use crosslogic_core::Provider;
use secrecy::SecretString;
use tokio::sync::mpsc;
use uuid::Uuid;

pub mod local;
pub mod skypilot;
pub mod storage;

pub use local::LocalProvisioner;
pub use skypilot::{SkyPilotConfig, SkyPilotProvisioner};

/// A boxed, sendable future (object-safe async trait methods).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What to launch.
#[derive(Debug)]
pub struct LaunchSpec {
    pub cluster_name: String,
    /// The `nodes` row already created for this cluster.
    pub node_id: Uuid,
    /// The node agent's credential (plaintext; only its hash is stored).
    pub node_token: SecretString,
    /// Catalog name of the model: the engine serves it under this name.
    pub model: String,
    /// Where the engine loads weights from (the catalog's
    /// `metadata.hf_model`, e.g. `meta-llama/Meta-Llama-3-8B-Instruct`);
    /// `None` = the catalog name itself.
    pub model_source: Option<String>,
    /// Cloud to launch on (`local` for the local provisioner).
    pub provider: Provider,
    /// Our region code (`us-east`): what the node reports and routing uses.
    pub region: Option<String>,
    /// The provider's own name of that region (`us-east-1` on AWS for our
    /// `us-east`, from `regions.provider_regions`): what the cloud is asked
    /// for. `None` = let the provisioner pick.
    pub cloud_region: Option<String>,
    /// GPU type from the catalog; `None` = no GPU requirement.
    pub gpu: Option<String>,
    pub gpu_count: u32,
    pub spot: bool,
    /// Where the node agent reaches the control plane.
    pub control_url: String,
}

/// What a launch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchHandle {
    pub cluster_name: String,
    /// The engine's URL when the provisioner knows it up front.
    pub endpoint_url: Option<String>,
}

/// Why a provisioner operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Spawning or talking to the provisioning backend failed.
    #[error("provisioning i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The backend refused or failed the operation.
    #[error("{0}")]
    Failed(String),
}

/// Where a provisioner writes the progress of one job, line by line (the
/// launch log an operator streams). Cheap to clone; writing never blocks
/// and never fails — with no reader the lines are dropped.
#[derive(Debug, Clone, Default)]
pub struct JobLog {
    tx: Option<mpsc::UnboundedSender<String>>,
}

impl JobLog {
    /// A log whose lines arrive on the returned receiver.
    pub fn channel() -> (JobLog, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (JobLog { tx: Some(tx) }, rx)
    }

    /// A log that drops everything.
    pub fn discard() -> JobLog {
        JobLog::default()
    }

    /// Records one line (trailing newlines trimmed).
    pub fn line(&self, line: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let mut line = line.into();
            while line.ends_with('\n') || line.ends_with('\r') {
                line.pop();
            }
            let _ = tx.send(line);
        }
    }
}

/// Launches and terminates nodes. Implementations must be idempotent for
/// `terminate` (an unknown cluster is already gone).
pub trait Provisioner: Send + Sync {
    /// Starts a node; returns once the processes/instances are started (the
    /// agent registers on its own later). Progress goes to `log`.
    fn launch(&self, spec: LaunchSpec, log: JobLog) -> BoxFuture<'_, Result<LaunchHandle, ProvisionError>>;
    /// Stops a node and releases everything it holds.
    fn terminate<'a>(&'a self, cluster_name: &'a str, log: JobLog) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Names of the clusters this provisioner manages that still exist
    /// (only names starting with `cic-` for shared backends).
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ProvisionError>>;
}
