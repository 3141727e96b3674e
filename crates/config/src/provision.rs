//! Settings of the node provisioners (`serve --provisioner …`).

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
        Ok(ProvisionSettings {
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
    }
}
