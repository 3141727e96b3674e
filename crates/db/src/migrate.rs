//! Schema migrations: the files in `database/schemas/`, embedded at build time.
//!
//! The same files are applied by `psql -f` and by `database/migrate.sh`; they
//! are idempotent, so any order of the three leaves the same schema. What was
//! applied is recorded in `schema_migrations` (version, name, SHA-256 of the
//! file) — the table `migrate.sh` writes too. Each file runs in its own
//! transaction under `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`, so several
//! processes migrating at once all succeed: the first applies, the others wait
//! and then find it recorded. Transaction-scoped locks keep this safe behind
//! PgBouncer in transaction mode.

use std::time::Instant;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
// `Executor::execute` with a plain `&str` uses the simple query protocol,
// which runs a whole multi-statement file.
use sqlx::{Executor, PgPool};

/// Advisory lock key shared with `database/migrate.sh`.
pub const MIGRATION_LOCK_KEY: i64 = 7_241_101;

const CREATE_BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL DEFAULT 0)";

/// One numbered schema file and its reverse.
#[derive(Debug)]
pub struct Migration {
    /// Leading number of the file name.
    pub version: i32,
    /// File name without `.sql`, e.g. `01_core_tables`.
    pub name: &'static str,
    /// The forward SQL (the file's exact bytes).
    pub sql: &'static str,
    /// The reverse SQL from `database/rollback/`.
    pub down: &'static str,
}

impl Migration {
    /// Lowercase hex SHA-256 of the file, as `sha256sum` prints it.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// Whether `recorded` (from `schema_migrations`) is this file: its
    /// checksum now, or an earlier one listed in `database/superseded.tsv`.
    pub fn accepts(&self, recorded: &str) -> bool {
        recorded == self.checksum()
            || SUPERSEDED
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let mut fields = l.split('\t');
                    Some((fields.next()?.parse::<i32>().ok()?, fields.next()?))
                })
                .any(|(version, sum)| version == self.version && sum == recorded)
    }

    /// The file's path relative to the repository root.
    pub fn path(&self) -> String {
        format!("database/schemas/{}.sql", self.name)
    }
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../database/schemas/", $name, ".sql")),
            down: include_str!(concat!("../../../database/rollback/", $name, ".down.sql")),
        }
    };
}

/// Earlier checksums of files, still accepted (`version<TAB>sha256<TAB>why`).
const SUPERSEDED: &str = include_str!("../../../database/superseded.tsv");

/// Every migration this binary knows, in order.
pub static MIGRATIONS: &[Migration] = &[
    migration!(1, "01_core_tables"),
    migration!(2, "02_deployments"),
    migration!(3, "03_notifications"),
    migration!(4, "04_auth_notify"),
    migration!(5, "05_provision_jobs"),
    migration!(6, "06_notification_delivery"),
    migration!(7, "07_billing"),
    migration!(8, "08_example_deployment"),
    migration!(9, "09_console_sessions"),
    migration!(10, "10_capacity_policy"),
    migration!(11, "11_usage_reference_checks"),
];

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// An applied file was edited afterwards.
    #[error(
        "checksum mismatch for {path}: the database recorded {recorded} when it was applied, the file now hashes to {current}; \
         applied migrations must not change — put the change in a new numbered file"
    )]
    ChecksumMismatch {
        /// File path.
        path: String,
        /// Checksum stored in `schema_migrations`.
        recorded: String,
        /// Checksum of the embedded file.
        current: String,
    },
    /// The database is ahead of this binary.
    #[error("the database has migration {version} ({name}) which this binary does not know; run a newer crosslogic")]
    UnknownVersion {
        /// Recorded version.
        version: i32,
        /// Recorded name.
        name: String,
    },
    /// The user may not create tables in schema `public` (PostgreSQL 15+
    /// after the seed's database-level GRANT).
    #[error(
        "the database user {user} may not create tables in schema public of database {database} \
         (SQLSTATE 42501; since PostgreSQL 15 `GRANT ALL PRIVILEGES ON DATABASE` no longer allows it). \
         Fix it once, as a superuser: `ALTER DATABASE {database} OWNER TO {user};` \
         (or, connected to {database}: `GRANT CREATE ON SCHEMA public TO {user};`), \
         or create the database correctly with `crosslogic db create --owner {user} --name {database}`"
    )]
    SchemaPermission {
        /// The connecting user.
        user: String,
        /// The database.
        database: String,
    },
    /// Objects applied migrations created are missing (dropped by hand).
    #[error(
        "schema drift: the database lacks what its applied migrations created: {missing}. {}",
        if *repairable {
            "Repair it with `crosslogic db migrate --repair` (or `database/migrate.sh up --repair`), which re-applies those idempotent files"
        } else {
            "Re-applying the migrations could not restore them; restore from a backup"
        }
    )]
    Drift {
        /// The missing objects, described.
        missing: String,
        /// Whether `--repair` is worth trying.
        repairable: bool,
    },
    /// A migration's SQL failed.
    #[error("applying {path} failed: {source}")]
    Apply {
        /// File path.
        path: String,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// Any other database error.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One row of `crosslogic db status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationState {
    /// Version number.
    pub version: i32,
    /// File name without extension.
    pub name: String,
    /// When applied; `None` = pending.
    pub applied_at: Option<DateTime<Utc>>,
    /// Whether the recorded checksum equals the file's (true when pending).
    pub checksum_ok: bool,
}

#[derive(sqlx::FromRow)]
struct Applied {
    version: i32,
    name: String,
    checksum: String,
    applied_at: DateTime<Utc>,
}

async fn applied(pool: &PgPool) -> Result<Vec<Applied>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
        .fetch_all(pool)
        .await
}

/// A transaction holding the migration lock (every file is applied or
/// reversed in one).
pub(crate) async fn begin_locked(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Fails with [`MigrateError::Drift`] when objects that applied migrations
/// created are missing.
pub async fn check_drift(pool: &PgPool) -> Result<(), MigrateError> {
    let versions: Vec<i32> = applied(pool).await?.iter().map(|a| a.version).collect();
    let missing = crate::drift::missing(pool, &versions).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::Drift {
            missing: crate::drift::describe(&missing),
            repairable: true,
        })
    }
}

/// Repairs drift (see [`crate::drift::repair`]), then applies pending
/// migrations; returns what was repaired and the versions applied now.
pub async fn migrate_repair(pool: &PgPool) -> Result<(Vec<String>, Vec<i32>), MigrateError> {
    let rows = applied(pool).await?;
    check_applied(&rows)?;
    let versions: Vec<i32> = rows.iter().map(|a| a.version).collect();
    let repaired = crate::drift::repair(pool, &versions).await?;
    Ok((repaired, migrate(pool).await?))
}

/// Applies every pending migration; returns the versions applied now.
/// Refuses (changing nothing) when an applied file was edited or the
/// database drifted from what its applied migrations created.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i32>, MigrateError> {
    // Fail before changing anything if an applied file was edited.
    check_applied(&applied(pool).await?)?;
    check_drift(pool).await?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        let mut tx = begin_locked(pool).await?;
        // "already exists, skipping" notices are expected on every run.
        (&mut *tx).execute("SET LOCAL client_min_messages = warning").await?;
        if let Err(e) = (&mut *tx).execute(CREATE_BOOKKEEPING).await {
            let _ = tx.rollback().await;
            return Err(permission(pool, e).await);
        }
        let recorded: Option<String> = sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
        let checksum = m.checksum();
        // End the transaction explicitly on every path: a dropped
        // transaction is only rolled back when its connection is next used,
        // and until then it would hold the advisory lock.
        match recorded {
            Some(r) if m.accepts(&r) => {
                tx.commit().await?;
                continue;
            }
            Some(r) => {
                tx.rollback().await?;
                return Err(MigrateError::ChecksumMismatch {
                    path: m.path(),
                    recorded: r,
                    current: checksum,
                });
            }
            None => {}
        }
        let started = Instant::now();
        if let Err(source) = (&mut *tx).execute(m.sql).await {
            let _ = tx.rollback().await;
            return Err(match permission(pool, source).await {
                MigrateError::Db(source) => MigrateError::Apply { path: m.path(), source },
                other => other,
            });
        }
        let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum, execution_ms) VALUES ($1, $2, $3, $4)")
            .bind(m.version)
            .bind(m.name)
            .bind(&checksum)
            .bind(ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, ms, "applied migration");
        done.push(m.version);
    }
    Ok(done)
}

/// [`MigrateError::SchemaPermission`] for "permission denied for schema"
/// (SQLSTATE 42501), naming the user and database; any other error as is.
async fn permission(pool: &PgPool, e: sqlx::Error) -> MigrateError {
    let denied = e
        .as_database_error()
        .is_some_and(|d| d.code().as_deref() == Some("42501") && d.message().contains("schema"));
    if !denied {
        return MigrateError::Db(e);
    }
    match sqlx::query_as::<_, (String, String)>("SELECT current_user::text, current_database()::text")
        .fetch_one(pool)
        .await
    {
        Ok((user, database)) => MigrateError::SchemaPermission { user, database },
        Err(_) => MigrateError::Db(e),
    }
}

fn check_applied(rows: &[Applied]) -> Result<(), MigrateError> {
    for row in rows {
        match MIGRATIONS.iter().find(|m| m.version == row.version) {
            None => {
                return Err(MigrateError::UnknownVersion {
                    version: row.version,
                    name: row.name.clone(),
                })
            }
            Some(m) if !m.accepts(&row.checksum) => {
                return Err(MigrateError::ChecksumMismatch {
                    path: m.path(),
                    recorded: row.checksum.clone(),
                    current: m.checksum(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Applied and pending migrations, in order.
pub async fn status(pool: &PgPool) -> Result<Vec<MigrationState>, sqlx::Error> {
    let rows = applied(pool).await?;
    let mut out: Vec<MigrationState> = MIGRATIONS
        .iter()
        .map(|m| {
            let row = rows.iter().find(|r| r.version == m.version);
            MigrationState {
                version: m.version,
                name: m.name.to_owned(),
                applied_at: row.map(|r| r.applied_at),
                checksum_ok: row.is_none_or(|r| m.accepts(&r.checksum)),
            }
        })
        .collect();
    for r in rows
        .iter()
        .filter(|r| MIGRATIONS.iter().all(|m| m.version != r.version))
    {
        out.push(MigrationState {
            version: r.version,
            name: r.name.clone(),
            applied_at: Some(r.applied_at),
            checksum_ok: false,
        });
    }
    Ok(out)
}

/// Reverses every applied migration above `target`, newest first; returns
/// the versions reversed. `target = 0` removes the whole schema.
pub async fn rollback_to(pool: &PgPool, target: i32) -> Result<Vec<i32>, MigrateError> {
    let rows = applied(pool).await?;
    check_applied(&rows)?;
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().rev().filter(|m| m.version > target) {
        if !rows.iter().any(|r| r.version == m.version) {
            continue;
        }
        let mut tx = begin_locked(pool).await?;
        if let Err(source) = (&mut *tx).execute(m.down).await {
            let _ = tx.rollback().await;
            return Err(MigrateError::Apply {
                path: format!("database/rollback/{}.down.sql", m.name),
                source,
            });
        }
        if m.version == 1 {
            (&mut *tx).execute("DROP TABLE IF EXISTS schema_migrations").await?;
        } else {
            sqlx::query("DELETE FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "rolled back migration");
        done.push(m.version);
    }
    Ok(done)
}

/// The highest version this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}
