//! Typed database errors: constraint violations become domain errors that the
//! HTTP layer maps to 404/409/422, never to a 500.

use crosslogic_core::ServiceError;

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
    /// The server refused the data itself (a constraint, or a value of
    /// SQLSTATE class 22 or 23): sending the same rows again cannot work.
    pub fn is_refusal(&self) -> bool {
        match self {
            DbError::Conflict { .. } | DbError::ForeignKey { .. } | DbError::Invalid { .. } => true,
            DbError::Other(sqlx::Error::Database(d)) => {
                d.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
            }
            _ => false,
        }
    }

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
                // Text PostgreSQL cannot store: a NUL character in text
                // (22021) or in jsonb (22P05).
                Some("22021" | "22P05") => {
                    return DbError::Invalid {
                        constraint: format!("the database's text encoding ({})", db.message()),
                    };
                }
                _ => {}
            }
        }
        DbError::Other(err)
    }
}

impl DbError {
    /// The input field a violated constraint guards, when the schema
    /// knows one (`tenants_email_key` → `email`).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DbError::Conflict { constraint } | DbError::ForeignKey { constraint } | DbError::Invalid { constraint } => {
                field_of(constraint)
            }
            _ => None,
        }
    }
}

/// Maps constraint names of the schema to the input field they guard.
fn field_of(constraint: &str) -> Option<&'static str> {
    Some(match constraint {
        "tenants_email_key" => "email",
        "tenants_stripe_customer_id_key" => "stripe_customer_id",
        "environments_tenant_id_name_key" => "name",
        "environments_region_fkey" => "region",
        "api_keys_environment_id_fkey" => "environment_id",
        "api_keys_tenant_id_fkey" => "tenant_id",
        "environments_tenant_id_fkey" => "tenant_id",
        "deployments_name_key" => "name",
        "deployments_model_name_fkey" => "model_name",
        "deployments_region_fkey" => "region",
        _ => return None,
    })
}

/// Database failures as service errors: a violated constraint becomes the
/// conflict or invalid value it means (naming its field when the schema
/// knows it), a missing row `NotFound`, anything else `Internal`.
impl From<DbError> for ServiceError {
    fn from(err: DbError) -> Self {
        let field = err.field();
        match err {
            DbError::NotFound { entity } => ServiceError::NotFound(entity),
            DbError::Conflict { constraint } => {
                let message = match field {
                    Some(f) => format!("{f} is already taken"),
                    None => format!("conflicts with existing data ({constraint})"),
                };
                ServiceError::Conflict { field, message }
            }
            DbError::ForeignKey { constraint } => match field {
                Some(field) => ServiceError::invalid(field, "refers to something that does not exist"),
                None => ServiceError::State(format!("still referenced or refers to a missing row ({constraint})")),
            },
            DbError::Invalid { constraint } => ServiceError::Invalid {
                field: field.unwrap_or("body"),
                message: format!("a value was rejected by {constraint}"),
            },
            other => ServiceError::internal(other),
        }
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
