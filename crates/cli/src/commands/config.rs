//! `crosslogic config check`.

use std::process::ExitCode;

use crosslogic_config::Config;

use crate::cli::ConfigCommand;
use crate::output;

pub fn run(config: &Config, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check => {
            output::line("configuration is valid; effective values (secrets redacted):");
            let rows: Vec<Vec<String>> = config.report().into_iter().map(|(k, v)| vec![k, v]).collect();
            output::table(&["setting", "value"], &rows);
            Ok(ExitCode::SUCCESS)
        }
    }
}
