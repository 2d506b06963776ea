//! The one error type of the domain, and its small code table.
//!
//! `ErrorCode` is mapped once to gRPC (`transport::grpc::status`) and once to HTTP
//! (`ErrorCode::http_status`). Internal errors keep their cause for the log; callers only see a
//! generic message.

use std::fmt;

/// A request field that failed validation, named as the caller wrote it
/// (`conversations[3].audio.inline_b64`, `secrets[auth_token]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.description)
    }
}

/// The codes every transport understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
    Internal,
}

impl ErrorCode {
    /// The snake_case name used in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unimplemented => "unimplemented",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status of the code, for REST answers and the webhook delivery log.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists => 409,
            ErrorCode::ResourceExhausted => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Unimplemented => 501,
            ErrorCode::Internal => 500,
        }
    }
}

type BoxedCause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", join_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unimplemented(String),
    /// A fault of earshot or its storage; `context` says what was being done.
    #[error("internal error while {context}")]
    Internal {
        context: &'static str,
        #[source]
        cause: BoxedCause,
    },
}

fn join_violations(violations: &[FieldViolation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Unimplemented(_) => ErrorCode::Unimplemented,
            Error::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }

    pub fn internal(
        context: &'static str,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Internal { context, cause: cause.into() }
    }

    /// Logs an internal error with its cause; every transport calls this once per error it maps,
    /// since the caller only sees a generic message.
    pub fn log_if_internal(&self) {
        if let Error::Internal { context, cause } = self {
            tracing::error!(error = %cause, context, "internal error");
        }
    }

    /// The message a caller may see: internal causes are withheld.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal { .. } => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    pub fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Error::InvalidArgument(violations) => violations,
            _ => &[],
        }
    }
}

/// Collects field violations and turns them into one `InvalidArgument`, so a caller learns
/// every problem of a request at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_result(self) -> Result<(), Error> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::InvalidArgument(self.0)) }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause_from_callers() {
        let error = Error::internal("reading integrations", "disk I/O error at /secret/path");
        assert_eq!(error.public_message(), "internal error");
        assert_eq!(error.code(), ErrorCode::Internal);
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn invalid_argument_names_every_field() {
        let mut violations = Violations::new();
        violations.add("provider", "required");
        violations.add("secrets[auth_token]", "must be 32 hex characters");
        let error = violations.into_result().unwrap_err();
        assert_eq!(error.field_violations().len(), 2);
        assert_eq!(
            error.public_message(),
            "invalid argument: provider: required; secrets[auth_token]: must be 32 hex characters"
        );
    }
}
