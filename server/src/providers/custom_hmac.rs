//! The `hmac` auth type: a configurable HMAC for signing platforms without a module of their own
//! (Vapi's HMAC credential, a `X-VOICEOI-SIGNATURE` sender, ...).

use super::signature::{check_window, constant_time_eq, header, hmac};
use super::{AuthFailure, WebhookRequest};
use crate::model::integrations::{HmacOptions, SignatureEncoding, decode_base64_lenient};

/// Timestamps above this are milliseconds, below it seconds (10^11 s is the year 5138).
const MILLISECONDS_THRESHOLD: i64 = 100_000_000_000;

/// Checks `options.signature_header` (after `options.signature_prefix`) against the HMAC of the
/// body, or of `<timestamp>.<body>` when `options.timestamp_header` is set (Vapi's default
/// payload format); the timestamp, in seconds or milliseconds, must then be within
/// `options.timestamp_tolerance_seconds` of now.
pub fn verify(
    options: &HmacOptions,
    secret: &str,
    request: &WebhookRequest<'_>,
) -> Result<(), AuthFailure> {
    let value = header(request.headers, &options.signature_header)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let presented = value
        .strip_prefix(options.signature_prefix.as_str())
        .ok_or(AuthFailure::MalformedSignature)?;
    let timestamp = if options.timestamp_header.is_empty() {
        None
    } else {
        let value = header(request.headers, &options.timestamp_header)
            .map(str::trim)
            .ok_or(AuthFailure::MalformedSignature)?;
        let number: i64 = value.parse().map_err(|_| AuthFailure::MalformedSignature)?;
        Some((value, number))
    };
    let expected = sign(options, secret, timestamp.map(|(value, _)| value), request.body)
        .ok_or(AuthFailure::SignatureMismatch)?;
    let matches = match options.encoding {
        SignatureEncoding::Hex => {
            constant_time_eq(expected.as_bytes(), presented.to_ascii_lowercase().as_bytes())
        }
        SignatureEncoding::Base64 => constant_time_eq(expected.as_bytes(), presented.as_bytes()),
    };
    if !matches {
        return Err(AuthFailure::SignatureMismatch);
    }
    if let Some((_, number)) = timestamp {
        let tolerance = i64::from(options.timestamp_tolerance_seconds);
        if number >= MILLISECONDS_THRESHOLD {
            let tolerance = tolerance * 1000;
            check_window(number, request.now.timestamp_millis(), tolerance, tolerance)?;
        } else {
            check_window(number, request.now.timestamp(), tolerance, tolerance)?;
        }
    }
    Ok(())
}

/// The signature (without prefix) for `body`, and `timestamp` when the options use one; `None`
/// when the options say the secret is base64 and it is not.
pub fn sign(
    options: &HmacOptions,
    secret: &str,
    timestamp: Option<&str>,
    body: &[u8],
) -> Option<String> {
    let key = if options.secret_is_base64 {
        decode_base64_lenient(secret)?
    } else {
        secret.as_bytes().to_vec()
    };
    let mac = match timestamp {
        Some(timestamp) => hmac(options.algorithm, &key, &[timestamp.as_bytes(), b".", body]),
        None => hmac(options.algorithm, &key, &[body]),
    };
    Some(match options.encoding {
        SignatureEncoding::Hex => data_encoding::HEXLOWER.encode(&mac),
        SignatureEncoding::Base64 => data_encoding::BASE64.encode(&mac),
    })
}
