//! Settings of the node provisioners (`serve --provisioner …`).

use std::time::Duration;

use secrecy::SecretString;

use crate::{parse, ConfigError};

/// Clouds SkyPilot may launch on, as our provider names.
pub const SKYPILOT_CLOUDS: &[&str] = &["aws", "gcp", "azure", "oci"];

/// How nodes are launched and how they call back.
#[derive(Debug, Clone)]
pub struct ProvisionSettings {
    /// URL node agents use to reach this control plane (`CONTROL_PLANE_URL`).
    /// Required for cloud nodes; local nodes use the listen address.
    pub control_plane_url: Option<String>,
    /// SkyPilot API server (`SKYPILOT_API_SERVER_URL`); unset = the `sky` CLI.
    pub skypilot_api_server_url: Option<String>,
    /// Its service-account token (`SKYPILOT_API_SERVER_TOKEN`).
    pub skypilot_api_server_token: Option<SecretString>,
    /// Clouds to launch on (`SKYPILOT_CLOUDS`, default `aws,gcp,azure`).
    pub skypilot_clouds: Vec<String>,
    /// Boot disk of cloud nodes in GB (`SKYPILOT_DISK_SIZE_GB`, default 256).
    pub skypilot_disk_size_gb: u32,
    /// vLLM version installed on cloud nodes (`VLLM_VERSION`; unset = latest).
    pub vllm_version: Option<String>,
    /// In-flight + queued requests one replica should carry
    /// (`AUTOSCALE_TARGET_IN_FLIGHT`, default 8).
    pub autoscale_target_in_flight: u32,
    /// Load must stay above target this long before scaling up
    /// (`AUTOSCALE_UPSCALE_DELAY`, default 30s).
    pub autoscale_upscale_delay: Duration,
    /// …and below it this long before scaling down
    /// (`AUTOSCALE_DOWNSCALE_DELAY`, default 10m).
    pub autoscale_downscale_delay: Duration,
    /// A draining node is terminated after this even if busy
    /// (`NODE_DRAIN_TIMEOUT`, default 10m).
    pub node_drain_timeout: Duration,
    /// Time between reconciler passes (`RECONCILE_INTERVAL`, default 2s).
    pub reconcile_interval: Duration,
}

fn http_url(var: &str, value: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(value)
        .map_err(|e| ConfigError::new(var, format!("not a URL ({e}): expected http(s)://host:port")))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(value.trim_end_matches('/').to_owned()),
        _ => Err(ConfigError::new(
            var,
            format!("invalid value {value:?}: expected http(s)://host:port"),
        )),
    }
}

impl ProvisionSettings {
    pub(crate) fn from_vars<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<ProvisionSettings, ConfigError> {
        let control_plane_url = get("CONTROL_PLANE_URL")
            .map(|v| http_url("CONTROL_PLANE_URL", v))
            .transpose()?;
        let skypilot_api_server_url = get("SKYPILOT_API_SERVER_URL")
            .map(|v| http_url("SKYPILOT_API_SERVER_URL", v))
            .transpose()?;
        let skypilot_api_server_token = get("SKYPILOT_API_SERVER_TOKEN").map(|v| SecretString::from(v.to_owned()));
        let skypilot_clouds = match get("SKYPILOT_CLOUDS") {
            None => vec!["aws".into(), "gcp".into(), "azure".into()],
            Some(v) => {
                let mut out: Vec<String> = Vec::new();
                for c in v
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty())
                {
                    if !SKYPILOT_CLOUDS.contains(&c.as_str()) {
                        return Err(ConfigError::new(
                            "SKYPILOT_CLOUDS",
                            format!("unknown cloud {c:?}: expected a comma-separated list of aws, gcp, azure, oci"),
                        ));
                    }
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
                if out.is_empty() {
                    return Err(ConfigError::new(
                        "SKYPILOT_CLOUDS",
                        "empty: name at least one of aws, gcp, azure, oci",
                    ));
                }
                out
            }
        };
        let skypilot_disk_size_gb = match get("SKYPILOT_DISK_SIZE_GB") {
            Some(v) => parse::u32_in("SKYPILOT_DISK_SIZE_GB", v, 20, 65_536)?,
            None => 256,
        };
        let duration = |var: &str, default: Duration| -> Result<Duration, ConfigError> {
            get(var).map_or(Ok(default), |v| parse::duration_var(var, v))
        };
        let reconcile_interval = duration("RECONCILE_INTERVAL", Duration::from_secs(2))?;
        if reconcile_interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "RECONCILE_INTERVAL",
                "too short: use at least 100ms (default 2s)",
            ));
        }
        Ok(ProvisionSettings {
            autoscale_target_in_flight: match get("AUTOSCALE_TARGET_IN_FLIGHT") {
                Some(v) => parse::u32_in("AUTOSCALE_TARGET_IN_FLIGHT", v, 1, 100_000)?,
                None => 8,
            },
            autoscale_upscale_delay: duration("AUTOSCALE_UPSCALE_DELAY", Duration::from_secs(30))?,
            autoscale_downscale_delay: duration("AUTOSCALE_DOWNSCALE_DELAY", Duration::from_secs(600))?,
            node_drain_timeout: duration("NODE_DRAIN_TIMEOUT", Duration::from_secs(600))?,
            reconcile_interval,
            control_plane_url,
            skypilot_api_server_url,
            skypilot_api_server_token,
            skypilot_clouds,
            skypilot_disk_size_gb,
            vllm_version: get("VLLM_VERSION").map(str::to_owned),
        })
    }

    /// `(name, value)` lines for `config check`, secrets redacted.
    pub(crate) fn report(&self, out: &mut Vec<(String, String)>) {
        let or = |v: &Option<String>, unset: &str| v.clone().unwrap_or_else(|| unset.to_owned());
        out.push((
            "CONTROL_PLANE_URL".into(),
            or(&self.control_plane_url, "(unset: local nodes only)"),
        ));
        out.push((
            "SKYPILOT_API_SERVER_URL".into(),
            or(&self.skypilot_api_server_url, "(unset: the sky CLI)"),
        ));
        out.push((
            "SKYPILOT_API_SERVER_TOKEN".into(),
            if self.skypilot_api_server_token.is_some() {
                "(set, redacted)".into()
            } else {
                "(unset)".into()
            },
        ));
        out.push(("SKYPILOT_CLOUDS".into(), self.skypilot_clouds.join(",")));
        out.push(("SKYPILOT_DISK_SIZE_GB".into(), self.skypilot_disk_size_gb.to_string()));
        out.push(("VLLM_VERSION".into(), or(&self.vllm_version, "(latest)")));
        let d = |d: Duration| humantime::format_duration(d).to_string();
        out.push((
            "AUTOSCALE_TARGET_IN_FLIGHT".into(),
            self.autoscale_target_in_flight.to_string(),
        ));
        out.push(("AUTOSCALE_UPSCALE_DELAY".into(), d(self.autoscale_upscale_delay)));
        out.push(("AUTOSCALE_DOWNSCALE_DELAY".into(), d(self.autoscale_downscale_delay)));
        out.push(("NODE_DRAIN_TIMEOUT".into(), d(self.node_drain_timeout)));
        out.push(("RECONCILE_INTERVAL".into(), d(self.reconcile_interval)));
    }
}
