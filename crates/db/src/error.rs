//! Typed database errors: constraint violations become domain errors that the
//! HTTP layer maps to 404/409/422, never to a 500.

/// Errors from repository functions.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row asked for does not exist.
    #[error("{entity} not found")]
    NotFound {
        /// What was looked up ("tenant", "api key", ...).
        entity: &'static str,
    },
    /// A unique constraint was violated (e.g. a tenant email already used).
    #[error("already exists: {constraint}")]
    Conflict {
        /// Name of the violated constraint, e.g. `tenants_email_key`.
        constraint: String,
    },
    /// A foreign key points at a row that does not exist (or a row is still referenced).
    #[error("related row missing or still referenced: {constraint}")]
    ForeignKey {
        /// Name of the violated constraint.
        constraint: String,
    },
    /// A CHECK or NOT NULL constraint rejected a value.
    #[error("value rejected by constraint {constraint}")]
    Invalid {
        /// Name of the violated constraint or column.
        constraint: String,
    },
    /// Anything else: connection failures, timeouts, bugs. Logged, shown as 5xx.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl DbError {
    /// Whether retrying later may succeed (connection lost, pool exhausted).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::Other(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
            )
        )
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            let constraint = db.constraint().unwrap_or_default().to_owned();
            // SQLSTATE classes: 23505 unique, 23503 foreign key, 23514 check, 23502 not null.
            match db.code().as_deref() {
                Some("23505") => return DbError::Conflict { constraint },
                Some("23503") => return DbError::ForeignKey { constraint },
                Some("23514") => return DbError::Invalid { constraint },
                Some("23502") => {
                    return DbError::Invalid {
                        constraint: db.message().to_owned(),
                    };
                }
                _ => {}
            }
        }
        DbError::Other(err)
    }
}

/// Shorthand for repository results.
pub type DbResult<T> = Result<T, DbError>;

/// Maps `RowNotFound` / `None` to [`DbError::NotFound`].
pub(crate) trait OrNotFound<T> {
    fn or_not_found(self, entity: &'static str) -> DbResult<T>;
}

impl<T> OrNotFound<T> for Result<Option<T>, sqlx::Error> {
    fn or_not_found(self, entity: &'static str) -> DbResult<T> {
        match self {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(DbError::NotFound { entity }),
            Err(e) => Err(e.into()),
        }
    }
}
