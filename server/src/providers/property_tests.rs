//! Property tests that keep looking for the input that breaks a way in: arbitrary payloads (JSON
//! built from the keys the normalizers read, with extreme numbers, times and control characters
//! at the leaves; Twilio forms; raw bytes) through every provider's normalizer and the input
//! contract, arbitrary headers through every verifier, arbitrary bodies through the JSON
//! conversation parser, and arbitrary page tokens. The properties: no panic, and every refusal
//! names a field. `PROPTEST_CASES` runs more cases than the 256 a test run spends.

use std::collections::BTreeMap;

use chrono::DateTime;
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;
use crate::crypto::SecretValue;
use crate::model::integrations::{HeaderTokenOptions, HmacOptions};

/// Keys and dotted paths the normalizers read (collected from their sources).
const PATHS: &[&str] = &[
    "event",
    "type",
    "id",
    "call_id",
    "callId",
    "c_id",
    "call",
    "data",
    "message",
    "room",
    "transcript",
    "transcripts",
    "transcript_object",
    "transcription",
    "recording_url",
    "recordingUrl",
    "audio_url",
    "duration",
    "duration_ms",
    "duration_seconds",
    "duration_secs",
    "corrected_duration",
    "call_length",
    "started_at",
    "start_time",
    "startedAt",
    "start_timestamp",
    "ended_at",
    "end_time",
    "endedAt",
    "end_timestamp",
    "timestamp",
    "created_at",
    "createdAt",
    "from",
    "to",
    "from_number",
    "to_number",
    "direction",
    "inbound",
    "summary",
    "sentiment",
    "cost",
    "cost_usd",
    "price",
    "metadata",
    "variables",
    "agent_id",
    "lead_id",
    "lead_contact",
    "successful",
    "success",
    "ended_reason",
    "end_reason",
    "call.call_id",
    "call.duration",
    "call.started_at",
    "call.transcript",
    "call.recording_url",
    "data.call_id",
    "data.transcript",
    "data.metadata",
    "data.metadata.call_duration_secs",
    "data.metadata.start_time_unix_secs",
    "data.metadata.cost_fiat",
    "data.full_audio",
    "data.conversation_id",
    "data.agent_id",
    "data.analysis.call_successful",
    "data.analysis.transcript_summary",
    "data.metadata.phone_call.direction",
    "message.type",
    "message.call.id",
    "message.call.startedAt",
    "message.call.endedAt",
    "message.startedAt",
    "message.endedAt",
    "message.durationSeconds",
    "message.cost",
    "message.artifact.messages",
    "message.messages",
    "message.artifact.recordingUrl",
    "message.recordingUrl",
    "message.summary",
    "message.endedReason",
    "message.analysis.summary",
    "message.analysis.successEvaluation",
    "egressInfo.roomId",
    "egressInfo.startedAt",
    "egressInfo.endedAt",
    "egressInfo.status",
    "egressInfo.fileResults",
    "egressInfo.file.location",
    "room.sid",
    "room.creationTime",
    "room.name",
    "call_analysis.call_summary",
    "call_analysis.call_successful",
    "call_analysis.user_sentiment",
    "call_cost.combined_cost",
    "event.data.call_id",
    "event.timestamp",
    "event.id",
];

/// Keys inside turns and file results.
const INNER_KEYS: &[&str] = &[
    "role",
    "content",
    "text",
    "message",
    "user",
    "speaker",
    "start",
    "end",
    "time",
    "secondsFromStart",
    "endTime",
    "words",
    "time_in_call_secs",
    "created_at",
    "location",
    "filename",
    "duration",
    "speaker_id",
    "timestamp_ms",
    "end_ms",
];

const TEXTS: &[&str] = &[
    "2026-11-20T10:00:00Z",
    "+275760-09-13T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "1795000000000000000",
    "99999999999999999999",
    "-1",
    "NaN",
    "1e300",
    "user",
    "assistant",
    "agent",
    "bot",
    "call_ended",
    "call_analyzed",
    "end-of-call-report",
    "egress_ended",
    "room_finished",
    "post_call_transcription",
    "completed",
    "https://example.com/a.wav",
    "http://[::1]/x",
    "a\u{0}b",
    "line\r\nbreak",
    "",
];

fn leaf() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|number| {
            serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        }),
        prop::sample::select(vec![1e300, -1e300, 9.3e18, -9.3e18, 0.5, -1.0]).prop_map(Value::from),
        prop::sample::select(TEXTS).prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
    ];
    scalar.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(INNER_KEYS), inner), 0..5).prop_map(
                |pairs| {
                    Value::Object(
                        pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect(),
                    )
                }
            ),
        ]
    })
}

/// Sets `value` at the dotted `path`, turning whatever is in the way into objects.
fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut current = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current.entry(part.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        current = next;
    }
}

/// A plausible call of every provider's shape at once (ids, events and times that pass), so the
/// overrides below reach the code behind the first checks.
fn plausible_call(event: &str) -> Map<String, Value> {
    let time = "2026-11-20T10:00:00Z";
    let value = serde_json::json!({
        "event": event, "type": event, "id": "c1", "call_id": "c1", "timestamp": time,
        "started_at": time, "created_at": time, "corrected_duration": 12,
        "transcripts": [{"id": 1, "created_at": time, "text": "Hello?", "user": "user"}],
        "call": {"call_id": "c1", "start_timestamp": 1_795_000_000_000i64,
                 "end_timestamp": 1_795_000_060_000i64,
                 "transcript_object": [{"role": "agent", "content": "Hi", "words": [{"start": 0.5, "end": 1.0}]}]},
        "data": {"call_id": "c1", "conversation_id": "c1", "started_at": time, "duration": 12,
                 "transcript": [{"role": "user", "message": "Hi", "time_in_call_secs": 1}],
                 "metadata": {"start_time_unix_secs": 1_795_000_000, "call_duration_secs": 12}},
        "message": {"type": "end-of-call-report", "startedAt": time, "endedAt": time,
                    "call": {"id": "c1", "startedAt": time, "endedAt": time},
                    "artifact": {"messages": [{"role": "user", "message": "Hi", "secondsFromStart": 1.5, "time": 1_795_000_000_000i64}]}},
        "egressInfo": {"egressId": "EG1", "roomId": "RM1", "status": "EGRESS_COMPLETE",
                       "startedAt": "1795000000000000000", "endedAt": "1795000060000000000",
                       "fileResults": [{"location": "https://example.com/a.wav"}]},
        "room": {"sid": "RM1", "creationTime": "1795000000"},
    });
    let Value::Object(map) = value else { return Map::new() };
    map
}

/// Where times and durations are read: the likeliest place for arithmetic to overflow.
const TIME_PATHS: &[&str] = &[
    "duration",
    "duration_ms",
    "duration_seconds",
    "duration_secs",
    "corrected_duration",
    "call_length",
    "started_at",
    "timestamp",
    "created_at",
    "ended_at",
    "call.start_timestamp",
    "call.end_timestamp",
    "data.duration",
    "data.metadata.call_duration_secs",
    "data.metadata.start_time_unix_secs",
    "message.durationSeconds",
    "message.call.startedAt",
    "egressInfo.startedAt",
    "egressInfo.endedAt",
    "room.creationTime",
];

fn extreme_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![1e300, -1e300, 9.3e18, -9.3e18, 1.8e16, -0.5])
            .prop_map(Value::from),
        prop::sample::select(vec![i64::MAX, i64::MIN, i64::MAX / 1000, -1]).prop_map(Value::from),
        prop::sample::select(vec!["9223372036854775807", "1e300", "-1e300"]).prop_map(Value::from),
    ]
}

fn override_entry() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (prop::sample::select(PATHS), leaf()),
        (prop::sample::select(TIME_PATHS), extreme_number()),
    ]
}

fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let events = vec![
        "call_ended",
        "call_analyzed",
        "call_finalized",
        "end-of-call-report",
        "post_call_transcription",
        "egress_ended",
        "room_finished",
        "call.completed",
        "call_completed",
        "lead_event",
        "other",
    ];
    (prop::sample::select(events), any::<bool>(), prop::collection::vec(override_entry(), 0..10))
        .prop_map(|(event, plausible, overrides)| {
            let mut root = if plausible { plausible_call(event) } else { Map::new() };
            for (path, value) in overrides {
                set_path(&mut root, path, value);
            }
            serde_json::to_vec(&Value::Object(root)).unwrap_or_default()
        })
}

fn twilio_form() -> impl Strategy<Value = Vec<u8>> {
    let keys = vec![
        "AccountSid",
        "CallSid",
        "RecordingChannels",
        "RecordingDuration",
        "RecordingSid",
        "RecordingStartTime",
        "RecordingStatus",
        "RecordingUrl",
        "RecordingSource",
        "RecordingTrack",
        "ConferenceSid",
    ];
    let values = prop_oneof![
        prop::sample::select(TEXTS).prop_map(str::to_owned),
        prop::sample::select(vec![
            "completed",
            "2",
            "9223372036854775807",
            "-5",
            "Wed, 03 Jan 2024 18:22:31 +0000",
            "Fri, 31 Dec 9999 23:59:59 +0000",
            "https://api.twilio.com/Recordings/RE1",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,24}",
    ];
    prop::collection::vec((prop::sample::select(keys), values), 0..12).prop_map(|pairs| {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            form.append_pair(key, &value);
        }
        form.finish().into_bytes()
    })
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_body(),
        2 => twilio_form(),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

fn provider() -> impl Strategy<Value = Provider> {
    prop::sample::select(Provider::ALL.to_vec())
}

const LIMITS: crate::model::conversation::IngestLimits = crate::model::conversation::IngestLimits {
    max_batch_conversations: 1000,
    max_inline_audio_bytes: 1 << 20,
};

/// Header names the verifiers read, and values shaped like their signatures.
fn headers() -> impl Strategy<Value = http::HeaderMap> {
    let names = vec![
        "x-twilio-signature",
        "x-retell-signature",
        "x-vapi-secret",
        "x-vapi-signature",
        "x-timestamp",
        "authorization",
        "elevenlabs-signature",
        "x-webhook-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-signature",
        "x-token",
        "content-type",
    ];
    let values = prop_oneof![
        "[ -~]{0,80}",
        prop::sample::select(vec![
            "v=1700000000,d=00",
            "t=1700000000,v0=ab",
            "v1,AAAA",
            "v1,",
            "Bearer a.b.c",
            "eyJhbGciOiJIUzI1NiJ9.e30.AA",
            "1700000000",
            "99999999999999999999",
            "-1",
            "application/json",
            "sha256=00",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec((prop::sample::select(names), values), 0..6).prop_map(|pairs| {
        let mut headers = http::HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        headers
    })
}

/// Every secret name any auth type reads, so each verifier gets past "no secret".
fn secret_sets() -> Vec<SecretSet> {
    let values: BTreeMap<String, SecretValue> = [
        ("auth_token", "0123456789abcdef0123456789abcdef"),
        ("api_key", "APIkey"),
        ("api_secret", "secret-secret-secret-secret"),
        ("webhook_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("secret", "secret-secret-secret-secret"),
        ("token", "token-token-token-token"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), SecretValue::new(value)))
    .collect();
    vec![SecretSet { generation: 1, expires_at: None, values }]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// No payload panics a normalizer; what the contract refuses names a field.
    #[test]
    fn normalizers_never_panic_and_refusals_name_a_field(provider in provider(), body in any_body()) {
        let options = IntegrationOptions::default();
        let context = NormalizeContext {
            integration_id: uuid::Uuid::nil(),
            options: &options,
            url: "https://hooks.example.com/v0/voice/x/monitor/pub_1?token=t",
            limits: &LIMITS,
        };
        match normalize(provider, &context, &Verified { body: &body }) {
            Ok(Normalized::Call(call)) => {
                let mut violations = crate::error::Violations::new();
                call.conversation.check("", &mut violations);
                if let Err(error) = violations.into_result() {
                    prop_assert!(error.field_violations().iter().all(|violation| !violation.field.is_empty()));
                }
            }
            Ok(Normalized::Ignored { .. }) => {}
            Err(problem) => prop_assert!(!problem.reason.is_empty()),
        }
    }

    /// No request panics a verifier of any auth type.
    #[test]
    fn verifiers_never_panic(
        auth_type in prop::sample::select(WebhookAuthType::ALL.to_vec()),
        headers in headers(),
        body in any_body(),
        now in -1_000_000_000_000i64..1_000_000_000_000,
    ) {
        let options = IntegrationOptions {
            hmac: Some(HmacOptions { timestamp_header: "x-timestamp".to_owned(), ..HmacOptions::default() }),
            header_token: Some(HeaderTokenOptions::default()),
            ..IntegrationOptions::default()
        };
        let request = WebhookRequest {
            url: "https://hooks.example.com/v0/voice/x/monitor/pub_1?token=t",
            headers: &headers,
            body: &body,
            now: DateTime::from_timestamp(now, 0).unwrap_or_default(),
        };
        let _ = verify_any(auth_type, &options, &secret_sets(), &request);
    }

    /// Any body either parses into a conversation input or is refused naming a field.
    #[test]
    fn json_conversations_parse_or_name_the_field(body in json_body()) {
        use crate::model::conversation_json::{JsonConversation, conversation_input, parse};
        let refused = match parse::<JsonConversation>(&body) {
            Ok(conversation) => conversation_input("", conversation).err(),
            Err(error) => Some(error),
        };
        if let Some(error) = refused {
            prop_assert!(error.field_violations().iter().all(|violation| !violation.field.is_empty()));
        }
    }

    /// Page tokens round-trip, and any other text is refused by name, never a panic.
    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused(id in any::<u128>(), garbage in "\\PC{0,40}") {
        let id = uuid::Uuid::from_u128(id);
        let token = crate::domain::encode_page_token(id);
        prop_assert_eq!(crate::domain::decode_page_token(&token).unwrap(), Some(id));
        if let Err(error) = crate::domain::decode_page_token(&garbage) {
            prop_assert_eq!(&error.field_violations()[0].field, "page_token");
        }
    }
}
