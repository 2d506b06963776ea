//! Standard Webhooks (standardwebhooks.com, Svix-compatible): `webhook-id`, `webhook-timestamp`
//! and `webhook-signature` headers; the `webhook` provider.

use super::signature::{check_window, constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};
use crate::model::integrations::decode_base64_lenient;

const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Checks a `webhook-signature` list (`v1,<base64> v1,<base64> ...`; any matching `v1` entry
/// passes, other versions are skipped) against HMAC-SHA256 of `<id>.<timestamp>.<body>` under
/// the base64-decoded secret, with the timestamp (seconds) within five minutes either way.
/// `svix-*` headers are accepted in place of `webhook-*`.
pub fn verify(signing_secret: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let pick = |name: &str| {
        header(request.headers, &format!("webhook-{name}"))
            .or_else(|| header(request.headers, &format!("svix-{name}")))
    };
    let signatures =
        pick("signature").filter(|value| !value.is_empty()).ok_or(AuthFailure::MissingSignature)?;
    let (Some(id), Some(timestamp)) = (pick("id"), pick("timestamp")) else {
        return Err(AuthFailure::MalformedSignature);
    };
    let seconds: i64 = timestamp.trim().parse().map_err(|_| AuthFailure::MalformedSignature)?;
    let expected =
        sign(signing_secret, id, timestamp, request.body).ok_or(AuthFailure::SignatureMismatch)?;
    let matched = signatures.split(' ').any(|entry| {
        entry.split_once(',').is_some_and(|(version, signature)| {
            version == "v1" && constant_time_eq(signature.as_bytes(), expected.as_bytes())
        })
    });
    if !matched {
        return Err(AuthFailure::SignatureMismatch);
    }
    check_window(seconds, request.now.timestamp(), TOLERANCE_SECONDS, TOLERANCE_SECONDS)
}

/// The base64 `v1` signature for a message; `None` when the secret is not base64.
pub fn sign(signing_secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key =
        decode_base64_lenient(signing_secret.strip_prefix("whsec_").unwrap_or(signing_secret))?;
    let mac = hmac_sha256(&key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    Some(data_encoding::BASE64.encode(&mac))
}
