//! Errors of control-plane operations, independent of HTTP.

use crosslogic_db::DbError;

/// What went wrong in a control-plane operation.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The addressed resource does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with existing data (e.g. an email already used).
    #[error("{message}")]
    Conflict {
        /// Which input field, if known.
        field: Option<&'static str>,
        /// What conflicts.
        message: String,
    },
    /// An input value is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The input field at fault.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The operation is not allowed in the resource's current state.
    #[error("{0}")]
    State(String),
    /// A database failure; details are logged, not shown.
    #[error("internal error")]
    Internal(#[source] DbError),
}

impl ServiceError {
    /// Shorthand for [`ServiceError::Invalid`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid {
            field,
            message: message.into(),
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

impl From<DbError> for ServiceError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::NotFound { entity } => ServiceError::NotFound(entity),
            DbError::Conflict { constraint } => {
                let field = field_of(&constraint);
                let message = match field {
                    Some(f) => format!("{f} is already taken"),
                    None => format!("conflicts with existing data ({constraint})"),
                };
                ServiceError::Conflict { field, message }
            }
            DbError::ForeignKey { constraint } => match field_of(&constraint) {
                Some(field) => ServiceError::invalid(field, "refers to something that does not exist"),
                None => ServiceError::State(format!("still referenced or refers to a missing row ({constraint})")),
            },
            DbError::Invalid { constraint } => ServiceError::Invalid {
                field: "body",
                message: format!("a value was rejected by {constraint}"),
            },
            other => ServiceError::Internal(other),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(err: sqlx::Error) -> Self {
        ServiceError::from(DbError::from(err))
    }
}
