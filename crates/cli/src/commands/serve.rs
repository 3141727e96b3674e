//! `crosslogic serve`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crosslogic_config::Config;
use crosslogic_gateway::GatewayConfig;
use crosslogic_server::{App, Role, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;

pub async fn run(mut config: Config, mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let role: Role = args.role.parse().map_err(anyhow::Error::msg)?;
    if args.demo && role != Role::All {
        anyhow::bail!(
            "--demo runs the whole platform in one process: drop --role {}",
            role.as_str()
        );
    }
    if role == Role::Gateway && args.provisioner.is_some() {
        anyhow::bail!(
            "--provisioner launches nodes from the control plane: run it with --role control (or all), not gateway"
        );
    }
    let mut token_file = None;
    if args.demo {
        match args.provisioner.as_deref() {
            None => args.provisioner = Some("local".into()),
            Some("local") => {}
            Some(other) => {
                anyhow::bail!("--demo runs its nodes locally; it cannot be combined with --provisioner {other}")
            }
        }
        if config.admin_api_token.is_none() {
            let (token, path, created) = super::demo::admin_token(&config.data_dir)?;
            if created {
                tracing::info!(file = %path.display(), "demo: operator token created");
            }
            config.admin_api_token = Some(token);
            token_file = Some(path);
        }
    }
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;

    // Bind first: a taken port fails before the database is touched.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (LISTEN_ADDR / --listen)", config.listen))?;
    let db = super::open_db(&config, Duration::from_secs(30)).await?;
    if db.is_embedded() {
        tracing::info!(data_dir = %config.data_dir.display(), "using the embedded PostgreSQL");
    }
    if args.skip_migrations {
        // Not migrating is a choice; serving a database that lost part of
        // its schema is not.
        crosslogic_db::migrate::check_drift(db.pool()).await?;
    } else {
        let applied = crosslogic_db::migrate::migrate(db.pool()).await?;
        tracing::info!(applied = ?applied, "database schema is current");
    }
    let demo = if args.demo {
        let demo = crosslogic_control::demo::bootstrap(db.pool()).await?;
        tracing::info!(tenant_id = %demo.tenant_id, created = demo.created, "demo platform ready; nodes launching");
        Some(demo)
    } else {
        None
    };
    let server_config = ServerConfig {
        role,
        shutdown_timeout: config.shutdown_timeout,
        admin_token: config.admin_api_token.clone(),
        gateway: gateway_config(&config),
        node_registration_token: config.node_registration_token.clone(),
        health: crosslogic_control::health::HealthConfig {
            unhealthy_after: config.node_unhealthy_after,
            dead_after: config.node_dead_after,
            interval: (config.node_unhealthy_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(5)),
        },
        reconciler: reconciler(&config, &args, listener.local_addr()?)?,
        notify: Some(crosslogic_notify::NotifyConfig::new(config.notify.clone())),
        billing: Some(crosslogic_billing::BillingConfig::new(config.billing.clone())),
        console: crosslogic_console::ConsoleSettings {
            idle_timeout: config.console_idle_timeout,
            session_lifetime: config.console_session_lifetime,
            ..Default::default()
        },
    };
    let addr = listener.local_addr()?;
    let app = App::new(listener, db, shutdown, server_config);
    tracing::info!(addr = %addr, role = role.as_str(), "crosslogic is serving");
    // The banner waits for the demo's nodes; it ends with the server.
    let banner = match (demo, &config.admin_api_token) {
        (Some(demo), Some(token)) => {
            let base = format!("http://{}", display_addr(addr));
            let file = token_file.unwrap_or_else(|| "(ADMIN_API_TOKEN from the environment)".into());
            Some(tokio::spawn(super::demo::announce(
                base,
                token.clone(),
                file,
                demo,
                Duration::from_secs(120),
            )))
        }
        _ => None,
    };
    let result = app.run().await;
    if let Some(b) = banner {
        b.abort();
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM starts the graceful shutdown; a second one is left to
/// the default handler only after shutdown completes.
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    // Owned by the shutdown token: it ends as soon as shutdown begins.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
            () = shutdown.cancelled() => return,
        }
        shutdown.cancel();
    });
    Ok(())
}

/// The gateway's settings from the process configuration.
fn gateway_config(config: &Config) -> GatewayConfig {
    use crosslogic_gateway::limits::{FailureMode, LimitsConfig};
    use secrecy::ExposeSecret;
    let mut g = GatewayConfig::new(&config.data_dir);
    let l = &config.limits;
    g.limits = LimitsConfig {
        global_requests_per_min: l.global_requests_per_min,
        global_tokens_per_min: l.global_tokens_per_min,
        global_concurrency: l.global_concurrency,
        default_max_tokens: l.default_max_tokens,
        lease_ttl: l.lease_ttl,
        failure_mode: if l.fail_open {
            FailureMode::Open
        } else {
            FailureMode::Closed
        },
    };
    g.redis_url = config.redis_url.as_ref().map(|u| u.expose_secret().to_owned());
    g.notify = crosslogic_notify::NotifyApi::new(&config.notify).ok();
    g.billing = crosslogic_billing::BillingApi::new(&config.billing);
    g.usage_journal = config.usage_journal;
    g
}

/// The reconciler with the chosen provisioner, if any.
fn reconciler(
    config: &Config,
    args: &ServeArgs,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Option<crosslogic_server::ReconcilerSetup>> {
    use crosslogic_control::provision::{LocalProvisioner, SkyPilotConfig, SkyPilotProvisioner};
    use crosslogic_control::reconcile::{Fleet, ReconcileConfig};
    let Some(kind) = args.provisioner.as_deref() else {
        return Ok(None);
    };
    let binary = std::env::current_exe().context("cannot find the crosslogic executable")?;
    let p = &config.provision;
    let (provisioner, cfg): (
        std::sync::Arc<dyn crosslogic_control::provision::Provisioner>,
        ReconcileConfig,
    ) = match kind {
        "local" => {
            // Local nodes reach the control plane on loopback when it listens everywhere.
            let host = if addr.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            };
            let control_url = p
                .control_plane_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", std::net::SocketAddr::new(host, addr.port())));
            let dir = args.nodes_dir.clone().unwrap_or_else(|| config.data_dir.join("nodes"));
            let mut provisioner = LocalProvisioner::new(binary, dir, args.engine_command.clone());
            provisioner.agent_args = args.node_agent_arg.clone();
            (
                std::sync::Arc::new(provisioner),
                ReconcileConfig::for_fleet(Fleet::Local, control_url),
            )
        }
        "skypilot" => {
            let control_url = p.control_plane_url.clone().context(
                "CONTROL_PLANE_URL is not set: cloud nodes need the URL at which they reach this control plane \
                     (e.g. https://control.example.com)",
            )?;
            let mut sky = SkyPilotConfig::new(config.data_dir.join("skypilot"), binary);
            sky.api_server_url = p.skypilot_api_server_url.clone();
            sky.api_server_token = p.skypilot_api_server_token.clone();
            sky.disk_size_gb = p.skypilot_disk_size_gb;
            sky.vllm_version = p.vllm_version.clone();
            sky.juicefs_meta_url = config.juicefs_redis_url.clone();
            let provisioner = SkyPilotProvisioner::new(sky).context("SkyPilot provisioner")?;
            let clouds = p
                .skypilot_clouds
                .iter()
                .map(|c| c.parse::<crosslogic_core::Provider>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("SKYPILOT_CLOUDS: {e}"))?;
            (
                std::sync::Arc::new(provisioner),
                ReconcileConfig::for_fleet(Fleet::Cloud(clouds), control_url),
            )
        }
        other => anyhow::bail!("unknown provisioner {other:?}: expected local or skypilot"),
    };
    let mut cfg = cfg;
    cfg.policy.target_in_flight_per_replica = f64::from(p.autoscale_target_in_flight);
    cfg.policy.upscale_delay = p.autoscale_upscale_delay;
    cfg.policy.downscale_delay = p.autoscale_downscale_delay;
    cfg.drain_timeout = p.node_drain_timeout;
    cfg.degraded_after = config.notify.deployment_degraded_after;
    Ok(Some(crosslogic_server::ReconcilerSetup {
        provisioner,
        config: cfg,
        interval: p.reconcile_interval,
    }))
}

/// The address clients use: loopback when listening on every interface.
fn display_addr(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    }
}
