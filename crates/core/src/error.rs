//! What went wrong in a business operation, independent of HTTP and of the
//! database: every service function (tenancy, fleet, node lifecycle,
//! billing…) answers this, and the one HTTP edge (`crosslogic-http`) maps
//! it onto a status and the error envelope.

/// An error boxed for [`ServiceError::Internal`]: logged, never shown.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a service operation.
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
    /// The caller's credential is missing, unknown or does not match.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A failure of the system itself (database, IO); details are logged,
    /// not shown.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl ServiceError {
    /// Shorthand for [`ServiceError::Invalid`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Shorthand for [`ServiceError::Internal`].
    pub fn internal(err: impl Into<BoxError>) -> ServiceError {
        ServiceError::Internal(err.into())
    }
}
