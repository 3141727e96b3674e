//! `crosslogic skypilot setup-state`: see
//! `crosslogic_control::provision::skypilot::state`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crosslogic_config::Config;
use crosslogic_control::provision::skypilot::state::{setup_state, StateSetup};

use crate::cli::SkypilotCommand;
use crate::output;

pub async fn run(config: &Config, cmd: SkypilotCommand) -> anyhow::Result<ExitCode> {
    let SkypilotCommand::SetupState {
        database,
        config: path,
        grant_to,
        force,
        sky,
        no_verify,
    } = cmd;
    let config_path = match path {
        Some(p) => p,
        None => default_config_path()?,
    };
    let db = super::open_db(config, Duration::from_secs(5)).await?;
    let req = StateSetup {
        database,
        config_path,
        grant_to,
        force,
        sky,
        no_verify,
    };
    let result = setup_state(&db, &req, &mut |line| output::line(&line)).await;
    db.close().await.context("closing the database")?;
    result?;
    Ok(ExitCode::SUCCESS)
}

fn default_config_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --config PATH")?;
    Ok(PathBuf::from(home).join(".sky").join("config.yaml"))
}
