//! Each provider's example payload (shared/reference/providers.md) normalizes to the mapped
//! canonical fields; non-final events are ignored; malformed payloads name the field.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::model::conversation::{AudioCredentials, AudioSource, Role};
use crate::model::integrations::TwilioOptions;

/// A request as verification passes it on (these tests are about normalizing).
fn verified(body: &[u8]) -> Verified<'_> {
    Verified { body }
}

fn context(options: &IntegrationOptions) -> NormalizeContext<'_> {
    NormalizeContext {
        integration_id: uuid::Uuid::nil(),
        options,
        url: "https://hooks.example.com/v0/voice/x/monitor/pub_1",
        limits: &LIMITS,
    }
}

const LIMITS: crate::model::conversation::IngestLimits = crate::model::conversation::IngestLimits {
    max_batch_conversations: 1000,
    max_inline_audio_bytes: 1 << 20,
};

fn call(provider: Provider, body: &[u8]) -> WebhookCall {
    match normalize(provider, &context(&IntegrationOptions::default()), &verified(body)).unwrap() {
        Normalized::Call(call) => *call,
        other => panic!("expected a call, got {other:?}"),
    }
}

fn error(provider: Provider, body: &[u8]) -> PayloadError {
    normalize(provider, &context(&IntegrationOptions::default()), &verified(body)).unwrap_err()
}

fn ignored(provider: Provider, body: &[u8]) -> String {
    match normalize(provider, &context(&IntegrationOptions::default()), &verified(body)).unwrap() {
        Normalized::Ignored { event } => event,
        other => panic!("expected ignored, got {other:?}"),
    }
}

fn time(text: &str) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc))
}

fn roles_and_starts(call: &WebhookCall) -> Vec<(Role, i64)> {
    call.conversation.turns.iter().map(|turn| (turn.role, turn.start_ms)).collect()
}

fn url_of(call: &WebhookCall) -> &str {
    match &call.conversation.audio {
        Some(AudioSource::Url { url, .. }) => url,
        other => panic!("expected a URL, got {other:?}"),
    }
}

pub fn retell_call_analyzed() -> serde_json::Value {
    json!({
      "event": "call_analyzed",
      "call": {
        "call_id": "call_a1b2c3", "agent_id": "agent_d4e5f6", "agent_version": 3,
        "call_type": "phone_call", "call_status": "ended", "direction": "inbound",
        "from_number": "+14155550100", "to_number": "+14155550199",
        "start_timestamp": 1703302407333_i64, "end_timestamp": 1703302428855_i64, "duration_ms": 21522,
        "disconnection_reason": "user_hangup",
        "transcript": "Agent: hi how are you doing?\nUser: Doing pretty well.\n",
        "transcript_object": [
          {"role": "agent", "content": "hi how are you doing?",
           "words": [{"word": "hi", "start": 0.7, "end": 1.3}, {"word": "how", "start": 1.31, "end": 1.5}]},
          {"role": "user", "content": "Doing pretty well.",
           "words": [{"word": "Doing", "start": 3.3, "end": 3.6}]}
        ],
        "recording_url": "https://dxc03zgurdly9.cloudfront.net/call_a1b2c3/recording.wav",
        "recording_multi_channel_url": "https://dxc03zgurdly9.cloudfront.net/call_a1b2c3/recording_multichannel.wav",
        "call_analysis": {"call_summary": "Short greeting.", "user_sentiment": "Positive",
                          "call_successful": true, "in_voicemail": false, "custom_analysis_data": {}},
        "call_cost": {"combined_cost": 12.4, "product_costs": [], "total_duration_seconds": 22,
                      "total_duration_unit_price": 0.56},
        "metadata": {"customer_id": "cust_123"}
      }
    })
}

#[test]
fn retell_call_analyzed_maps_every_field() {
    let call = call(Provider::Retell, retell_call_analyzed().to_string().as_bytes());
    let conversation = &call.conversation;
    assert_eq!(call.event, "call_analyzed");
    assert_eq!(conversation.call_id, "call_a1b2c3");
    assert_eq!(conversation.provider, "retell");
    assert_eq!(conversation.started_at, DateTime::from_timestamp_millis(1703302407333));
    assert_eq!(conversation.duration_ms, Some(21522));
    assert_eq!(conversation.from_number.as_deref(), Some("+14155550100"));
    assert_eq!(conversation.direction.as_deref(), Some("inbound"));
    assert_eq!(roles_and_starts(&call), [(Role::Assistant, 700), (Role::User, 3300)]);
    assert_eq!(conversation.turns[0].end_ms, Some(1500));
    assert!(url_of(&call).ends_with("recording_multichannel.wav"));
    assert_eq!(conversation.extras.summary.as_deref(), Some("Short greeting."));
    assert_eq!(conversation.extras.sentiment.as_deref(), Some("Positive"));
    assert_eq!(conversation.extras.successful, Some(true));
    assert_eq!(conversation.extras.outcome, None, "not in voicemail");
    let raw = conversation.extras.raw.as_ref().unwrap();
    assert_eq!(
        (raw["call_summary"].as_str(), &raw["custom_analysis_data"]),
        (Some("Short greeting."), &serde_json::json!({}))
    );
    assert_eq!(conversation.extras.cost_usd, Some(0.124));
    assert_eq!(conversation.extras.agent_id.as_deref(), Some("agent_d4e5f6"));
    assert_eq!(conversation.metadata["customer_id"], "cust_123");
}

#[test]
fn retell_accepts_legacy_data_and_ignores_other_events() {
    let mut legacy = retell_call_analyzed();
    let inner = legacy["call"].take();
    legacy["data"] = inner;
    legacy.as_object_mut().unwrap().remove("call");
    assert_eq!(
        call(Provider::Retell, legacy.to_string().as_bytes()).conversation.call_id,
        "call_a1b2c3"
    );
    assert_eq!(ignored(Provider::Retell, br#"{"event":"call_started","call":{}}"#), "call_started");
    assert_eq!(
        error(Provider::Retell, br#"{"event":"call_ended","call":{}}"#).field,
        "call.call_id"
    );
    assert_eq!(error(Provider::Retell, b"{not json").field, "body");
    let mut wrong = retell_call_analyzed();
    wrong["call"]["start_timestamp"] = json!("soon");
    assert_eq!(error(Provider::Retell, wrong.to_string().as_bytes()).field, "call.start_timestamp");
}

pub fn vapi_end_of_call_report() -> serde_json::Value {
    json!({
      "message": {
        "type": "end-of-call-report",
        "timestamp": 1717000123456_i64,
        "endedReason": "customer-ended-call",
        "startedAt": "2024-05-29T16:20:01.120Z",
        "endedAt": "2024-05-29T16:21:10.450Z",
        "cost": 0.0842,
        "call": {
          "id": "c3a5f6e2-1234-4bcd-9abc-0123456789ab", "orgId": "org_1", "type": "inboundPhoneCall",
          "status": "ended", "assistantId": "asst_9f8e7d", "phoneCallProvider": "twilio",
          "phoneCallProviderId": "CA22222222222222222222222222222222",
          "customer": {"number": "+14155550100"}
        },
        "customer": {"number": "+14155550100"},
        "phoneNumber": {"number": "+14155550199"},
        "artifact": {
          "transcript": "AI: Thanks for calling Acme, how can I help?\nUser: What are your hours?\n",
          "messages": [
            {"role": "system", "message": "You are Acme's receptionist.", "time": 1717000801120_i64, "secondsFromStart": 0},
            {"role": "bot", "message": "Thanks for calling Acme, how can I help?", "time": 1717000802480_i64,
             "endTime": 1717000804900_i64, "secondsFromStart": 1.36, "duration": 2240, "source": ""},
            {"role": "user", "message": "What are your hours?", "time": 1717000806100_i64,
             "endTime": 1717000807300_i64, "secondsFromStart": 4.98, "duration": 1200}
          ],
          "recordingUrl": "https://storage.vapi.ai/c3a5f6e2-mono.wav",
          "stereoRecordingUrl": "https://storage.vapi.ai/c3a5f6e2-stereo.wav"
        },
        "analysis": {"summary": "Caller asked for opening hours.", "successEvaluation": "true",
                     "structuredData": {"intent": "hours"}}
      }
    })
}

#[test]
fn vapi_end_of_call_report_maps_every_field() {
    let call = call(Provider::Vapi, vapi_end_of_call_report().to_string().as_bytes());
    let conversation = &call.conversation;
    assert_eq!(conversation.call_id, "c3a5f6e2-1234-4bcd-9abc-0123456789ab");
    assert_eq!(conversation.started_at, time("2024-05-29T16:20:01.120Z"));
    assert_eq!(conversation.duration_ms, Some(69_330));
    assert_eq!(
        (conversation.from_number.as_deref(), conversation.to_number.as_deref()),
        (Some("+14155550100"), Some("+14155550199"))
    );
    assert_eq!(roles_and_starts(&call), [(Role::Assistant, 1360), (Role::User, 4980)]);
    assert_eq!(conversation.turns[0].end_ms, Some(1360 + 2420));
    assert_eq!(url_of(&call), "https://storage.vapi.ai/c3a5f6e2-stereo.wav");
    assert_eq!(conversation.extras.summary.as_deref(), Some("Caller asked for opening hours."));
    assert_eq!(conversation.extras.successful, Some(true));
    assert_eq!(conversation.extras.outcome.as_deref(), Some("true"));
    assert_eq!(conversation.extras.raw.as_ref().unwrap()["successEvaluation"], "true");
    assert_eq!(conversation.extras.cost_usd, Some(0.0842));
    assert_eq!(conversation.extras.ended_reason.as_deref(), Some("customer-ended-call"));
    assert_eq!(conversation.extras.agent_id.as_deref(), Some("asst_9f8e7d"));
    assert_eq!(conversation.metadata["vapi_structured_data"]["intent"], "hours");
    assert_eq!(
        ignored(Provider::Vapi, br#"{"message":{"type":"status-update"}}"#),
        "status-update"
    );
    assert_eq!(error(Provider::Vapi, br#"{"type":"end-of-call-report"}"#).field, "message");
    assert_eq!(
        error(Provider::Vapi, br#"{"message":{"type":"end-of-call-report","call":{}}}"#).field,
        "message.call.id"
    );
}

pub fn elevenlabs_transcription() -> serde_json::Value {
    json!({
      "type": "post_call_transcription",
      "event_timestamp": 1739537297,
      "data": {
        "agent_id": "agent_7101k0abc", "conversation_id": "conv_9801k0xyz", "status": "done",
        "transcript": [
          {"role": "agent", "message": "Hi, how can I help?", "time_in_call_secs": 0, "tool_calls": null},
          {"role": "agent", "message": null, "time_in_call_secs": 2, "tool_calls": [{"name": "lookup"}]},
          {"role": "user", "message": "What are your hours?", "time_in_call_secs": 3}
        ],
        "metadata": {
          "start_time_unix_secs": 1739537275, "call_duration_secs": 22, "cost": 296, "cost_fiat": 0.31,
          "termination_reason": "",
          "phone_call": {"type": "twilio", "direction": "inbound", "phone_number_id": "phnum_1",
                         "agent_number": "+14155550199", "external_number": "+14155550100",
                         "call_sid": "CA22222222222222222222222222222222"}
        },
        "analysis": {"call_successful": "success", "transcript_summary": "Caller asked for hours."},
        "conversation_initiation_client_data": {"dynamic_variables": {"user_name": "angelo"}}
      }
    })
}

#[test]
fn elevenlabs_transcription_audio_and_failure() {
    let call = call(Provider::Elevenlabs, elevenlabs_transcription().to_string().as_bytes());
    let conversation = &call.conversation;
    assert_eq!(conversation.call_id, "conv_9801k0xyz");
    assert_eq!(conversation.started_at, DateTime::from_timestamp(1739537275, 0));
    assert_eq!(conversation.ended_at, DateTime::from_timestamp(1739537297, 0));
    assert_eq!(conversation.duration_ms, Some(22_000));
    assert_eq!(roles_and_starts(&call), [(Role::Assistant, 0), (Role::User, 3000)]);
    assert_eq!(conversation.from_number.as_deref(), Some("+14155550100"));
    assert_eq!(conversation.extras.summary.as_deref(), Some("Caller asked for hours."));
    assert_eq!(conversation.extras.successful, Some(true));
    assert_eq!(conversation.extras.outcome.as_deref(), Some("success"));
    assert_eq!(conversation.extras.raw.as_ref().unwrap()["call_successful"], "success");
    assert_eq!(conversation.extras.cost_usd, Some(0.31));
    assert_eq!(conversation.metadata["user_name"], "angelo");

    let audio = json!({"type": "post_call_audio", "event_timestamp": 1739537319,
        "data": {"agent_id": "agent_7101k0abc", "conversation_id": "conv_9801k0xyz",
                 "full_audio": data_encoding::BASE64.encode(b"ID3\x04 not really mp3")}});
    let audio_call = call_of(Provider::Elevenlabs, &audio);
    assert_eq!(audio_call.conversation.call_id, "conv_9801k0xyz");
    assert_eq!(audio_call.inline_audio.as_deref(), Some(&b"ID3\x04 not really mp3"[..]));
    let mut bad_audio = audio;
    bad_audio["data"]["full_audio"] = json!("***");
    assert_eq!(
        error(Provider::Elevenlabs, bad_audio.to_string().as_bytes()).field,
        "data.full_audio"
    );

    let failure = json!({"type": "call_initiation_failure", "event_timestamp": 1739537400,
        "data": {"agent_id": "agent_7101k0abc", "conversation_id": "conv_failed", "failure_reason": "busy"}});
    let failed = call_of(Provider::Elevenlabs, &failure);
    assert_eq!(failed.conversation.extras.successful, Some(false));
    assert_eq!(
        failed.conversation.extras.ended_reason.as_deref(),
        Some("call_initiation_failure: busy")
    );
    assert_eq!(
        ignored(Provider::Elevenlabs, br#"{"type":"something_else","data":{}}"#),
        "something_else"
    );
}

fn call_of(provider: Provider, body: &serde_json::Value) -> WebhookCall {
    call(provider, body.to_string().as_bytes())
}

#[test]
fn livekit_egress_and_room_finished_land_on_the_room() {
    let egress = json!({
      "event": "egress_ended", "id": "EV_3kF9aQ2m", "createdAt": "1717000200",
      "egressInfo": {
        "egressId": "EG_8sJd2Kq", "roomId": "RM_hycBMAjmt6Ub", "roomName": "call-+14155550100",
        "status": "EGRESS_COMPLETE",
        "startedAt": "1717000120123456789", "endedAt": "1717000199987654321",
        "fileResults": [{"filename": "calls/RM_hycBMAjmt6Ub.ogg", "duration": "79864197532", "size": "812345",
                         "location": "https://bucket.s3.amazonaws.com/calls/RM_hycBMAjmt6Ub.ogg"}]
      }
    });
    let call = call_of(Provider::Livekit, &egress);
    assert_eq!(call.conversation.call_id, "RM_hycBMAjmt6Ub");
    assert_eq!(call.conversation.started_at, DateTime::from_timestamp_millis(1717000120123));
    assert_eq!(call.conversation.duration_ms, Some(79_864));
    assert_eq!(url_of(&call), "https://bucket.s3.amazonaws.com/calls/RM_hycBMAjmt6Ub.ogg");
    let finished: serde_json::Value = serde_json::from_str(r#"{"event":"room_finished","room":{"sid":"RM_hycBMAjmt6Ub","name":"Demo Room","emptyTimeout":300,"creationTime":"1692627281"},"id":"EV_eugWmGhovZmm","createdAt":"1692985556"}"#).unwrap();
    let room = call_of(Provider::Livekit, &finished);
    assert_eq!(room.conversation.call_id, "RM_hycBMAjmt6Ub");
    assert_eq!(room.conversation.duration_ms, Some((1692985556 - 1692627281) * 1000));
    assert_eq!(
        ignored(Provider::Livekit, br#"{"event":"participant_joined"}"#),
        "participant_joined"
    );
    let mut failed = egress;
    failed["egressInfo"]["status"] = json!("EGRESS_FAILED");
    assert_eq!(ignored(Provider::Livekit, failed.to_string().as_bytes()), "egress_ended");
}

pub fn bland_call() -> serde_json::Value {
    json!({
      "call_id": "9d404c1b-6a23-4426-953a-a52c392ff8f1", "c_id": "9d404c1b-6a23-4426-953a-a52c392ff8f1",
      "call_length": 0.75, "corrected_duration": "45", "to": "+12223334444", "from": "+17163511654",
      "inbound": false, "completed": true, "status": "completed",
      "created_at": "2024-04-27T23:51:18.025251+00:00", "started_at": "2024-04-27T23:51:25+00:00",
      "call_ended_by": "ASSISTANT",
      "recording_url": "https://server.aws.dialer.bland.ai/v1/recordings/9d404c1b.mp3",
      "summary": "Customer booked three rooms for tomorrow.", "price": 0.068, "metadata": {"crm_id": "42"},
      "transcripts": [
        {"id": 123456, "created_at": "2024-04-27T23:51:26.101+00:00", "text": "Hello?", "user": "user"},
        {"id": 123457, "created_at": "2024-04-27T23:51:28.442+00:00", "text": "Hi there! I'm calling from the hotel booking service.", "user": "assistant"},
        {"id": 123458, "created_at": "2024-04-27T23:51:29.000+00:00", "text": "transferred", "user": "agent-action"}
      ]
    })
}

#[test]
fn bland_call_maps_every_field() {
    let call = call_of(Provider::Bland, &bland_call());
    let conversation = &call.conversation;
    assert_eq!(conversation.call_id, "9d404c1b-6a23-4426-953a-a52c392ff8f1");
    assert_eq!(conversation.started_at, time("2024-04-27T23:51:25+00:00"));
    assert_eq!(conversation.duration_ms, Some(45_000));
    assert_eq!(conversation.direction.as_deref(), Some("outbound"));
    assert_eq!(roles_and_starts(&call), [(Role::User, 1101), (Role::Assistant, 3442)]);
    assert_eq!(
        conversation.extras.summary.as_deref(),
        Some("Customer booked three rooms for tomorrow.")
    );
    assert_eq!(conversation.extras.cost_usd, Some(0.068));
    assert!(url_of(&call).ends_with("9d404c1b.mp3"));
    assert_eq!(error(Provider::Bland, br#"{"summary":"x"}"#).field, "call_id");
}

#[test]
fn twilio_completed_recordings_become_calls_with_authenticated_audio() {
    let form = |status: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("AccountSid", "AC11111111111111111111111111111111")
            .append_pair("CallSid", "CA22222222222222222222222222222222")
            .append_pair("RecordingChannels", "2")
            .append_pair("RecordingDuration", "42")
            .append_pair("RecordingSid", "RE33333333333333333333333333333333")
            .append_pair("RecordingStartTime", "Wed, 03 Jan 2024 18:22:31 +0000")
            .append_pair("RecordingStatus", status)
            .append_pair(
                "RecordingUrl",
                "https://api.twilio.com/2010-04-01/Accounts/AC11111111111111111111111111111111/Recordings/RE33333333333333333333333333333333",
            )
            .finish()
    };
    let options = IntegrationOptions {
        twilio: Some(TwilioOptions { account_sid: String::new(), assistant_channel: 0 }),
        default_first_turn: Some(Role::User),
        ..IntegrationOptions::default()
    };
    let mut context = context(&options);
    context.url = "https://hooks.example.com/v0/voice/twilio/monitor/pub_1?first_turn=assistant";
    let Normalized::Call(call) =
        normalize(Provider::Twilio, &context, &verified(form("completed").as_bytes())).unwrap()
    else {
        panic!("expected a call");
    };
    let conversation = &call.conversation;
    assert_eq!(conversation.call_id, "CA22222222222222222222222222222222");
    assert_eq!(conversation.first_turn, Role::Assistant);
    assert_eq!(conversation.started_at, time("2024-01-03T18:22:31Z"));
    assert_eq!(conversation.duration_ms, Some(42_000));
    assert!(conversation.turns.is_empty() && conversation.needs_transcription());
    assert_eq!(
        conversation.audio,
        Some(AudioSource::Url {
            url: "https://api.twilio.com/2010-04-01/Accounts/AC11111111111111111111111111111111/Recordings/RE33333333333333333333333333333333.wav?RequestedChannels=2".to_owned(),
            credentials: Some(AudioCredentials::TwilioBasic {
                integration_id: uuid::Uuid::nil(),
                account_sid: "AC11111111111111111111111111111111".to_owned(),
            }),
        })
    );
    context.url = "https://hooks.example.com/v0/voice/twilio/monitor/pub_1";
    let Normalized::Call(call) =
        normalize(Provider::Twilio, &context, &verified(form("completed").as_bytes())).unwrap()
    else {
        panic!("expected a call");
    };
    assert_eq!(call.conversation.first_turn, Role::User, "the integration's default");
    assert_eq!(
        normalize(Provider::Twilio, &context, &verified(form("in-progress").as_bytes())).unwrap(),
        Normalized::Ignored { event: "recording.in-progress".to_owned() }
    );
    assert_eq!(
        normalize(Provider::Twilio, &context, &verified(b"CallSid=CA1")).unwrap_err().field,
        "RecordingStatus"
    );
}

#[test]
fn voicekit_envelopes_finalize_with_the_recording_and_ended_gives_the_duration() {
    assert_eq!(
        ignored(
            Provider::Voicekit,
            br#"{"event":"call_started","timestamp":"2026-11-20T10:00:00Z","data":{"call_id":"vk_1"}}"#
        ),
        "call_started"
    );
    let ended = call(
        Provider::Voicekit,
        br#"{"event":"call_ended","timestamp":"2026-11-20T10:02:05Z","data":{"call_id":"vk_1","duration":125.5}}"#,
    );
    assert_eq!(ended.event, "call_ended");
    assert_eq!(ended.conversation.call_id, "vk_1");
    assert_eq!(ended.conversation.provider, "voicekit");
    assert_eq!(ended.conversation.duration_ms, Some(125_500));
    assert_eq!(ended.conversation.ended_at, time("2026-11-20T10:02:05Z"));
    let finalized = call(
        Provider::Voicekit,
        json!({
            "event": "call_finalized",
            "timestamp": 1_795_000_000,
            "data": {
                "call_id": "vk_1", "agent_id": "agent_7", "direction": "Outbound",
                "from": "+14155550100", "to": "+14155550199",
                "started_at": "2026-11-20T10:00:00Z", "duration_seconds": 125,
                "recording_url": "https://media.example.com/vk_1.wav",
                "transcript": [
                    {"role": "agent", "text": "Hi, this is Ava.", "start": 0.4},
                    {"role": "customer", "text": "Hello.", "start_ms": 2100},
                    {"role": "system", "text": "transfer"}
                ],
                "summary": "Booked.", "cost": 0.12, "sentiment": "positive",
                "metadata": {"campaign": "renewals"}
            }
        })
        .to_string()
        .as_bytes(),
    );
    let conversation = &finalized.conversation;
    assert_eq!(url_of(&finalized), "https://media.example.com/vk_1.wav");
    assert_eq!(roles_and_starts(&finalized), vec![(Role::Assistant, 400), (Role::User, 2100)]);
    assert_eq!(conversation.started_at, time("2026-11-20T10:00:00Z"));
    assert_eq!(conversation.ended_at, time("2026-11-20T10:02:05Z"));
    assert_eq!(conversation.direction.as_deref(), Some("outbound"));
    assert_eq!(conversation.extras.sentiment.as_deref(), Some("positive"));
    assert_eq!(conversation.extras.cost_usd, Some(0.12));
    assert_eq!(conversation.extras.agent_id.as_deref(), Some("agent_7"));
    assert_eq!(conversation.metadata["campaign"], "renewals");
    let missing = error(Provider::Voicekit, br#"{"event":"call_finalized","data":{"duration":3}}"#);
    assert_eq!(missing.field, "data.call_id");
    let bad = error(
        Provider::Voicekit,
        br#"{"event":"call_ended","data":{"call_id":"x","duration":"long"}}"#,
    );
    assert_eq!((bad.field.as_str(), bad.reason.as_str()), ("data.duration", "must be a number"));
}

#[test]
fn webhook_lead_events_parse_the_labelled_transcription() {
    let body = json!({
        "event": {
            "id": "evt_91", "channel": "voice", "timestamp": "2026-11-20T09:30:00Z",
            "data": {
                "call_id": "call_lead_1", "direction": "outbound", "vapi_status": "ended",
                "duration": 64, "cost": 0.31, "recording_url": "https://media.example.com/l1.mp3",
                "transcription": "Agent: Hi Sam, it's Riley from Acme.\nLead: Oh hi.\nI have a minute.\nAgent: Great!",
                "summary": "Lead agreed to a demo.",
                "tools_called": ["book_appointment"], "tool_calls": [{"name": "book_appointment"}],
                "analysis_result": {"interested": true, "sentiment": "positive", "intent": "book_demo"}, "appointments": [{"at": "2026-11-21T15:00:00Z"}]
            }
        },
        "lead_id": "lead_5", "lead_contact": {"phone": "+14155550123"}, "business_id": "biz_2"
    });
    let lead = call(Provider::Webhook, body.to_string().as_bytes());
    let conversation = &lead.conversation;
    assert_eq!(lead.event, "lead_event.voice");
    assert_eq!(conversation.call_id, "call_lead_1");
    assert_eq!(conversation.provider, "webhook");
    let said: Vec<_> =
        conversation.turns.iter().map(|turn| (turn.role, turn.content.as_str())).collect();
    assert_eq!(
        said,
        vec![
            (Role::Assistant, "Hi Sam, it's Riley from Acme."),
            (Role::User, "Oh hi.\nI have a minute."),
            (Role::Assistant, "Great!"),
        ]
    );
    assert_eq!(conversation.started_at, time("2026-11-20T09:30:00Z"));
    assert_eq!(conversation.duration_ms, Some(64_000));
    assert_eq!(conversation.extras.cost_usd, Some(0.31));
    assert_eq!(conversation.extras.summary.as_deref(), Some("Lead agreed to a demo."));
    assert_eq!(conversation.extras.ended_reason.as_deref(), Some("ended"));
    assert_eq!(conversation.metadata["lead_id"], "lead_5");
    assert_eq!(conversation.metadata["analysis_result"]["interested"], true);
    let analysis =
        serde_json::json!({"interested": true, "sentiment": "positive", "intent": "book_demo"});
    assert_eq!(conversation.extras.raw, Some(analysis));
    assert_eq!(conversation.extras.sentiment.as_deref(), Some("positive"));
    assert_eq!(conversation.extras.outcome.as_deref(), Some("book_demo"));
    assert_eq!(conversation.metadata["tools_called"][0], "book_appointment");
    assert_eq!(url_of(&lead), "https://media.example.com/l1.mp3");
    let sms = json!({"event": {"id": "evt_2", "channel": "sms", "data": {}}, "lead_id": "l"});
    assert_eq!(ignored(Provider::Webhook, sms.to_string().as_bytes()), "lead_event.sms");
}

#[test]
fn webhook_call_completed_events_map_transcript_duration_cost_and_sentiment() {
    let body = json!({
        "event": "call.completed",
        "data": {
            "call_id": "voi_77", "duration": 42, "cost": 0.08, "sentiment": "neutral",
            "transcript": "AI: Thanks for calling.\nCaller: Is the store open?",
            "started_at": 1_795_000_000
        }
    });
    let completed = call(Provider::Webhook, body.to_string().as_bytes());
    let conversation = &completed.conversation;
    assert_eq!(completed.event, "call.completed");
    assert_eq!(conversation.call_id, "voi_77");
    assert_eq!(conversation.turns.len(), 2);
    assert_eq!(conversation.turns[1].role, Role::User);
    assert_eq!(conversation.duration_ms, Some(42_000));
    assert_eq!(conversation.extras.sentiment.as_deref(), Some("neutral"));
    assert_eq!(conversation.started_at, DateTime::from_timestamp(1_795_000_000, 0));
    assert_eq!(
        ignored(Provider::Webhook, br#"{"event":"call.started","call_id":"x"}"#),
        "call.started"
    );
    let missing = error(Provider::Webhook, br#"{"event":"call.completed","data":{"duration":1}}"#);
    assert_eq!(missing.field, "data.call_id");
}

#[test]
fn webhook_canonical_conversations_follow_the_ingest_rules() {
    let body = json!({
        "call_id": "c_9", "source_platform": "acme-dialer",
        "transcript": [
            {"role": "assistant", "content": "Hello", "timestamp_ms": 0},
            {"role": "user", "content": "Hi", "timestamp_ms": 900}
        ],
        "recording_url": "https://media.example.com/c9.wav",
        "tags": ["prod"], "metadata": {"k": "v"}
    });
    let canonical = call(Provider::Webhook, body.to_string().as_bytes());
    assert_eq!(canonical.conversation.provider, "acme-dialer");
    assert_eq!(canonical.conversation.source, crate::model::conversation::Source::Webhook);
    assert_eq!(roles_and_starts(&canonical), vec![(Role::Assistant, 0), (Role::User, 900)]);
    assert_eq!(canonical.conversation.tags, vec!["prod".to_owned()]);
    assert_eq!(url_of(&canonical), "https://media.example.com/c9.wav");
    let bare = call(
        Provider::Webhook,
        br#"{"call_id":"c_10","transcript":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(bare.conversation.provider, "webhook");
    let wrong_role = error(
        Provider::Webhook,
        br#"{"call_id":"c","transcript":[{"role":"narrator","content":"x"}]}"#,
    );
    assert_eq!(wrong_role.field, "transcript[0].role");
    let unknown = error(Provider::Webhook, br#"{"call_id":"c","transcipt":[]}"#);
    assert_eq!(unknown.field, "transcipt");
    let missing = error(Provider::Webhook, br#"{"transcript":[]}"#);
    assert_eq!(missing.field, "call_id");
    let file = error(
        Provider::Webhook,
        br#"{"call_id":"c","audio":{"type":"voice_file_id","voice_file_id":"0190f0f0-0000-7000-8000-000000000000"}}"#,
    );
    assert_eq!(file.field, "audio.voice_file_id");
}

/// The body's shape is told from its top-level `event` without parsing it twice: the same
/// reader as a parsed document would choose, for every type `event` may hold.
#[test]
fn webhook_bodies_go_to_the_reader_their_event_names() {
    let lead = br#"{"lead_id":[1,{"event":"x"}],"event":{"channel":"sms","data":{}}}"#;
    assert_eq!(ignored(Provider::Webhook, lead), "lead_event.sms");
    let twice = br#"{"event":{"channel":"voice"},"event":"call.started","call_id":"x"}"#;
    assert_eq!(ignored(Provider::Webhook, twice), "call.started");
    // A key written with an escape is the same key once unescaped, as in a parsed document.
    let escaped = br#"{"\u0065vent":{"channel":"sms","data":{}}}"#;
    assert_eq!(ignored(Provider::Webhook, escaped), "lead_event.sms");
    // `event` of another type, or inside another value, leaves a canonical conversation.
    for body in [
        &br#"{"event":7,"call_id":"c"}"#[..],
        br#"{"event":null,"call_id":"c"}"#,
        br#"{"event":[],"call_id":"c"}"#,
    ] {
        assert_eq!(error(Provider::Webhook, body).field, "event", "{body:?}");
    }
    assert_eq!(error(Provider::Webhook, br#"{"meta":{"event":"x"},"call_id":"c"}"#).field, "meta");
    assert_eq!(error(Provider::Webhook, br#"["event"]"#).field, "body");
    for broken in [&br#"{"event":"call.completed""#[..], br#"{"call_id":"c"} {}"#, b""] {
        let refused = error(Provider::Webhook, broken);
        assert_eq!(refused.field, "body");
        assert!(refused.reason.starts_with("is not valid JSON: "), "{}", refused.reason);
    }
}

/// Durations and times far out of range come through as numbers the conversation contract
/// then refuses by name, never as a panic (which dropped the connection, so the provider retried
/// forever).
#[test]
fn out_of_range_durations_and_times_do_not_panic() {
    let mut violations = crate::error::Violations::new();
    let bland = call(
        Provider::Bland,
        br#"{"call_id":"b1","started_at":"2026-11-20T23:51:25+00:00","corrected_duration":1e300}"#,
    );
    assert_eq!(bland.conversation.duration_ms, Some(i64::MAX));
    assert_eq!(bland.conversation.ended_at, None);
    bland.conversation.check("", &mut violations);
    let twilio_body = form_urlencoded::Serializer::new(String::new())
        .append_pair("AccountSid", "AC11111111111111111111111111111111")
        .append_pair("CallSid", "CA22222222222222222222222222222222")
        .append_pair("RecordingDuration", "9223372036854775807")
        .append_pair("RecordingSid", "RE33333333333333333333333333333333")
        .append_pair("RecordingStartTime", "Wed, 03 Jan 2024 18:22:31 +0000")
        .append_pair("RecordingStatus", "completed")
        .append_pair("RecordingUrl", "https://api.twilio.com/Recordings/RE3")
        .finish();
    let twilio = call(Provider::Twilio, twilio_body.as_bytes());
    assert_eq!(twilio.conversation.duration_ms, Some(i64::MAX));
    twilio.conversation.check("", &mut violations);
    let voicekit = call(
        Provider::Voicekit,
        br#"{"event":"call_ended","timestamp":"2026-11-20T10:02:05Z","data":{"call_id":"vk_1","started_at":"2026-11-20T10:00:00Z","duration":-1e300}}"#,
    );
    voicekit.conversation.check("", &mut violations);
    let fields: Vec<String> = match violations.into_result() {
        Err(error) => error.field_violations().iter().map(|v| v.field.clone()).collect(),
        Ok(()) => Vec::new(),
    };
    assert_eq!(fields, ["duration_ms", "duration_ms"], "voicekit clamps a negative duration to 0");
}
