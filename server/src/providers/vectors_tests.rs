//! Every vector of shared/reference/signature-vectors.json (copied to testdata/) gets its
//! expected verdict, and the signers used by the end-to-end tests reproduce the valid ones.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::*;
use crate::model::integrations::HmacOptions;

#[derive(Deserialize)]
struct Vector {
    provider: String,
    name: String,
    secret: String,
    url_or_null: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    body_or_params: Value,
    timestamp_or_null: Option<i64>,
    now_or_null: Option<i64>,
    expected_valid: bool,
    expected_signature_or_null: Option<String>,
    #[serde(default)]
    notes: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("testdata/signature-vectors.json")).unwrap()
}

fn body(vector: &Vector) -> Vec<u8> {
    match &vector.body_or_params {
        Value::String(body) => body.clone().into_bytes(),
        Value::Array(pairs) => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for pair in pairs {
                form.append_pair(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            }
            form.finish().into_bytes()
        }
        other => panic!("{}: unexpected body {other}", vector.name),
    }
}

/// `now` in the vector's own unit: milliseconds for Retell and Vapi, seconds otherwise.
fn now(vector: &Vector) -> DateTime<Utc> {
    let value = vector.now_or_null.or(vector.timestamp_or_null).unwrap_or(1_700_000_000);
    if value >= 100_000_000_000 {
        DateTime::from_timestamp_millis(value).unwrap()
    } else {
        DateTime::from_timestamp(value, 0).unwrap()
    }
}

fn vapi_hmac_defaults() -> HmacOptions {
    HmacOptions { timestamp_header: "x-timestamp".to_owned(), ..HmacOptions::default() }
}

fn verify_vector(vector: &Vector) -> Result<(), AuthFailure> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &vector.headers {
        headers.insert(
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    let body = body(vector);
    let request = WebhookRequest {
        url: vector.url_or_null.as_deref().unwrap_or("https://hooks.example.com/v0/voice"),
        headers: &headers,
        body: &body,
        now: now(vector),
    };
    let secret = vector.secret.as_str();
    match vector.provider.as_str() {
        "twilio" => twilio::verify(secret, &request),
        "retell" => retell::verify(secret, &request),
        "elevenlabs" => elevenlabs::verify(secret, &request),
        "bland" => bland::verify(secret, &request),
        "standard_webhooks" => standard_webhooks::verify(secret, &request),
        "livekit" => {
            let api_key = vector
                .notes
                .split_whitespace()
                .find_map(|word| word.strip_prefix("api_key="))
                .unwrap()
                .trim_end_matches(['.', ',']);
            livekit::verify(api_key, secret, &request)
        }
        "vapi" if headers.contains_key("x-vapi-secret") => {
            tokens::verify_vapi_secret(secret, &request)
        }
        "vapi" => custom_hmac::verify(&vapi_hmac_defaults(), secret, &request),
        other => panic!("no verifier for provider {other}"),
    }
}

#[test]
fn every_signature_vector_gets_its_expected_verdict() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 61);
    let mut wrong = Vec::new();
    for vector in &vectors {
        let verdict = verify_vector(vector);
        if verdict.is_ok() != vector.expected_valid {
            wrong.push(format!(
                "{}: expected valid={}, got {verdict:?}",
                vector.name, vector.expected_valid
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn signers_reproduce_the_valid_vectors() {
    let mut checked = 0;
    for vector in vectors().iter().filter(|vector| vector.expected_valid) {
        let Some(expected) = vector.expected_signature_or_null.as_deref() else { continue };
        let body = body(vector);
        let header = |name: &str| {
            vector
                .headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
                .unwrap()
        };
        let produced = match vector.provider.as_str() {
            "retell" => {
                let timestamp = vector.timestamp_or_null.unwrap().to_string();
                format!("v={timestamp},d={}", retell::sign(&vector.secret, &body, &timestamp))
            }
            "elevenlabs" => elevenlabs::sign(
                &vector.secret,
                &body,
                &vector.timestamp_or_null.unwrap().to_string(),
            ),
            "bland" => bland::sign(&vector.secret, &body),
            "standard_webhooks" if !header("webhook-signature").contains(' ') => {
                let signature = standard_webhooks::sign(
                    &vector.secret,
                    header("webhook-id"),
                    header("webhook-timestamp"),
                    &body,
                )
                .unwrap();
                format!("v1,{signature}")
            }
            "vapi" if vector.headers.contains_key("x-signature") => custom_hmac::sign(
                &vapi_hmac_defaults(),
                &vector.secret,
                Some(header("x-timestamp")),
                &body,
            )
            .unwrap(),
            "twilio" if vector.name == "twilio_form_params_valid" => {
                let params: Vec<(String, String)> =
                    form_urlencoded::parse(&body).into_owned().collect();
                twilio::sign(&vector.secret, vector.url_or_null.as_deref().unwrap(), &params)
            }
            _ => continue,
        };
        assert_eq!(produced, expected, "{}", vector.name);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} signers checked");
}

#[test]
fn livekit_tokens_minted_here_verify_and_expire() {
    let body = br#"{"event":"room_finished"}"#;
    let token = livekit::sign("APIkey", "secret-secret", body, 1_700_000_000);
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", token.parse().unwrap());
    let at = |seconds| WebhookRequest {
        url: "https://hooks.example.com/",
        headers: &headers,
        body,
        now: DateTime::from_timestamp(seconds, 0).unwrap(),
    };
    assert_eq!(livekit::verify("APIkey", "secret-secret", &at(1_700_000_100)), Ok(()));
    assert_eq!(livekit::verify("APIkey", "secret-secret", &at(1_700_000_360)), Ok(()));
    assert_eq!(
        livekit::verify("APIkey", "secret-secret", &at(1_700_000_361)),
        Err(AuthFailure::TimestampTooOld)
    );
    assert_eq!(
        livekit::verify("APIkey", "secret-secret", &at(1_699_999_900)),
        Err(AuthFailure::TimestampInFuture)
    );
    assert_eq!(
        livekit::verify("other", "secret-secret", &at(1_700_000_100)),
        Err(AuthFailure::UnknownIssuer)
    );
    // A token not signed with the secret learns nothing about the API key: it fails on its
    // signature whatever its issuer.
    for api_key in ["APIkey", "other"] {
        assert_eq!(
            livekit::verify(api_key, "another-secret", &at(1_700_000_100)),
            Err(AuthFailure::SignatureMismatch),
            "{api_key}"
        );
    }
}

#[test]
fn header_and_url_tokens() {
    let mut headers = http::HeaderMap::new();
    headers.insert("api-key", "tok_1234567890abcdef".parse().unwrap());
    headers.insert("authorization", "Bearer tok_1234567890abcdef".parse().unwrap());
    let request = WebhookRequest {
        url: "https://hooks.example.com/v0/voice/voicekit/monitor/pub_x?token=tok_1234567890abcdef",
        headers: &headers,
        body: b"{}",
        now: Utc::now(),
    };
    let bearer = crate::model::integrations::HeaderTokenOptions::default();
    let plain = crate::model::integrations::HeaderTokenOptions {
        header_name: "api-key".to_owned(),
        bearer_prefix: false,
    };
    assert_eq!(tokens::verify_header_token(&bearer, "tok_1234567890abcdef", &request), Ok(()));
    assert_eq!(tokens::verify_header_token(&plain, "tok_1234567890abcdef", &request), Ok(()));
    assert_eq!(
        tokens::verify_header_token(&plain, "tok_1234567890abcdeX", &request),
        Err(AuthFailure::TokenMismatch)
    );
    assert_eq!(tokens::verify_url_token("tok_1234567890abcdef", &request), Ok(()));
    assert_eq!(
        tokens::verify_url_token("tok_other_other_other", &request),
        Err(AuthFailure::TokenMismatch)
    );
    let no_token = WebhookRequest { url: "https://hooks.example.com/x", ..request };
    assert_eq!(
        tokens::verify_url_token("tok_1234567890abcdef", &no_token),
        Err(AuthFailure::MissingToken)
    );
}
