//! The one mapping from domain errors to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, ErrorCode};

pub fn code_for(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Unimplemented => Code::Unimplemented,
        ErrorCode::Internal => Code::Internal,
    }
}

/// Field violations travel as `google.rpc.BadRequest` details; internal causes are logged here
/// and withheld from the caller.
pub fn to_status(error: &Error) -> Status {
    let code = code_for(error.code());
    error.log_if_internal();
    let message = error.public_message();
    match error {
        Error::InvalidArgument(violations) => {
            let mut details = ErrorDetails::new();
            for violation in violations {
                details.add_bad_request_violation(
                    violation.field.clone(),
                    violation.description.clone(),
                );
            }
            Status::with_error_details(code, message, details)
        }
        _ => Status::new(code, message),
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        to_status(&error)
    }
}

/// tonic answers a message over the size limit with OUT_OF_RANGE and one it cannot decode
/// (nested too deep, malformed) with INTERNAL; both are the caller's doing, so they become
/// RESOURCE_EXHAUSTED and INVALID_ARGUMENT. Such answers are trailers-only: the status is in the
/// response headers.
pub fn blame_undecodable_messages_on_the_caller(response: &mut axum::response::Response) {
    let headers = response.headers_mut();
    let message = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .map(|text| text.replace("%20", " "))
        .unwrap_or_default();
    let code = match headers.get("grpc-status").and_then(|value| value.to_str().ok()) {
        Some("11") if message.contains("message length too large") => Code::ResourceExhausted,
        Some("13") if message.starts_with("failed to decode Protobuf message") => {
            Code::InvalidArgument
        }
        _ => return,
    };
    headers.insert("grpc-status", http::HeaderValue::from(code as i32));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldViolation;

    #[test]
    fn field_violations_become_bad_request_details() {
        let status = to_status(&Error::InvalidArgument(vec![
            FieldViolation::new(
                "secrets[auth_token]",
                "must be a Twilio auth token: 32 hex characters",
            ),
            FieldViolation::new("provider", "required"),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad_request = status.get_details_bad_request().unwrap();
        let fields: Vec<_> =
            bad_request.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["secrets[auth_token]", "provider"]);
    }

    #[test]
    fn every_code_maps() {
        let pairs = [
            (Error::Unauthenticated("x".into()), Code::Unauthenticated),
            (Error::PermissionDenied("x".into()), Code::PermissionDenied),
            (Error::not_found("x"), Code::NotFound),
            (Error::AlreadyExists("x".into()), Code::AlreadyExists),
            (Error::ResourceExhausted("x".into()), Code::ResourceExhausted),
            (Error::Unavailable("x".into()), Code::Unavailable),
            (Error::Unimplemented("x".into()), Code::Unimplemented),
            (Error::internal("testing", "boom"), Code::Internal),
        ];
        for (error, code) in pairs {
            assert_eq!(to_status(&error).code(), code);
        }
        assert_eq!(
            to_status(&Error::internal("testing", "secret detail")).message(),
            "internal error"
        );
    }
}
