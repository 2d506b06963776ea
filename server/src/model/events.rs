//! Outbound events: what earshot tells an organization's endpoints, as Standard Webhooks
//! (standardwebhooks.com): the envelope `{type, timestamp, data}`, the headers that sign it, the
//! retry schedule, and which endpoint receives what. Pure rules; `storage::events` keeps the
//! outbox and `domain::events` sends.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::datapoints::{Datapoint, metadata_filter_text};

/// The event types an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 6] = [
    CALL_PROCESSED,
    CALL_FAILED,
    CHECK_FAILED,
    INTEGRATION_DISABLED,
    INTEGRATION_SECRET_EXPIRING,
    ENDPOINT_DISABLED,
];

/// A call's datapoint was stored (or stored again).
pub const CALL_PROCESSED: &str = "call.processed";
/// A call's processing gave up: its ingest is dead.
pub const CALL_FAILED: &str = "call.failed";
/// A monitor's check is an issue on a call as it is stored.
pub const CHECK_FAILED: &str = "check.failed";
/// An endpoint was disabled; sent to the organization's other endpoints.
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
/// Sent to one endpoint when asked (`SendTestEvent`), whatever types it subscribes to.
pub const ENDPOINT_TEST: &str = "endpoint.test";
/// Why an endpoint an administrator disabled is disabled.
pub const DISABLED_BY_USER: &str = "disabled";

/// The data of an `endpoint.test` event.
pub fn endpoint_test(endpoint_id: Uuid) -> serde_json::Value {
    serde_json::json!({
        "endpoint_id": endpoint_id.to_string(),
        "message": "A test event from earshot: this endpoint receives and verifies events.",
    })
}

/// An integration was disabled: its webhooks are answered 404 from now on.
pub const INTEGRATION_DISABLED: &str = "integration.disabled";

/// The data of an `integration.disabled` event.
pub fn integration_disabled(
    integration_id: Uuid,
    organization_id: Uuid,
    project_id: &str,
    provider: &str,
    display_name: &str,
) -> serde_json::Value {
    serde_json::json!({
        "integration_id": integration_id.to_string(),
        "organization_id": organization_id.to_string(),
        "project_id": project_id,
        "provider": provider,
        "display_name": display_name,
    })
}

/// A replaced secret set of an integration stops verifying soon (its rotation's grace ends).
pub const INTEGRATION_SECRET_EXPIRING: &str = "integration.secret_expiring";

/// A replaced secret set whose grace is ending, as `integration.secret_expiring` tells it.
#[derive(Clone, Debug)]
pub struct ExpiringSecrets<'a> {
    pub integration_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: &'a str,
    pub provider: &'a str,
    pub display_name: &'a str,
    pub generation: i32,
    /// The names of its secrets (`auth_token`, `api_key`, ...), never their values.
    pub names: &'a [String],
    pub expires_at: DateTime<Utc>,
}

/// The data of an `integration.secret_expiring` event.
pub fn integration_secret_expiring(secrets: &ExpiringSecrets<'_>) -> serde_json::Value {
    serde_json::json!({
        "integration_id": secrets.integration_id.to_string(),
        "organization_id": secrets.organization_id.to_string(),
        "project_id": secrets.project_id,
        "provider": secrets.provider,
        "display_name": secrets.display_name,
        "generation": secrets.generation,
        "secret_names": secrets.names,
        "expires_at": secrets.expires_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// A call whose processing gave up, as `call.failed` tells it.
#[derive(Clone, Debug)]
pub struct FailedCall<'a> {
    pub ingest_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub provider: &'a str,
    pub call_id: &'a str,
    pub source: &'a str,
    pub tags: &'a [String],
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
    pub reason: &'a str,
    pub attempts: i32,
}

/// The data of a `call.failed` event.
pub fn call_failed(call: &FailedCall<'_>) -> serde_json::Value {
    serde_json::json!({
        "ingest_id": call.ingest_id.to_string(),
        "organization_id": call.organization_id.to_string(),
        "project_id": call.project_id.to_string(),
        "provider": call.provider,
        "call_id": call.call_id,
        "source": call.source,
        "stage": failure_stage(call.reason),
        "reason": call.reason,
        "attempts": call.attempts,
        "tags": call.tags,
        "metadata": call.metadata,
    })
}

/// The stage a call's processing gave up in, from the reason the pipeline recorded: `fetch`
/// (getting its recording), `transcription`, or `processing` (anything else).
pub fn failure_stage(reason: &str) -> &'static str {
    let fetch = ["audio URL", "audio is larger", "fetching audio", "the Twilio integration"];
    if fetch.iter().any(|start| reason.starts_with(start)) {
        "fetch"
    } else if reason.starts_with("transcription")
        || reason.starts_with("the audio cannot be transcribed")
    {
        "transcription"
    } else {
        "processing"
    }
}

/// The smallest event id of the events created at `at` or later: ids are time-ordered
/// (`msg_` and a UUIDv7 in hex, whose first 12 digits are the milliseconds), so a time window
/// is a range of ids.
pub fn first_event_id_at(at: DateTime<Utc>) -> String {
    format!("msg_{:012x}", u64::try_from(at.timestamp_millis()).unwrap_or(0))
}

/// When the attempts after the first are made, counted from the failure before (the Standard
/// Webhooks schedule): the first is immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// An endpoint failing without a success for this long is disabled.
pub const DISABLE_AFTER_FAILING: chrono::TimeDelta = chrono::TimeDelta::days(5);

/// Which deliveries a replay queues again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// This event's delivery, in any state but pending.
    Event(String),
    /// The failed deliveries of events created in `[from, to)`.
    FailedBetween(DateTime<Utc>, DateTime<Utc>),
}

/// Which attempts a listing of attempts shows, beyond their endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    pub event_id: Option<String>,
    /// Some(true): only those answered 2xx; Some(false): only the others.
    pub succeeded: Option<bool>,
}

/// Which events an endpoint receives beyond their type: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// For `check.failed`: only this monitor's checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_id: Option<Uuid>,
}

impl EventFilter {
    /// Whether events about `datapoint` pass the filter's call conditions (provider, tags,
    /// metadata).
    pub fn matches_call(&self, datapoint: &Datapoint) -> bool {
        self.matches(&datapoint.provider, &datapoint.tags, &datapoint.metadata)
    }

    /// Whether a call of `provider` with `tags` and `metadata` passes the call conditions.
    pub fn matches(
        &self,
        provider: &str,
        tags: &[String],
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        self.provider.as_ref().is_none_or(|wanted| wanted == provider)
            && self.tags.iter().all(|tag| tags.contains(tag))
            && self.metadata.iter().all(|(key, value)| {
                metadata
                    .get(key)
                    .and_then(metadata_filter_text)
                    .is_some_and(|stored| stored == *value)
            })
    }
}

/// What an endpoint is: a receiver of the events' JSON, or a Slack incoming webhook, sent a
/// readable message for each event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointKind {
    #[default]
    Webhook,
    Slack,
}

impl EndpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "webhook" => Some(Self::Webhook),
            "slack" => Some(Self::Slack),
            _ => None,
        }
    }

    /// The cooldown of `check.failed` per monitor when none is asked: an hour for Slack (a bad
    /// hour is one alert, not a thousand), none for a webhook (a machine wants every one).
    pub fn default_alert_cooldown_seconds(self) -> u32 {
        match self {
            Self::Webhook => 0,
            Self::Slack => 3600,
        }
    }
}

/// An organization's receiver of events, as stored (its secrets and headers sealed apart).
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub filter: EventFilter,
    pub include_transcript: bool,
    /// None: no limit.
    pub rate_limit_per_second: Option<u32>,
    pub enabled: bool,
    pub disabled_reason: String,
    pub failing_since: Option<DateTime<Utc>>,
    pub header_names: Vec<String>,
    pub sent: u64,
    pub failed: u64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Signing secrets valid now.
    pub active_secrets: usize,
    pub kind: EndpointKind,
    /// `check.failed` at most once per monitor per this many seconds; 0: every one.
    pub alert_cooldown_seconds: u32,
}

impl Endpoint {
    /// A new endpoint receiving every event type, unfiltered, enabled, with one secret.
    pub fn new(id: Uuid, organization_id: Uuid, url: String, now: DateTime<Utc>) -> Self {
        Self {
            id,
            organization_id,
            url,
            description: String::new(),
            event_types: Vec::new(),
            filter: EventFilter::default(),
            include_transcript: false,
            rate_limit_per_second: None,
            enabled: true,
            disabled_reason: String::new(),
            failing_since: None,
            header_names: Vec::new(),
            sent: 0,
            failed: 0,
            last_success_at: None,
            last_failure_at: None,
            created_at: now,
            updated_at: now,
            active_secrets: 1,
            kind: EndpointKind::Webhook,
            alert_cooldown_seconds: 0,
        }
    }

    pub fn subscribes(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|wanted| wanted == event_type)
    }
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    format!("whsec_{}", data_encoding::BASE64.encode(&crate::crypto::random_bytes::<32>()))
}

/// The id of an event created `at` (its `webhook-id`): `msg_` and a UUID ordered by that time,
/// so events are pruned by a range of their keys.
pub fn new_event_id(at: DateTime<Utc>) -> String {
    format!("msg_{}", uuid_at(at).simple())
}

/// A new time-ordered UUID for the time `at` (the injected clock's, not the system's).
pub fn uuid_at(at: DateTime<Utc>) -> Uuid {
    let seconds = u64::try_from(at.timestamp()).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, at.timestamp_subsec_nanos()))
}

/// The envelope as sent: `{"type", "timestamp", "data"}`, the timestamp RFC 3339 in UTC.
pub fn envelope(event_type: &str, at: DateTime<Utc>, data: &serde_json::Value) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// `call.processed`'s data as stored: what identifies the call and what was measured. Links to
/// the call's audio and the transcript (for an endpoint that asks) are added when it is sent
/// (`finish_body`), where the public address is known.
pub fn call_processed(datapoint: &Datapoint) -> serde_json::Value {
    about_call(
        datapoint,
        serde_json::json!({
            "source": datapoint.source.as_str(),
            "integration_id": datapoint.integration_id,
            "duration_ms": datapoint.duration_ms,
            "turn_count": datapoint.turns.len(),
            "tags": datapoint.tags,
            "metadata": datapoint.metadata,
            "metrics": datapoint.metrics,
            "verdicts": {
                "successful": datapoint.analysis.successful,
                "sentiment": datapoint.analysis.sentiment,
                "outcome": datapoint.analysis.outcome,
            },
        }),
    )
}

/// `fields` (an object) with what identifies the call every event about one carries.
fn about_call(datapoint: &Datapoint, mut fields: serde_json::Value) -> serde_json::Value {
    let identity = serde_json::json!({
        "datapoint_id": datapoint.id,
        "organization_id": datapoint.organization_id,
        "project_id": datapoint.project_id,
        "provider": datapoint.provider,
        "call_id": datapoint.call_id,
        "occurred_at": datapoint.occurred_at().to_rfc3339_opts(SecondsFormat::Millis, true),
        "has_audio": datapoint.audio_id.is_some(),
    });
    if let (Some(fields), serde_json::Value::Object(identity)) = (fields.as_object_mut(), identity)
    {
        fields.extend(identity);
    }
    fields
}

/// `check.failed`'s data: the call, the monitor, the check at its version, the value measured
/// against the threshold, and why it is an issue.
pub fn check_failed(
    datapoint: &Datapoint,
    monitor: &crate::model::monitors::Monitor,
    check: &crate::model::checks::Check,
    value: &crate::model::checks::CheckValue,
) -> serde_json::Value {
    about_call(
        datapoint,
        serde_json::json!({
            "monitor": {"id": monitor.id, "name": monitor.name, "version": monitor.version},
            "check": {
                "id": check.id,
                "name": check.name,
                "version": check.version,
                "measure": check.rule.measure.as_str(),
                "comparator": check.rule.comparator.as_str(),
                "threshold": check.rule.threshold,
                "phrase": check.rule.phrase,
            },
            "value": value.value,
            "value_type": value.value_type,
            "explanation": crate::model::checks::explain(&check.rule, value.value.as_ref(), true),
        }),
    )
}

/// The body sent for a stored envelope: a `call.processed` or `check.failed` gets `links` (the
/// call's datapoint, its console page and its audio, under `public_base_url`) and, when given, the transcript's turns; other types
/// go as stored.
pub fn finish_body(
    body: &str,
    public_base_url: &str,
    transcript: Option<&serde_json::Value>,
) -> String {
    let Ok(mut envelope) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_owned();
    };
    let event_type = envelope.get("type").and_then(serde_json::Value::as_str).unwrap_or_default();
    if event_type != CALL_PROCESSED && event_type != CHECK_FAILED {
        return body.to_owned();
    }
    let Some(data) = envelope.get_mut("data").and_then(|data| data.as_object_mut()) else {
        return body.to_owned();
    };
    let base = public_base_url.trim_end_matches('/');
    let id = data.get("datapoint_id").and_then(serde_json::Value::as_str).unwrap_or_default();
    let audio = data
        .get("has_audio")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
        .then(|| format!("{base}/v0/datapoints/{id}/audio"));
    let datapoint = format!("{base}/v0/datapoints/{id}");
    let console = format!("{base}/console/calls/{id}");
    data.insert(
        "links".to_owned(),
        serde_json::json!({ "datapoint": datapoint, "console": console, "audio": audio }),
    );
    if let Some(turns) = transcript {
        data.insert("transcript".to_owned(), turns.clone());
    }
    envelope.to_string()
}

/// The Slack message for an event's finished body (`finish_body`): `check.failed` as the
/// monitor, the call, the check, its value against the threshold and why, with the call's
/// recording linked; other types as their type and the call or endpoint they are about. Text
/// from calls is escaped as Slack's mrkdwn asks (`&`, `<`, `>`), so a transcript cannot
/// forge a link or a mention.
pub fn slack_message(body: &str, cooldown_seconds: u32) -> String {
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let text = |value: &serde_json::Value| -> String {
        let raw = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => "none".to_owned(),
            other => other.to_string(),
        };
        raw.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    };
    let event_type = envelope["type"].as_str().unwrap_or_default();
    let data = &envelope["data"];
    let call = format!(
        "call `{}` ({}, datapoint {})",
        text(&data["call_id"]),
        text(&data["provider"]),
        text(&data["datapoint_id"])
    );
    let lines: Vec<String> = match event_type {
        CHECK_FAILED => {
            let check = &data["check"];
            let mut lines = vec![
                format!(
                    ":rotating_light: *{}*: check *{}* failed on {call}",
                    text(&data["monitor"]["name"]),
                    text(&check["name"])
                ),
                format!(
                    "Value {} ({} {} {}): {}",
                    text(&data["value"]),
                    text(&check["measure"]),
                    text(&check["comparator"]).replace('_', " "),
                    text(&check["threshold"]),
                    text(&data["explanation"])
                ),
            ];
            let mut links = Vec::new();
            if let Some(page) = data["links"]["console"].as_str() {
                links.push(format!("<{}|Open the call>", text(&serde_json::json!(page))));
            }
            if let Some(audio) = data["links"]["audio"].as_str() {
                links.push(format!("<{}|Listen to the call>", text(&serde_json::json!(audio))));
            }
            if !links.is_empty() {
                lines.push(links.join(" · "));
            }
            if cooldown_seconds > 0 {
                lines.push(format!(
                    "_Further failures of this monitor are held back for {} min._",
                    cooldown_seconds.div_ceil(60)
                ));
            }
            lines
        }
        CALL_PROCESSED => vec![format!("Stored {call}")],
        CALL_FAILED => vec![format!(
            ":warning: Processing gave up on call `{}` ({}) at {}: {}",
            text(&data["call_id"]),
            text(&data["provider"]),
            text(&data["stage"]),
            text(&data["reason"])
        )],
        ENDPOINT_TEST => vec![format!(":white_check_mark: {}", text(&data["message"]))],
        _ => vec![format!("earshot event `{}`", text(&serde_json::json!(event_type)))],
    };
    serde_json::json!({ "text": lines.join("\n") }).to_string()
}

/// One logged attempt to deliver an event to an endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub id: Uuid,
    pub event_id: String,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub attempted_at: DateTime<Utc>,
    /// None when no answer came.
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    pub response_excerpt: String,
    pub error: String,
}

/// What one attempt came to, as the schedule judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptVerdict {
    Delivered,
    /// Try again (on the schedule, or later if the receiver asked with `Retry-After`).
    Retry {
        retry_after: Option<Duration>,
    },
    /// 410 Gone: the endpoint is disabled and nothing more is sent to it.
    Gone,
}

/// A receiver's answer judged: 2xx delivered, 410 gone, anything else (3xx included: redirects
/// are not followed) a failure to retry; `None` (no answer) a failure too.
pub fn judge(status: Option<u16>, retry_after: Option<Duration>) -> AttemptVerdict {
    match status {
        Some(200..=299) => AttemptVerdict::Delivered,
        Some(410) => AttemptVerdict::Gone,
        _ => AttemptVerdict::Retry { retry_after },
    }
}

/// When to try again after `attempts` failed attempts, or `None` when the schedule is over. The
/// schedule's delay gets ±10 % jitter (`jitter` in [0, 1)) so endpoints that failed together
/// are not retried in step; a longer `Retry-After` wins, up to the schedule's longest step.
pub fn next_delay(
    attempts: u32,
    retry_after: Option<Duration>,
    jitter: f64,
    schedule: &[Duration],
) -> Option<Duration> {
    let step = *schedule.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let jittered = step.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0));
    let longest = schedule.iter().max().copied().unwrap_or(step);
    Some(retry_after.map_or(jittered, |asked| jittered.max(asked.min(longest))))
}

/// The `Retry-After` header's seconds (its date form is not used by webhook receivers).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The first bytes of a response body kept in the attempt log, cut at a character boundary.
pub fn excerpt(body: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(limit)]);
    text.trim_end_matches('\u{fffd}').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_names_its_stage() {
        assert_eq!(failure_stage("fetching audio: connection refused"), "fetch");
        assert_eq!(failure_stage("audio URL answered 404"), "fetch");
        assert_eq!(failure_stage("audio is larger than the 10-byte limit"), "fetch");
        assert_eq!(failure_stage("transcription: worker exited"), "transcription");
        assert_eq!(failure_stage("the audio cannot be transcribed: no speech"), "transcription");
        assert_eq!(failure_stage("storing the datapoint: database is locked"), "processing");
        let metadata =
            serde_json::Map::from_iter([("queue".to_owned(), serde_json::json!("billing"))]);
        let call = FailedCall {
            ingest_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            project_id: Uuid::nil(),
            provider: "twilio",
            call_id: "CA1",
            source: "webhook",
            tags: &["vip".to_owned()],
            metadata: &metadata,
            reason: "fetching audio: answered 503",
            attempts: 5,
        };
        let data = call_failed(&call);
        assert_eq!(
            (&data["stage"], &data["attempts"], &data["metadata"]["queue"]),
            (&serde_json::json!("fetch"), &serde_json::json!(5), &serde_json::json!("billing"))
        );
        let filter = EventFilter {
            provider: Some("twilio".into()),
            tags: vec!["vip".into()],
            ..EventFilter::default()
        };
        assert!(filter.matches(call.provider, call.tags, call.metadata));
        assert!(!filter.matches("retell", call.tags, call.metadata));
    }

    /// A failed check reads as a sentence with its value, threshold, explanation and link;
    /// text from the call cannot open a Slack link or mention.
    #[test]
    fn check_failed_reads_well_in_slack() {
        let body = serde_json::json!({
            "type": "check.failed", "timestamp": "2026-11-01T12:00:00Z",
            "data": {
                "call_id": "CA<!channel>", "provider": "retell", "datapoint_id": "0193",
                "monitor": {"name": "Support quality"},
                "check": {"name": "slow answers", "measure": "p95_response_latency_ms",
                          "comparator": "greater_than", "threshold": 1500.0},
                "value": 1830.0, "explanation": "p95_response_latency_ms is 1830 ms, greater than 1500 ms",
                "links": {"datapoint": "https://earshot.example/v0/datapoints/0193",
                          "console": "https://earshot.example/console/calls/0193",
                          "audio": "https://earshot.example/v0/datapoints/0193/audio"}
            }
        })
        .to_string();
        let message: serde_json::Value = serde_json::from_str(&slack_message(&body, 3600)).unwrap();
        let text = message["text"].as_str().unwrap();
        assert!(text.starts_with(":rotating_light: *Support quality*: check *slow answers* failed on call `CA&lt;!channel&gt;` (retell"), "{text}");
        assert!(
            text.contains("Value 1830.0 (p95_response_latency_ms greater than 1500.0)"),
            "{text}"
        );
        assert!(
            text.contains("<https://earshot.example/v0/datapoints/0193/audio|Listen to the call>"),
            "{text}"
        );
        assert!(text.contains("held back for 60 min"), "{text}");
        assert!(!text.contains("<!channel>"), "{text}");
        let test =
            serde_json::json!({"type": "endpoint.test", "data": {"message": "hi"}}).to_string();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&slack_message(&test, 0)).unwrap()["text"],
            ":white_check_mark: hi"
        );
    }

    /// A window's bounds order every event id created in it between them, and none outside.
    #[test]
    fn a_time_window_is_a_range_of_event_ids() {
        let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        let (from, to) =
            (first_event_id_at(at(1_764_583_200_000)), first_event_id_at(at(1_764_583_260_000)));
        for inside in [1_764_583_200_000, 1_764_583_200_001, 1_764_583_259_999] {
            let id = new_event_id(at(inside));
            assert!(from <= id && id < to, "{id} not in [{from}, {to})");
        }
        for outside in [1_764_583_199_999, 1_764_583_260_000, 1_764_583_300_000] {
            let id = new_event_id(at(outside));
            assert!(!(from <= id && id < to), "{id} in [{from}, {to})");
        }
    }

    #[test]
    fn schedule_runs_out_after_the_seventh_retry() {
        let schedule = &RETRY_SCHEDULE;
        assert_eq!(next_delay(1, None, 0.5, schedule), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(2, None, 0.5, schedule), Some(Duration::from_secs(300)));
        assert_eq!(next_delay(7, None, 0.5, schedule), Some(Duration::from_secs(36_000)));
        assert_eq!(next_delay(8, None, 0.5, schedule), None);
        assert_eq!(next_delay(0, None, 0.5, schedule), None);
    }

    #[test]
    fn jitter_stays_within_a_tenth_and_retry_after_wins_when_longer() {
        let low = next_delay(2, None, 0.0, &RETRY_SCHEDULE).unwrap();
        let high = next_delay(2, None, 0.999, &RETRY_SCHEDULE).unwrap();
        assert_eq!(low, Duration::from_secs(270));
        assert!(high > Duration::from_secs(329) && high < Duration::from_secs(330), "{high:?}");
        let asked = Some(Duration::from_secs(60));
        assert_eq!(next_delay(1, asked, 0.5, &RETRY_SCHEDULE), Some(Duration::from_secs(60)));
        // A Retry-After beyond the schedule's longest step is capped there.
        let huge = Some(Duration::from_secs(10 * 86_400));
        assert_eq!(next_delay(1, huge, 0.5, &RETRY_SCHEDULE), Some(Duration::from_secs(36_000)));
    }

    #[test]
    fn answers_are_judged_as_the_specification_says() {
        assert_eq!(judge(Some(204), None), AttemptVerdict::Delivered);
        assert_eq!(judge(Some(410), None), AttemptVerdict::Gone);
        assert_eq!(judge(Some(301), None), AttemptVerdict::Retry { retry_after: None });
        let later = Some(Duration::from_secs(30));
        assert_eq!(judge(Some(429), later), AttemptVerdict::Retry { retry_after: later });
        assert_eq!(judge(None, None), AttemptVerdict::Retry { retry_after: None });
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn a_call_processed_gets_links_and_the_transcript_when_asked() {
        let data = serde_json::json!({"datapoint_id": "d1", "has_audio": true});
        let body = envelope(CALL_PROCESSED, Utc::now(), &data);
        let turns = serde_json::json!([{"role": "user"}]);
        let sent: serde_json::Value =
            serde_json::from_str(&finish_body(&body, "https://earshot.example/", Some(&turns)))
                .unwrap();
        assert_eq!(sent["data"]["transcript"][0]["role"], "user");
        assert_eq!(
            sent["data"]["links"]["audio"],
            "https://earshot.example/v0/datapoints/d1/audio"
        );
        assert_eq!(sent["type"], CALL_PROCESSED);
        let plain: serde_json::Value =
            serde_json::from_str(&finish_body(&body, "https://earshot.example", None)).unwrap();
        assert!(plain["data"].get("transcript").is_none());
        let other = envelope(ENDPOINT_DISABLED, Utc::now(), &data);
        assert_eq!(finish_body(&other, "https://earshot.example", Some(&turns)), other);
    }

    #[test]
    fn excerpts_stop_at_a_character() {
        assert_eq!(excerpt("héllo".as_bytes(), 2), "h");
        assert_eq!(excerpt(b"ok", 100), "ok");
    }
}
