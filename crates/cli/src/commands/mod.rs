//! Command implementations: load configuration, call the libraries, print.

pub(crate) mod admin_client;
mod config;
mod db;
mod demo;
mod engine_sim;
pub(crate) mod fleet;
mod node_agent;
mod serve;
mod skypilot;
mod storage;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crosslogic_config::{Config, LogFormat};
use crosslogic_db::Database;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::NodeAgent(args) = cli.command {
        init_logging(LogFormat::Text, "info");
        return node_agent::run(args).await;
    }
    if let Command::EngineSim(args) = cli.command {
        // The simulator needs none of the platform's configuration.
        init_logging(LogFormat::Text, "info");
        return engine_sim::run(args).await;
    }
    if let Command::Fleet(cmd) = cli.command {
        // Virtual time over trace files: no database, no configuration.
        return fleet::run(cmd);
    }
    if let Command::Admin(cmd) = cli.command {
        // An HTTP client of a running server: no database, no configuration.
        return admin_client::run(cmd).await;
    }
    let mut config = Config::from_env().context("invalid configuration")?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn,crosslogic_db=info",
    };
    init_logging(config.log_format, default_filter);
    match cli.command {
        Command::Serve(args) => serve::run(config, args).await,
        Command::Db(cmd) => db::run(&config, cmd).await,
        Command::Config(cmd) => config::run(&config, cmd),
        Command::Skypilot(cmd) => skypilot::run(&config, cmd).await,
        Command::Storage(cmd) => storage::run(&config, cmd).await,
        Command::EngineSim(_) | Command::Admin(_) | Command::NodeAgent(_) | Command::Fleet(_) => {
            unreachable!("handled before configuration is read")
        }
    }
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the configured database (starting the embedded one if needed).
async fn open_db(config: &Config, wait: Duration) -> anyhow::Result<Database> {
    Ok(Database::open(&config.database, &config.data_dir, config.pg_bin.as_deref(), wait).await?)
}

/// Asks the user to type the database name to confirm a destructive action.
/// Without a terminal (scripts, CI) it refuses and points at `--yes`.
fn confirm(action: &str, expected: &str) -> anyhow::Result<()> {
    confirm_typing(action, "the database name", expected)
}

/// Asks the user to type `expected` (described as `what`, e.g. "the key
/// id") to confirm a destructive action. Without a terminal (scripts, CI)
/// it refuses and points at `--yes`.
fn confirm_typing(action: &str, what: &str, expected: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!("refusing to {action} without confirmation: no terminal to ask on; pass --yes to confirm");
    }
    let mut err = std::io::stderr();
    write!(err, "This will {action}.\nType {what} ({expected}) to confirm: ")?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != expected {
        anyhow::bail!("confirmation did not match; nothing was changed");
    }
    Ok(())
}
