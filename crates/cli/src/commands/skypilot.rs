//! `crosslogic skypilot setup-state`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crosslogic_config::{Config, ExternalDatabase};
use crosslogic_db::maintenance;
use secrecy::ExposeSecret;

use crate::cli::SkypilotCommand;
use crate::output;

pub async fn run(config: &Config, cmd: SkypilotCommand) -> anyhow::Result<ExitCode> {
    let SkypilotCommand::SetupState {
        database,
        config: path,
        grant_to,
        force,
    } = cmd;
    let path = match path {
        Some(p) => p,
        None => default_config_path()?,
    };
    let db = super::open_db(config, Duration::from_secs(5)).await?;
    let result = setup(&db, &database, &path, grant_to.as_deref(), force).await;
    db.close().await.context("closing the database")?;
    result
}

fn default_config_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --config PATH")?;
    Ok(PathBuf::from(home).join(".sky").join("config.yaml"))
}

/// SkyPilot's connection URL (SQLAlchemy form; password percent-encoded).
fn skypilot_url(target: &ExternalDatabase, redacted: bool) -> anyhow::Result<String> {
    let mut url = url::Url::parse("postgresql://localhost/").context("url")?;
    let socket = target.host.starts_with('/');
    if !socket {
        url.set_host(Some(&target.host)).context("host")?;
        url.set_port(Some(target.port)).map_err(|()| anyhow::anyhow!("port"))?;
    }
    url.set_username(&target.user).map_err(|()| anyhow::anyhow!("user"))?;
    if let Some(pw) = &target.password {
        let pw = if redacted { "****" } else { pw.expose_secret() };
        url.set_password(Some(pw)).map_err(|()| anyhow::anyhow!("password"))?;
    }
    url.set_path(&target.dbname);
    let mut text = url.to_string();
    if socket {
        // SQLAlchemy/psycopg take a Unix socket directory as ?host=.
        text = text.replacen("@localhost", "@", 1);
        text.push_str(&format!("?host={}&port={}", target.host, target.port));
    }
    Ok(text)
}

async fn setup(
    db: &crosslogic_db::Database,
    database: &str,
    path: &Path,
    grant_to: Option<&str>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    if database.is_empty() || !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("--database must be letters, digits and underscores");
    }
    let target = db.target().with_dbname(database);
    let url = skypilot_url(&target, false)?;
    let shown = skypilot_url(&target, true)?;

    // Refuse before changing anything if the config file cannot take `db:`.
    let existing = std::fs::read_to_string(path).ok();
    let plan = plan_config(existing.as_deref(), &url, force)?;

    if crosslogic_db::ensure_database(db.pool(), database).await? {
        output::line(&format!("created database {database}"));
    } else {
        output::line(&format!("database {database} already exists"));
    }
    maintenance::grant_all_on_database(db.pool(), database, &target.user).await?;
    let state = crosslogic_db::pool::connect(&target, &Default::default())
        .await
        .with_context(|| format!("cannot connect to {shown}"))?;
    if let Some(role) = grant_to {
        maintenance::grant_all_on_database(db.pool(), database, role).await?;
        maintenance::grant_schema_create(&state, role).await?;
        output::line(&format!("granted all privileges on {database} to {role}"));
    }
    maintenance::can_create_tables(&state)
        .await
        .context("SkyPilot's role cannot create tables there")?;
    state.close().await;
    output::line(&format!("verified: {shown} accepts connections and table creation"));

    match plan {
        ConfigPlan::AlreadySet => output::line(&format!("{} already points SkyPilot at it", path.display())),
        ConfigPlan::Write => {
            write_private(
                path,
                &format!("# Written by `crosslogic skypilot setup-state`.\ndb: {url}\n"),
            )?;
            output::line(&format!("wrote {} (db: {shown})", path.display()));
        }
    }
    output::line(&format!(
        "or, without the file: export SKYPILOT_DB_CONNECTION_URI='{shown}' (with the real password)"
    ));
    output::line("then `sky status` creates SkyPilot's tables in it");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, PartialEq, Eq)]
enum ConfigPlan {
    Write,
    AlreadySet,
}

/// Decides what to do with an existing SkyPilot config file.
fn plan_config(existing: Option<&str>, url: &str, force: bool) -> anyhow::Result<ConfigPlan> {
    let Some(text) = existing else {
        return Ok(ConfigPlan::Write);
    };
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.trim().is_empty() && !l.trim_start().starts_with('#') && !l.starts_with(' ') && !l.starts_with('\t')
        })
        .collect();
    let db_line = keys.iter().find(|l| l.starts_with("db:"));
    if keys.iter().any(|l| !l.starts_with("db:")) {
        anyhow::bail!(
            "the SkyPilot config file has other settings, and SkyPilot allows no other key next to `db:`; \
             leave it as it is and set SKYPILOT_DB_CONNECTION_URI instead, or pass --config with another file"
        );
    }
    match db_line {
        Some(l) if l.trim_start_matches("db:").trim().trim_matches(['"', '\'']) == url => Ok(ConfigPlan::AlreadySet),
        Some(_) if !force => {
            anyhow::bail!("the SkyPilot config file already sets a different `db:`; pass --force to replace it")
        }
        _ => Ok(ConfigPlan::Write),
    }
}

/// Writes a file readable only by its owner (it holds a password).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("yaml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_config_is_never_clobbered() {
        let url = "postgresql://u:p@h:5432/skypilot_state";
        assert_eq!(plan_config(None, url, false).unwrap(), ConfigPlan::Write);
        assert_eq!(
            plan_config(Some(&format!("db: {url}\n")), url, false).unwrap(),
            ConfigPlan::AlreadySet
        );
        assert_eq!(
            plan_config(Some("# only comments\n"), url, false).unwrap(),
            ConfigPlan::Write
        );
        assert!(plan_config(Some("db: postgresql://other/x\n"), url, false).is_err());
        assert_eq!(
            plan_config(Some("db: postgresql://other/x\n"), url, true).unwrap(),
            ConfigPlan::Write
        );
        let other = plan_config(Some("allowed_clouds:\n  - aws\n"), url, true)
            .unwrap_err()
            .to_string();
        assert!(other.contains("SKYPILOT_DB_CONNECTION_URI"), "{other}");
    }
}
