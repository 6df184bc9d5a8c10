//! What the alerting API answers when it refuses something.

/// One input field at fault, named by its path in the document (`thresholds[1].value`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The document was refused; every field at fault is listed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0} was not found")]
    NotFound(String),
    /// The request conflicts with what is stored (an endpoint still used by a rule).
    #[error("{0}")]
    Conflict(String),
    /// A failure of ours (the database, a sealed secret that no longer opens).
    #[error("{0}")]
    Internal(String),
}

impl AlertError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AlertError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<rusqlite::Error> for AlertError {
    fn from(e: rusqlite::Error) -> Self {
        AlertError::Internal(format!("alerts database: {e}"))
    }
}

impl From<insights_store::SecretError> for AlertError {
    fn from(e: insights_store::SecretError) -> Self {
        AlertError::Internal(e.to_string())
    }
}

pub(crate) type Result<T, E = AlertError> = std::result::Result<T, E>;

/// Outside text as it may reach a log or a stored error: at most 300 characters, control
/// characters escaped.
pub(crate) fn shown(s: &str) -> String {
    let cut: String = s.chars().take(300).collect();
    cut.escape_debug().to_string()
}
