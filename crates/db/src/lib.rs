//! The CrossLogic data layer.
//!
//! Invariant: this is the only crate that contains SQL. Other crates call the
//! repository functions in [`repo`] and never see a query string. Statuses are
//! the typed enums of `crosslogic-core`; constraint violations come back as
//! [`DbError`] variants (which name the input field the constraint guards),
//! never as panics. Rows are plain structs that are not serialisable: the
//! APIs answer their own view types. A change is written with its event and
//! audit entry by [`changes`], the one writer of both.

pub mod backup;
pub mod changes;
pub mod drift;
pub mod embedded;
mod error;
pub mod maintenance;
pub mod migrate;
pub mod money;
pub mod pool;
pub mod repo;
pub mod setup;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crosslogic_config::{DatabaseConfig, DatabaseTarget, ExternalDatabase};
pub use error::{DbError, DbResult};
pub use sqlx::{PgConnection, PgPool};

use embedded::{EmbeddedError, EmbeddedPostgres};

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The embedded PostgreSQL could not start.
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    /// The configured server did not accept us.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The redacted URL.
        target: String,
        /// The driver error (contains no password).
        #[source]
        source: sqlx::Error,
    },
}

/// An open database: the pool, and the embedded server when we run one.
#[derive(Debug)]
pub struct Database {
    pool: PgPool,
    target: ExternalDatabase,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to the configured server, or starts the embedded one in
    /// `data_dir` when none is configured. Connection refusals are retried
    /// for up to `wait`; authentication and other errors fail at once.
    pub async fn open(
        config: &DatabaseConfig,
        data_dir: &Path,
        pg_bin: Option<&Path>,
        wait: Duration,
    ) -> Result<Database, OpenError> {
        let (target, embedded) = match &config.target {
            DatabaseTarget::External(db) => (db.clone(), None),
            DatabaseTarget::Embedded => {
                let pg = EmbeddedPostgres::start(data_dir, pg_bin).await?;
                (pg.connection(), Some(pg))
            }
        };
        let deadline = Instant::now() + wait;
        let pool = loop {
            match pool::connect(&target, &config.pool).await {
                Ok(pool) => break pool,
                Err(e) if is_refused(&e) && Instant::now() < deadline => {
                    tracing::warn!(target = %target.redacted_url(), error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(source) => {
                    return Err(OpenError::Connect {
                        target: target.redacted_url(),
                        source,
                    })
                }
            }
        };
        Ok(Database { pool, target, embedded })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Where we are connected (for pg_dump/psql and messages).
    pub fn target(&self) -> &ExternalDatabase {
        &self.target
    }

    /// The embedded server's bin directory (so pg_dump matches its version).
    pub fn tools_dir(&self) -> Option<PathBuf> {
        self.embedded.as_ref().map(|e| e.bin_dir().to_path_buf())
    }

    /// Whether this process runs the database itself.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Closes the pool, then stops the embedded server if any.
    pub async fn close(self) -> Result<(), EmbeddedError> {
        self.pool.close().await;
        match self.embedded {
            Some(pg) => pg.stop().await,
            None => Ok(()),
        }
    }
}

/// Starts a transaction for a change (its event and audit entry go in it
/// too, see [`changes`]); errors are [`DbError`]s like every repository's.
pub async fn begin(pool: &PgPool) -> DbResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(pool.begin().await?)
}

/// Commits a transaction begun with [`begin`].
pub async fn commit(tx: sqlx::Transaction<'_, sqlx::Postgres>) -> DbResult<()> {
    Ok(tx.commit().await?)
}

fn is_refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionReset
        ),
        sqlx::Error::PoolTimedOut => true,
        // 57P03: the server is starting up.
        sqlx::Error::Database(d) => d.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// Creates database `name` on the server of `pool` if it does not exist
/// (used for `skypilot_state` and for restores into a new database).
pub async fn ensure_database(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(pool)
        .await?;
    if exists {
        return Ok(false);
    }
    // The identifier is quoted by the server (format %I), not by us.
    let stmt: String = sqlx::query_scalar("SELECT format('CREATE DATABASE %I', $1::text)")
        .bind(name)
        .fetch_one(pool)
        .await?;
    sqlx::raw_sql(&stmt).execute(pool).await?;
    Ok(true)
}
