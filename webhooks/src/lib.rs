//! Standard Webhooks (standardwebhooks.com, Svix-compatible) signatures: `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//! under the secret's base64-decoded bytes (`whsec_` prefix optional). One implementation for
//! the earshot server (verifying providers' deliveries, signing its own events) and its SDKs
//! (verifying what earshot sends).

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// How far a timestamp may be from now, either way, in seconds.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Why a message does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// No `webhook-signature`.
    MissingSignature,
    /// No `webhook-id` or `webhook-timestamp`, or a timestamp that is not a number.
    Malformed,
    /// No `v1` signature matches any of the secrets.
    Mismatch,
    /// The timestamp is more than the tolerance in the past (a replay, or a clock far behind).
    TooOld,
    /// The timestamp is more than the tolerance in the future.
    InFuture,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::MissingSignature => "no webhook-signature header",
            Self::Malformed => "webhook-id or webhook-timestamp missing or malformed",
            Self::Mismatch => "no signature matches the secrets",
            Self::TooOld => "webhook-timestamp is too old",
            Self::InFuture => "webhook-timestamp is in the future",
        })
    }
}

impl std::error::Error for VerifyError {}

/// A secret's key: the base64 after an optional `whsec_`, padding optional.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    data_encoding::BASE64_NOPAD.decode(encoded.trim_end_matches('=').as_bytes()).ok()
}

/// The base64 `v1` signature of a message; `None` when the secret is not base64.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key = secret_key(secret)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        mac.update(part);
    }
    Some(data_encoding::BASE64.encode(&mac.finalize().into_bytes()))
}

/// The `webhook-signature` value for a message: `v1,<base64>` for each secret that is valid
/// base64, space-separated (every valid secret signs during a rotation).
pub fn signature_header<S: AsRef<str>>(
    secrets: &[S],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .filter_map(|secret| sign(secret.as_ref(), id, &timestamp, body))
        .map(|signature| format!("v1,{signature}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a message's headers (`id`, `timestamp`, `signatures`: the header values, if present)
/// against `secrets`: any `v1` entry matching any secret passes (compared in constant time;
/// other versions are skipped), and the timestamp (seconds) must lie within the tolerance of
/// `now_seconds`.
pub fn verify<S: AsRef<str>>(
    secrets: &[S],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now_seconds: i64,
) -> Result<(), VerifyError> {
    let signatures =
        signatures.filter(|value| !value.is_empty()).ok_or(VerifyError::MissingSignature)?;
    let (Some(id), Some(timestamp)) = (id, timestamp) else {
        return Err(VerifyError::Malformed);
    };
    let seconds: i64 = timestamp.trim().parse().map_err(|_| VerifyError::Malformed)?;
    let expected: Vec<String> =
        secrets.iter().filter_map(|secret| sign(secret.as_ref(), id, timestamp, body)).collect();
    let matched = signatures.split(' ').any(|entry| {
        entry.split_once(',').is_some_and(|(version, signature)| {
            version == "v1"
                && expected
                    .iter()
                    .any(|expected| bool::from(signature.as_bytes().ct_eq(expected.as_bytes())))
        })
    });
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    if seconds < now_seconds.saturating_sub(TOLERANCE_SECONDS) {
        Err(VerifyError::TooOld)
    } else if seconds > now_seconds.saturating_add(TOLERANCE_SECONDS) {
        Err(VerifyError::InFuture)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example (standard-webhooks/libraries test vectors).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_specification_example_signs_and_verifies() {
        assert_eq!(format!("v1,{}", sign(SECRET, ID, TIMESTAMP, BODY).unwrap()), SIGNATURE);
        let now = 1_614_265_330;
        assert_eq!(
            verify(&[SECRET], Some(ID), Some(TIMESTAMP), Some(SIGNATURE), BODY, now),
            Ok(())
        );
        // Several entries, other versions skipped.
        let listed = format!("v2,abc v1,bm9wZQ== {SIGNATURE}");
        assert_eq!(verify(&[SECRET], Some(ID), Some(TIMESTAMP), Some(&listed), BODY, now), Ok(()));
    }

    #[test]
    fn each_failure_is_named() {
        let now = 1_614_265_330;
        let check = |id, timestamp, signature, body: &[u8], now| {
            verify(&[SECRET], id, timestamp, signature, body, now)
        };
        assert_eq!(
            check(Some(ID), Some(TIMESTAMP), None, BODY, now),
            Err(VerifyError::MissingSignature)
        );
        assert_eq!(
            check(None, Some(TIMESTAMP), Some(SIGNATURE), BODY, now),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            check(Some(ID), Some("soon"), Some(SIGNATURE), BODY, now),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            check(Some(ID), Some(TIMESTAMP), Some(SIGNATURE), b"{}", now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(Some(ID), Some(TIMESTAMP), Some(SIGNATURE), BODY, now + 301),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            check(Some(ID), Some(TIMESTAMP), Some(SIGNATURE), BODY, now - 301),
            Err(VerifyError::InFuture)
        );
        assert_eq!(
            verify(&["whsec_b3RoZXI="], Some(ID), Some(TIMESTAMP), Some(SIGNATURE), BODY, now),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn every_secret_signs_and_any_verifies() {
        let other = "whsec_b3RoZXJzZWNyZXRvdGhlcnNlY3JldA==";
        let header = signature_header(&[SECRET, other, "not base64!"], ID, 1_614_265_330, BODY);
        assert_eq!(header.split(' ').count(), 2);
        for secret in [SECRET, other] {
            assert_eq!(
                verify(&[secret], Some(ID), Some(TIMESTAMP), Some(&header), BODY, 1_614_265_330),
                Ok(())
            );
        }
    }
}
