//! `crosslogic storage check`: see `crosslogic_control::provision::storage`.

use std::process::ExitCode;

use crosslogic_config::Config;
use crosslogic_control::provision::storage::{check_juicefs, FORMAT_HINT};

use crate::cli::StorageCommand;
use crate::output;

pub async fn run(config: &Config, cmd: StorageCommand) -> anyhow::Result<ExitCode> {
    let StorageCommand::Check = cmd;
    let Some(url) = &config.juicefs_redis_url else {
        anyhow::bail!(
            "JUICEFS_REDIS_URL is not set: export JUICEFS_REDIS_URL=redis://host:6379/1 (the seed's default)"
        );
    };
    let status = check_juicefs(url).await?;
    output::line(&format!("Redis at {} answers ({})", status.redis, status.pong));
    let Some(v) = status.volume else {
        output::error(&format!(
            "no JuiceFS volume is formatted in {}; {FORMAT_HINT}",
            status.redis
        ));
        return Ok(ExitCode::FAILURE);
    };
    output::line(&format!(
        "JuiceFS volume {:?}: storage {}, bucket {} (credentials not shown)",
        v.name, v.storage, v.bucket
    ));
    Ok(ExitCode::SUCCESS)
}
