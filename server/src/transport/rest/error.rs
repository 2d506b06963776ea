//! The one mapping from domain errors to HTTP responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorCode};

pub fn status_for(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `{"code", "message", "field_violations": [{"field", "description"}]}`, the `error` member of
/// every REST error body.
pub fn error_object(error: &Error) -> serde_json::Value {
    serde_json::json!({
        "code": error.code().as_str(),
        "message": error.public_message(),
        "field_violations": error.field_violations(),
    })
}

/// A domain error as an HTTP response:
/// `{"error": {"code", "message", "field_violations": [{"field", "description"}]}}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        error.log_if_internal();
        let body = serde_json::json!({ "error": error_object(&error) });
        (status_for(error.code()), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_http_statuses() {
        assert_eq!(status_for(ErrorCode::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(status_for(ErrorCode::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(status_for(ErrorCode::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_for(ErrorCode::ResourceExhausted), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for(ErrorCode::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        let response = ApiError(Error::internal("testing", "secret cause")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
