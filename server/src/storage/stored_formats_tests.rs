//! The JSON the database holds, pinned. Stored rows outlive the code that wrote them, so every
//! JSON column's shipped form is written out here exactly as it is stored, and each test checks
//! both ways: the live types still write that JSON, and still read it (with the optional keys a
//! row written earlier may lack).
//!
//! When one of these fails, a change to a live type altered what the database holds. Do not edit
//! the expected JSON: give the stored form a new version (`StoredConversation::V2`, a new
//! `JobPayload` variant) that the new code writes, and keep reading every shipped one.

use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ingest::StoredConversation;
use crate::jobs::JobPayload;
use crate::model::conversation::{
    AudioCredentials, AudioSource, Conversation, ProviderExtras, Role, Source, Turn,
};
use crate::model::deliveries::StoredRequest;
use crate::model::integrations::{
    HeaderTokenOptions, HmacAlgorithm, HmacOptions, IntegrationOptions, SignatureEncoding,
    TwilioOptions,
};
use crate::model::metrics::{CallMetrics, RoleMetrics};

/// `value` is stored as exactly `stored`, and `stored` reads back as `value`.
fn pinned<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
    stored: &Value,
) {
    assert_eq!(&serde_json::to_value(value).unwrap(), stored, "the stored form changed");
    assert_eq!(
        &serde_json::from_value::<T>(stored.clone()).unwrap(),
        value,
        "a stored row no longer reads"
    );
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn extras() -> ProviderExtras {
    ProviderExtras {
        summary: Some("Booked a cleaning.".to_owned()),
        sentiment: Some("positive".to_owned()),
        successful: Some(true),
        cost_usd: Some(0.125),
        ended_reason: Some("customer-ended-call".to_owned()),
        agent_id: Some("agent_1".to_owned()),
        outcome: None,
        raw: None,
    }
}

fn extras_json() -> Value {
    json!({
        "summary": "Booked a cleaning.",
        "sentiment": "positive",
        "successful": true,
        "cost_usd": 0.125,
        "ended_reason": "customer-ended-call",
        "agent_id": "agent_1"
    })
}

fn turns() -> Vec<Turn> {
    vec![
        Turn::said(Role::Assistant, "City Dental, how can I help?", 0, Some(1_800)),
        Turn {
            role: Role::User,
            content: "A cleaning, please.".to_owned(),
            start_ms: 2_300,
            end_ms: Some(3_500),
            channel: Some(1),
            confidence: Some(0.5),
            unrecognized: false,
        },
        Turn::said(Role::Tool, "{\"slot\": \"9:30\"}", 3_600, None),
        Turn {
            role: Role::User,
            content: String::new(),
            start_ms: 4_000,
            end_ms: Some(4_900),
            channel: Some(1),
            confidence: Some(0.0),
            unrecognized: true,
        },
    ]
}

fn turns_json() -> Value {
    json!([
        {"role": "assistant", "content": "City Dental, how can I help?", "start_ms": 0, "end_ms": 1800},
        {"role": "user", "content": "A cleaning, please.", "start_ms": 2300, "end_ms": 3500, "channel": 1, "confidence": 0.5},
        {"role": "tool", "content": "{\"slot\": \"9:30\"}", "start_ms": 3600},
        {"role": "user", "content": "", "start_ms": 4000, "end_ms": 4900, "channel": 1, "confidence": 0.0, "unrecognized": true}
    ])
}

/// `ingest.payload_json`, version "1".
#[test]
fn ingest_payload_version_1() {
    let conversation = Conversation {
        call_id: "CA0001".to_owned(),
        context_token: "session-7".to_owned(),
        source: Source::Webhook,
        provider: "twilio".to_owned(),
        started_at: Some(Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()),
        ended_at: Some(Utc.with_ymd_and_hms(2026, 11, 20, 10, 2, 5).unwrap()),
        duration_ms: Some(125_000),
        from_number: Some("+15550100".to_owned()),
        to_number: Some("+15550199".to_owned()),
        direction: Some("inbound".to_owned()),
        turns: turns(),
        audio: Some(AudioSource::Url {
            url: "https://api.twilio.com/Recordings/RE1".to_owned(),
            credentials: Some(AudioCredentials::TwilioBasic {
                integration_id: id(7),
                account_sid: "AC1".to_owned(),
            }),
        }),
        diarization: true,
        first_turn: Role::User,
        assistant_channel: Some(2),
        tags: vec!["booking".to_owned()],
        metadata: json!({"customer_id": "cust_1", "attempt": 2}).as_object().unwrap().clone(),
        extras: extras(),
        mut_id: Some("batch-1".to_owned()),
        integration_id: None,
    };
    pinned(
        &StoredConversation::V1(conversation),
        &json!({
            "version": "1",
            "call_id": "CA0001",
            "context_token": "session-7",
            "source": "webhook",
            "provider": "twilio",
            "started_at": "2026-11-20T10:00:00Z",
            "ended_at": "2026-11-20T10:02:05Z",
            "duration_ms": 125000,
            "from_number": "+15550100",
            "to_number": "+15550199",
            "direction": "inbound",
            "turns": turns_json(),
            "audio": {
                "type": "url",
                "url": "https://api.twilio.com/Recordings/RE1",
                "credentials": {
                    "type": "twilio_basic",
                    "integration_id": "00000000-0000-0000-0000-000000000007",
                    "account_sid": "AC1"
                }
            },
            "diarization": true,
            "first_turn": "user",
            "assistant_channel": 2,
            "tags": ["booking"],
            "metadata": {"customer_id": "cust_1", "attempt": 2},
            "extras": extras_json(),
            "mut_id": "batch-1"
        }),
    );

    // The fewest keys a version 1 row has; the rest read as absent.
    let minimal = Conversation {
        call_id: "c".to_owned(),
        context_token: "c".to_owned(),
        source: Source::Sdk,
        provider: "custom".to_owned(),
        started_at: None,
        ended_at: None,
        duration_ms: None,
        from_number: None,
        to_number: None,
        direction: None,
        turns: Vec::new(),
        audio: Some(AudioSource::Stored { audio_id: id(9) }),
        diarization: false,
        first_turn: Role::Assistant,
        assistant_channel: None,
        tags: Vec::new(),
        metadata: serde_json::Map::new(),
        extras: ProviderExtras::default(),
        mut_id: None,
        integration_id: None,
    };
    let stored: StoredConversation = serde_json::from_value(json!({
        "version": "1",
        "call_id": "c",
        "context_token": "c",
        "source": "sdk",
        "provider": "custom",
        "audio": {"type": "stored", "audio_id": "00000000-0000-0000-0000-000000000009"},
        "diarization": false,
        "first_turn": "assistant"
    }))
    .unwrap();
    assert_eq!(stored, StoredConversation::V1(minimal));
}

/// `ingest.dedup_key` (m0032): the content key's (`model::ingest::dedup_key`) 64 hex digits of
/// the conversation's SHA-256 cut to the first 72 bits in base64url, without the provider and
/// call id in front (the row's own columns); a key of another shape as it is. Rows written
/// before run 22 hold the content key.
#[test]
fn ingest_dedup_key() {
    let content_key = format!("retell:CA1:{}", "0f".repeat(32));
    assert_eq!(super::ingest::stored_dedup_key(&content_key), "Dw8PDw8PDw8P");
    let with_colons = format!("vapi:a:b:{}", "ff".repeat(32));
    assert_eq!(super::ingest::stored_dedup_key(&with_colons), "____________");
    for other in ["worker", "retell:CA1:0f", &format!("retell:CA1:{}", "0F".repeat(32))] {
        assert_eq!(super::ingest::stored_dedup_key(other), other);
    }
}

/// `job.payload_json`.
#[test]
fn job_payload_ingest_v1() {
    pinned(
        &JobPayload::IngestV1 { ingest_id: id(1) },
        &json!({"type": "IngestV1", "ingest_id": "00000000-0000-0000-0000-000000000001"}),
    );
}

/// `job.payload_json` of a monitor's backfill.
#[test]
fn job_payload_monitor_backfill_v1() {
    pinned(
        &JobPayload::MonitorBackfillV1 { backfill_id: id(2) },
        &json!({"type": "MonitorBackfillV1", "backfill_id": "00000000-0000-0000-0000-000000000002"}),
    );
}

/// `integration.options_json`; an empty object (options never set) reads as the defaults.
#[test]
fn integration_options() {
    let options = IntegrationOptions {
        ip_allowlist: vec!["10.0.0.0/8".to_owned()],
        rate_limit_per_minute: Some(120),
        default_first_turn: Some(Role::User),
        twilio: Some(TwilioOptions { account_sid: "AC1".to_owned(), assistant_channel: 2 }),
        hmac: Some(HmacOptions {
            signature_header: "x-sig".to_owned(),
            algorithm: HmacAlgorithm::Sha512,
            encoding: SignatureEncoding::Base64,
            signature_prefix: "sha512=".to_owned(),
            timestamp_header: "x-ts".to_owned(),
            timestamp_tolerance_seconds: 60,
            secret_is_base64: true,
        }),
        header_token: Some(HeaderTokenOptions {
            header_name: "x-token".to_owned(),
            bearer_prefix: false,
        }),
    };
    pinned(
        &options,
        &json!({
            "ip_allowlist": ["10.0.0.0/8"],
            "rate_limit_per_minute": 120,
            "default_first_turn": "user",
            "twilio": {"account_sid": "AC1", "assistant_channel": 2},
            "hmac": {
                "signature_header": "x-sig",
                "algorithm": "sha512",
                "encoding": "base64",
                "signature_prefix": "sha512=",
                "timestamp_header": "x-ts",
                "timestamp_tolerance_seconds": 60,
                "secret_is_base64": true
            },
            "header_token": {"header_name": "x-token", "bearer_prefix": false}
        }),
    );
    let empty: IntegrationOptions = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, IntegrationOptions::default());
}

/// `webhook_delivery.request_json`.
#[test]
fn delivery_request() {
    pinned(
        &StoredRequest {
            url: "https://earshot.example/v0/voice/retell/monitor/pub_1".to_owned(),
            headers: vec![("x-retell-signature".to_owned(), "v=1,d=ab".to_owned())],
        },
        &json!({
            "url": "https://earshot.example/v0/voice/retell/monitor/pub_1",
            "headers": [["x-retell-signature", "v=1,d=ab"]]
        }),
    );
}

/// `datapoint.turns_json`, `analysis_json` and `metrics_json` (tags and metadata are plain
/// JSON arrays and objects).
#[test]
fn datapoint_columns() {
    pinned(&turns(), &turns_json());
    pinned(&extras(), &extras_json());
    let empty: ProviderExtras = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, ProviderExtras::default());
    pinned(
        &CallMetrics {
            roles: vec![RoleMetrics {
                role: Role::Assistant,
                turn_count: 2,
                talk_time_ms: 3_000,
                word_count: 9,
            }],
            response_latency_p50_ms: Some(500),
            response_latency_p95_ms: Some(900),
            words_per_minute: Some(150.5),
            longest_monologue_ms: 1_800,
            overlap_count: 1,
            overlap_ms: 200,
            speech_coverage: Some(0.75),
        },
        &json!({
            "roles": [{"role": "assistant", "turn_count": 2, "talk_time_ms": 3000, "word_count": 9}],
            "response_latency_p50_ms": 500,
            "response_latency_p95_ms": 900,
            "words_per_minute": 150.5,
            "longest_monologue_ms": 1800,
            "overlap_count": 1,
            "overlap_ms": 200,
            "speech_coverage": 0.75
        }),
    );
}

/// `datapoint.document`: version byte 2, then the JSON of the call's turns, analysis, tags,
/// metadata and metrics (each in the form its own column had) deflated with
/// `presets::DOCUMENT_1`; version 1 (m0026), the same JSON deflated alone, still reads.
#[test]
fn datapoint_document_versions_1_and_2() {
    use super::documents::{Bases, Document, DocumentRef};
    use super::presets::{DOCUMENT_1, deflated_elsewhere};
    let metrics = CallMetrics { longest_monologue_ms: 1_800, ..CallMetrics::default() };
    let metadata = json!({"queue": "billing"}).as_object().unwrap().clone();
    let tags = vec!["refund".to_owned()];
    let (turns, analysis) = (turns(), extras());
    let stored = json!({
        "turns": turns_json(),
        "analysis": extras_json(),
        "tags": ["refund"],
        "metadata": {"queue": "billing"},
        "metrics": serde_json::to_value(&metrics).unwrap(),
    });
    let encode = |turns: &[Turn]| {
        DocumentRef {
            id: Uuid::nil(),
            turns,
            analysis: &analysis,
            tags: &tags,
            metadata: &metadata,
            metrics: Some(&metrics),
        }
        .encode(None)
        .unwrap()
    };
    let none = Bases::default();
    // Written: the version byte and the JSON above, deflated with the preset, which a
    // decompressor of its own reads back.
    let encoded = encode(&turns);
    assert_eq!(encoded[0], 2);
    let mut decompressor = flate2::Decompress::new(false);
    decompressor.set_dictionary(DOCUMENT_1).unwrap();
    let mut json = Vec::with_capacity(64 * 1024);
    let status =
        decompressor.decompress_vec(&encoded[1..], &mut json, flate2::FlushDecompress::Finish);
    assert_eq!(status.unwrap(), flate2::Status::StreamEnd);
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), stored, "the stored form changed");
    // Read: a document deflated by any encoder reads back, in both versions; a version 2
    // stream read without its preset (labelled 1) is an error, not a wrong document.
    let text = stored.to_string();
    for (version, preset) in [(1, &[][..]), (2, DOCUMENT_1)] {
        let mut row = vec![version];
        row.extend(deflated_elsewhere(text.as_bytes(), preset));
        let document = Document::decode(Uuid::nil(), &row, &none).unwrap();
        assert_eq!(document.turns, turns);
        assert_eq!(document.analysis, analysis);
        assert_eq!((&document.tags, &document.metadata), (&tags, &metadata));
        assert_eq!(document.metrics(), metrics);
    }
    let mut mislabelled = encoded.clone();
    mislabelled[0] = 1;
    let decode = |stored: &[u8]| Document::decode(Uuid::nil(), stored, &none);
    assert!(decode(&mislabelled).is_err());
    assert!(decode(&[5, 0]).is_err(), "an unknown version is refused");
    assert!(decode(&encoded[..encoded.len() / 2]).is_err(), "a row cut short");

    // A long call whose text hardly compresses (hex digits of a running hash) still fits the
    // room `encode` gives it, and reads back.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let long: Vec<Turn> = (0..2_000)
        .map(|index| {
            let content = (0..40)
                .map(|_| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    format!("{:x}", state >> 32)
                })
                .collect::<Vec<_>>()
                .join(" ");
            Turn { content, start_ms: index * 1_000, ..turns[0].clone() }
        })
        .collect();
    assert_eq!(decode(&encode(&long)).unwrap().turns, long);
}

/// `datapoint.document` version 3 (m0033): version byte 3, the id of the webhook delivery whose
/// kept body the document was written against (16 bytes), then the JSON of version 2 deflated
/// with `presets::DOCUMENT_1` followed by that body as it arrived, the two cut to their last
/// 32 KB. It reads with that body and not without it. Version 4 is version 3 against the
/// delivery of the datapoint's own id, without that id.
#[test]
fn datapoint_document_versions_3_and_4() {
    use super::documents::{Base, Bases, Document, DocumentRef};
    use super::presets::{DOCUMENT_1, deflated_elsewhere};
    let (turns, analysis) = (turns(), extras());
    let (tags, metadata) = (Vec::new(), serde_json::Map::new());
    let metrics = CallMetrics::default();
    let document = DocumentRef {
        id: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0007),
        turns: &turns,
        analysis: &analysis,
        tags: &tags,
        metadata: &metadata,
        metrics: Some(&metrics),
    };
    let body = serde_json::to_vec(&json!({"call_id": "c-1", "transcript": turns_json()})).unwrap();
    let delivery_id = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0042);
    let encoded = document.encode(Some(Base { delivery_id, body: &body })).unwrap();
    assert_eq!(encoded[0], 3);
    assert_eq!(&encoded[1..17], delivery_id.as_bytes());
    let alone = document.encode(None).unwrap();
    assert!(encoded.len() < alone.len(), "the body's words are not written again");
    let preset = [DOCUMENT_1, &body].concat();
    let mut decompressor = flate2::Decompress::new(false);
    decompressor.set_dictionary(&preset).unwrap();
    let mut json = Vec::with_capacity(64 * 1024);
    let status =
        decompressor.decompress_vec(&encoded[17..], &mut json, flate2::FlushDecompress::Finish);
    assert_eq!(status.unwrap(), flate2::Status::StreamEnd);
    let stored = json!({
        "turns": turns_json(),
        "analysis": extras_json(),
        "tags": [],
        "metadata": {},
        "metrics": serde_json::to_value(&metrics).unwrap(),
    });
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), stored, "the stored form changed");

    // Read: deflated by any encoder, with the body read back; without it, an error.
    let mut row = vec![3];
    row.extend_from_slice(delivery_id.as_bytes());
    row.extend(deflated_elsewhere(stored.to_string().as_bytes(), &preset));
    let bases = Bases([(delivery_id, body.clone())].into());
    let decode = |stored: &[u8], bases: &Bases| Document::decode(document.id, stored, bases);
    assert_eq!(decode(&row, &bases).unwrap().turns, turns);
    assert!(decode(&row, &Bases::default()).is_err(), "its body is needed");
    assert!(decode(&row[..10], &bases).is_err(), "a row cut inside its base's id");

    // A body past 32 KB: the preset is the last 32 KB of the document's preset and the body.
    let long: Vec<u8> = (0..40_000u32).map(|index| (index % 251) as u8).collect();
    let encoded = document.encode(Some(Base { delivery_id, body: &long })).unwrap();
    let mut decompressor = flate2::Decompress::new(false);
    decompressor.set_dictionary(&long[long.len() - 32 * 1024..]).unwrap();
    let mut json = Vec::with_capacity(64 * 1024);
    let status =
        decompressor.decompress_vec(&encoded[17..], &mut json, flate2::FlushDecompress::Finish);
    assert_eq!(status.unwrap(), flate2::Status::StreamEnd);
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), stored);
    let bases = Bases([(delivery_id, long)].into());
    assert_eq!(decode(&encoded, &bases).unwrap().turns, turns);

    // Version 4 (m0039): against the body of the delivery of the datapoint's own id, version 3
    // without that id. It reads with that body, found by the datapoint's id, and not without.
    let own = DocumentRef { id: delivery_id, ..document };
    let encoded = own.encode(Some(Base { delivery_id, body: &body })).unwrap();
    assert_eq!(encoded[0], 4);
    let mut decompressor = flate2::Decompress::new(false);
    decompressor.set_dictionary(&preset).unwrap();
    let mut json = Vec::with_capacity(64 * 1024);
    let status =
        decompressor.decompress_vec(&encoded[1..], &mut json, flate2::FlushDecompress::Finish);
    assert_eq!(status.unwrap(), flate2::Status::StreamEnd);
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), stored, "the stored form changed");
    let mut row = vec![4];
    row.extend(deflated_elsewhere(stored.to_string().as_bytes(), &preset));
    let bases = Bases([(delivery_id, body)].into());
    assert_eq!(Document::decode(delivery_id, &row, &bases).unwrap().turns, turns);
    assert!(Document::decode(delivery_id, &row, &Bases::default()).is_err(), "its body is needed");
    assert!(Document::decode(document.id, &row, &bases).is_err(), "another datapoint's id");
}

/// `datapoint.document` versions 5, 6 and 7 (m0040): versions 2, 3 and 4 whose JSON leaves out
/// the call's metrics, which are its turns' (`metrics::compute`), made again when read. Written
/// wherever a datapoint's metrics are its turns'; versions 2 to 4 otherwise (a recording's
/// speech coverage).
#[test]
fn datapoint_document_versions_5_to_7() {
    use super::documents::{Base, Bases, Document, DocumentRef};
    use super::presets::{DOCUMENT_1, deflated_elsewhere};
    let (turns, analysis) = (turns(), extras());
    let (tags, metadata) = (Vec::new(), serde_json::Map::new());
    let id = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0042);
    let other = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0043);
    let body = serde_json::to_vec(&json!({"call_id": "c-1", "transcript": turns_json()})).unwrap();
    let document = DocumentRef {
        id,
        turns: &turns,
        analysis: &analysis,
        tags: &tags,
        metadata: &metadata,
        metrics: None,
    };
    let stored = json!({
        "turns": turns_json(),
        "analysis": extras_json(),
        "tags": [],
        "metadata": {},
    });
    let bases = Bases([(id, body.clone()), (other, body.clone())].into());
    let base_preset = [DOCUMENT_1, &body].concat();
    for (base, version, skipped, preset) in [
        (None, 5, 1, DOCUMENT_1),
        (Some(other), 6, 17, &base_preset[..]),
        (Some(id), 7, 1, &base_preset[..]),
    ] {
        let base = base.map(|delivery_id| Base { delivery_id, body: &body });
        let encoded = document.encode(base).unwrap();
        assert_eq!(encoded[0], version);
        let mut decompressor = flate2::Decompress::new(false);
        decompressor.set_dictionary(preset).unwrap();
        let mut json = Vec::with_capacity(64 * 1024);
        let status = decompressor.decompress_vec(
            &encoded[skipped..],
            &mut json,
            flate2::FlushDecompress::Finish,
        );
        assert_eq!(status.unwrap(), flate2::Status::StreamEnd);
        assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), stored, "{version}");
        // Read: deflated by any encoder, the metrics made again from the turns.
        let mut row = encoded[..skipped].to_vec();
        row.extend(deflated_elsewhere(stored.to_string().as_bytes(), preset));
        let read = Document::decode(id, &row, &bases).unwrap();
        assert_eq!(read.turns, turns);
        assert_eq!(read.metrics(), crate::model::metrics::compute(&turns), "{version}");
    }

    // A datapoint's metrics are left out only where they are its turns': a recording's speech
    // coverage keeps them.
    let conversation = crate::storage::ingest_tests::conversation("c-1");
    let now = chrono::Utc::now();
    let mut datapoint =
        crate::model::datapoints::Datapoint::merge(None, &conversation, None, id, id, id, now);
    assert!(DocumentRef::of(&datapoint).metrics.is_none());
    datapoint.metrics.speech_coverage = Some(0.9);
    assert_eq!(DocumentRef::of(&datapoint).metrics, Some(&datapoint.metrics));
}

/// A row of the intake log (`storage/intake_log.rs`): version byte 1, then per write its record
/// (a little-endian u32 length and the JSON below, the conversation in its stored form) and its
/// body (a length and the bytes as they arrived, or `u32::MAX` for none).
#[test]
fn intake_log_row_version_1() {
    use super::intake_log::{LoggedWrite, decode_row, log_row};
    use crate::model::commit::IngestWrite;
    use crate::model::deliveries::{DeliveryVerdict, NewDelivery, WebhookDelivery};
    use crate::model::ingest::{AudioObject, NewIngest};

    let at = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
    let conversation = crate::storage::ingest_tests::conversation("CA1");
    let write = IngestWrite {
        audio_objects: vec![AudioObject {
            id: id(4),
            organization_id: id(2),
            project_id: id(3),
            sha256: "ab".to_owned(),
            content_type: "audio/wav".to_owned(),
            size_bytes: 44,
            blob_key: "audio/ab".to_owned(),
            duration_ms: Some(1000),
            channels: Some(2),
            sample_rate_hz: Some(8000),
            created_at: at,
        }],
        ingests: vec![NewIngest {
            id: id(1),
            organization_id: id(2),
            project_id: id(3),
            dedup_key: "key-1".to_owned(),
            conversation: conversation.clone(),
        }],
        delivery: Some(NewDelivery {
            organization_id: id(2),
            project_id: id(3),
            record: WebhookDelivery {
                id: id(5),
                integration_id: id(6),
                received_at: at,
                verdict: DeliveryVerdict::Accepted,
                http_status: 202,
                event_type: "call_ended".to_owned(),
                call_id: "CA1".to_owned(),
                body_sha256: "cd".to_owned(),
                error: String::new(),
                error_message: String::new(),
                ingest_id: Some(id(1)),
                authenticated: true,
                replayable: true,
            },
            request: Some(StoredRequest {
                url: "https://e.example/hook".to_owned(),
                headers: vec![("webhook-id".to_owned(), "msg_1".to_owned())],
            }),
            body: Some(bytes::Bytes::from_static(b"{}")),
        }),
    };
    let record = json!({
        "acknowledged_at_ms": 1_796_212_800_000_i64,
        "audio_objects": [{
            "id": id(4), "organization_id": id(2), "project_id": id(3), "sha256": "ab",
            "content_type": "audio/wav", "size_bytes": 44, "blob_key": "audio/ab",
            "duration_ms": 1000, "channels": 2, "sample_rate_hz": 8000,
            "created_at_ms": 1_796_212_800_000_i64,
        }],
        "ingests": [{
            "id": id(1), "organization_id": id(2), "project_id": id(3), "dedup_key": "key-1",
            "conversation": serde_json::to_value(&conversation).unwrap(),
        }],
        "delivery": {
            "organization_id": id(2), "project_id": id(3), "id": id(5), "integration_id": id(6),
            "received_at_ms": 1_796_212_800_000_i64, "verdict": "accepted", "http_status": 202,
            "event_type": "call_ended", "call_id": "CA1", "body_sha256": "cd", "error": "",
            "error_message": "", "ingest_id": id(1), "authenticated": true, "replayable": true,
            "request": {"url": "https://e.example/hook", "headers": [["webhook-id", "msg_1"]]},
        },
    });
    let row = log_row(&[&LoggedWrite::new(&write, at).unwrap()]);
    let length = usize::try_from(u32::from_le_bytes(row[1..5].try_into().unwrap())).unwrap();
    assert_eq!(row[0], 1);
    assert_eq!(serde_json::from_slice::<Value>(&row[5..5 + length]).unwrap(), record);
    assert_eq!(&row[5 + length..], [2, 0, 0, 0, b'{', b'}']);

    // A row written so reads back, also without the optional parts.
    let stored = |record: &Value, body: Option<&[u8]>| {
        let json = serde_json::to_vec(record).unwrap();
        let mut row = vec![1];
        row.extend_from_slice(&u32::try_from(json.len()).unwrap().to_le_bytes());
        row.extend_from_slice(&json);
        match body {
            Some(body) => {
                row.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
                row.extend_from_slice(body);
            }
            None => row.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        row
    };
    let read = decode_row(&stored(&record, Some(b"{}"))).unwrap();
    assert_eq!(format!("{:?}", read[0].0), format!("{write:?}"));
    assert_eq!(read[0].1, at);
    let bare = json!({"acknowledged_at_ms": 1_796_212_800_000_i64});
    let read = decode_row(&stored(&bare, None)).unwrap();
    assert!(read[0].0.ingests.is_empty() && read[0].0.delivery.is_none());
}
