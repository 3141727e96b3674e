//! `crosslogic engine-sim`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crosslogic_node::sim::{self, SimConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::EngineSimArgs;

pub async fn run(args: EngineSimArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.error_rate) {
        anyhow::bail!("--error-rate must be between 0.0 and 1.0");
    }
    if args.max_num_seqs == 0 {
        anyhow::bail!("--max-num-seqs must be at least 1");
    }
    let cfg = SimConfig {
        served_model_name: args.served_model_name,
        max_model_len: args.max_model_len,
        ttft: Duration::from_millis(args.ttft_ms),
        itl: Duration::from_millis(args.itl_ms),
        max_num_seqs: args.max_num_seqs,
        output_tokens: args.output_tokens,
        error_rate: args.error_rate,
        seed: args.seed,
        force_include_usage: args.enable_force_include_usage,
        embedding_dim: args.embedding_dim,
    };
    let addr = std::net::SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    // Owned by the shutdown token: ends when a signal arrives.
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        stop.cancel();
    });
    sim::serve(listener, cfg, shutdown).await.context("simulator failed")?;
    Ok(ExitCode::SUCCESS)
}
