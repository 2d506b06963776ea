//! The rules of earshot, free of transport and storage types. Both gRPC and REST call these
//! functions; they call `storage` for persistence.

pub mod auth;
pub mod console;
pub mod datapoints;
pub mod deliveries;
pub mod events;
pub mod ingest;
pub mod integrations;
pub mod lifecycle;
pub mod monitors;
pub mod projects;
pub mod webhook_gate;
pub mod webhooks;

use std::sync::Arc;

use crate::blob::BlobStore;
use crate::clock::SharedClock;
use crate::crypto::Keyring;
use crate::storage::Storage;

/// Everything a domain operation may need, cheap to clone.
#[derive(Clone, Debug)]
pub struct Domain {
    pub storage: Storage,
    pub keyring: Arc<Keyring>,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
    /// The audio store.
    pub blobs: BlobStore,
    /// Group-committing writer of accepted ingests.
    pub ingest_writer: crate::storage::IngestWriter,
    /// Wakes idle workers when new jobs are committed.
    pub jobs_wakeup: Arc<tokio::sync::Notify>,
    /// Cached integrations, rate-limit buckets and usage counters of the webhook routes.
    pub webhook_gate: Arc<webhook_gate::WebhookGate>,
    /// Request budgets of API keys.
    pub api_key_limiter: Arc<auth::ApiKeyLimiter>,
    /// Counters and histograms `GET /metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How many processes send outbound events (each paces an endpoint at its share of the
    /// endpoint's rate limit); kept by the heartbeat.
    pub event_senders: Arc<std::sync::atomic::AtomicU32>,
}

/// Settings the domain rules read, taken from the configuration at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub public_base_url: String,
    pub rotation_grace_default: chrono::Duration,
    pub rotation_grace_max: chrono::Duration,
    pub rate_limit_per_minute_default: u32,
    pub rate_limit_per_minute_max: u32,
    pub ingest_limits: crate::model::conversation::IngestLimits,
    pub max_upload_bytes: usize,
    pub allow_private_networks: bool,
    pub webhooks: WebhookSettings,
    pub lifecycle: LifecycleSettings,
    pub monitors: MonitorSettings,
    pub events: events::EventSettings,
}

/// Settings of monitor backfills.
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// Calls one backfill transaction evaluates: bounded, so intake gets its turns in between.
    pub backfill_batch_size: usize,
    /// A wait between two batches, leaving the writer to intake.
    pub backfill_pause: std::time::Duration,
    /// Attempts of a backfill's job (each resumes from the last committed batch).
    pub backfill_max_attempts: i32,
}

/// Settings of deletion and retention.
#[derive(Clone, Debug)]
pub struct LifecycleSettings {
    /// Calls one deletion transaction takes: bounded, so intake gets its turns in between.
    pub batch_size: usize,
    /// How long a recording no call names stays in the audio store before it is removed: longer
    /// than an upload of the same bytes takes from storing them to committing its row, which
    /// would otherwise lose them.
    pub audio_grace: chrono::Duration,
}

/// Settings of the webhook intake.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub max_body_bytes: usize,
    pub max_elevenlabs_body_bytes: usize,
    /// Requests a minute one address may send that fail authentication, before its requests
    /// are refused unread.
    pub unauthenticated_per_minute_per_address: u32,
    /// Proxies whose X-Forwarded-For names the sender.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub cache_ttl: std::time::Duration,
    pub body_retention: chrono::Duration,
    pub delivery_retention: chrono::Duration,
}

/// Whole seconds to wait before a rate limit allows the next request, at least one.
/// An admin key of the whole organization: what managing `what` (organization-wide things such
/// as monitors and event endpoints) needs; a key restricted to one project may not.
pub fn require_organization_admin(
    principal: &crate::model::auth::Principal,
    what: &str,
) -> crate::error::Result<()> {
    principal.require(crate::model::auth::Scope::Admin)?;
    if principal.project_id.is_some() {
        return Err(crate::error::Error::PermissionDenied(format!(
            "a key restricted to one project cannot manage {what}"
        )));
    }
    Ok(())
}

pub fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The opaque token of the page after the item with this id (lists page by UUIDv7 id).
pub fn encode_page_token(last_id: uuid::Uuid) -> String {
    data_encoding::BASE64URL_NOPAD.encode(last_id.as_bytes())
}

/// Ends a page fetched with one row more than `page_size`: drops the extra row and returns the
/// token of the next page, or None when this is the last.
pub fn finish_page<T>(
    items: &mut Vec<T>,
    page_size: usize,
    id: impl Fn(&T) -> uuid::Uuid,
) -> Option<String> {
    finish_page_with(items, page_size, |last| encode_page_token(id(last)))
}

/// `finish_page` for lists whose token is more than the last id (`token` makes it from the
/// page's last item).
pub fn finish_page_with<T>(
    items: &mut Vec<T>,
    page_size: usize,
    token: impl Fn(&T) -> String,
) -> Option<String> {
    if items.len() <= page_size {
        return None;
    }
    items.truncate(page_size);
    items.last().map(token)
}

/// The id a page token continues after; None for the first page.
pub fn decode_page_token(token: &str) -> crate::error::Result<Option<uuid::Uuid>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid =
        || crate::Error::invalid("page_token", "is not a page token returned by this list");
    let bytes = data_encoding::BASE64URL_NOPAD.decode(token.as_bytes()).map_err(|_| invalid())?;
    uuid::Uuid::from_slice(&bytes).map(Some).map_err(|_| invalid())
}

/// Parses a UUID given by a caller, naming the field when it is not one.
pub fn parse_id(field: &str, value: &str) -> crate::error::Result<uuid::Uuid> {
    if value.is_empty() {
        return Err(crate::Error::invalid(field, "required"));
    }
    uuid::Uuid::parse_str(value).map_err(|_| crate::Error::invalid(field, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_rejected() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(decode_page_token(&encode_page_token(id)).unwrap(), Some(id));
        assert_eq!(decode_page_token("").unwrap(), None);
        let error = decode_page_token("!!!").unwrap_err();
        assert_eq!(error.field_violations()[0].field, "page_token");
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use super::{Domain, Settings};
    use crate::clock::SharedClock;
    use crate::crypto::{Keyring, MasterKey};
    use crate::model::conversation::IngestLimits;

    pub fn settings() -> Settings {
        Settings {
            public_base_url: "https://hooks.example.com".to_owned(),
            rotation_grace_default: chrono::Duration::hours(24),
            rotation_grace_max: chrono::Duration::hours(168),
            rate_limit_per_minute_default: 1000,
            rate_limit_per_minute_max: 100_000,
            ingest_limits: IngestLimits {
                max_batch_conversations: 1000,
                max_inline_audio_bytes: 1 << 20,
            },
            max_upload_bytes: 1 << 20,
            allow_private_networks: false,
            webhooks: super::WebhookSettings {
                max_body_bytes: 1 << 20,
                max_elevenlabs_body_bytes: 64 << 20,
                unauthenticated_per_minute_per_address: 60,
                trusted_proxies: Vec::new(),
                cache_ttl: std::time::Duration::from_secs(30),
                body_retention: chrono::Duration::days(7),
                delivery_retention: chrono::Duration::days(30),
            },
            lifecycle: super::LifecycleSettings {
                batch_size: 500,
                audio_grace: chrono::Duration::zero(),
            },
            monitors: super::MonitorSettings {
                backfill_batch_size: 200,
                backfill_pause: std::time::Duration::ZERO,
                backfill_max_attempts: 3,
            },
            events: super::events::EventSettings::default(),
        }
    }

    /// The first organization's admin, as its bootstrapped key authenticates.
    pub fn admin_of(bootstrap: &super::projects::Bootstrap) -> crate::model::auth::Principal {
        crate::model::auth::Principal {
            organization_id: bootstrap.organization.id,
            api_key_id: bootstrap.api_key.id,
            scopes: vec![crate::model::auth::Scope::Admin],
            project_id: None,
        }
    }

    /// A domain over a fresh test database (SQLite, or Postgres when configured) and a
    /// temporary audio directory, which lives as long as the returned guard.
    pub async fn domain(clock: SharedClock) -> (Domain, tempfile::TempDir) {
        let storage = crate::storage::testing::storage().await;
        let audio = tempfile::tempdir().unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let domain = Domain {
            ingest_writer: crate::storage::IngestWriter::start(
                storage.clone(),
                crate::storage::IntakeSettings { max_attempts: 3, transcripts_at_intake: true },
                512,
                clock.clone(),
                metrics.clone(),
                crate::jobs::IntakeLogging::Never,
                crate::jobs::IntakeLoad::default(),
                Arc::default(),
            ),
            metrics,
            event_senders: Arc::new(std::sync::atomic::AtomicU32::new(1)),
            storage,
            keyring: Arc::new(Keyring::new(MasterKey::generate(), Vec::new())),
            clock,
            settings: Arc::new(settings()),
            blobs: crate::blob::BlobStore::for_tests(audio.path()),
            jobs_wakeup: Arc::new(tokio::sync::Notify::new()),
            webhook_gate: Arc::default(),
            api_key_limiter: Arc::new(super::auth::ApiKeyLimiter::new(0)),
        };
        (domain, audio)
    }
}
