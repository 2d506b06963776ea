//! Standard Webhooks (standardwebhooks.com, Svix-compatible): `webhook-id`, `webhook-timestamp`
//! and `webhook-signature` headers; the `webhook` provider.

use super::signature::header;
use super::{AuthFailure, WebhookRequest};

/// Checks a `webhook-signature` list (`v1,<base64> v1,<base64> ...`; any matching `v1` entry
/// passes, other versions are skipped) against HMAC-SHA256 of `<id>.<timestamp>.<body>` under
/// the base64-decoded secret, with the timestamp (seconds) within five minutes either way
/// (`earshot_webhooks`, which the SDKs share). `svix-*` headers are accepted in place of
/// `webhook-*`.
pub fn verify(signing_secret: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    use earshot_webhooks::VerifyError;
    let pick = |name: &str| {
        header(request.headers, &format!("webhook-{name}"))
            .or_else(|| header(request.headers, &format!("svix-{name}")))
    };
    earshot_webhooks::verify(
        &[signing_secret],
        pick("id"),
        pick("timestamp"),
        pick("signature"),
        request.body,
        request.now.timestamp(),
    )
    .map_err(|error| match error {
        VerifyError::MissingSignature => AuthFailure::MissingSignature,
        VerifyError::Malformed => AuthFailure::MalformedSignature,
        VerifyError::Mismatch => AuthFailure::SignatureMismatch,
        VerifyError::TooOld => AuthFailure::TimestampTooOld,
        VerifyError::InFuture => AuthFailure::TimestampInFuture,
    })
}

/// The base64 `v1` signature for a message; `None` when the secret is not base64.
pub fn sign(signing_secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    earshot_webhooks::sign(signing_secret, id, timestamp, body)
}
