//! Twilio: recording status callbacks (form-encoded), signed with `X-Twilio-Signature`.

use std::collections::{BTreeMap, BTreeSet};

use super::signature::{constant_time_eq, header};
use super::{AuthFailure, WebhookRequest};
use crate::model::integrations::HmacAlgorithm;

/// Checks `X-Twilio-Signature`: base64 HMAC-SHA1 under the auth token of the URL Twilio called
/// (query included) followed by every form parameter, names sorted, each name's distinct values
/// sorted. The URL is tried with its port removed and with the scheme's default port made
/// explicit, as Twilio's own validators do. A `bodySHA256` query parameter marks a JSON body:
/// then no parameters are signed and the body must hash to that value.
pub fn verify(auth_token: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let signature = header(request.headers, "x-twilio-signature")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let body_sha256 = request.query_param("bodySHA256");
    let params: Vec<(String, String)> = match body_sha256 {
        Some(_) => Vec::new(),
        None => form_urlencoded::parse(request.body).into_owned().collect(),
    };
    let signed = url_variants(request.url).iter().any(|url| {
        constant_time_eq(sign(auth_token, url, &params).as_bytes(), signature.as_bytes())
    });
    if !signed {
        return Err(AuthFailure::SignatureMismatch);
    }
    if let Some(expected) = body_sha256 {
        let actual = crate::crypto::sha256_hex(request.body);
        if !constant_time_eq(actual.as_bytes(), expected.to_ascii_lowercase().as_bytes()) {
            return Err(AuthFailure::BodyDigestMismatch);
        }
    }
    Ok(())
}

/// The signature Twilio sends for `url` and `params`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().insert(value);
    }
    let mut signed = url.to_owned();
    for (name, values) in sorted {
        for value in values {
            signed.push_str(name);
            signed.push_str(value);
        }
    }
    let mac =
        super::signature::hmac(HmacAlgorithm::Sha1, auth_token.as_bytes(), &[signed.as_bytes()]);
    data_encoding::BASE64.encode(&mac)
}

/// `url` without its port, and with the port explicit (the scheme's default when absent).
fn url_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_owned()];
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (format!("{userinfo}@"), host_port),
        None => (String::new(), authority),
    };
    let (host, port) = split_port(host_port);
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    };
    let without = format!("{scheme}://{userinfo}{host}{tail}");
    match port.or(default_port) {
        Some(port) => vec![without, format!("{scheme}://{userinfo}{host}:{port}{tail}")],
        None => vec![without],
    }
}

fn split_port(host_port: &str) -> (&str, Option<&str>) {
    let host_end = if host_port.starts_with('[') {
        host_port.find(']').map_or(host_port.len(), |end| end + 1)
    } else {
        0
    };
    match host_port[host_end..].rfind(':') {
        Some(colon) => {
            let colon = host_end + colon;
            let port = &host_port[colon + 1..];
            if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) {
                (&host_port[..colon], Some(port))
            } else {
                (host_port, None)
            }
        }
        None => (host_port, None),
    }
}

/// A completed recording callback becomes the call of its CallSid, with the recording as
/// dual-channel WAV downloaded with basic auth (account SID from the integration's options, else
/// the callback's AccountSid; the auth token from the integration's secrets). Other recording
/// statuses are ignored. The payload carries no transcript: the call is transcribed.
pub fn normalize(
    context: &super::NormalizeContext<'_>,
    body: &[u8],
) -> Result<super::Normalized, super::PayloadError> {
    use super::{Normalized, PayloadError, WebhookCall};
    use crate::model::conversation::{AudioCredentials, AudioSource};

    let params: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let param =
        |name: &str| params.get(name).map(|value| value.trim()).filter(|value| !value.is_empty());
    let required = |name: &str| param(name).ok_or_else(|| PayloadError::new(name, "is required"));
    let status = required("RecordingStatus")?;
    let event = format!("recording.{status}");
    if status != "completed" {
        return Ok(Normalized::Ignored { event });
    }
    let call_id = required("CallSid")?;
    // The recording's id deduplicates redeliveries (it is in the metadata, so in the hash).
    required("RecordingSid")?;
    let recording_url = required("RecordingUrl")?;
    if !recording_url.starts_with("https://") && !recording_url.starts_with("http://") {
        return Err(PayloadError::new("RecordingUrl", "must be an http(s) URL"));
    }
    let account_sid = context
        .options
        .twilio
        .as_ref()
        .map(|twilio| twilio.account_sid.trim())
        .filter(|sid| !sid.is_empty())
        .or_else(|| param("AccountSid"))
        .ok_or_else(|| {
            PayloadError::new("AccountSid", "is required (or set options.twilio.account_sid)")
        })?;
    let mut conversation = super::conversation(
        crate::model::integrations::Provider::Twilio,
        call_id.to_owned(),
        context.first_turn(),
    );
    conversation.started_at = param("RecordingStartTime")
        .map(|time| {
            chrono::DateTime::parse_from_rfc2822(time)
                .map(|time| time.with_timezone(&chrono::Utc))
                .map_err(|_| PayloadError::new("RecordingStartTime", "must be an RFC 2822 time"))
        })
        .transpose()?;
    conversation.duration_ms = param("RecordingDuration")
        .map(|seconds| {
            seconds
                .parse::<i64>()
                .map(|seconds| seconds.saturating_mul(1000))
                .map_err(|_| PayloadError::new("RecordingDuration", "must be whole seconds"))
        })
        .transpose()?;
    if let (Some(started), Some(duration)) = (conversation.started_at, conversation.duration_ms) {
        conversation.ended_at = super::payload::end_time(started, duration);
    }
    conversation.assistant_channel = context
        .options
        .twilio
        .as_ref()
        .map(|twilio| twilio.assistant_channel)
        .filter(|channel| (1..=2).contains(channel));
    let base = recording_url.trim_end_matches(".wav").trim_end_matches(".mp3");
    conversation.audio = Some(AudioSource::Url {
        url: format!("{base}.wav?RequestedChannels=2"),
        credentials: Some(AudioCredentials::TwilioBasic {
            integration_id: context.integration_id,
            account_sid: account_sid.to_owned(),
        }),
    });
    for (name, key) in [
        ("RecordingSid", "twilio_recording_sid"),
        ("RecordingChannels", "twilio_recording_channels"),
        ("RecordingSource", "twilio_recording_source"),
        ("RecordingTrack", "twilio_recording_track"),
        ("ConferenceSid", "twilio_conference_sid"),
    ] {
        if let Some(value) = param(name) {
            conversation.metadata.insert(key.to_owned(), value.into());
        }
    }
    Ok(Normalized::Call(Box::new(WebhookCall { event, conversation, inline_audio: None })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_variants_strip_and_add_ports() {
        assert_eq!(
            url_variants("https://example.com/a?b=1"),
            ["https://example.com/a?b=1", "https://example.com:443/a?b=1"]
        );
        assert_eq!(
            url_variants("http://user:pw@example.com:1234/a"),
            ["http://user:pw@example.com/a", "http://user:pw@example.com:1234/a"]
        );
        assert_eq!(url_variants("http://[::1]:8080/x"), ["http://[::1]/x", "http://[::1]:8080/x"]);
        assert_eq!(url_variants("http://[::1]/x"), ["http://[::1]/x", "http://[::1]:80/x"]);
    }
}
