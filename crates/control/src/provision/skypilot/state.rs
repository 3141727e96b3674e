//! SkyPilot's own state in our PostgreSQL (`crosslogic skypilot
//! setup-state`): the `skypilot_state` database, the grants SkyPilot's role
//! needs, and SkyPilot's real `db:` config, without ever clobbering a
//! config file that holds anything else.

use std::path::{Path, PathBuf};

use crosslogic_config::ExternalDatabase;
use crosslogic_db::{maintenance, Database};
use secrecy::ExposeSecret;

/// What to set up.
#[derive(Debug, Clone)]
pub struct StateSetup {
    /// The database SkyPilot keeps its state in (letters, digits, `_`).
    pub database: String,
    /// SkyPilot's config file (usually `~/.sky/config.yaml`).
    pub config_path: PathBuf,
    /// Another role (SkyPilot's own) to grant the database to.
    pub grant_to: Option<String>,
    /// Replace a different `db:` already in the config file.
    pub force: bool,
    /// The SkyPilot to check and run `sky status` with; `None` = `sky` on
    /// PATH (when there is none, say how to install it and stop there).
    pub sky: Option<PathBuf>,
    /// Only set up the database and config; do not check SkyPilot.
    pub no_verify: bool,
}

/// Why the setup stopped (nothing after the failing step was changed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(String);

impl SetupError {
    pub(crate) fn new(message: impl Into<String>) -> SetupError {
        SetupError(message.into())
    }

    fn at(what: &str, err: impl std::fmt::Display) -> SetupError {
        SetupError(format!("{what}: {err}"))
    }
}

/// SkyPilot's connection URL (SQLAlchemy form; password percent-encoded,
/// or `****` when `redacted`).
pub fn connection_url(target: &ExternalDatabase, redacted: bool) -> Result<String, SetupError> {
    let bad = |part: &str| SetupError(format!("cannot put the database {part} into a URL"));
    let mut url = url::Url::parse("postgresql://localhost/").map_err(|e| SetupError::at("url", e))?;
    let socket = target.host.starts_with('/');
    if !socket {
        url.set_host(Some(&target.host)).map_err(|_| bad("host"))?;
        url.set_port(Some(target.port)).map_err(|()| bad("port"))?;
    }
    url.set_username(&target.user).map_err(|()| bad("user"))?;
    if let Some(pw) = &target.password {
        let pw = if redacted { "****" } else { pw.expose_secret() };
        url.set_password(Some(pw)).map_err(|()| bad("password"))?;
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

/// Creates the database, grants it, checks SkyPilot's role can create
/// tables there, and points SkyPilot's config at it. Each step is reported
/// to `progress` as it is done.
pub async fn setup_state(db: &Database, req: &StateSetup, progress: &mut dyn FnMut(String)) -> Result<(), SetupError> {
    let database = req.database.as_str();
    if database.is_empty() || !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(SetupError("--database must be letters, digits and underscores".into()));
    }
    let target = db.target().with_dbname(database);
    let url = connection_url(&target, false)?;
    let shown = connection_url(&target, true)?;

    // Refuse before changing anything if the config file cannot take `db:`.
    let existing = std::fs::read_to_string(&req.config_path).ok();
    let plan = plan_config(existing.as_deref(), &url, req.force)?;

    let created = crosslogic_db::ensure_database(db.pool(), database)
        .await
        .map_err(|e| SetupError::at("creating the database", e))?;
    progress(if created {
        format!("created database {database}")
    } else {
        format!("database {database} already exists")
    });
    maintenance::grant_all_on_database(db.pool(), database, &target.user)
        .await
        .map_err(|e| SetupError::at("granting the database", e))?;
    let state = crosslogic_db::pool::connect(&target, &Default::default())
        .await
        .map_err(|e| SetupError::at(&format!("cannot connect to {shown}"), e))?;
    if let Some(role) = &req.grant_to {
        maintenance::grant_all_on_database(db.pool(), database, role)
            .await
            .map_err(|e| SetupError::at("granting the database", e))?;
        maintenance::grant_schema_create(&state, role)
            .await
            .map_err(|e| SetupError::at("granting the schema", e))?;
        progress(format!("granted all privileges on {database} to {role}"));
    }
    maintenance::can_create_tables(&state)
        .await
        .map_err(|e| SetupError::at("SkyPilot's role cannot create tables there", e))?;
    state.close().await;
    progress(format!("verified: {shown} accepts connections and table creation"));

    let path = req.config_path.display();
    match plan {
        ConfigPlan::AlreadySet => progress(format!("{path} already points SkyPilot at it")),
        ConfigPlan::Write => {
            write_private(
                &req.config_path,
                &format!("# Written by `crosslogic skypilot setup-state`.\ndb: {url}\n"),
            )?;
            progress(format!("wrote {path} (db: {shown})"));
        }
    }
    progress(format!(
        "or, without the file: export SKYPILOT_DB_CONNECTION_URI='{shown}' (with the real password)"
    ));
    if req.no_verify {
        progress("then `sky status` creates SkyPilot's tables in it".to_owned());
        return Ok(());
    }
    let Some(sky) = req.sky.clone().or_else(super::verify::find_sky) else {
        progress(
            "SkyPilot is not installed here (no `sky` on PATH): install it with \
             `pip install skypilot 'psycopg[binary]'` (psycopg lets it use PostgreSQL), \
             then `sky status` creates its tables"
                .to_owned(),
        );
        return Ok(());
    };
    let python = super::verify::check_driver(&sky).await?;
    progress(format!(
        "SkyPilot at {} (Python {python}) has the psycopg driver",
        sky.display()
    ));
    progress("running the seed's verification: `sky status` (it creates SkyPilot's tables)…".to_owned());
    super::verify::sky_status(&sky, &url, std::time::Duration::from_secs(240)).await?;
    let state = crosslogic_db::pool::connect(&target, &Default::default())
        .await
        .map_err(|e| SetupError::at(&format!("cannot connect to {shown}"), e))?;
    let tables: Vec<String> = maintenance::tables(&state)
        .await
        .map_err(|e| SetupError::at("listing SkyPilot's tables", e))?
        .into_iter()
        .map(|t| t.table_name)
        .collect();
    state.close().await;
    if !tables.iter().any(|t| t == "clusters") {
        return Err(SetupError(format!(
            "`sky status` ran but created no SkyPilot tables in {database}: a SkyPilot API server already running \
             for this user keeps another state database; restart it with `sky api stop` and run this command again"
        )));
    }
    progress(format!(
        "SkyPilot created its tables in {database}: {} (the seed's `cluster_status`/`task_history` are not SkyPilot's names)",
        tables.join(", ")
    ));
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum ConfigPlan {
    Write,
    AlreadySet,
}

/// Decides what to do with an existing SkyPilot config file. SkyPilot
/// allows no other key next to `db:`, so a file with other settings is
/// left alone.
fn plan_config(existing: Option<&str>, url: &str, force: bool) -> Result<ConfigPlan, SetupError> {
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
        return Err(SetupError(
            "the SkyPilot config file has other settings, and SkyPilot allows no other key next to `db:`; \
             leave it as it is and set SKYPILOT_DB_CONNECTION_URI instead, or pass --config with another file"
                .into(),
        ));
    }
    match db_line {
        Some(l) if l.trim_start_matches("db:").trim().trim_matches(['"', '\'']) == url => Ok(ConfigPlan::AlreadySet),
        Some(_) if !force => Err(SetupError(
            "the SkyPilot config file already sets a different `db:`; pass --force to replace it".into(),
        )),
        _ => Ok(ConfigPlan::Write),
    }
}

/// Writes a file readable only by its owner (it holds a password), atomically.
fn write_private(path: &Path, text: &str) -> Result<(), SetupError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |what: &Path, e: std::io::Error| SetupError(format!("cannot write {}: {e}", what.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    }
    let tmp = path.with_extension("yaml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| failed(&tmp, e))?;
    f.write_all(text.as_bytes()).map_err(|e| failed(&tmp, e))?;
    f.sync_all().map_err(|e| failed(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| failed(path, e))?;
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
