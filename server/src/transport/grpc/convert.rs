//! Conversions between protobuf messages and domain types.

use chrono::{DateTime, Utc};
use earshot_proto::json::{json_to_struct, struct_to_json};
use earshot_proto::v1 as pb;

use crate::error::{Error, Result};
use crate::model::auth::{ApiKeyRecord, Scope};
use crate::model::conversation::Role;
use crate::model::integrations::{
    HeaderTokenOptions, HmacAlgorithm, HmacOptions, Integration, IntegrationOptions,
    IntegrationStatus, Provider, SignatureEncoding, TwilioOptions, WebhookAuthType,
};
use crate::model::projects::Project;

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn project(project: &Project) -> pb::Project {
    pb::Project {
        id: project.id.to_string(),
        name: project.name.clone(),
        create_time: Some(timestamp(project.created_at)),
        retention: Some(pb::ProjectRetention {
            datapoint_days: project.retention.datapoint_days,
            audio_days: project.retention.audio_days,
            delivery_body_days: project.retention.delivery_body_days,
            delivery_days: project.retention.delivery_days,
        }),
    }
}

pub fn deletion(deletion: &crate::model::lifecycle::Deletion) -> pb::Deletion {
    let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    pb::Deletion {
        id: deletion.id.to_string(),
        project_id: deletion.project_id.map(|id| id.to_string()).unwrap_or_default(),
        actor: deletion.actor.clone(),
        reason: deletion.reason.as_str().to_owned(),
        filter: deletion.filter.as_object().map(earshot_proto::json::json_to_struct),
        request_time: Some(timestamp(deletion.requested_at)),
        finish_time: deletion.finished_at.map(timestamp),
        removed: Some(pb::DeletionCounts {
            datapoints: count(deletion.removed.datapoints),
            ingests: count(deletion.removed.ingests),
            delivery_bodies: count(deletion.removed.delivery_bodies),
            recordings: count(deletion.removed.recordings),
        }),
    }
}

pub fn scope_from_proto(field: &str, value: i32) -> Result<Scope> {
    match pb::ApiKeyScope::try_from(value) {
        Ok(pb::ApiKeyScope::Admin) => Ok(Scope::Admin),
        Ok(pb::ApiKeyScope::Ingest) => Ok(Scope::Ingest),
        Ok(pb::ApiKeyScope::Read) => Ok(Scope::Read),
        _ => Err(Error::invalid(field, "must be API_KEY_SCOPE_ADMIN, _INGEST or _READ")),
    }
}

fn scope_to_proto(scope: Scope) -> i32 {
    match scope {
        Scope::Admin => pb::ApiKeyScope::Admin as i32,
        Scope::Ingest => pb::ApiKeyScope::Ingest as i32,
        Scope::Read => pb::ApiKeyScope::Read as i32,
    }
}

pub fn api_key(key: &ApiKeyRecord) -> pb::ApiKey {
    pb::ApiKey {
        id: key.id.to_string(),
        name: key.name.clone(),
        scopes: key.scopes.iter().copied().map(scope_to_proto).collect(),
        project_id: key.project_id.map(|id| id.to_string()).unwrap_or_default(),
        key_prefix: key.key_prefix.clone(),
        create_time: Some(timestamp(key.created_at)),
        revoke_time: key.revoked_at.map(timestamp),
        last_used_time: key.last_used_at.map(timestamp),
    }
}

pub fn provider_from_proto(value: i32) -> Result<Option<Provider>> {
    Ok(match pb::Provider::try_from(value) {
        Ok(pb::Provider::Unspecified) => None,
        Ok(pb::Provider::Twilio) => Some(Provider::Twilio),
        Ok(pb::Provider::Retell) => Some(Provider::Retell),
        Ok(pb::Provider::Vapi) => Some(Provider::Vapi),
        Ok(pb::Provider::Elevenlabs) => Some(Provider::Elevenlabs),
        Ok(pb::Provider::Livekit) => Some(Provider::Livekit),
        Ok(pb::Provider::Bland) => Some(Provider::Bland),
        Ok(pb::Provider::Voicekit) => Some(Provider::Voicekit),
        Ok(pb::Provider::Webhook) => Some(Provider::Webhook),
        Err(_) => {
            return Err(Error::invalid("provider", format!("unknown provider value {value}")));
        }
    })
}

fn provider_to_proto(provider: Provider) -> pb::Provider {
    match provider {
        Provider::Twilio => pb::Provider::Twilio,
        Provider::Retell => pb::Provider::Retell,
        Provider::Vapi => pb::Provider::Vapi,
        Provider::Elevenlabs => pb::Provider::Elevenlabs,
        Provider::Livekit => pb::Provider::Livekit,
        Provider::Bland => pb::Provider::Bland,
        Provider::Voicekit => pb::Provider::Voicekit,
        Provider::Webhook => pb::Provider::Webhook,
    }
}

const AUTH_TYPES: [(pb::WebhookAuthType, WebhookAuthType); 11] = [
    (pb::WebhookAuthType::TwilioSignature, WebhookAuthType::TwilioSignature),
    (pb::WebhookAuthType::RetellSignature, WebhookAuthType::RetellSignature),
    (pb::WebhookAuthType::VapiSecret, WebhookAuthType::VapiSecret),
    (pb::WebhookAuthType::HeaderToken, WebhookAuthType::HeaderToken),
    (pb::WebhookAuthType::Hmac, WebhookAuthType::Hmac),
    (pb::WebhookAuthType::ElevenlabsSignature, WebhookAuthType::ElevenlabsSignature),
    (pb::WebhookAuthType::LivekitJwt, WebhookAuthType::LivekitJwt),
    (pb::WebhookAuthType::BlandSignature, WebhookAuthType::BlandSignature),
    (pb::WebhookAuthType::StandardWebhooks, WebhookAuthType::StandardWebhooks),
    (pb::WebhookAuthType::UrlToken, WebhookAuthType::UrlToken),
    (pb::WebhookAuthType::IpAllowlist, WebhookAuthType::IpAllowlist),
];

pub fn auth_type_from_proto(value: i32) -> Result<Option<WebhookAuthType>> {
    let proto = pb::WebhookAuthType::try_from(value)
        .map_err(|_| Error::invalid("webhook_auth_type", format!("unknown value {value}")))?;
    Ok(AUTH_TYPES.iter().find(|(candidate, _)| *candidate == proto).map(|(_, domain)| *domain))
}

fn auth_type_to_proto(auth_type: WebhookAuthType) -> pb::WebhookAuthType {
    AUTH_TYPES
        .iter()
        .find(|(_, domain)| *domain == auth_type)
        .map_or(pb::WebhookAuthType::Unspecified, |(proto, _)| *proto)
}

pub fn status_from_proto(value: i32) -> Result<IntegrationStatus> {
    match pb::IntegrationStatus::try_from(value) {
        Ok(pb::IntegrationStatus::Active) => Ok(IntegrationStatus::Active),
        Ok(pb::IntegrationStatus::Disabled) => Ok(IntegrationStatus::Disabled),
        _ => Err(Error::invalid(
            "status",
            "must be INTEGRATION_STATUS_ACTIVE or INTEGRATION_STATUS_DISABLED",
        )),
    }
}

fn role_from_proto(field: &str, value: i32) -> Result<Option<Role>> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Unspecified) => Ok(None),
        Ok(pb::Role::User) => Ok(Some(Role::User)),
        Ok(pb::Role::Assistant) => Ok(Some(Role::Assistant)),
        Ok(pb::Role::System) => Ok(Some(Role::System)),
        Ok(pb::Role::Tool) => Ok(Some(Role::Tool)),
        Err(_) => Err(Error::invalid(field, format!("unknown role value {value}"))),
    }
}

fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::User => pb::Role::User,
        Role::Assistant => pb::Role::Assistant,
        Role::System => pb::Role::System,
        Role::Tool => pb::Role::Tool,
    }
}

pub fn options_from_proto(options: Option<pb::IntegrationOptions>) -> Result<IntegrationOptions> {
    let Some(options) = options else { return Ok(IntegrationOptions::default()) };
    let hmac = options
        .hmac
        .map(|hmac| -> Result<HmacOptions> {
            Ok(HmacOptions {
                signature_header: hmac.signature_header,
                algorithm: match pb::HmacAlgorithm::try_from(hmac.algorithm) {
                    Ok(pb::HmacAlgorithm::Sha1) => HmacAlgorithm::Sha1,
                    Ok(pb::HmacAlgorithm::Unspecified | pb::HmacAlgorithm::Sha256) => {
                        HmacAlgorithm::Sha256
                    }
                    Ok(pb::HmacAlgorithm::Sha512) => HmacAlgorithm::Sha512,
                    Err(_) => {
                        return Err(Error::invalid("options.hmac.algorithm", "unknown value"));
                    }
                },
                encoding: match pb::SignatureEncoding::try_from(hmac.encoding) {
                    Ok(pb::SignatureEncoding::Unspecified | pb::SignatureEncoding::Hex) => {
                        SignatureEncoding::Hex
                    }
                    Ok(pb::SignatureEncoding::Base64) => SignatureEncoding::Base64,
                    Err(_) => return Err(Error::invalid("options.hmac.encoding", "unknown value")),
                },
                signature_prefix: hmac.signature_prefix,
                timestamp_header: hmac.timestamp_header,
                timestamp_tolerance_seconds: hmac.timestamp_tolerance_seconds,
                secret_is_base64: hmac.secret_is_base64,
            })
        })
        .transpose()?;
    Ok(IntegrationOptions {
        ip_allowlist: options.ip_allowlist,
        rate_limit_per_minute: options.rate_limit_per_minute,
        default_first_turn: role_from_proto(
            "options.default_first_turn",
            options.default_first_turn,
        )?,
        twilio: options.twilio.map(|twilio| TwilioOptions {
            account_sid: twilio.account_sid,
            assistant_channel: twilio.assistant_channel,
        }),
        hmac,
        header_token: options.header_token.map(|header_token| HeaderTokenOptions {
            header_name: header_token.header_name,
            bearer_prefix: header_token.bearer_prefix,
        }),
    })
}

fn options_to_proto(options: &IntegrationOptions) -> pb::IntegrationOptions {
    pb::IntegrationOptions {
        ip_allowlist: options.ip_allowlist.clone(),
        rate_limit_per_minute: options.rate_limit_per_minute,
        default_first_turn: options.default_first_turn.map_or(pb::Role::Unspecified, role_to_proto)
            as i32,
        twilio: options.twilio.as_ref().map(|twilio| pb::TwilioOptions {
            account_sid: twilio.account_sid.clone(),
            assistant_channel: twilio.assistant_channel,
        }),
        hmac: options.hmac.as_ref().map(|hmac| pb::HmacOptions {
            signature_header: hmac.signature_header.clone(),
            algorithm: match hmac.algorithm {
                HmacAlgorithm::Sha1 => pb::HmacAlgorithm::Sha1,
                HmacAlgorithm::Sha256 => pb::HmacAlgorithm::Sha256,
                HmacAlgorithm::Sha512 => pb::HmacAlgorithm::Sha512,
            } as i32,
            encoding: match hmac.encoding {
                SignatureEncoding::Hex => pb::SignatureEncoding::Hex,
                SignatureEncoding::Base64 => pb::SignatureEncoding::Base64,
            } as i32,
            signature_prefix: hmac.signature_prefix.clone(),
            timestamp_header: hmac.timestamp_header.clone(),
            timestamp_tolerance_seconds: hmac.timestamp_tolerance_seconds,
            secret_is_base64: hmac.secret_is_base64,
        }),
        header_token: options.header_token.as_ref().map(|header_token| pb::HeaderTokenOptions {
            header_name: header_token.header_name.clone(),
            bearer_prefix: header_token.bearer_prefix,
        }),
    }
}

pub fn integration(integration: &Integration, webhook_url: String) -> pb::Integration {
    let mut secret_names: Vec<String> = integration
        .secrets
        .iter()
        .filter(|secret| secret.expires_at.is_none())
        .map(|secret| secret.name.clone())
        .collect();
    secret_names.dedup();
    pb::Integration {
        id: integration.id.to_string(),
        project_id: integration.project_id.to_string(),
        provider: provider_to_proto(integration.provider) as i32,
        display_name: integration.display_name.clone(),
        public_id: integration.public_id.clone(),
        webhook_auth_type: auth_type_to_proto(integration.auth_type) as i32,
        status: match integration.status {
            IntegrationStatus::Active => pb::IntegrationStatus::Active,
            IntegrationStatus::Disabled => pb::IntegrationStatus::Disabled,
        } as i32,
        options: Some(options_to_proto(&integration.options)),
        secret_summary: Some(pb::SecretSummary {
            secret_names,
            secrets: integration
                .secrets
                .iter()
                .map(|secret| pb::SecretInfo {
                    name: secret.name.clone(),
                    last4: secret.last4.clone(),
                    state: if secret.expires_at.is_none() {
                        pb::SecretState::Current
                    } else {
                        pb::SecretState::Previous
                    } as i32,
                    create_time: Some(timestamp(secret.created_at)),
                    expire_time: secret.expires_at.map(timestamp),
                })
                .collect(),
        }),
        webhook_url,
        request_count: integration.request_count,
        rate_limited_count: integration.rate_limited_count,
        create_time: Some(timestamp(integration.created_at)),
        update_time: Some(timestamp(integration.updated_at)),
        last_used_time: integration.last_used_at.map(timestamp),
        last_validated_time: integration.last_validated_at.map(timestamp),
    }
}

/// A protobuf Duration as chrono, naming the field when it is out of range.
pub fn duration_from_proto(
    field: &str,
    duration: prost_types::Duration,
) -> Result<chrono::Duration> {
    if duration.seconds < 0 || duration.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    chrono::Duration::try_seconds(duration.seconds)
        .and_then(|seconds| {
            seconds.checked_add(&chrono::Duration::nanoseconds(duration.nanos.into()))
        })
        .ok_or_else(|| Error::invalid(field, "is out of range"))
}

// ---- ingest and datapoints ----

use crate::model::conversation::{AudioInput, ConversationInput, Source, TurnInput};
use crate::model::datapoints::{DatapointView, TranscriptSource};
use crate::model::deliveries::{DeliveryVerdict, WebhookDelivery};
use crate::model::ingest::{AudioObject, IngestRecord, IngestState};

/// A protobuf Timestamp as a time, or a violation of `field` when it is not one (nanos outside
/// 0..1e9, seconds outside what a time can hold): never silently dropped, which would turn a
/// search filter off.
pub fn time_from_proto(
    field: &str,
    timestamp: prost_types::Timestamp,
) -> Result<DateTime<Utc>, crate::error::Error> {
    u32::try_from(timestamp.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::<Utc>::from_timestamp(timestamp.seconds, nanos))
        .ok_or_else(|| crate::error::Error::invalid(field, "is not a valid timestamp"))
}

fn role_name(value: i32) -> String {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Unspecified) => String::new(),
        Ok(role) => role.as_str_name().trim_start_matches("ROLE_").to_ascii_lowercase(),
        Err(_) => format!("role value {value}"),
    }
}

/// A request's conversations as inputs; a timestamp that is not one is named
/// (`conversations[2].conversation_start_at`).
pub fn conversation_inputs(
    conversations: Vec<pb::Conversation>,
) -> Result<Vec<ConversationInput>, crate::error::Error> {
    conversations
        .into_iter()
        .enumerate()
        .map(|(index, conversation)| {
            let start = conversation
                .conversation_start_at
                .map(|time| {
                    time_from_proto(&format!("conversations[{index}].conversation_start_at"), time)
                })
                .transpose()?;
            Ok(ConversationInput {
                conversation_start_at: start,
                ..conversation_input(conversation)
            })
        })
        .collect()
}

fn conversation_input(conversation: pb::Conversation) -> ConversationInput {
    ConversationInput {
        call_id: conversation.call_id,
        context_token: Some(conversation.context_token).filter(|token| !token.is_empty()),
        source_platform: Some(conversation.source_platform).filter(|platform| !platform.is_empty()),
        conversation_start_at: None,
        audio: conversation.audio.and_then(|audio| audio.source).map(|source| match source {
            pb::audio::Source::InlineB64(encoded) => AudioInput::InlineBase64(encoded),
            pb::audio::Source::Url(url) => AudioInput::Url(url),
            pb::audio::Source::AudioId(id) => AudioInput::AudioId(id),
        }),
        transcript: conversation
            .transcript
            .into_iter()
            .map(|turn| TurnInput {
                role: role_name(turn.role),
                content: turn.content,
                timestamp_ms: turn.timestamp_ms,
                end_ms: turn.end_ms,
            })
            .collect(),
        diarization: conversation.diarization,
        first_turn: Some(role_name(conversation.first_turn)).filter(|role| !role.is_empty()),
        tags: conversation.tags,
        metadata: conversation.metadata.map(struct_to_json).unwrap_or_default(),
    }
}

fn source_to_proto(source: Source) -> pb::Source {
    match source {
        Source::Webhook => pb::Source::Webhook,
        Source::Sdk => pb::Source::Sdk,
        Source::Api => pb::Source::Api,
    }
}

pub fn source_from_proto(value: i32) -> Result<Option<Source>> {
    match pb::Source::try_from(value) {
        Ok(pb::Source::Unspecified) => Ok(None),
        Ok(pb::Source::Webhook) => Ok(Some(Source::Webhook)),
        Ok(pb::Source::Sdk) => Ok(Some(Source::Sdk)),
        Ok(pb::Source::Api) => Ok(Some(Source::Api)),
        Err(_) => Err(Error::invalid("source", format!("unknown value {value}"))),
    }
}

pub fn ingest_state_to_proto(state: IngestState) -> pb::IngestState {
    match state {
        IngestState::Queued => pb::IngestState::Queued,
        IngestState::Processing => pb::IngestState::Processing,
        IngestState::AwaitingTranscription => pb::IngestState::AwaitingTranscription,
        IngestState::Done => pb::IngestState::Done,
        IngestState::Failed => pb::IngestState::Failed,
        IngestState::Dead => pb::IngestState::Dead,
    }
}

pub fn delivery_verdict_from_proto(value: i32) -> Result<Option<DeliveryVerdict>> {
    Ok(match pb::DeliveryVerdict::try_from(value) {
        Ok(pb::DeliveryVerdict::Unspecified) => None,
        Ok(pb::DeliveryVerdict::Accepted) => Some(DeliveryVerdict::Accepted),
        Ok(pb::DeliveryVerdict::Duplicate) => Some(DeliveryVerdict::Duplicate),
        Ok(pb::DeliveryVerdict::Ignored) => Some(DeliveryVerdict::Ignored),
        Ok(pb::DeliveryVerdict::Rejected) => Some(DeliveryVerdict::Rejected),
        Err(_) => return Err(Error::invalid("verdict", format!("unknown value {value}"))),
    })
}

pub fn webhook_delivery(delivery: &WebhookDelivery) -> pb::WebhookDelivery {
    let verdict = match delivery.verdict {
        DeliveryVerdict::Accepted => pb::DeliveryVerdict::Accepted,
        DeliveryVerdict::Duplicate => pb::DeliveryVerdict::Duplicate,
        DeliveryVerdict::Ignored => pb::DeliveryVerdict::Ignored,
        DeliveryVerdict::Rejected => pb::DeliveryVerdict::Rejected,
    };
    pb::WebhookDelivery {
        id: delivery.id.to_string(),
        integration_id: delivery.integration_id.to_string(),
        receive_time: Some(timestamp(delivery.received_at)),
        verdict: verdict.into(),
        http_status: i32::from(delivery.http_status),
        event_type: delivery.event_type.clone(),
        call_id: delivery.call_id.clone(),
        body_sha256: delivery.body_sha256.clone(),
        error: delivery.error.clone(),
        ingest_id: delivery.ingest_id.map(|id| id.to_string()).unwrap_or_default(),
        replayable: delivery.replayable,
        error_message: delivery.error_message.clone(),
        authenticated: delivery.authenticated,
    }
}

pub fn ingest_state_from_proto(value: i32) -> Result<Option<IngestState>> {
    Ok(match pb::IngestState::try_from(value) {
        Ok(pb::IngestState::Unspecified) => None,
        Ok(pb::IngestState::Queued) => Some(IngestState::Queued),
        Ok(pb::IngestState::Processing) => Some(IngestState::Processing),
        Ok(pb::IngestState::AwaitingTranscription) => Some(IngestState::AwaitingTranscription),
        Ok(pb::IngestState::Done) => Some(IngestState::Done),
        Ok(pb::IngestState::Failed) => Some(IngestState::Failed),
        Ok(pb::IngestState::Dead) => Some(IngestState::Dead),
        Err(_) => return Err(Error::invalid("state", format!("unknown value {value}"))),
    })
}

pub fn ingest_status(record: &IngestRecord) -> pb::IngestStatus {
    pb::IngestStatus {
        ingest_id: record.id.to_string(),
        project_id: record.project_id.to_string(),
        call_id: record.call_id.clone(),
        context_token: record.context_token.clone(),
        state: ingest_state_to_proto(record.state) as i32,
        datapoint_id: record.datapoint_id.map(|id| id.to_string()).unwrap_or_default(),
        error: record.last_error.clone(),
        attempts: record.attempts,
        next_attempt_time: record.next_attempt_at.map(timestamp),
        create_time: Some(timestamp(record.created_at)),
        update_time: Some(timestamp(record.updated_at)),
    }
}

pub fn audio_info(object: &AudioObject) -> pb::AudioInfo {
    pb::AudioInfo {
        audio_id: object.id.to_string(),
        sha256: object.sha256.clone(),
        content_type: object.content_type.clone(),
        size_bytes: u64::try_from(object.size_bytes).unwrap_or(0),
        duration_ms: object.duration_ms.unwrap_or(0),
        channels: object.channels.unwrap_or(0),
        sample_rate_hz: object.sample_rate_hz.unwrap_or(0),
    }
}

pub fn datapoint(view: &DatapointView) -> pb::Datapoint {
    let datapoint = &view.datapoint;
    let metrics = &datapoint.metrics;
    pb::Datapoint {
        id: datapoint.id.to_string(),
        project_id: datapoint.project_id.to_string(),
        context_token: datapoint.context_token.clone(),
        call_id: datapoint.call_id.clone(),
        source: source_to_proto(datapoint.source) as i32,
        provider: datapoint.provider.clone(),
        turns: datapoint
            .turns
            .iter()
            .map(|turn| pb::DatapointTurn {
                role: role_to_proto(turn.role) as i32,
                content: turn.content.clone(),
                start_ms: turn.start_ms,
                end_ms: turn.end_ms.unwrap_or(0),
                channel: turn.channel.unwrap_or(0),
                confidence: turn.confidence.unwrap_or(1.0),
                unrecognized: turn.unrecognized,
            })
            .collect(),
        transcript_source: match datapoint.transcript_source {
            TranscriptSource::Provider => pb::TranscriptSource::Provider,
            TranscriptSource::Client => pb::TranscriptSource::Client,
            TranscriptSource::Asr => pb::TranscriptSource::Asr,
            TranscriptSource::None => pb::TranscriptSource::None,
        } as i32,
        speaker_labels_estimated: datapoint.speaker_labels_estimated,
        audio: view.audio.as_ref().map(audio_info),
        check_values: view.check_results.iter().map(check_value).collect(),
        failed_checks: view.failed_checks().into_iter().map(str::to_owned).collect(),
        integration_id: datapoint.integration_id.map(|id| id.to_string()).unwrap_or_default(),
        start_time: datapoint.started_at.map(timestamp),
        end_time: datapoint.ended_at.map(timestamp),
        duration_ms: datapoint.duration_ms.unwrap_or(0),
        from_number: datapoint.from_number.clone().unwrap_or_default(),
        to_number: datapoint.to_number.clone().unwrap_or_default(),
        direction: datapoint.direction.clone().unwrap_or_default(),
        analysis: Some(pb::CallAnalysis {
            summary: datapoint.analysis.summary.clone().unwrap_or_default(),
            sentiment: datapoint.analysis.sentiment.clone().unwrap_or_default(),
            successful: datapoint.analysis.successful,
            ended_reason: datapoint.analysis.ended_reason.clone().unwrap_or_default(),
            agent_id: datapoint.analysis.agent_id.clone().unwrap_or_default(),
            outcome: datapoint.analysis.outcome.clone().unwrap_or_default(),
            raw: datapoint
                .analysis
                .raw
                .as_ref()
                .and_then(serde_json::Value::as_object)
                .map(json_to_struct),
        }),
        cost_usd: datapoint.analysis.cost_usd,
        tags: datapoint.tags.clone(),
        metadata: Some(json_to_struct(&datapoint.metadata)),
        metrics: Some(pb::CallMetrics {
            roles: metrics
                .roles
                .iter()
                .map(|role| pb::RoleMetrics {
                    role: role_to_proto(role.role) as i32,
                    turn_count: role.turn_count,
                    talk_time_ms: role.talk_time_ms,
                    word_count: role.word_count,
                })
                .collect(),
            response_latency_p50_ms: metrics.response_latency_p50_ms.unwrap_or(0),
            response_latency_p95_ms: metrics.response_latency_p95_ms.unwrap_or(0),
            words_per_minute: metrics.words_per_minute.unwrap_or(0.0),
            speech_coverage: metrics.speech_coverage,
            longest_monologue_ms: metrics.longest_monologue_ms,
            overlap_count: metrics.overlap_count,
            overlap_ms: metrics.overlap_ms,
        }),
        create_time: Some(timestamp(datapoint.created_at)),
        update_time: Some(timestamp(datapoint.updated_at)),
    }
}

pub fn time_filter(
    field: &str,
    timestamp: Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, crate::error::Error> {
    timestamp.map(|timestamp| time_from_proto(field, timestamp)).transpose()
}

pub fn check_value(result: &crate::model::checks::CheckResult) -> pb::CheckValue {
    use crate::model::checks::Value;
    let value = &result.value;
    pb::CheckValue {
        name: value.name.clone(),
        value: value.value.as_ref().map(|measured| match measured {
            Value::Number(number) => pb::check_value::Value::NumberValue(*number),
            Value::Bool(flag) => pb::check_value::Value::BoolValue(*flag),
            Value::Text(text) => pb::check_value::Value::TextValue(text.clone()),
        }),
        value_type: value.value_type.as_str().to_owned(),
        check_id: value.check_id.to_string(),
        check_version: value.check_version,
        is_issue: value.is_issue,
        explanation: value.explanation.clone(),
        origin: result.origin.as_str().to_owned(),
        resolve_time: result.resolved_at.map(timestamp),
    }
}

pub fn check_rule(rule: &crate::model::checks::Rule) -> pb::CheckRule {
    use crate::model::checks::Value;
    pb::CheckRule {
        measure: rule.measure.as_str().to_owned(),
        comparator: rule.comparator.as_str().to_owned(),
        threshold: match &rule.threshold {
            Some(Value::Text(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        phrase: rule.phrase.clone().unwrap_or_default(),
    }
}

pub fn check(stored: &crate::model::checks::CheckRecord) -> pb::Check {
    pb::Check {
        id: stored.check.id.to_string(),
        name: stored.check.name.clone(),
        description: stored.description.clone(),
        version: stored.check.version,
        rule: Some(check_rule(&stored.check.rule)),
        create_time: Some(timestamp(stored.created_at)),
        update_time: Some(timestamp(stored.updated_at)),
    }
}

pub fn backfill(backfill: &crate::model::monitors::Backfill) -> pb::Backfill {
    pb::Backfill {
        id: backfill.id.to_string(),
        monitor_id: backfill.monitor_id.to_string(),
        state: backfill.state.as_str().to_owned(),
        start_time: backfill.from.map(timestamp),
        end_time: backfill.to.map(timestamp),
        total: backfill.total,
        processed: backfill.processed,
        matched: backfill.matched,
        issues: backfill.issues,
        error: backfill.error.clone(),
        create_time: Some(timestamp(backfill.created_at)),
        update_time: Some(timestamp(backfill.updated_at)),
        finish_time: backfill.finished_at.map(timestamp),
    }
}

pub fn summary_bucket(figures: &crate::model::monitors::SummaryFigures) -> pb::SummaryBucket {
    pb::SummaryBucket {
        start_time: figures.start.map(timestamp),
        datapoints: figures.datapoints,
        issues: figures.issues,
        issue_rate: figures.issue_rate(),
        checks: figures
            .checks
            .iter()
            .map(|check| pb::CheckSummary {
                check_id: check.check_id.to_string(),
                name: check.name.clone(),
                datapoints: check.datapoints,
                issues: check.issues,
                mean: check.mean,
            })
            .collect(),
        failed_checks: figures.failed_checks().into_iter().map(str::to_owned).collect(),
    }
}

pub fn monitor(monitor: &crate::model::monitors::Monitor) -> pb::Monitor {
    let filter = &monitor.filter;
    pb::Monitor {
        version: monitor.version,
        id: monitor.id.to_string(),
        name: monitor.name.clone(),
        description: monitor.description.clone(),
        filter: Some(pb::MonitorFilter {
            project_id: filter.project_id.map(|id| id.to_string()).unwrap_or_default(),
            provider: filter.provider.clone().unwrap_or_default(),
            source: filter.source.map_or(pb::Source::Unspecified, source_to_proto) as i32,
            tags_any: filter.tags_any.clone(),
            tags_all: filter.tags_all.clone(),
            metadata_equals: filter.metadata_equals.iter().cloned().collect(),
            start_time: filter.from.map(timestamp),
            end_time: filter.to.map(timestamp),
            text_contains: filter.text_contains.clone().unwrap_or_default(),
            integration_id: filter.integration_id.map(|id| id.to_string()).unwrap_or_default(),
            successful: filter.successful,
            sentiment: filter.sentiment.clone().unwrap_or_default(),
            outcome: filter.outcome.clone().unwrap_or_default(),
        }),
        checks: monitor
            .checks
            .iter()
            .map(|check| pb::Check {
                id: check.id.to_string(),
                name: check.name.clone(),
                version: check.version,
                rule: Some(check_rule(&check.rule)),
                ..pb::Check::default()
            })
            .collect(),
        create_time: Some(timestamp(monitor.created_at)),
        update_time: Some(timestamp(monitor.updated_at)),
    }
}
