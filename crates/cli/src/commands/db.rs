//! `crosslogic db …`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crosslogic_config::Config;
use crosslogic_db::maintenance::{self, SlowQueriesError};
use crosslogic_db::{backup, migrate, Database};
use serde_json::json;

use crate::cli::DbCommand;
use crate::output;

pub async fn run(config: &Config, cmd: DbCommand) -> anyhow::Result<ExitCode> {
    // Creating the database comes before there is one to open.
    if let DbCommand::Create {
        owner,
        name,
        admin_url,
        password_env,
    } = cmd
    {
        return create(&owner, &name, &admin_url, password_env.as_deref()).await;
    }
    let db = super::open_db(config, Duration::from_secs(5)).await?;
    let result = dispatch(&db, cmd).await;
    // Always stop the embedded server, even when the command failed.
    db.close().await.context("closing the database")?;
    result
}

async fn create(owner: &str, name: &str, admin_url: &str, password_env: Option<&str>) -> anyhow::Result<ExitCode> {
    let password = match password_env {
        Some(var) => {
            Some(secrecy::SecretString::from(std::env::var(var).with_context(|| {
                format!("--password-env {var}: the variable is not set")
            })?))
        }
        None => None,
    };
    let admin = crosslogic_db::setup::connect_admin(admin_url)
        .await
        .context("cannot connect with --admin-url (a superuser connection is needed)")?;
    let done = crosslogic_db::setup::create_owned_database(&admin, name, owner, password.as_ref())
        .await
        .context("creating the database")?;
    admin.close().await;
    if done.role_created {
        output::line(&format!("created role {owner}"));
    }
    if done.database_created {
        output::line(&format!("created database {name} owned by {owner}"));
    } else {
        output::line(&format!("database {name} exists; its owner is now {owner}"));
    }
    output::line(&format!(
        "next: DATABASE_URL=postgresql://{owner}:…@HOST:5432/{name} crosslogic db migrate"
    ));
    Ok(ExitCode::SUCCESS)
}

async fn dispatch(db: &Database, cmd: DbCommand) -> anyhow::Result<ExitCode> {
    let pool = db.pool();
    match cmd {
        DbCommand::Create { .. } => unreachable!("handled before the database is opened"),
        DbCommand::Migrate { repair } => {
            let applied = if repair {
                let (repaired, applied) = migrate::migrate_repair(pool).await?;
                for line in &repaired {
                    output::line(line);
                }
                if repaired.is_empty() {
                    output::line("no schema drift to repair");
                }
                applied
            } else {
                migrate::migrate(pool).await?
            };
            if applied.is_empty() {
                output::line(&format!("schema is up to date (version {})", migrate::latest_version()));
            } else {
                for m in migrate::MIGRATIONS.iter().filter(|m| applied.contains(&m.version)) {
                    output::line(&format!("applied {}", m.path()));
                }
            }
        }
        DbCommand::Status { json } => status(db, json).await?,
        DbCommand::Rollback { to, yes } => {
            if to < 0 || to > migrate::latest_version() {
                anyhow::bail!("--to must be between 0 and {}", migrate::latest_version());
            }
            let doomed: Vec<&str> = migrate::MIGRATIONS
                .iter()
                .filter(|m| m.version > to)
                .map(|m| m.name)
                .collect();
            if !yes {
                super::confirm(
                    &format!(
                        "reverse migrations {} and DELETE the data in their tables",
                        doomed.join(", ")
                    ),
                    &db.target().dbname,
                )?;
            }
            let done = migrate::rollback_to(pool, to).await?;
            if done.is_empty() {
                output::line(&format!("nothing to roll back: no applied migration above {to}"));
            }
            for v in done {
                output::line(&format!("rolled back version {v}"));
            }
        }
        DbCommand::Backup { file, database } => {
            let target = match &database {
                Some(name) => db.target().with_dbname(name),
                None => db.target().clone(),
            };
            let bytes = backup::backup(&target, db.tools_dir().as_deref(), &file).await?;
            output::line(&format!(
                "backed up {} to {} ({bytes} bytes of SQL)",
                target.dbname,
                file.display()
            ));
        }
        DbCommand::Restore { file, database, yes } => {
            if !file.is_file() {
                anyhow::bail!("backup file {} does not exist", file.display());
            }
            let target = match &database {
                Some(name) => db.target().with_dbname(name),
                None => db.target().clone(),
            };
            if !yes {
                super::confirm(
                    &format!(
                        "replace the contents of database {} with {}",
                        target.dbname,
                        file.display()
                    ),
                    &target.dbname,
                )?;
            }
            if crosslogic_db::ensure_database(pool, &target.dbname).await? {
                output::line(&format!("created database {}", target.dbname));
            }
            backup::restore(&target, db.tools_dir().as_deref(), &file).await?;
            output::line(&format!("restored {} into {}", file.display(), target.dbname));
        }
        DbCommand::Vacuum => {
            maintenance::vacuum_analyze(pool).await?;
            output::line("VACUUM ANALYZE done");
        }
        DbCommand::Stats { limit } => stats(db, limit).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(db: &Database, as_json: bool) -> anyhow::Result<()> {
    let pool = db.pool();
    let migrations = migrate::status(pool).await?;
    let tables = maintenance::tables(pool).await?;
    let size = maintenance::database_size(pool).await?;
    let applied: Vec<i32> = migrations
        .iter()
        .filter(|m| m.applied_at.is_some())
        .map(|m| m.version)
        .collect();
    let drift = crosslogic_db::drift::missing(pool, &applied).await?;
    if as_json {
        let doc = json!({ "database": db.target().dbname, "size": size, "migrations": migrations, "tables": tables, "drift": drift });
        output::line(&serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    output::line(&format!(
        "database {} ({})",
        db.target().redacted_url(),
        if db.is_embedded() { "embedded" } else { "external" }
    ));
    output::line("");
    let rows: Vec<Vec<String>> = migrations
        .iter()
        .map(|m| {
            let state = match (&m.applied_at, m.checksum_ok) {
                (None, _) => "pending".to_owned(),
                (Some(at), true) => format!("applied {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
                (Some(_), false) => "applied, FILE CHANGED since (checksum mismatch)".to_owned(),
            };
            vec![m.version.to_string(), m.name.clone(), state]
        })
        .collect();
    output::table(&["version", "migration", "state"], &rows);
    output::line("");
    if drift.is_empty() {
        output::line("schema drift: none (every object the applied migrations create is present)");
    } else {
        output::line(&format!(
            "SCHEMA DRIFT: {} object(s) the applied migrations create are missing:",
            drift.len()
        ));
        for o in crosslogic_db::drift::summarize(&drift) {
            output::line(&format!("  {o}"));
        }
        output::line("repair with: crosslogic db migrate --repair");
    }
    output::line("");
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| vec![t.table_name.clone(), t.row_count.to_string(), t.size.clone()])
        .collect();
    output::table(&["table", "rows", "size"], &rows);
    output::line("");
    output::line(&format!("database size: {size}"));
    Ok(())
}

async fn stats(db: &Database, limit: i64) -> anyhow::Result<()> {
    let pool = db.pool();
    output::line("Table sizes");
    let rows: Vec<Vec<String>> = maintenance::tables(pool)
        .await?
        .into_iter()
        .map(|t| vec![t.table_name, t.size, t.row_count.to_string()])
        .collect();
    output::table(&["table", "size", "rows"], &rows);
    output::line("");
    output::line("Index usage");
    let rows: Vec<Vec<String>> = maintenance::index_usage(pool)
        .await?
        .into_iter()
        .map(|i| {
            vec![
                i.table_name,
                i.index_name,
                i.idx_scan.to_string(),
                i.idx_tup_read.to_string(),
                i.idx_tup_fetch.to_string(),
            ]
        })
        .collect();
    output::table(&["table", "index", "idx_scan", "idx_tup_read", "idx_tup_fetch"], &rows);
    output::line("");
    output::line("Slowest queries (pg_stat_statements, by mean_exec_time)");
    match maintenance::slow_queries(pool, limit).await {
        Ok(queries) => {
            let rows: Vec<Vec<String>> = queries
                .into_iter()
                .map(|q| {
                    let mut text: String = q.query.split_whitespace().collect::<Vec<_>>().join(" ");
                    if text.chars().count() > 80 {
                        text = text.chars().take(77).collect::<String>() + "...";
                    }
                    vec![
                        format!("{:.2}", q.mean_exec_time),
                        format!("{:.2}", q.max_exec_time),
                        format!("{:.2}", q.total_exec_time),
                        q.calls.to_string(),
                        text,
                    ]
                })
                .collect();
            output::table(
                &[
                    "mean_exec_time ms",
                    "max_exec_time ms",
                    "total_exec_time ms",
                    "calls",
                    "query",
                ],
                &rows,
            );
        }
        Err(SlowQueriesError::Unavailable(hint)) => output::line(&hint),
        Err(SlowQueriesError::Db(e)) => return Err(e.into()),
    }
    Ok(())
}
