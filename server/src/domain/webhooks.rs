//! Webhook admission, the use case behind every provider route, in the documented order:
//! unknown or disabled id (404), IP allowlist (403), the sender address's budget of failed
//! authentications (429), body size (413), content type (415), signature (401), the
//! integration's rate limit (429), payload (400, or 200 ignored), then the durable commit (202,
//! or 200 duplicate). Every request that reaches an integration is recorded in its delivery log,
//! except 429s, which are counted on the integration instead; a request that did not
//! authenticate is recorded by its digest and verdict, never its body or headers.
//! The providers' code verifies and normalizes; only a request their verification returned as
//! `Verified` can be normalized, so no path here stores a call whose check was skipped. The
//! transport turns the verdict into HTTP.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Domain;
use super::webhook_gate::GateEntry;
use crate::error::{Error, Result, Violations};
use crate::model::auth::Principal;
use crate::model::commit::IngestWrite;
use crate::model::conversation::{AudioSource, Conversation};
use crate::model::deliveries::{
    DeliveryVerdict, NewDelivery, StoredRequest, WebhookDelivery, headers_to_store, url_to_store,
};
use crate::model::ingest::{IngestOutcome, NewIngest, dedup_key};
use crate::model::integrations::{
    IntegrationOptions, IntegrationStatus, Provider, WebhookAuthType,
};
use crate::providers::{
    self, AuthFailure, NormalizeContext, Normalized, PayloadError, WebhookRequest,
};

/// Whose call it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallOwner {
    pub organization_id: Uuid,
    pub project_id: Uuid,
    /// The integration that delivered the call, if one did.
    pub integration_id: Option<Uuid>,
}

/// What storing a webhook call came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmittedCall {
    pub call_id: String,
    pub ingest_id: Uuid,
    /// The same content was stored before: nothing new was written.
    pub duplicate: bool,
}

impl Domain {
    /// Stores `conversation` in the owner's project, with `inline_audio` (stored first, as the
    /// conversation's audio) when the payload carried it, and the request's `delivery` record
    /// in the same transaction. Returns after the durable commit. Audio URLs go through the
    /// SSRF guard here, and again when a worker fetches them.
    pub async fn admit_webhook_call(
        &self,
        owner: CallOwner,
        mut conversation: Conversation,
        inline_audio: Option<Vec<u8>>,
        delivery: Option<NewDelivery>,
    ) -> Result<AdmittedCall> {
        let mut write = IngestWrite { delivery, ..IngestWrite::default() };
        let mut blobs = Vec::new();
        conversation.integration_id = owner.integration_id;
        if let Some(bytes) = inline_audio {
            let object = self
                .inline_audio_object(owner.organization_id, owner.project_id, &bytes)
                .ok_or_else(|| Error::invalid("audio", "is not a recognised audio format"))?;
            conversation.audio = Some(AudioSource::Stored { audio_id: object.id });
            blobs.push((object.blob_key.clone(), Bytes::from(bytes)));
            write.audio_objects.push(object);
        }
        if let Some(AudioSource::Url { url, .. }) = &conversation.audio {
            crate::ssrf::check_url(url, self.settings.allow_private_networks)
                .await
                .map_err(|reason| Error::invalid("audio.url", reason))?;
        }
        let call_id = conversation.call_id.clone();
        // The call's ingest takes its delivery's id, which the delivery's row then need not
        // name (`storage::deliveries::stored_ingest_id`).
        let id = write.delivery.as_ref().map_or_else(Uuid::now_v7, |delivery| delivery.record.id);
        write.ingests.push(NewIngest {
            id,
            organization_id: owner.organization_id,
            project_id: owner.project_id,
            dedup_key: dedup_key(&conversation),
            conversation,
        });
        let outcome = self
            .commit_ingest(blobs, write)
            .await?
            .pop()
            .ok_or_else(|| Error::internal("storing a webhook call", "no outcome"))?;
        Ok(AdmittedCall {
            call_id,
            ingest_id: outcome.ingest_id(),
            duplicate: matches!(outcome, IngestOutcome::Duplicate(_)),
        })
    }
}

#[derive(Debug)]
pub enum Verdict {
    /// Unknown provider, unknown public id, or a disabled integration: the same answer for all.
    NotFound,
    /// The sender's address is not on the integration's allowlist.
    Forbidden,
    RateLimited {
        retry_after: Duration,
    },
    PayloadTooLarge {
        limit: usize,
    },
    UnsupportedMediaType {
        expected: &'static str,
    },
    Unauthorized(AuthFailure),
    Malformed(PayloadError),
    Ignored {
        event: String,
    },
    Duplicate {
        call_id: String,
        ingest_id: Uuid,
    },
    Accepted {
        call_id: String,
        ingest_id: Uuid,
    },
    /// The domain refused the call (a refused audio URL, say: 400) or could not store it (503:
    /// nothing was stored and the sender should retry).
    Failed(Error),
}

impl From<AdmittedCall> for Verdict {
    fn from(admitted: AdmittedCall) -> Self {
        let AdmittedCall { call_id, ingest_id, duplicate } = admitted;
        if duplicate {
            Verdict::Duplicate { call_id, ingest_id }
        } else {
            Verdict::Accepted { call_id, ingest_id }
        }
    }
}

impl Verdict {
    /// How the delivery log files this answer.
    pub fn delivery_verdict(&self) -> DeliveryVerdict {
        match self {
            Verdict::Accepted { .. } => DeliveryVerdict::Accepted,
            Verdict::Duplicate { .. } => DeliveryVerdict::Duplicate,
            Verdict::Ignored { .. } => DeliveryVerdict::Ignored,
            _ => DeliveryVerdict::Rejected,
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            Verdict::NotFound => 404,
            Verdict::Forbidden => 403,
            Verdict::RateLimited { .. } => 429,
            Verdict::PayloadTooLarge { .. } => 413,
            Verdict::UnsupportedMediaType { .. } => 415,
            Verdict::Unauthorized(_) => 401,
            Verdict::Malformed(_) => 400,
            Verdict::Ignored { .. } | Verdict::Duplicate { .. } => 200,
            Verdict::Accepted { .. } => 202,
            Verdict::Failed(error) => error.code().http_status(),
        }
    }

    /// A short code for logs and the delivery log.
    pub fn code(&self) -> &'static str {
        match self {
            Verdict::NotFound => "not_found",
            Verdict::Forbidden => "ip_not_allowed",
            Verdict::RateLimited { .. } => "rate_limited",
            Verdict::PayloadTooLarge { .. } => "payload_too_large",
            Verdict::UnsupportedMediaType { .. } => "unsupported_media_type",
            Verdict::Unauthorized(failure) => failure.code(),
            Verdict::Malformed(_) => "malformed_payload",
            Verdict::Ignored { .. } => "ignored",
            Verdict::Duplicate { .. } => "duplicate",
            Verdict::Accepted { .. } => "accepted",
            Verdict::Failed(error) => error.code().as_str(),
        }
    }

    /// A call stored, one stored before, or an event that holds no call: what a provider sends
    /// all day, counted by the metrics (`earshot_webhook_requests_total`) and logged at debug
    /// only. Every other verdict is a refusal an operator may need to see, and is logged at info.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            Verdict::Accepted { .. } | Verdict::Duplicate { .. } | Verdict::Ignored { .. }
        )
    }

    /// What went wrong, in words a sender's operator can act on; empty when nothing did.
    pub fn message(&self) -> String {
        match self {
            Verdict::NotFound => "no active integration at this URL".to_owned(),
            Verdict::Forbidden => "the sender's address is not on the allowlist".to_owned(),
            Verdict::RateLimited { retry_after } => {
                format!(
                    "rate limit exceeded; retry after {} s",
                    super::retry_after_seconds(*retry_after)
                )
            }
            Verdict::PayloadTooLarge { limit } => format!("the body exceeds {limit} bytes"),
            Verdict::UnsupportedMediaType { expected } => {
                format!("content-type must be {expected}")
            }
            Verdict::Unauthorized(failure) => failure.message().to_owned(),
            Verdict::Malformed(problem) => problem.to_string(),
            Verdict::Failed(error) => error.public_message(),
            Verdict::Ignored { .. } | Verdict::Duplicate { .. } | Verdict::Accepted { .. } => {
                String::new()
            }
        }
    }
}

/// The address used when the transport could not tell the peer: on no allowlist.
pub const UNKNOWN_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The sender's address: the connecting peer, or, when the peer is a trusted proxy, the
/// nearest address in X-Forwarded-For that is not a trusted proxy.
pub fn client_address(
    peer: IpAddr,
    headers: &http::HeaderMap,
    trusted_proxies: &[ipnet::IpNet],
) -> IpAddr {
    let trusted = |address: &IpAddr| trusted_proxies.iter().any(|proxy| proxy.contains(address));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut nearest = peer;
    for hop in forwarded.iter().rev() {
        let Ok(address) = hop.parse::<IpAddr>() else {
            // An unreadable hop: the last address vouched for is as far as we can trust.
            return nearest;
        };
        nearest = address;
        if !trusted(&address) {
            return address;
        }
    }
    nearest
}

/// The content types a provider posts.
fn accepted_content_types(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Twilio => &["application/x-www-form-urlencoded"],
        Provider::Livekit => &["application/webhook+json", "application/json"],
        _ => &["application/json"],
    }
}

/// 415 unless the request's content type is one `provider` posts.
pub fn check_content_type(provider: Provider, headers: &http::HeaderMap) -> Result<(), Verdict> {
    let accepted = accepted_content_types(provider);
    let essence = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match essence {
        Some(essence) if accepted.contains(&essence.as_str()) => Ok(()),
        _ => Err(Verdict::UnsupportedMediaType { expected: accepted[0] }),
    }
}

/// A request that passed the checks made before its body is read.
#[derive(Debug)]
pub struct Opened {
    entry: Arc<GateEntry>,
    provider: Provider,
    received_at: DateTime<Utc>,
    client: IpAddr,
}

/// Looks the integration up and applies the allowlist and the sender address's budget of failed
/// authentications; the integration's rate limit waits until the request authenticates.
pub async fn open(
    domain: &Domain,
    provider: &str,
    public_id: &str,
    client: IpAddr,
) -> Result<Opened, Verdict> {
    let provider = Provider::parse(provider).ok_or(Verdict::NotFound)?;
    let entry = match domain.webhook_integration(public_id).await {
        Ok(Some(entry))
            if entry.integration.provider == provider
                && entry.integration.status == IntegrationStatus::Active =>
        {
            entry
        }
        Ok(_) => return Err(Verdict::NotFound),
        Err(error) => return Err(Verdict::Failed(error)),
    };
    let received_at = domain.clock.now();
    let integration_id = entry.integration.id;
    domain.webhook_gate.note_use(integration_id, received_at);
    let opened = Opened { entry, provider, received_at, client };
    if !opened.entry.allows(client) {
        tracing::info!(%integration_id, %client, "webhook sender not on the allowlist");
        return Err(opened.reject(domain, Verdict::Forbidden, None).await);
    }
    let budget = domain.settings.webhooks.unauthenticated_per_minute_per_address;
    if let Err(retry_after) = domain.webhook_gate.check_address(client, received_at, budget) {
        // Counted, not logged: a flood of these must not write a row each.
        domain.webhook_gate.note_rate_limited(integration_id);
        return Err(Verdict::RateLimited { retry_after });
    }
    Ok(opened)
}

/// The parts of a request the checks after `open` read.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The public URL the sender called (base URL from the configuration, path and query from
    /// the request).
    pub url: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a Bytes,
}

impl Opened {
    /// The largest body this route reads.
    pub fn body_limit(&self, domain: &Domain) -> usize {
        let settings = &domain.settings.webhooks;
        match self.provider {
            Provider::Elevenlabs => settings.max_elevenlabs_body_bytes,
            _ => settings.max_body_bytes,
        }
    }

    /// Records and answers a body over `limit` (a failure of the sender's address too: nothing
    /// authenticated it).
    pub async fn too_large(&self, domain: &Domain, limit: usize) -> Verdict {
        domain.webhook_gate.note_failure(self.client, self.received_at);
        self.reject(domain, Verdict::PayloadTooLarge { limit }, None).await
    }

    /// Checks, normalizes and stores the request.
    pub async fn receive(&self, domain: &Domain, request: Request<'_>) -> Verdict {
        let integration = &self.entry.integration;
        let credential_header = match integration.auth_type {
            WebhookAuthType::HeaderToken => integration
                .options
                .header_token
                .as_ref()
                .map(|options| options.header_name.as_str()),
            WebhookAuthType::LivekitJwt => Some("authorization"),
            _ => None,
        };
        let stored = StoredRequest {
            url: url_to_store(request.url),
            headers: headers_to_store(request.headers, credential_header),
        };
        let delivery = self.delivery(Some(request.body), Some(stored));
        let check = Check::Live { client: self.client };
        admit(domain, &self.entry, self.provider, request, check, delivery).await
    }

    async fn reject(&self, domain: &Domain, verdict: Verdict, body: Option<&Bytes>) -> Verdict {
        let delivery = self.delivery(body, None);
        record(domain, delivery, verdict).await
    }

    fn delivery(&self, body: Option<&Bytes>, request: Option<StoredRequest>) -> NewDelivery {
        new_delivery(&self.entry, self.received_at, body, request)
    }
}

fn new_delivery(
    entry: &GateEntry,
    received_at: DateTime<Utc>,
    body: Option<&Bytes>,
    request: Option<StoredRequest>,
) -> NewDelivery {
    let integration = &entry.integration;
    NewDelivery {
        organization_id: integration.organization_id,
        project_id: integration.project_id,
        record: WebhookDelivery {
            id: Uuid::now_v7(),
            integration_id: integration.id,
            received_at,
            verdict: DeliveryVerdict::Rejected,
            http_status: 0,
            event_type: String::new(),
            call_id: String::new(),
            body_sha256: body.map(|body| crate::crypto::sha256_hex(body)).unwrap_or_default(),
            error: String::new(),
            error_message: String::new(),
            ingest_id: None,
            authenticated: false,
            replayable: body.is_some(),
        },
        request: request
            .map(|request| request.kept(&integration.public_id, body.map_or(0, Bytes::len))),
        body: body.cloned(),
    }
}

/// Records `delivery` with the outcome of `verdict` (one that stores no call) and returns the
/// verdict.
async fn record(domain: &Domain, mut delivery: NewDelivery, verdict: Verdict) -> Verdict {
    let record = &mut delivery.record;
    record.verdict = verdict.delivery_verdict();
    record.http_status = verdict.http_status();
    match &verdict {
        Verdict::Ignored { event } => record.event_type.clone_from(event),
        _ if record.verdict == DeliveryVerdict::Rejected => {
            record.error = verdict.code().to_owned();
            record.error_message = verdict.message();
        }
        _ => {}
    }
    domain.record_delivery(delivery).await;
    verdict
}

/// How a request's sender is checked.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// A request arriving now from `client`: its signature or token, at the time it arrived.
    Live { client: IpAddr },
    /// A stored request replayed: signatures again, at the time it first arrived; tokens, which
    /// are not stored, by the check made then.
    Replay { received_at: DateTime<Utc>, authenticated_on_arrival: bool },
}

/// Everything after the body is read: content type, the sender's check, payload, and the
/// commit with its delivery record.
async fn admit(
    domain: &Domain,
    entry: &GateEntry,
    provider: Provider,
    request: Request<'_>,
    check: Check,
    mut delivery: NewDelivery,
) -> Verdict {
    let integration = &entry.integration;
    if let Err(refused) = check_content_type(provider, request.headers) {
        return refuse_unauthenticated(domain, delivery, check, refused).await;
    }
    let checked = WebhookRequest {
        url: request.url,
        headers: request.headers,
        body: request.body,
        now: match check {
            Check::Live { .. } => delivery.record.received_at,
            Check::Replay { received_at, .. } => received_at,
        },
    };
    let secrets = entry.secrets_at(domain.clock.now());
    let (auth_type, options) = (integration.auth_type, &integration.options);
    let verified = match check {
        Check::Live { .. } => providers::verify_any(auth_type, options, &secrets, &checked),
        Check::Replay { authenticated_on_arrival, .. } => providers::verify_replay(
            auth_type,
            options,
            &secrets,
            &checked,
            authenticated_on_arrival,
        ),
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(failure) => {
            let verdict = Verdict::Unauthorized(failure);
            return refuse_unauthenticated(domain, delivery, check, verdict).await;
        }
    };
    delivery.record.authenticated = true;
    domain.webhook_gate.note_validated(integration.id, delivery.record.received_at);
    if let Check::Live { .. } = check {
        // Only a request that authenticated spends the integration's budget, so forged posts
        // cannot starve the provider's genuine ones.
        let per_minute = domain.webhook_rate_limit(integration);
        if let Err(retry_after) = domain.webhook_gate.take(integration.id, per_minute) {
            domain.webhook_gate.note_rate_limited(integration.id);
            return Verdict::RateLimited { retry_after };
        }
    }
    let context = NormalizeContext {
        integration_id: integration.id,
        options: &integration.options,
        url: request.url,
        limits: &domain.settings.ingest_limits,
    };
    let call = match normalize(provider, &context, &verified) {
        Ok(Normalized::Call(call)) => *call,
        Ok(Normalized::Ignored { event }) => {
            return record(domain, delivery, Verdict::Ignored { event }).await;
        }
        Err(refused) => return record(domain, delivery, refused).await,
    };
    delivery.record.event_type.clone_from(&call.event);
    delivery.record.call_id.clone_from(&call.conversation.call_id);
    let owner = CallOwner {
        organization_id: integration.organization_id,
        project_id: integration.project_id,
        integration_id: Some(integration.id),
    };
    // Cheap: the body is shared, not copied.
    let rejected = delivery.clone();
    match domain
        .admit_webhook_call(owner, call.conversation, call.inline_audio, Some(delivery))
        .await
    {
        Ok(admitted) => admitted.into(),
        Err(error) => record(domain, rejected, Verdict::Failed(error)).await,
    }
}

/// The provider's normalizer, then the input contract every conversation meets
/// (`Conversation::check`), so that no provider's path stores what the ingest APIs refuse. A
/// normalizer that panics on some payload is a bug: the request gets 500 and its delivery is
/// recorded, instead of a dropped connection the provider would retry forever.
fn normalize(
    provider: Provider,
    context: &NormalizeContext<'_>,
    verified: &providers::Verified,
) -> std::result::Result<Normalized, Verdict> {
    let normalized = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        providers::normalize(provider, context, verified)
    }))
    .map_err(|_| {
        Verdict::Failed(Error::internal("normalizing a webhook", "the normalizer panicked"))
    })?
    .map_err(Verdict::Malformed)?;
    if let Normalized::Call(call) = &normalized {
        let mut violations = Violations::new();
        call.conversation.check("", &mut violations);
        if let Err(Error::InvalidArgument(violations)) = violations.into_result()
            && let Some(first) = violations.into_iter().next()
        {
            return Err(Verdict::Malformed(PayloadError::new(first.field, first.description)));
        }
    }
    Ok(normalized)
}

/// Records a request refused before it authenticated: its digest and verdict, never its body or
/// headers (anyone who knows a webhook URL could fill the disk with them), and, when it arrived
/// now, a failure of its sender's address.
async fn refuse_unauthenticated(
    domain: &Domain,
    mut delivery: NewDelivery,
    check: Check,
    verdict: Verdict,
) -> Verdict {
    if let Check::Live { client } = check {
        domain.webhook_gate.note_failure(client, delivery.record.received_at);
        delivery.body = None;
        delivery.request = None;
        delivery.record.replayable = false;
    }
    record(domain, delivery, verdict).await
}

/// Admits a Vapi call posted with an earshot API key instead of an integration's secret
/// (`principal` was authenticated with the ingest scope, `project_id` resolved for it). No
/// integration means no delivery log.
pub async fn receive_with_api_key(
    domain: &Domain,
    principal: &Principal,
    project_id: Uuid,
    headers: &http::HeaderMap,
    url: &str,
    body: &Bytes,
) -> Verdict {
    if let Err(refused) = check_content_type(Provider::Vapi, headers) {
        return refused;
    }
    let verified = providers::verified_by_api_key(principal, body);
    let options = IntegrationOptions::default();
    let context = NormalizeContext {
        integration_id: Uuid::nil(),
        options: &options,
        url,
        limits: &domain.settings.ingest_limits,
    };
    let call = match normalize(Provider::Vapi, &context, &verified) {
        Ok(Normalized::Call(call)) => *call,
        Ok(Normalized::Ignored { event }) => return Verdict::Ignored { event },
        Err(refused) => return refused,
    };
    let owner =
        CallOwner { organization_id: principal.organization_id, project_id, integration_id: None };
    match domain.admit_webhook_call(owner, call.conversation, call.inline_audio, None).await {
        Ok(admitted) => admitted.into(),
        Err(error) => Verdict::Failed(error),
    }
}

/// Runs a stored delivery through admission again, from the content type on, with the
/// integration's current secrets; signatures are checked at the time the delivery arrived.
/// Records the replay as a new delivery and returns it.
pub async fn replay(
    domain: &Domain,
    principal: &Principal,
    integration_id: Uuid,
    delivery_id: Uuid,
) -> Result<WebhookDelivery, Error> {
    let (integration, stored) =
        domain.delivery_for_replay(principal, integration_id, delivery_id).await?;
    if integration.status != IntegrationStatus::Active {
        return Err(Error::invalid("integration_id", "the integration is disabled"));
    }
    let (Some(body), Some(request)) = (stored.body, stored.request) else {
        return Err(Error::invalid(
            "delivery_id",
            "the request of this delivery is not kept (older than the body retention, refused \
             before its body was read, or refused before it authenticated: unauthenticated \
             requests are never stored)",
        ));
    };
    if providers::is_token_auth(integration.auth_type) && !stored.delivery.authenticated {
        return Err(Error::invalid(
            "delivery_id",
            "this delivery failed token authentication, and tokens are not stored, so it cannot \
             be replayed",
        ));
    }
    let entry = domain
        .webhook_integration(&integration.public_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("integration {integration_id} not found")))?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in &request.headers {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        {
            headers.append(name, value);
        }
    }
    let body = Bytes::from(body);
    let delivery = new_delivery(&entry, domain.clock.now(), Some(&body), Some(request.clone()));
    let id = delivery.record.id;
    let parts = Request { url: &request.url, headers: &headers, body: &body };
    let verdict = admit(
        domain,
        &entry,
        integration.provider,
        parts,
        Check::Replay {
            received_at: stored.delivery.received_at,
            authenticated_on_arrival: stored.delivery.authenticated,
        },
        delivery,
    )
    .await;
    tracing::info!(%integration_id, %delivery_id, verdict = verdict.code(), "replayed a webhook delivery");
    domain
        .storage
        .get_webhook_delivery(integration_id, id)
        .await?
        .map(|stored| stored.delivery)
        .ok_or_else(|| Error::Unavailable("the replay could not be recorded; retry".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies() -> Vec<ipnet::IpNet> {
        vec!["10.0.0.0/8".parse().unwrap()]
    }

    fn forwarded(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        // A direct sender cannot claim another address.
        assert_eq!(client_address(stranger, &forwarded("203.0.113.5"), &proxies()), stranger);
        // Behind a trusted proxy, the nearest untrusted hop is the sender; what the sender
        // itself wrote further left is ignored.
        assert_eq!(
            client_address(peer, &forwarded("192.0.2.1, 203.0.113.5, 10.2.2.2"), &proxies()),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(peer, &http::HeaderMap::new(), &proxies()), peer);
        assert_eq!(client_address(peer, &forwarded("garbage"), &proxies()), peer);
        // With no trusted proxies the header means nothing.
        assert_eq!(client_address(peer, &forwarded("203.0.113.5"), &[]), peer);
    }

    #[test]
    fn retry_after_rounds_up() {
        use crate::domain::retry_after_seconds;
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_seconds(Duration::from_millis(29_001)), 30);
    }
}
