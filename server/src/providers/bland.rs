//! Bland AI: the post-call webhook (the full call object), signed with `X-Webhook-Signature`.

use super::signature::{constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};

/// Checks `X-Webhook-Signature`: hex HMAC-SHA256 of the raw body under the webhook secret. The
/// scheme has no timestamp; the call id deduplicates replays.
pub fn verify(secret: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let signature = header(request.headers, "x-webhook-signature")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let expected = sign(secret, request.body);
    if constant_time_eq(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(AuthFailure::SignatureMismatch)
    }
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&hmac_sha256(secret.as_bytes(), &[body]))
}
