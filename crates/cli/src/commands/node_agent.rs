//! `crosslogic node-agent`.

use std::process::ExitCode;

use anyhow::Context;
use crosslogic_node::agent::{self, AgentConfig, AgentExit, Cloud, PreemptionConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::NodeAgentArgs;

pub async fn run(args: NodeAgentArgs) -> anyhow::Result<ExitCode> {
    // A secret: from the environment only (SkyPilot passes it as a secret env var).
    let token = std::env::var("CROSSLOGIC_NODE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .context("CROSSLOGIC_NODE_TOKEN is not set: export the node's credential (or the registration token)")?;
    let mut cfg = AgentConfig::new(args.control_url, token, args.engine_url, args.advertise_url);
    cfg.node_id = args.node_id;
    cfg.model = args.model;
    cfg.region = args.region;
    cfg.gpu_type = args.gpu_type;
    cfg.gpu_count = args.gpu_count;
    cfg.internal_ip = args.internal_ip;
    cfg.external_id = args.external_id;
    cfg.engine_start_timeout = args.engine_start_timeout;
    if let Some(cloud) = args.cloud {
        let cloud: Cloud = cloud.parse().map_err(|e| anyhow::anyhow!("--cloud: {e}"))?;
        let mut p = PreemptionConfig::new(cloud);
        if let Some(url) = args.metadata_url {
            p.metadata_url = url;
        }
        cfg.preemption = Some(p);
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    // Owned by the shutdown token: SIGTERM/SIGINT start the deregistration.
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        stop.cancel();
    });
    match agent::run(cfg, shutdown).await? {
        AgentExit::Stopped => Ok(ExitCode::SUCCESS),
        AgentExit::Removed => {
            tracing::warn!("the control plane removed this node; exiting");
            Ok(ExitCode::from(3))
        }
    }
}
