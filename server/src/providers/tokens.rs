//! Shared-token schemes: Vapi's `X-Vapi-Secret`, a token in a configurable header (Vapi's bearer
//! credential), and a `?token=` in the URL (VoiceKit-style senders that cannot sign).

use super::signature::{constant_time_eq, header};
use super::{AuthFailure, WebhookRequest};
use crate::model::integrations::HeaderTokenOptions;

/// `X-Vapi-Secret: <secret>`, sent verbatim.
pub fn verify_vapi_secret(secret: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let presented = header(request.headers, "x-vapi-secret")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingToken)?;
    compare(presented, secret)
}

/// `<header_name>: [Bearer ]<token>`.
pub fn verify_header_token(
    options: &HeaderTokenOptions,
    token: &str,
    request: &WebhookRequest<'_>,
) -> Result<(), AuthFailure> {
    let value = header(request.headers, &options.header_name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingToken)?;
    let presented = if options.bearer_prefix {
        match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => return Err(AuthFailure::MalformedSignature),
        }
    } else {
        value
    };
    compare(presented, token)
}

/// `?token=<token>` in the URL the sender called.
pub fn verify_url_token(token: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let presented = request
        .query_param("token")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingToken)?;
    compare(&presented, token)
}

fn compare(presented: &str, expected: &str) -> Result<(), AuthFailure> {
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(AuthFailure::TokenMismatch)
    }
}
