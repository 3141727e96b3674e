//! Database settings: `DATABASE_URL` or `DB_*` variables, pool sizing, TLS.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::parse::{duration_var, u32_in};
use crate::ConfigError;

/// `DB_SSL_MODE` / `sslmode=`: how the connection uses TLS (rustls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it (default).
    Prefer,
    /// Require TLS; do not verify the certificate.
    Require,
    /// Require TLS, verify the certificate chain and the host name.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(var: &str, value: &str) -> Result<SslMode, ConfigError> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(ConfigError::new(
                var,
                format!("invalid value {other:?}: expected disable, prefer, require or verify-full"),
            )),
        }
    }
}

/// A PostgreSQL server we connect to (as opposed to the embedded one).
#[derive(Debug, Clone)]
pub struct ExternalDatabase {
    /// Host name, IP, or an absolute Unix-socket directory.
    pub host: String,
    /// TCP port (also names the Unix socket file).
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// Password, if any. Never displayed.
    pub password: Option<SecretString>,
    /// Database name.
    pub dbname: String,
    /// TLS mode.
    pub ssl_mode: SslMode,
    /// CA bundle for `verify-full` (`DB_SSL_ROOT_CERT` / `sslrootcert=`).
    pub ssl_root_cert: Option<PathBuf>,
    /// Which variable this came from, for messages.
    pub source: &'static str,
}

impl ExternalDatabase {
    /// The same server, another database (e.g. `skypilot_state`).
    pub fn with_dbname(&self, dbname: &str) -> ExternalDatabase {
        ExternalDatabase {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }

    /// A `postgresql://` URL with the password replaced by `****`.
    pub fn redacted_url(&self) -> String {
        let auth = match &self.password {
            Some(_) => format!("{}:****@", self.user),
            None => format!("{}@", self.user),
        };
        if self.host.starts_with('/') {
            format!(
                "postgresql://{auth}/{}?host={}&port={}&sslmode={}",
                self.dbname,
                self.host,
                self.port,
                self.ssl_mode.as_str()
            )
        } else {
            format!(
                "postgresql://{auth}{}:{}/{}?sslmode={}",
                self.host,
                self.port,
                self.dbname,
                self.ssl_mode.as_str()
            )
        }
    }

    fn from_url(value: &str, ssl_override: Option<SslMode>) -> Result<ExternalDatabase, ConfigError> {
        const VAR: &str = "DATABASE_URL";
        // Never echo the URL itself: it may hold a password.
        let url = url::Url::parse(value).map_err(|e| {
            ConfigError::new(
                VAR,
                format!("not a valid URL ({e}): expected postgresql://user:password@host:5432/dbname"),
            )
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(ConfigError::new(
                VAR,
                format!(
                    "unsupported scheme {:?}: expected postgresql:// or postgres://",
                    url.scheme()
                ),
            ));
        }
        let decode = |s: &str| percent_decode(s).map_err(|m| ConfigError::new(VAR, m));
        let mut host = url.host_str().map(str::to_owned);
        let mut port = url.port();
        let mut ssl_mode = SslMode::Prefer;
        let mut ssl_root_cert = None;
        let mut user = if url.username().is_empty() {
            None
        } else {
            Some(decode(url.username())?)
        };
        let mut password = url.password().map(decode).transpose()?;
        let mut dbname = url.path().trim_start_matches('/').to_owned();
        for (key, val) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => ssl_mode = SslMode::parse("DATABASE_URL sslmode", &val)?,
                "sslrootcert" => ssl_root_cert = Some(PathBuf::from(val.as_ref())),
                "host" => host = Some(val.into_owned()),
                "port" => {
                    port = Some(val.parse().map_err(|_| ConfigError::new(VAR, "port= must be an integer 1-65535"))?)
                }
                "user" => user = Some(val.into_owned()),
                "password" => password = Some(val.into_owned()),
                "dbname" => dbname = val.into_owned(),
                "application_name" | "connect_timeout" => {}
                other => {
                    return Err(ConfigError::new(
                        VAR,
                        format!(
                            "unsupported parameter {other:?}: accepted are sslmode, sslrootcert, host, port, user, password, dbname, application_name, connect_timeout"
                        ),
                    ))
                }
            }
        }
        let dbname = decode(&dbname)?;
        if dbname.is_empty() {
            return Err(ConfigError::new(
                VAR,
                "no database name: expected postgresql://user@host:5432/dbname",
            ));
        }
        Ok(ExternalDatabase {
            host: host.filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".to_owned()),
            port: port.unwrap_or(5432),
            user: user.unwrap_or_else(|| "postgres".to_owned()),
            password: password.map(SecretString::from),
            dbname,
            ssl_mode: ssl_override.unwrap_or(ssl_mode),
            ssl_root_cert,
            source: VAR,
        })
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "percent-encoded value is not UTF-8".to_owned())
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// No `DATABASE_URL` and no `DB_HOST`: a private PostgreSQL cluster in the
    /// data directory, started and stopped by this process.
    Embedded,
    /// A server given by `DATABASE_URL` or the `DB_*` variables.
    External(ExternalDatabase),
}

/// Pool sizing, named after the seed's (Go `database/sql`) settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// `DB_MAX_OPEN_CONNS` (25): upper bound of open connections.
    pub max_open: u32,
    /// `DB_MAX_IDLE_CONNS` (5): connections kept open while idle; idle
    /// connections above this number are closed after a minute.
    pub max_idle: u32,
    /// `DB_CONN_MAX_LIFETIME` (5m): a connection older than this is closed
    /// and replaced; `0` means no limit.
    pub conn_max_lifetime: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_open: 25,
            max_idle: 5,
            conn_max_lifetime: Some(Duration::from_secs(300)),
        }
    }
}

/// Database target plus pool settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Embedded or external.
    pub target: DatabaseTarget,
    /// Pool sizing.
    pub pool: PoolConfig,
}

impl DatabaseConfig {
    pub(crate) fn from_vars<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<DatabaseConfig, ConfigError> {
        let ssl_override = get("DB_SSL_MODE")
            .map(|v| SslMode::parse("DB_SSL_MODE", v))
            .transpose()?;
        let target = if let Some(url) = get("DATABASE_URL") {
            DatabaseTarget::External(ExternalDatabase::from_url(url, ssl_override)?)
        } else if let Some(host) = get("DB_HOST") {
            let port = match get("DB_PORT") {
                Some(v) => u16::try_from(u32_in("DB_PORT", v, 1, 65535)?).unwrap_or(5432),
                None => 5432,
            };
            DatabaseTarget::External(ExternalDatabase {
                host: host.to_owned(),
                port,
                user: get("DB_USER").unwrap_or("crosslogic").to_owned(),
                password: get("DB_PASSWORD").map(|p| SecretString::from(p.to_owned())),
                dbname: get("DB_NAME").unwrap_or("crosslogic_iaas").to_owned(),
                ssl_mode: ssl_override.unwrap_or(SslMode::Prefer),
                ssl_root_cert: get("DB_SSL_ROOT_CERT").map(PathBuf::from),
                source: "DB_HOST",
            })
        } else {
            for var in ["DB_PASSWORD", "DB_PORT", "DB_USER", "DB_NAME"] {
                if get(var).is_some() {
                    return Err(ConfigError::new(
                        var,
                        "is set but DB_HOST is not: set DB_HOST (e.g. localhost) to use that server, \
                         or unset the DB_* variables to use the embedded database",
                    ));
                }
            }
            DatabaseTarget::Embedded
        };
        if let DatabaseTarget::External(db) = &target {
            if db.ssl_mode == SslMode::VerifyFull && db.host.starts_with('/') {
                return Err(ConfigError::new(
                    "DB_SSL_MODE",
                    "verify-full needs a TCP host, not a Unix socket",
                ));
            }
        }
        let mut pool = PoolConfig::default();
        if let Some(v) = get("DB_MAX_OPEN_CONNS") {
            pool.max_open = u32_in("DB_MAX_OPEN_CONNS", v, 1, 10_000)?;
        }
        if let Some(v) = get("DB_MAX_IDLE_CONNS") {
            pool.max_idle = u32_in("DB_MAX_IDLE_CONNS", v, 0, 10_000)?;
        }
        // As in Go's database/sql: never more idle than open connections.
        pool.max_idle = pool.max_idle.min(pool.max_open);
        if let Some(v) = get("DB_CONN_MAX_LIFETIME") {
            let d = duration_var("DB_CONN_MAX_LIFETIME", v)?;
            pool.conn_max_lifetime = if d.is_zero() { None } else { Some(d) };
        }
        Ok(DatabaseConfig { target, pool })
    }

    pub(crate) fn report(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match &self.target {
            DatabaseTarget::Embedded => out.push((
                "database".into(),
                "embedded (private PostgreSQL in the data directory)".into(),
            )),
            DatabaseTarget::External(db) => {
                out.push(("database".into(), format!("external (from {})", db.source)));
                out.push(("DATABASE_URL".into(), db.redacted_url()));
                out.push((
                    "DB_PASSWORD".into(),
                    if db.password.as_ref().is_some_and(|p| !p.expose_secret().is_empty()) {
                        "(set, redacted)".into()
                    } else {
                        "(unset)".into()
                    },
                ));
                out.push(("DB_SSL_MODE".into(), db.ssl_mode.as_str().into()));
                if let Some(ca) = &db.ssl_root_cert {
                    out.push(("DB_SSL_ROOT_CERT".into(), ca.display().to_string()));
                }
            }
        }
        out.push(("DB_MAX_OPEN_CONNS".into(), self.pool.max_open.to_string()));
        out.push(("DB_MAX_IDLE_CONNS".into(), self.pool.max_idle.to_string()));
        out.push((
            "DB_CONN_MAX_LIFETIME".into(),
            self.pool
                .conn_max_lifetime
                .map_or_else(|| "0 (unlimited)".into(), |d| humantime::format_duration(d).to_string()),
        ));
        out
    }
}
