//! What the agent needs to know: where the control plane and the engine are,
//! how the node identifies itself, and which cloud's metadata service announces
//! spot preemption. Built once by the caller (the CLI), immutable afterwards.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use uuid::Uuid;

/// How long the agent waits for the engine's `/health` by default: loading a
/// large model onto the GPUs takes minutes.
pub const DEFAULT_ENGINE_START_TIMEOUT: Duration = Duration::from_secs(600);

/// How often the metadata service is polled by default (AWS recommends every
/// 5 s; a notice comes about two minutes before the instance goes away).
pub const DEFAULT_PREEMPTION_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The agent's configuration.
///
/// `Debug` never shows [`AgentConfig::token`].
#[derive(Clone)]
pub struct AgentConfig {
    /// Base URL of the control plane, e.g. `http://10.0.0.2:8080`
    /// (`CROSSLOGIC_CONTROL_URL`).
    pub control_url: String,
    /// The per-node credential (launched nodes) or the operator's registration
    /// token (hand-added nodes). Sent as a bearer token, never logged.
    pub token: String,
    /// Set for nodes the control plane launched: it created the node row and
    /// issued [`AgentConfig::token`] for it.
    pub node_id: Option<Uuid>,
    /// Where the engine listens locally, e.g. `http://127.0.0.1:8000`: the
    /// agent reads `/health` and `/metrics` there.
    pub engine_url: String,
    /// The endpoint the gateway should route to, recorded at registration.
    pub advertise_url: String,
    /// Served model name, for registration with a registration token; when
    /// unset, the agent asks the engine (`GET /v1/models`).
    pub model: Option<String>,
    /// Region code, for registration with a registration token.
    pub region: Option<String>,
    /// GPU type, for registration with a registration token.
    pub gpu_type: Option<String>,
    /// GPU count, for registration with a registration token.
    pub gpu_count: Option<u32>,
    /// The node's private IP address, if known.
    pub internal_ip: Option<String>,
    /// The cloud instance id, if any.
    pub external_id: Option<String>,
    /// Watch the cloud's metadata service for spot preemption notices.
    pub preemption: Option<PreemptionConfig>,
    /// How long to wait for the engine's `/health` to answer 200 before
    /// registering.
    pub engine_start_timeout: Duration,
}

impl AgentConfig {
    /// A configuration with the required values and defaults for the rest: no
    /// node id (registration-token flow), no preemption watcher, a 10-minute
    /// engine start timeout.
    pub fn new(
        control_url: impl Into<String>,
        token: impl Into<String>,
        engine_url: impl Into<String>,
        advertise_url: impl Into<String>,
    ) -> AgentConfig {
        AgentConfig {
            control_url: control_url.into(),
            token: token.into(),
            node_id: None,
            engine_url: engine_url.into(),
            advertise_url: advertise_url.into(),
            model: None,
            region: None,
            gpu_type: None,
            gpu_count: None,
            internal_ip: None,
            external_id: None,
            preemption: None,
            engine_start_timeout: DEFAULT_ENGINE_START_TIMEOUT,
        }
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("control_url", &self.control_url)
            .field("token", &"[redacted]")
            .field("node_id", &self.node_id)
            .field("engine_url", &self.engine_url)
            .field("advertise_url", &self.advertise_url)
            .field("model", &self.model)
            .field("region", &self.region)
            .field("gpu_type", &self.gpu_type)
            .field("gpu_count", &self.gpu_count)
            .field("internal_ip", &self.internal_ip)
            .field("external_id", &self.external_id)
            .field("preemption", &self.preemption)
            .field("engine_start_timeout", &self.engine_start_timeout)
            .finish()
    }
}

/// The cloud whose metadata service announces preemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// EC2 spot: `spot/instance-action` through IMDSv2.
    Aws,
    /// GCE spot / preemptible: `instance/preempted`.
    Gcp,
    /// Azure spot VMs: scheduled events of type `Preempt`.
    Azure,
}

impl Cloud {
    /// The provider name the control plane expects (`aws`, `gcp`, `azure`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
        }
    }

    /// The metadata service's base URL on that cloud.
    pub fn default_metadata_url(self) -> &'static str {
        match self {
            Cloud::Aws | Cloud::Azure => "http://169.254.169.254",
            Cloud::Gcp => "http://metadata.google.internal",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cloud name that is not `aws`, `gcp` or `azure`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cloud {0:?}: expected aws, gcp or azure")]
pub struct UnknownCloud(pub String);

impl FromStr for Cloud {
    type Err = UnknownCloud;

    /// `aws`, `gcp` (or `google`) and `azure`, in any case.
    fn from_str(s: &str) -> Result<Cloud, UnknownCloud> {
        match s.trim().to_ascii_lowercase().as_str() {
            "aws" => Ok(Cloud::Aws),
            "gcp" | "google" => Ok(Cloud::Gcp),
            "azure" => Ok(Cloud::Azure),
            _ => Err(UnknownCloud(s.to_owned())),
        }
    }
}

/// Where and how often to look for a preemption notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreemptionConfig {
    /// Which metadata protocol to speak.
    pub cloud: Cloud,
    /// Base URL of the metadata service (no trailing path); tests point it at
    /// a stub.
    pub metadata_url: String,
    /// Time between two polls.
    pub poll_interval: Duration,
}

impl PreemptionConfig {
    /// The cloud's own metadata service, polled every 5 s.
    pub fn new(cloud: Cloud) -> PreemptionConfig {
        PreemptionConfig {
            cloud,
            metadata_url: cloud.default_metadata_url().to_owned(),
            poll_interval: DEFAULT_PREEMPTION_POLL_INTERVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token() {
        let cfg = AgentConfig::new("http://cp", "s3cret-token", "http://engine", "http://node:8000");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret-token"));
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn clouds_parse_and_default_to_their_metadata_services() {
        assert_eq!("AWS".parse::<Cloud>(), Ok(Cloud::Aws));
        assert_eq!("gcp".parse::<Cloud>(), Ok(Cloud::Gcp));
        assert_eq!(" azure ".parse::<Cloud>(), Ok(Cloud::Azure));
        assert!("oracle".parse::<Cloud>().is_err());
        assert_eq!(PreemptionConfig::new(Cloud::Aws).metadata_url, "http://169.254.169.254");
        assert_eq!(
            PreemptionConfig::new(Cloud::Gcp).metadata_url,
            "http://metadata.google.internal"
        );
        assert_eq!(
            PreemptionConfig::new(Cloud::Azure).metadata_url,
            "http://169.254.169.254"
        );
        assert_eq!(Cloud::Azure.to_string(), "azure");
    }
}
