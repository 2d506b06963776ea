//! ElevenLabs Agents: `post_call_transcription`, `post_call_audio` and `call_initiation_failure`,
//! signed with `ElevenLabs-Signature`.

use super::signature::{check_window, constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};

/// The oldest signature accepted, in seconds (the SDKs' tolerance).
const MAX_AGE_SECONDS: i64 = 30 * 60;
/// The SDKs accept any future timestamp; earshot allows five minutes of clock skew, no more.
const MAX_AHEAD_SECONDS: i64 = 5 * 60;

/// Checks `ElevenLabs-Signature: t=<seconds>,v0=<hex>`, the hex HMAC-SHA256 under the webhook
/// secret of `<t>.<raw body>`, at most 30 minutes old and 5 minutes ahead.
pub fn verify(secret: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let value = header(request.headers, "elevenlabs-signature")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let mut timestamp = None;
    let mut signature = None;
    for part in value.split(',') {
        if let Some(rest) = part.trim().strip_prefix("t=") {
            timestamp = Some(rest);
        } else if part.trim().starts_with("v0=") {
            signature = Some(part.trim());
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(AuthFailure::MalformedSignature);
    };
    let seconds: i64 = timestamp.parse().map_err(|_| AuthFailure::MalformedSignature)?;
    let expected = sign(secret, request.body, timestamp);
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(AuthFailure::SignatureMismatch);
    }
    check_window(seconds, request.now.timestamp(), MAX_AGE_SECONDS, MAX_AHEAD_SECONDS)
}

/// The `v0=<hex>` part ElevenLabs sends for `body` at `timestamp` (seconds, as sent).
pub fn sign(secret: &str, body: &[u8], timestamp: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), &[timestamp.as_bytes(), b".", body]);
    format!("v0={}", data_encoding::HEXLOWER.encode(&mac))
}
