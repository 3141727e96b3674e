//! Connection pool built from configuration (TLS through rustls).

use std::time::Duration;

use crosslogic_config::{ExternalDatabase, PoolConfig, SslMode};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::ConnectOptions;

/// How long an idle connection above `max_idle` lives before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connection options for a server. Every field is set explicitly so that
/// stray `PG*` environment variables cannot change where we connect.
pub fn connect_options(db: &ExternalDatabase) -> PgConnectOptions {
    let mut opts = PgConnectOptions::new_without_pgpass()
        .port(db.port)
        .username(&db.user)
        .database(&db.dbname)
        .application_name("crosslogic")
        .ssl_mode(match db.ssl_mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        })
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1));
    opts = if db.host.starts_with('/') {
        opts.socket(&db.host)
    } else {
        opts.host(&db.host)
    };
    if let Some(pw) = &db.password {
        opts = opts.password(pw.expose_secret());
    }
    if let Some(ca) = &db.ssl_root_cert {
        opts = opts.ssl_root_cert(ca);
    }
    opts
}

/// Pool options from the seed's settings: `max_open` bounds the pool,
/// `max_idle` connections are kept warm, extra idle ones close after a
/// minute, and every connection is recycled after `conn_max_lifetime`.
pub fn pool_options(pool: &PoolConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(pool.max_open)
        .min_connections(pool.max_idle)
        .idle_timeout(Some(IDLE_TIMEOUT))
        .max_lifetime(pool.conn_max_lifetime)
        .acquire_timeout(Duration::from_secs(10))
}

/// Opens a pool and checks that the server answers.
pub async fn connect(db: &ExternalDatabase, pool: &PoolConfig) -> Result<PgPool, sqlx::Error> {
    pool_options(pool).connect_with(connect_options(db)).await
}
