//! Provisioners: what launches and terminates a GPU node for the reconciler.
//!
//! A node is one cluster (`cluster_name`); the provisioner starts the engine
//! and the node agent on it, and the agent registers with the control plane
//! using the per-node credential of [`LaunchSpec::node_token`].

use std::future::Future;
use std::pin::Pin;

use secrecy::SecretString;
use uuid::Uuid;

pub mod local;

pub use local::LocalProvisioner;

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
    pub model: String,
    pub region: Option<String>,
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

/// Launches and terminates nodes. Implementations must be idempotent for
/// `terminate` (an unknown cluster is already gone).
pub trait Provisioner: Send + Sync {
    /// Starts a node; returns once the processes/instances are started (the
    /// agent registers on its own later).
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<LaunchHandle, ProvisionError>>;
    /// Stops a node and releases everything it holds.
    fn terminate<'a>(&'a self, cluster_name: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Names of the clusters still alive.
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ProvisionError>>;
}
