//! Outbound events: the organization's endpoints (their signing secrets and static headers
//! sealed by the master key, never returned after creation or rotation), and the sender that
//! delivers what the outbox holds: due deliveries taken in batches, each POSTed signed with
//! every valid secret through the SSRF-guarded client, the attempt and what follows it recorded
//! in one transaction per batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Domain;
use crate::error::{Error, Result, Violations};
use crate::model::auth::{Principal, Scope};
use crate::model::events::AttemptRecord;
use crate::model::events::{self, AttemptFilter, AttemptVerdict, Endpoint, EventFilter, Replay};
use crate::storage::{
    AttemptOutcome, DueDelivery, NextStep, SealedEndpoint, StoredHeaders, StoredSecret,
};

/// What an update changes: each field given replaces the endpoint's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub filter: Option<EventFilter>,
    pub include_transcript: Option<bool>,
    /// 0: no limit.
    pub rate_limit_per_second: Option<u32>,
    pub headers: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    pub alert_cooldown_seconds: Option<u32>,
}

/// What a caller gives to create an endpoint.
#[derive(Clone, Debug, Default)]
pub struct EndpointInput {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub filter: EventFilter,
    pub include_transcript: bool,
    pub rate_limit_per_second: u32,
    pub headers: BTreeMap<String, String>,
    pub kind: events::EndpointKind,
    /// None: the kind's default (an hour for Slack, none for a webhook).
    pub alert_cooldown_seconds: Option<u32>,
}

/// Settings of the sender, from the configuration.
#[derive(Clone, Debug)]
pub struct EventSettings {
    /// Per attempt, connecting included.
    pub timeout: Duration,
    /// How often an idle sender looks for due deliveries.
    pub poll_interval: Duration,
    /// Deliveries taken at once.
    pub batch_size: usize,
    /// How long a taken delivery is held before another sender may take it again.
    pub lease: Duration,
    /// The delays before the second attempt onwards (the Standard Webhooks schedule by
    /// default).
    pub retry_schedule: Vec<Duration>,
    pub rotation_grace_default: chrono::Duration,
    pub rotation_grace_max: chrono::Duration,
    /// How long events, their deliveries and attempts are kept.
    pub retention: chrono::Duration,
    /// `integration.secret_expiring` goes out this long before a replaced secret set ends.
    pub secret_expiry_notice: chrono::Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            poll_interval: Duration::from_millis(200),
            batch_size: 64,
            lease: Duration::from_secs(60),
            retry_schedule: events::RETRY_SCHEDULE.to_vec(),
            rotation_grace_default: chrono::Duration::hours(24),
            rotation_grace_max: chrono::Duration::days(7),
            retention: chrono::Duration::days(30),
            secret_expiry_notice: chrono::Duration::hours(24),
        }
    }
}

const MAX_URL_CHARS: usize = 2_000;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_HEADERS: usize = 20;
const RESPONSE_EXCERPT_BYTES: usize = 1_000;
/// Headers earshot sets itself, which an endpoint's static headers may not replace.
const RESERVED_HEADERS: [&str; 6] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
];

impl Domain {
    /// Creates an endpoint with a new signing secret, returned here only.
    pub async fn create_event_endpoint(
        &self,
        principal: &Principal,
        input: EndpointInput,
    ) -> Result<(Endpoint, String)> {
        super::require_organization_admin(principal, "event endpoints")?;
        let mut violations = Violations::new();
        let url = self.checked_url(&input.url, &mut violations).await;
        check_description(&input.description, &mut violations);
        let event_types = checked_event_types(&input.event_types, &mut violations);
        check_headers(&input.headers, &mut violations);
        if let Some(cooldown) = input.alert_cooldown_seconds {
            check_cooldown(cooldown, &mut violations);
        }
        violations.into_result()?;
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let secret = events::new_secret();
        let headers = self.sealed_headers(id, input.headers);
        let mut endpoint = Endpoint::new(id, principal.organization_id, url, now);
        endpoint.description = input.description.trim().to_owned();
        endpoint.event_types = event_types;
        // A Slack channel subscribed to nothing in particular hears of failed checks only.
        if input.kind == events::EndpointKind::Slack && endpoint.event_types.is_empty() {
            endpoint.event_types = vec![events::CHECK_FAILED.to_owned()];
        }
        endpoint.kind = input.kind;
        endpoint.alert_cooldown_seconds = input
            .alert_cooldown_seconds
            .unwrap_or_else(|| input.kind.default_alert_cooldown_seconds());
        endpoint.filter = input.filter;
        endpoint.include_transcript = input.include_transcript;
        endpoint.rate_limit_per_second =
            (input.rate_limit_per_second > 0).then_some(input.rate_limit_per_second);
        endpoint.header_names = headers.names.clone();
        let sealed = SealedEndpoint {
            endpoint: endpoint.clone(),
            secrets: vec![StoredSecret::of(
                self.keyring.seal(secret.as_bytes(), &secret_aad(id)),
                None,
            )],
            headers,
        };
        self.storage.insert_event_endpoint(&sealed).await?;
        Ok((endpoint, secret))
    }

    /// Applies the fields `change` gives; the others stay. Enabling clears why the endpoint was
    /// disabled and its failing streak; disabling fails its pending deliveries.
    pub async fn update_event_endpoint(
        &self,
        principal: &Principal,
        id: Uuid,
        change: EndpointChange,
    ) -> Result<Endpoint> {
        super::require_organization_admin(principal, "event endpoints")?;
        if change == EndpointChange::default() {
            return Err(Error::invalid("update_mask", "names no field to change"));
        }
        let mut violations = Violations::new();
        let url = match &change.url {
            Some(url) => Some(self.checked_url(url, &mut violations).await),
            None => None,
        };
        if let Some(description) = &change.description {
            check_description(description, &mut violations);
        }
        let event_types =
            change.event_types.as_ref().map(|types| checked_event_types(types, &mut violations));
        if let Some(headers) = &change.headers {
            check_headers(headers, &mut violations);
        }
        if let Some(cooldown) = change.alert_cooldown_seconds {
            check_cooldown(cooldown, &mut violations);
        }
        violations.into_result()?;
        let mut sealed = self.sealed_endpoint(principal, id).await?;
        let now = self.clock.now();
        let endpoint = &mut sealed.endpoint;
        if let Some(url) = url {
            endpoint.url = url;
        }
        if let Some(description) = change.description {
            endpoint.description = description.trim().to_owned();
        }
        if let Some(event_types) = event_types {
            endpoint.event_types = event_types;
        }
        if let Some(filter) = change.filter {
            endpoint.filter = filter;
        }
        if let Some(include_transcript) = change.include_transcript {
            endpoint.include_transcript = include_transcript;
        }
        if let Some(cooldown) = change.alert_cooldown_seconds {
            endpoint.alert_cooldown_seconds = cooldown;
        }
        if let Some(limit) = change.rate_limit_per_second {
            endpoint.rate_limit_per_second = (limit > 0).then_some(limit);
        }
        if let Some(enabled) = change.enabled {
            if enabled && !endpoint.enabled {
                endpoint.disabled_reason.clear();
                endpoint.failing_since = None;
            } else if !enabled && endpoint.enabled {
                endpoint.disabled_reason = events::DISABLED_BY_USER.to_owned();
            }
            endpoint.enabled = enabled;
        }
        if let Some(headers) = change.headers {
            sealed.headers = self.sealed_headers(id, headers);
            sealed.endpoint.header_names = sealed.headers.names.clone();
        }
        sealed.endpoint.updated_at = now;
        // Whether it is enabled is written only when asked: the sender may be disabling it.
        let sets_enabled = change.enabled.is_some();
        if !self.storage.update_event_endpoint(&sealed, sets_enabled, now).await? {
            return Err(endpoint_not_found());
        }
        Ok(self.with_active_secrets(sealed))
    }

    pub async fn get_event_endpoint(&self, principal: &Principal, id: Uuid) -> Result<Endpoint> {
        principal.require(Scope::Read)?;
        let sealed = self.sealed_endpoint(principal, id).await?;
        Ok(self.with_active_secrets(sealed))
    }

    pub async fn list_event_endpoints(&self, principal: &Principal) -> Result<Vec<Endpoint>> {
        principal.require(Scope::Read)?;
        let sealed = self.storage.event_endpoints(principal.organization_id).await?;
        Ok(sealed.into_iter().map(|sealed| self.with_active_secrets(sealed)).collect())
    }

    pub async fn delete_event_endpoint(&self, principal: &Principal, id: Uuid) -> Result<()> {
        super::require_organization_admin(principal, "event endpoints")?;
        if self
            .storage
            .delete_event_endpoint(principal.organization_id, id, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(endpoint_not_found())
        }
    }

    /// A new signing secret, returned here only; the earlier ones stay valid for `grace`
    /// (the default when none), those already past their grace are dropped.
    pub async fn rotate_event_endpoint_secret(
        &self,
        principal: &Principal,
        id: Uuid,
        grace: Option<chrono::Duration>,
    ) -> Result<(Endpoint, String)> {
        super::require_organization_admin(principal, "event endpoints")?;
        let settings = &self.settings.events;
        let grace = grace.unwrap_or(settings.rotation_grace_default);
        if grace > settings.rotation_grace_max {
            return Err(Error::invalid(
                "grace_seconds",
                format!("at most {}", settings.rotation_grace_max.num_seconds()),
            ));
        }
        let sealed = self.sealed_endpoint(principal, id).await?;
        let now = self.clock.now();
        let until = crate::clock::to_millis(now + grace);
        let secret = events::new_secret();
        let mut secrets =
            vec![StoredSecret::of(self.keyring.seal(secret.as_bytes(), &secret_aad(id)), None)];
        secrets.extend(valid_secrets(&sealed.secrets, now).take(9).map(|earlier| StoredSecret {
            expires_at_ms: Some(earlier.expires_at_ms.map_or(until, |at| at.min(until))),
            ..earlier.clone()
        }));
        if !self
            .storage
            .set_event_endpoint_secrets(principal.organization_id, id, &secrets, now)
            .await?
        {
            return Err(endpoint_not_found());
        }
        let mut endpoint = sealed.endpoint;
        endpoint.active_secrets = valid_secrets(&secrets, now).count();
        endpoint.updated_at = now;
        Ok((endpoint, secret))
    }

    /// The attempts to deliver to an endpoint, newest first.
    pub async fn list_event_attempts(
        &self,
        principal: &Principal,
        endpoint_id: Uuid,
        filter: &AttemptFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<(Vec<AttemptRecord>, Option<String>)> {
        principal.require(Scope::Read)?;
        self.sealed_endpoint(principal, endpoint_id).await?;
        let before = super::decode_page_token(page_token)?;
        let page_size = if page_size == 0 { 50 } else { page_size.min(100) };
        let mut attempts = self
            .storage
            .event_attempts(principal.organization_id, endpoint_id, filter, before, page_size + 1)
            .await?;
        let next = super::finish_page(&mut attempts, page_size, |attempt| attempt.id);
        Ok((attempts, next))
    }

    /// Sends an `endpoint.test` event to the endpoint alone. Returns the event's id.
    pub async fn send_test_event(
        &self,
        principal: &Principal,
        endpoint_id: Uuid,
    ) -> Result<String> {
        super::require_organization_admin(principal, "event endpoints")?;
        let sealed = self.sealed_endpoint(principal, endpoint_id).await?;
        require_enabled(&sealed.endpoint)?;
        self.storage.insert_test_event(&sealed.endpoint, self.clock.now()).await
    }

    /// Queues deliveries to the endpoint again (the same events, a fresh schedule). Returns how
    /// many; replaying one event that was never sent to the endpoint is not found.
    pub async fn replay_events(
        &self,
        principal: &Principal,
        endpoint_id: Uuid,
        replay: Replay,
    ) -> Result<u64> {
        super::require_organization_admin(principal, "event endpoints")?;
        if let Replay::FailedBetween(from, to) = &replay
            && from >= to
        {
            return Err(Error::invalid("failed_to", "must be after failed_from"));
        }
        let sealed = self.sealed_endpoint(principal, endpoint_id).await?;
        require_enabled(&sealed.endpoint)?;
        let now = self.clock.now();
        let replayed = self
            .storage
            .replay_event_deliveries(principal.organization_id, endpoint_id, &replay, now)
            .await?;
        // Nothing replayed of one event: pending already, or never sent here (an error).
        if replayed == 0
            && let Replay::Event(event_id) = &replay
        {
            let filter = AttemptFilter { event_id: Some(event_id.clone()), succeeded: None };
            let attempted = self
                .storage
                .event_attempts(principal.organization_id, endpoint_id, &filter, None, 1)
                .await?;
            if attempted.is_empty() {
                return Err(Error::NotFound(format!(
                    "event {event_id} was not sent to this endpoint or is still being sent"
                )));
            }
        }
        Ok(replayed)
    }

    /// Applies `events.retention_days`: events older than that (and not waiting on a delivery)
    /// leave with their deliveries and attempts, in batches. Returns how many events and
    /// attempts went.
    pub async fn prune_events(&self) -> Result<(u64, u64)> {
        let cutoff = self.clock.now() - self.settings.events.retention;
        let limit = self.settings.lifecycle.batch_size * 10;
        let mut total = (0, 0);
        loop {
            let (events, attempts) = self.storage.prune_events(cutoff, limit).await?;
            total = (total.0 + events, total.1 + attempts);
            if events < limit as u64 && attempts < limit as u64 {
                return Ok(total);
            }
        }
    }

    /// `url` trimmed, or a violation: required, at most `MAX_URL_CHARS`, http(s), and a target
    /// the SSRF guard allows.
    async fn checked_url(&self, url: &str, violations: &mut Violations) -> String {
        let url = url.trim().to_owned();
        if url.is_empty() {
            violations.add("url", "required");
        } else if url.chars().count() > MAX_URL_CHARS {
            violations.add("url", format!("longer than {MAX_URL_CHARS} characters"));
        } else if !(url.starts_with("https://") || url.starts_with("http://")) {
            violations.add("url", "must be an http or https URL");
        } else if let Err(reason) =
            crate::ssrf::check_url(&url, self.settings.allow_private_networks).await
        {
            violations.add("url", reason);
        }
        url
    }

    /// Static headers as stored: their names in the clear, names and values sealed together.
    fn sealed_headers(&self, id: Uuid, headers: BTreeMap<String, String>) -> StoredHeaders {
        let headers: BTreeMap<String, String> =
            headers.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
        StoredHeaders {
            names: headers.keys().cloned().collect(),
            sealed: (!headers.is_empty()).then(|| {
                let json = serde_json::to_string(&headers).unwrap_or_default();
                StoredSecret::of(self.keyring.seal(json.as_bytes(), &headers_aad(id)), None)
            }),
        }
    }

    /// Sends `integration.secret_expiring` for the replaced secret sets whose grace ends within
    /// `events.secret_expiry_notice_hours`, each once. Returns how many sets.
    pub async fn announce_expiring_secrets(&self) -> Result<usize> {
        let now = self.clock.now();
        self.storage
            .announce_expiring_secrets(now, now + self.settings.events.secret_expiry_notice)
            .await
    }

    async fn sealed_endpoint(&self, principal: &Principal, id: Uuid) -> Result<SealedEndpoint> {
        self.storage
            .event_endpoint(principal.organization_id, id)
            .await?
            .ok_or_else(endpoint_not_found)
    }

    fn with_active_secrets(&self, sealed: SealedEndpoint) -> Endpoint {
        let mut endpoint = sealed.endpoint;
        endpoint.active_secrets = valid_secrets(&sealed.secrets, self.clock.now()).count();
        endpoint
    }

    /// The endpoint's valid signing secrets and its static headers, opened.
    pub(crate) fn open_endpoint(
        &self,
        sealed: &SealedEndpoint,
    ) -> Result<(Vec<String>, BTreeMap<String, String>)> {
        let context = "opening an event endpoint's secrets";
        let now = self.clock.now();
        let secrets = valid_secrets(&sealed.secrets, now)
            .map(|secret| {
                let plain = self
                    .keyring
                    .open(&secret.sealed()?, &secret_aad(sealed.endpoint.id))
                    .map_err(|error| Error::internal(context, error))?;
                String::from_utf8(plain).map_err(|error| Error::internal(context, error))
            })
            .collect::<Result<Vec<_>>>()?;
        let headers = match &sealed.headers.sealed {
            Some(value) => {
                let plain = self
                    .keyring
                    .open(&value.sealed()?, &headers_aad(sealed.endpoint.id))
                    .map_err(|error| Error::internal(context, error))?;
                serde_json::from_slice(&plain).map_err(|error| Error::internal(context, error))?
            }
            None => BTreeMap::new(),
        };
        Ok((secrets, headers))
    }
}

/// Delivers due events until `shutdown` fires: takes a batch, sends it (up to 16 at once),
/// records the attempts, and looks again at once while there was work, else after the poll
/// interval.
pub async fn run_sender(domain: Domain, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let sender = match Sender::new(&domain) {
        Ok(sender) => sender,
        Err(error) => {
            tracing::error!(%error, "the event sender could not start");
            return;
        }
    };
    loop {
        let busy = match sender.round().await {
            Ok(count) => count > 0,
            Err(error) => {
                tracing::warn!(%error, "event delivery round failed");
                false
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(domain.settings.events.poll_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Sends events over one SSRF-guarded HTTP client that follows no redirect (a 3xx is a
/// failure, as the specification says).
#[derive(Debug)]
pub struct Sender {
    domain: Domain,
    client: reqwest::Client,
    /// Per endpoint with a rate limit: when its next event may go (by the domain's clock).
    pacing: std::sync::Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl Sender {
    pub fn new(domain: &Domain) -> Result<Self> {
        crate::crypto::install_tls_provider();
        let allow_private = domain.settings.allow_private_networks;
        let client = reqwest::Client::builder()
            .dns_resolver(crate::ssrf::resolver(allow_private))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(domain.settings.events.timeout)
            .connect_timeout(domain.settings.events.timeout)
            .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()
            .map_err(|error| Error::internal("building the event sender's client", error))?;
        Ok(Self { domain: domain.clone(), client, pacing: std::sync::Mutex::new(HashMap::new()) })
    }

    /// One round: the deliveries due now, paced by their endpoints' rate limits, sent and
    /// recorded. Returns how many were taken.
    pub async fn round(&self) -> Result<usize> {
        use futures_util::StreamExt;
        let settings = &self.domain.settings.events;
        let now = self.domain.clock.now();
        let lease =
            chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(60));
        let due = self
            .domain
            .storage
            .take_due_event_deliveries(now, now + lease, settings.batch_size)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let count = due.len();
        let mut ids: Vec<Uuid> = due.iter().map(|delivery| delivery.endpoint_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let endpoints = Arc::new(self.domain.storage.event_endpoints_by_id(&ids).await?);
        let paced = {
            let mut next_free =
                self.pacing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let limit = |id: Uuid| endpoints.get(&id)?.endpoint.rate_limit_per_second;
            let senders = self.domain.event_senders.load(std::sync::atomic::Ordering::Relaxed);
            pace(due, limit, senders, &mut next_free, now)
        };
        let outcomes: Vec<AttemptOutcome> = futures_util::stream::iter(paced.send)
            .map(|(delivery, wait)| {
                let endpoints = endpoints.clone();
                async move {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    let endpoint = endpoints.get(&delivery.endpoint_id);
                    self.attempt(delivery, endpoint).await
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        self.domain
            .storage
            .record_event_attempts(&outcomes, &paced.deferred, self.domain.clock.now())
            .await?;
        Ok(count)
    }

    async fn attempt(
        &self,
        delivery: DueDelivery,
        endpoint: Option<&SealedEndpoint>,
    ) -> AttemptOutcome {
        let attempted_at = self.domain.clock.now();
        let outcome =
            |http_status, latency_ms, response_excerpt, error: String, next| AttemptOutcome {
                delivery: delivery.clone(),
                attempted_at,
                http_status,
                latency_ms,
                response_excerpt,
                error,
                next,
            };
        let Some(endpoint) = endpoint.filter(|endpoint| endpoint.endpoint.enabled) else {
            return outcome(
                None,
                0,
                String::new(),
                "the endpoint is gone or disabled".into(),
                NextStep::GiveUp,
            );
        };
        let (secrets, headers) = match self.domain.open_endpoint(endpoint) {
            Ok(opened) => opened,
            Err(error) => {
                tracing::error!(%error, endpoint = %endpoint.endpoint.id, "cannot sign events");
                let next = self.after_failure(&delivery, endpoint, None, attempted_at);
                return outcome(
                    None,
                    0,
                    String::new(),
                    "cannot open the signing secret".into(),
                    next,
                );
            }
        };
        let body = self.body(&delivery, &endpoint.endpoint).await;
        let timestamp = self.domain.clock.now().timestamp();
        let mut request = self
            .client
            .post(&endpoint.endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                earshot_webhooks::signature_header(
                    &secrets,
                    &delivery.event_id,
                    timestamp,
                    body.as_bytes(),
                ),
            );
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let started = std::time::Instant::now();
        let sent = request.body(body).send().await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(events::parse_retry_after);
                let bytes = response.bytes().await.unwrap_or_default();
                let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let excerpt = events::excerpt(&bytes, RESPONSE_EXCERPT_BYTES);
                match events::judge(Some(status), retry_after) {
                    AttemptVerdict::Delivered => {
                        outcome(Some(status), latency, excerpt, String::new(), NextStep::Delivered)
                    }
                    AttemptVerdict::Gone => outcome(
                        Some(status),
                        latency,
                        excerpt,
                        "410 Gone: the endpoint is disabled".into(),
                        NextStep::Disable("gone"),
                    ),
                    AttemptVerdict::Retry { retry_after } => {
                        let next =
                            self.after_failure(&delivery, endpoint, retry_after, attempted_at);
                        outcome(Some(status), latency, excerpt, format!("answered {status}"), next)
                    }
                }
            }
            Err(error) => {
                let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let next = self.after_failure(&delivery, endpoint, None, attempted_at);
                outcome(None, latency, String::new(), describe(error), next)
            }
        }
    }

    /// What follows a failed attempt: disabled when the endpoint has failed for 5 days without
    /// a success, else the next step of the schedule, or giving up when it is over.
    fn after_failure(
        &self,
        delivery: &DueDelivery,
        endpoint: &SealedEndpoint,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
    ) -> NextStep {
        let failing_since = endpoint.endpoint.failing_since.unwrap_or(now);
        if now - failing_since >= events::DISABLE_AFTER_FAILING {
            return NextStep::Disable("failing");
        }
        let schedule = &self.domain.settings.events.retry_schedule;
        match events::next_delay(delivery.attempts + 1, retry_after, jitter(), schedule) {
            Some(delay) => NextStep::RetryAt(
                now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(10)),
            ),
            None => NextStep::GiveUp,
        }
    }

    /// What is POSTed: the event's JSON (with links, and the transcript when asked), or for
    /// a Slack endpoint, the message that tells it.
    async fn body(&self, delivery: &DueDelivery, endpoint: &Endpoint) -> String {
        let base = &self.domain.settings.public_base_url;
        if endpoint.kind == events::EndpointKind::Slack {
            let body = events::finish_body(&delivery.body, base, None);
            return events::slack_message(&body, endpoint.alert_cooldown_seconds);
        }
        if !(endpoint.include_transcript && delivery.event_type == events::CALL_PROCESSED) {
            return events::finish_body(&delivery.body, base, None);
        }
        let turns = match datapoint_of(&delivery.body) {
            Some(id) => match self.domain.storage.get_datapoint(delivery.organization_id, id).await
            {
                Ok(Some(view)) => serde_json::to_value(&view.datapoint.turns).ok(),
                _ => None,
            },
            None => None,
        };
        events::finish_body(&delivery.body, base, Some(&turns.unwrap_or(serde_json::Value::Null)))
    }
}

/// Test events and replays go to an enabled endpoint only: the sender gives up on the others.
fn require_enabled(endpoint: &Endpoint) -> Result<()> {
    if endpoint.enabled {
        Ok(())
    } else {
        Err(Error::invalid(
            "endpoint_id",
            format!("the endpoint is disabled ({}); enable it first", endpoint.disabled_reason),
        ))
    }
}

/// The longest `check.failed` cooldown: a week.
const MAX_ALERT_COOLDOWN_SECONDS: u32 = 7 * 24 * 3600;

fn check_cooldown(seconds: u32, violations: &mut Violations) {
    if seconds > MAX_ALERT_COOLDOWN_SECONDS {
        violations.add(
            "alert_cooldown_seconds",
            format!("at most {MAX_ALERT_COOLDOWN_SECONDS} (a week)"),
        );
    }
}

fn check_description(description: &str, violations: &mut Violations) {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        violations.add("description", format!("longer than {MAX_DESCRIPTION_CHARS} characters"));
    }
}

/// The known event types of `given`, each once, in order; a violation for each unknown one.
fn checked_event_types(given: &[String], violations: &mut Violations) -> Vec<String> {
    let mut event_types: Vec<String> = Vec::new();
    for (index, event_type) in given.iter().enumerate() {
        let event_type = event_type.trim();
        if !events::EVENT_TYPES.contains(&event_type) {
            violations.add(
                format!("event_types[{index}]"),
                format!("unknown; one of {}", events::EVENT_TYPES.join(", ")),
            );
        } else if !event_types.iter().any(|known| known == event_type) {
            event_types.push(event_type.to_owned());
        }
    }
    event_types
}

/// At most `MAX_HEADERS` headers, each a valid name and value that earshot does not set itself.
fn check_headers(headers: &BTreeMap<String, String>, violations: &mut Violations) {
    if headers.len() > MAX_HEADERS {
        violations.add("headers", format!("more than {MAX_HEADERS}"));
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            violations.add(format!("headers[{name}]"), "is not a valid header name");
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            violations.add(format!("headers[{name}]"), "is set by earshot");
        } else if http::HeaderValue::from_str(value).is_err() {
            violations.add(format!("headers[{name}]"), "is not a valid header value");
        }
    }
}

/// A number in [0, 1) to spread retries.
fn jitter() -> f64 {
    let bits = u64::from_le_bytes(crate::crypto::random_bytes::<8>()) >> 11;
    #[allow(clippy::cast_precision_loss)] // 53 bits: exact in an f64
    let fraction = bits as f64 / (1_u64 << 53) as f64;
    fraction
}

/// How long a round may hold a rate-limited delivery for its slot; a later slot sends the
/// delivery back to the outbox, due then.
const PACING_HORIZON_MS: i64 = 1_000;

/// A round's deliveries against their endpoints' rate limits.
#[derive(Debug, Default)]
struct Paced {
    /// To send, each after waiting this long.
    send: Vec<(DueDelivery, Duration)>,
    /// Not sent this round: due again at their slot, their attempts unchanged.
    deferred: Vec<(DueDelivery, DateTime<Utc>)>,
}

/// Gives each delivery to an endpoint with a rate limit (`limit`, per second, shared by the
/// `senders` processes sending events) the endpoint's next slot, `senders/limit` after the one
/// before (`next_free` holds, per endpoint, the slot after the last one sent). A slot within
/// `PACING_HORIZON_MS` of `now` is waited for; a later one defers the delivery to it, so a slow
/// limit holds neither a lease nor a sending slot.
fn pace(
    due: Vec<DueDelivery>,
    limit: impl Fn(Uuid) -> Option<u32>,
    senders: u32,
    next_free: &mut HashMap<Uuid, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Paced {
    next_free.retain(|_, slot| *slot > now);
    let horizon = chrono::Duration::milliseconds(PACING_HORIZON_MS);
    let mut cursor: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let mut paced = Paced::default();
    for delivery in due {
        let id = delivery.endpoint_id;
        let Some(limit) = limit(id) else {
            paced.send.push((delivery, Duration::ZERO));
            continue;
        };
        let spacing = chrono::Duration::microseconds(
            1_000_000 * i64::from(senders.max(1)) / i64::from(limit.max(1)),
        );
        let slot = cursor.get(&id).or_else(|| next_free.get(&id)).copied().unwrap_or(now).max(now);
        cursor.insert(id, slot + spacing);
        if slot - now <= horizon {
            next_free.insert(id, slot + spacing);
            paced.send.push((delivery, (slot - now).to_std().unwrap_or_default()));
        } else {
            paced.deferred.push((delivery, slot));
        }
    }
    paced
}

/// The datapoint a `call.processed` envelope is about.
fn datapoint_of(body: &str) -> Option<Uuid> {
    let envelope: serde_json::Value = serde_json::from_str(body).ok()?;
    envelope["data"]["datapoint_id"].as_str()?.parse().ok()
}

/// A transport error in words, without the URL (which may carry a token).
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        error.without_url().to_string()
    }
}

fn valid_secrets(
    secrets: &[StoredSecret],
    now: DateTime<Utc>,
) -> impl Iterator<Item = &StoredSecret> {
    let now_ms = crate::clock::to_millis(now);
    secrets.iter().filter(move |secret| secret.expires_at_ms.is_none_or(|until| until > now_ms))
}

/// What binds a sealed value to its endpoint and use, so one cannot be swapped for another.
pub(crate) fn sealed_value_aad(endpoint_id: Uuid, headers: bool) -> Vec<u8> {
    let what = if headers { "headers" } else { "secret" };
    format!("event_endpoint:{endpoint_id}:{what}").into_bytes()
}

fn secret_aad(endpoint_id: Uuid) -> Vec<u8> {
    sealed_value_aad(endpoint_id, false)
}

fn headers_aad(endpoint_id: Uuid) -> Vec<u8> {
    sealed_value_aad(endpoint_id, true)
}

fn endpoint_not_found() -> Error {
    Error::not_found("event endpoint")
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::events::{CALL_PROCESSED, envelope, new_secret};

    fn verifies(secret: &str, header: &str, body: &str, now: DateTime<Utc>) -> bool {
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.timestamp().to_string().parse().unwrap());
        headers.insert("webhook-signature", header.parse().unwrap());
        let request = crate::providers::WebhookRequest {
            url: "https://receiver.example/hook",
            headers: &headers,
            body: body.as_bytes(),
            now,
        };
        crate::providers::standard_webhooks::verify(secret, &request).is_ok()
    }

    #[test]
    fn every_secret_signs_and_each_signature_verifies() {
        let (first, second) = (new_secret(), new_secret());
        let now = Utc::now();
        let body = envelope(CALL_PROCESSED, now, &serde_json::json!({"call_id": "c1"}));
        let secrets = [first.clone(), second.clone()];
        let header =
            earshot_webhooks::signature_header(&secrets, "msg_1", now.timestamp(), body.as_bytes());
        assert_eq!(header.split(' ').count(), 2);
        assert!(verifies(&first, &header, &body, now));
        assert!(verifies(&second, &header, &body, now));
        assert!(!verifies(&new_secret(), &header, &body, now));
        assert!(!verifies(&first, &header, &format!("{body} "), now));
    }

    /// An endpoint's URL may not name a private, loopback or link-local target (a name that
    /// resolves to one included) unless `fetch.allow_private_networks` says so: the refusal
    /// names `url`.
    #[tokio::test]
    async fn a_private_target_is_refused_unless_allowed() {
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(Utc::now()));
        let (mut domain, _audio) = crate::domain::test_support::domain(clock).await;
        let admin = domain.bootstrap(false).await.unwrap().unwrap();
        let admin = domain.authenticate(admin.api_key_value.expose()).await.unwrap();
        let input = |url: &str| EndpointInput { url: url.into(), ..EndpointInput::default() };
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
        ] {
            let Err(Error::InvalidArgument(violations)) =
                domain.create_event_endpoint(&admin, input(url)).await
            else {
                panic!("{url} is refused");
            };
            let fields: Vec<&str> =
                violations.iter().map(|violation| violation.field.as_str()).collect();
            assert_eq!(fields, ["url"], "{url}");
        }
        domain.settings = Arc::new(crate::domain::Settings {
            allow_private_networks: true,
            ..(*domain.settings).clone()
        });
        domain.create_event_endpoint(&admin, input("http://127.0.0.1:9/hook")).await.unwrap();
    }

    /// A rate limit spaces an endpoint's deliveries `1/limit` apart: those due within the
    /// pacing horizon wait for their slot, later ones go back to the outbox due at theirs, and
    /// the next round starts after the last slot sent; an endpoint without a limit is not held.
    #[test]
    fn a_rate_limit_spaces_deliveries_and_defers_those_beyond_the_horizon() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let (limited, free) = (Uuid::now_v7(), Uuid::now_v7());
        let delivery = |endpoint_id: Uuid, index: usize| DueDelivery {
            event_id: format!("msg_{index}"),
            endpoint_id,
            organization_id: Uuid::nil(),
            attempts: 0,
            event_type: CALL_PROCESSED.into(),
            body: "{}".into(),
            created_at: now,
        };
        let limit = |id: Uuid| (id == limited).then_some(2);
        let mut next_free = HashMap::new();
        let due = vec![
            delivery(limited, 0),
            delivery(free, 1),
            delivery(limited, 2),
            delivery(limited, 3),
            delivery(free, 4),
            delivery(limited, 5),
            delivery(limited, 6),
        ];
        let paced = pace(due.clone(), limit, 1, &mut next_free, now);
        let sent: Vec<(&str, u128)> = paced
            .send
            .iter()
            .map(|(delivery, wait)| (delivery.event_id.as_str(), wait.as_millis()))
            .collect();
        assert_eq!(
            sent,
            [("msg_0", 0), ("msg_1", 0), ("msg_2", 500), ("msg_3", 1_000), ("msg_4", 0)]
        );
        let ms = chrono::Duration::milliseconds;
        let deferred: Vec<(&str, DateTime<Utc>)> =
            paced.deferred.iter().map(|(delivery, at)| (delivery.event_id.as_str(), *at)).collect();
        assert_eq!(deferred, [("msg_5", now + ms(1_500)), ("msg_6", now + ms(2_000))]);
        assert_eq!(next_free, HashMap::from([(limited, now + ms(1_500))]));
        // The deferred ones, due again: the first goes at once, the next half a second later.
        let later = now + ms(1_600);
        let deferred = paced.deferred.into_iter().map(|(delivery, _)| delivery).collect();
        let again = pace(deferred, limit, 1, &mut next_free, later);
        let waits: Vec<u128> = again.send.iter().map(|(_, wait)| wait.as_millis()).collect();
        assert_eq!((waits, again.deferred.len()), (vec![0, 500], 0));
        // Two processes sending: each takes half the limit, a slot every second.
        let paced = pace(due, limit, 2, &mut HashMap::new(), now);
        let sent: Vec<(&str, u128)> = paced
            .send
            .iter()
            .map(|(delivery, wait)| (delivery.event_id.as_str(), wait.as_millis()))
            .collect();
        assert_eq!(sent, [("msg_0", 0), ("msg_1", 0), ("msg_2", 1_000), ("msg_4", 0)]);
        assert_eq!(paced.deferred.len(), 3);
    }

    /// After a failed attempt: the next step of the schedule, giving up after the eighth
    /// attempt, and disabling once the endpoint has failed for five days without a success,
    /// judged by the injected clock.
    #[tokio::test]
    async fn a_failure_retries_on_the_schedule_until_five_days_of_failing_disable() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(now));
        let (domain, _audio) = crate::domain::test_support::domain(clock).await;
        let sender = Sender::new(&domain).unwrap();
        let mut endpoint =
            Endpoint::new(Uuid::now_v7(), Uuid::now_v7(), "https://1.1.1.1/".into(), now);
        let sealed = |endpoint: &Endpoint| SealedEndpoint {
            endpoint: endpoint.clone(),
            secrets: Vec::new(),
            headers: StoredHeaders::default(),
        };
        let delivery = |attempts: u32| DueDelivery {
            event_id: "msg_1".into(),
            endpoint_id: endpoint.id,
            organization_id: endpoint.organization_id,
            attempts,
            event_type: CALL_PROCESSED.into(),
            body: "{}".into(),
            created_at: now,
        };
        // First failure: 5 s later, ±10 %.
        let NextStep::RetryAt(at) =
            sender.after_failure(&delivery(0), &sealed(&endpoint), None, now)
        else {
            panic!("the first failure is retried");
        };
        assert!((4_500..=5_500).contains(&(at - now).num_milliseconds()), "{at}");
        // A receiver asking for a minute gets it.
        let asked = Some(Duration::from_secs(60));
        let NextStep::RetryAt(at) =
            sender.after_failure(&delivery(0), &sealed(&endpoint), asked, now)
        else {
            panic!("retried");
        };
        assert_eq!((at - now).num_seconds(), 60);
        // The eighth attempt failed: the delivery has failed.
        assert_eq!(
            sender.after_failure(&delivery(7), &sealed(&endpoint), None, now),
            NextStep::GiveUp
        );
        // Failing for four days: still retried; for five: disabled.
        endpoint.failing_since = Some(now - chrono::Duration::days(4));
        assert!(matches!(
            sender.after_failure(&delivery(3), &sealed(&endpoint), None, now),
            NextStep::RetryAt(_)
        ));
        endpoint.failing_since = Some(now - chrono::Duration::days(5));
        assert_eq!(
            sender.after_failure(&delivery(3), &sealed(&endpoint), None, now),
            NextStep::Disable("failing")
        );
    }

    /// A receiver down for the whole schedule, the clock moved past each retry: every event is
    /// tried, each attempt logged as refused; once the endpoint has failed for five days
    /// without a success it is disabled ("failing"), its pending deliveries fail, and the
    /// organization's other endpoint gets `endpoint.disabled`.
    #[tokio::test]
    async fn an_endpoint_down_for_five_days_is_disabled_and_the_others_hear_of_it() {
        use crate::clock::Clock;
        use chrono::TimeZone;
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(start));
        let (mut domain, _audio) = crate::domain::test_support::domain(clock.clone()).await;
        domain.settings = Arc::new(crate::domain::Settings {
            allow_private_networks: true,
            ..(*domain.settings).clone()
        });
        let admin = domain.bootstrap(false).await.unwrap().unwrap();
        let admin = domain.authenticate(admin.api_key_value.expose()).await.unwrap();
        // A loopback port nothing listens on: every attempt is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let input = |event_types: Vec<String>| EndpointInput {
            url: format!("http://127.0.0.1:{port}/hook"),
            event_types,
            ..EndpointInput::default()
        };
        let (down, _) = domain.create_event_endpoint(&admin, input(Vec::new())).await.unwrap();
        let (other, _) = domain
            .create_event_endpoint(&admin, input(vec![events::ENDPOINT_DISABLED.to_owned()]))
            .await
            .unwrap();
        let sender = Sender::new(&domain).unwrap();
        // An event every 11 hours (longer than any step of the schedule, jitter included), each
        // round attempting everything due.
        let mut disabled_at = None;
        for _ in 0..16 {
            domain.storage.insert_test_event(&down, clock.now()).await.unwrap();
            sender.round().await.unwrap();
            let read = domain.get_event_endpoint(&admin, down.id).await.unwrap();
            if !read.enabled {
                assert_eq!(read.disabled_reason, "failing");
                disabled_at = Some(clock.now());
                break;
            }
            clock.advance(chrono::Duration::hours(11));
        }
        let disabled_at = disabled_at.expect("disabled within 16 rounds of 11 hours");
        let failing_for = disabled_at - start;
        assert!(
            failing_for >= chrono::Duration::days(5) && failing_for < chrono::Duration::days(6),
            "{failing_for}"
        );
        let read = domain.get_event_endpoint(&admin, down.id).await.unwrap();
        assert_eq!((read.sent, read.last_success_at), (0, None));
        assert!(read.failed >= 11, "{}", read.failed);
        let (attempts, _) = domain
            .list_event_attempts(&admin, down.id, &AttemptFilter::default(), 100, "")
            .await
            .unwrap();
        assert!(
            attempts
                .iter()
                .all(|attempt| attempt.http_status.is_none() && !attempt.error.is_empty())
        );
        // Nothing of the disabled endpoint is due any more; the other endpoint's notice is.
        let later = clock.now() + chrono::Duration::days(30);
        let due = domain.storage.take_due_event_deliveries(later, later, 100).await.unwrap();
        let kinds: Vec<(Uuid, &str)> = due
            .iter()
            .map(|delivery| (delivery.endpoint_id, delivery.event_type.as_str()))
            .collect();
        assert_eq!(kinds, [(other.id, events::ENDPOINT_DISABLED)]);
        let notice: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
        assert_eq!(notice["data"]["endpoint_id"], down.id.to_string());
        assert_eq!(notice["data"]["reason"], "failing");
    }
}
