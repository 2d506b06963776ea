//! The one error type of the client.

use std::path::PathBuf;

pub use tonic::Code;
use tonic_types::StatusExt;

/// One invalid field of a request, named by its path (`conversations[2].transcript[0].role`),
/// as the server reports it in a `google.rpc.BadRequest` detail, or as the client found it
/// before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// What a call failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a gRPC status, the connection failed (`Unavailable`), the call
    /// ran past its timeout (`DeadlineExceeded`), or the client refused a request before sending
    /// it (`InvalidArgument`, with the fields named).
    #[error("{}", describe_status(*code, message, field_violations))]
    Status { code: Code, message: String, field_violations: Vec<FieldViolation> },
    /// A local file (audio to upload or send, a download target) could not be read or written.
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    /// The client was configured with something unusable (a malformed URL or API key).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

/// The result of every client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn describe_status(code: Code, message: &str, field_violations: &[FieldViolation]) -> String {
    let mut text = format!("{}: {message}", code_name(code));
    for violation in field_violations {
        text.push_str(&format!("; {}: {}", violation.field, violation.description));
    }
    text
}

/// The snake_case name of a gRPC code (`invalid_argument`), as the Python SDK's `.code` carries it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

impl Error {
    /// The gRPC code; local failures map to the code a server would have used (`NotFound` for a
    /// missing file, `InvalidArgument` for a bad configuration).
    pub fn code(&self) -> Code {
        match self {
            Self::Status { code, .. } => *code,
            Self::File { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Code::NotFound,
                std::io::ErrorKind::PermissionDenied => Code::PermissionDenied,
                _ => Code::Unknown,
            },
            Self::Config(_) => Code::InvalidArgument,
        }
    }

    /// The message without the code or the field list.
    pub fn message(&self) -> String {
        match self {
            Self::Status { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The invalid fields, for `InvalidArgument`; empty otherwise.
    pub fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Self::Status { field_violations, .. } => field_violations,
            _ => &[],
        }
    }

    /// `InvalidArgument` for these fields, with a message naming the only one or counting them.
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let message = match violations.as_slice() {
            [only] => format!("{} {}", only.field, only.description),
            _ => format!("{} fields are invalid", violations.len()),
        };
        Self::Status { code: Code::InvalidArgument, message, field_violations: violations }
    }

    pub(crate) fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }

    pub(crate) fn deadline_exceeded(timeout: std::time::Duration) -> Self {
        Self::Status {
            code: Code::DeadlineExceeded,
            message: format!("no answer within {timeout:?}"),
            field_violations: Vec::new(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File { path: path.into(), source }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let field_violations = status
            .get_details_bad_request()
            .map(|bad_request| {
                bad_request
                    .field_violations
                    .into_iter()
                    .map(|violation| FieldViolation::new(violation.field, violation.description))
                    .collect()
            })
            .unwrap_or_default();
        let mut message = status.message().to_owned();
        // A refused connection comes back as Unavailable with only "transport error"; the cause
        // (connection refused, DNS failure) is what a caller needs.
        if let Some(source) = std::error::Error::source(&status) {
            let mut cause: Option<&dyn std::error::Error> = Some(source);
            while let Some(error) = cause {
                let text = error.to_string();
                if !message.contains(&text) {
                    message = if message.is_empty() { text } else { format!("{message}: {text}") };
                }
                cause = error.source();
            }
        }
        Self::Status { code: status.code(), message, field_violations }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(error: tonic::transport::Error) -> Self {
        Self::from(tonic::Status::from_error(Box::new(error)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn bad_request_details_become_field_violations() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("conversations[0].call_id", "required");
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "the request is invalid",
            details,
        );
        let error = Error::from(status);
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(
            error.field_violations(),
            [FieldViolation::new("conversations[0].call_id", "required")]
        );
        assert_eq!(
            error.to_string(),
            "invalid_argument: the request is invalid; conversations[0].call_id: required"
        );
    }

    #[test]
    fn local_failures_keep_a_meaningful_code() {
        let missing = Error::file("/nope", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(Error::Config("bad url".into()).code(), Code::InvalidArgument);
        assert_eq!(
            Error::invalid_field("conversations[1].audio", "give audio once").message(),
            "conversations[1].audio give audio once"
        );
    }
}
