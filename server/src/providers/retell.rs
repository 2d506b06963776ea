//! Retell AI: `call_ended` / `call_analyzed` events signed with `x-retell-signature`.

use super::signature::{check_window, constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};

/// How far a signature's timestamp may be from now, either way, in milliseconds.
const TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Checks `x-retell-signature: v=<ms>,d=<hex>`, where the digest is HMAC-SHA256 under the API key
/// of the raw body followed by the timestamp, and the timestamp is within five minutes of now.
pub fn verify(api_key: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let value = header(request.headers, "x-retell-signature")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let (timestamp, digest) = value
        .strip_prefix("v=")
        .and_then(|rest| rest.split_once(",d="))
        .filter(|(timestamp, digest)| {
            !timestamp.is_empty()
                && timestamp.bytes().all(|byte| byte.is_ascii_digit())
                && digest.len() == 64
                && digest.bytes().all(|byte| byte.is_ascii_hexdigit())
        })
        .ok_or(AuthFailure::MalformedSignature)?;
    let timestamp_ms: i64 = timestamp.parse().map_err(|_| AuthFailure::MalformedSignature)?;
    let expected = sign(api_key, request.body, timestamp);
    if !constant_time_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes()) {
        return Err(AuthFailure::SignatureMismatch);
    }
    check_window(timestamp_ms, request.now.timestamp_millis(), TOLERANCE_MS, TOLERANCE_MS)
}

/// The hex digest Retell sends for `body` at `timestamp_ms`.
pub fn sign(api_key: &str, body: &[u8], timestamp_ms: &str) -> String {
    data_encoding::HEXLOWER
        .encode(&hmac_sha256(api_key.as_bytes(), &[body, timestamp_ms.as_bytes()]))
}
