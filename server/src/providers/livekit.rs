//! LiveKit: `egress_ended` and `room_finished` webhooks, authenticated by an HS256 JWT in
//! `Authorization` whose `sha256` claim binds the body.

use serde::Deserialize;

use super::signature::{constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};

/// Clock skew allowed on `exp` and `nbf`, as LiveKit's Go and Python receivers allow.
const LEEWAY_SECONDS: i64 = 60;

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    exp: Option<i64>,
    nbf: Option<i64>,
    #[serde(default)]
    sha256: String,
}

/// Checks the JWT in `Authorization` (raw, or after `Bearer `): algorithm HS256 only, signed
/// with the API secret, then issuer equal to the API key, `exp` present and not passed (60 s leeway),
/// `nbf` reached, and the `sha256` claim equal to base64(SHA-256(body)).
///
/// Hand-written over `hmac` rather than a JWT crate: one fixed algorithm and four claims, where
/// the JWT crates pull in RSA and elliptic-curve code and read the system clock.
pub fn verify(
    api_key: &str,
    api_secret: &str,
    request: &WebhookRequest<'_>,
) -> Result<(), AuthFailure> {
    let value = header(request.headers, "authorization")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthFailure::MalformedSignature);
    };
    let decode =
        |part: &str| data_encoding::BASE64URL_NOPAD.decode(part.trim_end_matches('=').as_bytes());
    let jwt_header: JwtHeader = decode(header_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(AuthFailure::MalformedSignature)?;
    if jwt_header.alg != "HS256" {
        return Err(AuthFailure::MalformedSignature);
    }
    let claims: Claims = decode(claims_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(AuthFailure::MalformedSignature)?;
    let signature = decode(signature_b64).map_err(|_| AuthFailure::MalformedSignature)?;
    // The signature first: answering `unknown_issuer` to an unsigned token would tell anyone
    // which API key an integration has.
    let signed =
        hmac_sha256(api_secret.as_bytes(), &[header_b64.as_bytes(), b".", claims_b64.as_bytes()]);
    if !constant_time_eq(&signed, &signature) {
        return Err(AuthFailure::SignatureMismatch);
    }
    if !constant_time_eq(claims.iss.as_bytes(), api_key.as_bytes()) {
        return Err(AuthFailure::UnknownIssuer);
    }
    let now = request.now.timestamp();
    match claims.exp {
        None => return Err(AuthFailure::MalformedSignature),
        Some(exp) if now > exp.saturating_add(LEEWAY_SECONDS) => {
            return Err(AuthFailure::TimestampTooOld);
        }
        Some(_) => {}
    }
    if claims.nbf.is_some_and(|nbf| now < nbf.saturating_sub(LEEWAY_SECONDS)) {
        return Err(AuthFailure::TimestampInFuture);
    }
    let digest = data_encoding::BASE64.encode(&crate::crypto::sha256(request.body));
    if !constant_time_eq(digest.as_bytes(), claims.sha256.as_bytes()) {
        return Err(AuthFailure::BodyDigestMismatch);
    }
    Ok(())
}

/// A token as LiveKit mints one for `body`, valid from `issued_at` for five minutes.
pub fn sign(api_key: &str, api_secret: &str, body: &[u8], issued_at: i64) -> String {
    let encode = |bytes: &[u8]| data_encoding::BASE64URL_NOPAD.encode(bytes);
    let header = encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": api_key,
        "nbf": issued_at,
        "iat": issued_at,
        "exp": issued_at + 300,
        "sha256": data_encoding::BASE64.encode(&crate::crypto::sha256(body)),
    });
    let claims = encode(claims.to_string().as_bytes());
    let signature =
        hmac_sha256(api_secret.as_bytes(), &[header.as_bytes(), b".", claims.as_bytes()]);
    format!("{header}.{claims}.{}", encode(&signature))
}

/// `egress_ended` gives the recording (its first file result) and `room_finished` the room's
/// times; both land on the call of the room id. Other events are ignored.
pub fn normalize(
    context: &super::NormalizeContext<'_>,
    body: &[u8],
) -> Result<super::Normalized, super::PayloadError> {
    use super::payload::*;
    use super::{Normalized, PayloadError, WebhookCall};
    use crate::model::conversation::AudioSource;

    let root = parse_json(body)?;
    let event = required_str(&root, "event")?;
    let first_turn = context.first_turn();
    let provider = crate::model::integrations::Provider::Livekit;
    let conversation = match event.as_str() {
        "egress_ended" => {
            let status = opt_str(&root, "egressInfo.status")?;
            if status.as_deref().is_some_and(|status| status != "EGRESS_COMPLETE") {
                return Ok(Normalized::Ignored { event });
            }
            let call_id = required_str(&root, "egressInfo.roomId")?;
            let mut conversation = super::conversation(provider, call_id, first_turn);
            let nanos =
                |path: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, PayloadError> {
                    opt_i64(&root, path)?
                        .filter(|nanos| *nanos > 0)
                        .map(|nanos| from_millis(path, nanos / 1_000_000))
                        .transpose()
                };
            conversation.started_at = nanos("egressInfo.startedAt")?;
            conversation.ended_at = nanos("egressInfo.endedAt")?;
            let files = opt_array(&root, "egressInfo.fileResults")?;
            let location = match files.first() {
                Some(file) => opt_str(file, "location").map_err(|error| {
                    PayloadError::new("egressInfo.fileResults[0].location", error.reason)
                })?,
                None => opt_str(&root, "egressInfo.file.location")?,
            };
            let location = location.ok_or_else(|| {
                PayloadError::new("egressInfo.fileResults[0].location", "is required")
            })?;
            if let Some(duration_ns) =
                files.first().map(|file| opt_i64(file, "duration")).transpose()?.flatten()
            {
                conversation.duration_ms = Some(duration_ns / 1_000_000);
            }
            conversation.audio = Some(AudioSource::Url { url: location, credentials: None });
            if let Some(room) = opt_str(&root, "egressInfo.roomName")? {
                conversation.metadata.insert("livekit_room_name".to_owned(), room.into());
            }
            conversation
        }
        "room_finished" => {
            let call_id = required_str(&root, "room.sid")?;
            let mut conversation = super::conversation(provider, call_id, first_turn);
            conversation.started_at = opt_f64(&root, "room.creationTime")?
                .map(|seconds| from_seconds("room.creationTime", seconds))
                .transpose()?;
            conversation.ended_at = opt_f64(&root, "createdAt")?
                .map(|seconds| from_seconds("createdAt", seconds))
                .transpose()?;
            if let (Some(started), Some(ended)) = (conversation.started_at, conversation.ended_at) {
                conversation.duration_ms = Some((ended - started).num_milliseconds());
            }
            if let Some(room) = opt_str(&root, "room.name")? {
                conversation.metadata.insert("livekit_room_name".to_owned(), room.into());
            }
            if let Some(metadata) = opt_str(&root, "room.metadata")? {
                conversation.metadata.insert("livekit_room_metadata".to_owned(), metadata.into());
            }
            conversation
        }
        _ => return Ok(Normalized::Ignored { event }),
    };
    Ok(Normalized::Call(Box::new(WebhookCall { event, conversation, inline_audio: None })))
}
