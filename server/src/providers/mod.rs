//! Provider webhooks: one module per provider. Each verifies a request the provider's own way
//! over the raw bytes and normalizes its payload into canonical conversations.
//!
//! Verification is pure: a request, the integration's secrets and options, and the time in; a
//! verdict out. Nothing here reads the clock, the network or the database.

pub mod bland;
pub mod custom_hmac;
pub mod elevenlabs;
pub mod livekit;
pub mod retell;
mod signature;
pub mod standard_webhooks;
pub mod tokens;
pub mod twilio;

#[cfg(test)]
mod vectors_tests;

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::domain::integrations::{IntegrationOptions, SecretSet, WebhookAuthType};

/// What a verifier sees of a webhook request.
#[derive(Clone, Copy, Debug)]
pub struct WebhookRequest<'a> {
    /// The URL the sender called, as it called it: the public base URL, path and query.
    pub url: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

impl WebhookRequest<'_> {
    /// The first value of a query parameter of `url`, decoded.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.url.split_once('?')?.1;
        let query = query.split_once('#').map_or(query, |(query, _)| query);
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// Why a request failed authentication. The code goes into the 401 body and the delivery log;
/// neither ever carries secret material or the expected signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    MissingSignature,
    MalformedSignature,
    SignatureMismatch,
    TimestampTooOld,
    TimestampInFuture,
    BodyDigestMismatch,
    UnknownIssuer,
    MissingToken,
    TokenMismatch,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::MissingSignature => "missing_signature",
            AuthFailure::MalformedSignature => "malformed_signature",
            AuthFailure::SignatureMismatch => "signature_mismatch",
            AuthFailure::TimestampTooOld => "stale_timestamp",
            AuthFailure::TimestampInFuture => "future_timestamp",
            AuthFailure::BodyDigestMismatch => "body_digest_mismatch",
            AuthFailure::UnknownIssuer => "unknown_issuer",
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::TokenMismatch => "token_mismatch",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::MissingSignature => "the request carries no signature header",
            AuthFailure::MalformedSignature => "the signature header is not in the expected format",
            AuthFailure::SignatureMismatch => "the signature does not match the body and secret",
            AuthFailure::TimestampTooOld => "the signed timestamp is too old",
            AuthFailure::TimestampInFuture => "the signed timestamp is too far in the future",
            AuthFailure::BodyDigestMismatch => "the body does not match the signed digest",
            AuthFailure::UnknownIssuer => "the token was issued for another API key",
            AuthFailure::MissingToken => "the request carries no token",
            AuthFailure::TokenMismatch => "the token does not match",
        }
    }
}

/// Verifies `request` against one set of the integration's secrets.
pub fn verify(
    auth_type: WebhookAuthType,
    options: &IntegrationOptions,
    secrets: &SecretSet,
    request: &WebhookRequest<'_>,
) -> Result<(), AuthFailure> {
    let secret = |name: &str| secrets.get(name).map_or("", |value| value.expose());
    match auth_type {
        WebhookAuthType::TwilioSignature => twilio::verify(secret("auth_token"), request),
        WebhookAuthType::RetellSignature => retell::verify(secret("api_key"), request),
        WebhookAuthType::VapiSecret => tokens::verify_vapi_secret(secret("secret"), request),
        WebhookAuthType::HeaderToken => tokens::verify_header_token(
            &options.header_token.clone().unwrap_or_default(),
            secret("token"),
            request,
        ),
        WebhookAuthType::Hmac => custom_hmac::verify(
            &options.hmac.clone().unwrap_or_default(),
            secret("secret"),
            request,
        ),
        WebhookAuthType::ElevenlabsSignature => {
            elevenlabs::verify(secret("webhook_secret"), request)
        }
        WebhookAuthType::LivekitJwt => {
            livekit::verify(secret("api_key"), secret("api_secret"), request)
        }
        WebhookAuthType::BlandSignature => bland::verify(secret("webhook_secret"), request),
        WebhookAuthType::StandardWebhooks => {
            standard_webhooks::verify(secret("signing_secret"), request)
        }
        WebhookAuthType::UrlToken => tokens::verify_url_token(secret("token"), request),
        // The allowlist itself is checked at admission, before any verifier runs.
        WebhookAuthType::IpAllowlist => Ok(()),
    }
}

/// Verifies against each secret set in turn (current first, then those still in their rotation
/// grace period); the first that passes wins. Otherwise the current set's failure is reported.
pub fn verify_any(
    auth_type: WebhookAuthType,
    options: &IntegrationOptions,
    sets: &[SecretSet],
    request: &WebhookRequest<'_>,
) -> Result<(), AuthFailure> {
    let mut first_failure = None;
    for set in sets {
        match verify(auth_type, options, set, request) {
            Ok(()) => return Ok(()),
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    Err(first_failure.unwrap_or(AuthFailure::SignatureMismatch))
}
