//! Provider webhooks: one module per provider. Each verifies a request the provider's own way
//! over the raw bytes and normalizes its payload into canonical conversations.
//!
//! Verification is pure: a request, the integration's secrets and options, and the time in; a
//! verdict out. Nothing here reads the clock, the network or the database.

pub mod bland;
pub mod custom_hmac;
pub mod elevenlabs;
pub mod livekit;
mod payload;
pub mod retell;
mod signature;
pub mod standard_webhooks;
pub mod tokens;
pub mod twilio;
pub mod vapi;
pub mod voicekit;
pub mod webhook;

#[cfg(test)]
mod normalize_tests;
#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod vectors_tests;

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::model::conversation::{Conversation, ProviderExtras, Role, Source};
use crate::model::integrations::{IntegrationOptions, Provider, SecretSet, WebhookAuthType};

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
    /// The first value of a query parameter of the URL, decoded.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        query_param(self.url, name)
    }
}

/// The first value of a query parameter of `url`, decoded.
fn query_param<'a>(url: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value)
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

/// A webhook request whose sender was authenticated. Only this module's checks make one
/// (`verify_any`, `verify_replay`, `verified_by_api_key`), and `normalize` takes nothing else:
/// a path that skips verification cannot reach a conversation.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    body: &'a [u8],
}

impl<'a> Verified<'a> {
    fn from(request: &WebhookRequest<'a>) -> Self {
        Self { body: request.body }
    }

    /// The authenticated body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// Verifies against each secret set in turn (current first, then those still in their rotation
/// grace period); the first that passes wins. Otherwise the current set's failure is reported.
pub fn verify_any<'a>(
    auth_type: WebhookAuthType,
    options: &IntegrationOptions,
    sets: &[SecretSet],
    request: &WebhookRequest<'a>,
) -> Result<Verified<'a>, AuthFailure> {
    let mut first_failure = None;
    for set in sets {
        match verify(auth_type, options, set, request) {
            Ok(()) => return Ok(Verified::from(request)),
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    Err(first_failure.unwrap_or(AuthFailure::SignatureMismatch))
}

/// Auth types whose credential is a static value sent with the request. It is never stored, so
/// a replay of such a request cannot be checked again.
pub fn is_token_auth(auth_type: WebhookAuthType) -> bool {
    matches!(
        auth_type,
        WebhookAuthType::VapiSecret
            | WebhookAuthType::HeaderToken
            | WebhookAuthType::UrlToken
            // LiveKit's JWT is a bearer token (anyone holding it may post for five minutes) and
            // names the API key: it is not stored, so a replay rests on the check on arrival.
            | WebhookAuthType::LivekitJwt
    )
}

/// Verifies a stored request that is replayed, at the time it first arrived (`request.now`).
/// Signatures are checked again with the integration's current secrets; for token auth types
/// the check made on arrival stands (`authenticated_on_arrival`), since tokens are not stored.
pub fn verify_replay<'a>(
    auth_type: WebhookAuthType,
    options: &IntegrationOptions,
    sets: &[SecretSet],
    request: &WebhookRequest<'a>,
    authenticated_on_arrival: bool,
) -> Result<Verified<'a>, AuthFailure> {
    if is_token_auth(auth_type) {
        return if authenticated_on_arrival {
            Ok(Verified::from(request))
        } else {
            Err(AuthFailure::MissingToken)
        };
    }
    verify_any(auth_type, options, sets, request)
}

/// A request that carried an earshot API key, which `Domain::authenticate` accepted as
/// `_principal` with the ingest scope (the Vapi route without an integration).
pub fn verified_by_api_key<'a>(
    _principal: &crate::model::auth::Principal,
    body: &'a [u8],
) -> Verified<'a> {
    Verified { body }
}

/// A payload that cannot be normalized: the field (a dotted JSON path or a form parameter) and
/// why. Answered with 400.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError {
    pub field: String,
    pub reason: String,
}

impl PayloadError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    /// The same error for a field read relative to `prefix` (`data`, `event.data`; empty for
    /// the root).
    pub fn under(self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        Self { field: format!("{prefix}.{}", self.field), reason: self.reason }
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.field, self.reason)
    }
}

/// What an authenticated payload amounts to.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalized {
    /// Not a final call event (a call start, a status update, an in-progress recording):
    /// answered 200 `{"status":"ignored"}` and not stored.
    Ignored { event: String },
    /// A call to store: a new datapoint, or an enrichment of one with the same call id.
    Call(Box<WebhookCall>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookCall {
    pub event: String,
    pub conversation: Conversation,
    /// Audio that came in the payload itself (ElevenLabs `post_call_audio`), stored before the
    /// acknowledgement.
    pub inline_audio: Option<Vec<u8>>,
}

/// What a normalizer knows besides the payload.
#[derive(Clone, Copy, Debug)]
pub struct NormalizeContext<'a> {
    pub integration_id: uuid::Uuid,
    pub options: &'a IntegrationOptions,
    /// The URL the sender called (Twilio carries `first_turn` in its query).
    pub url: &'a str,
    /// Limits of canonical conversations (the `webhook` provider's JSON ingest shape).
    pub limits: &'a crate::model::conversation::IngestLimits,
}

impl NormalizeContext<'_> {
    /// `?first_turn=` of the URL, else the integration's default, else the assistant.
    pub fn first_turn(&self) -> Role {
        match query_param(self.url, "first_turn").as_deref() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => self.options.default_first_turn.unwrap_or(Role::Assistant),
        }
    }
}

/// A webhook conversation with everything but the call id empty.
pub(crate) fn conversation(provider: Provider, call_id: String, first_turn: Role) -> Conversation {
    Conversation {
        context_token: call_id.clone(),
        call_id,
        source: Source::Webhook,
        provider: provider.as_str().to_owned(),
        started_at: None,
        ended_at: None,
        duration_ms: None,
        from_number: None,
        to_number: None,
        direction: None,
        turns: Vec::new(),
        audio: None,
        diarization: true,
        first_turn,
        assistant_channel: None,
        tags: Vec::new(),
        metadata: serde_json::Map::new(),
        extras: ProviderExtras::default(),
        mut_id: None,
        integration_id: None,
    }
}

/// Normalizes the body of an authenticated request from `provider`.
pub fn normalize(
    provider: Provider,
    context: &NormalizeContext<'_>,
    request: &Verified<'_>,
) -> Result<Normalized, PayloadError> {
    let body = request.body();
    match provider {
        Provider::Twilio => twilio::normalize(context, body),
        Provider::Retell => retell::normalize(context, body),
        Provider::Vapi => vapi::normalize(context, body),
        Provider::Elevenlabs => elevenlabs::normalize(context, body),
        Provider::Livekit => livekit::normalize(context, body),
        Provider::Bland => bland::normalize(context, body),
        Provider::Voicekit => voicekit::normalize(context, body),
        Provider::Webhook => webhook::normalize(context, body, context.limits),
    }
}
