//! One ingest job: resolve the audio (download URL audio behind the SSRF guard), probe it,
//! transcribe audio-only calls that ask for it (or park them where transcription is off), merge
//! the conversation into its datapoint, and record the result in one transaction.

use bytes::Bytes;
use uuid::Uuid;

use super::Stages;
use super::fetch::FetchError;
use crate::asr::{AsrError, RoleHints};
use crate::audio::probe;
use crate::blob::sniff_audio_content_type;
use crate::domain::Domain;
use crate::jobs::{ClaimedJob, JobError, JobPayload, JobRunner};
use crate::model::conversation::{AudioCredentials, AudioSource};
use crate::model::datapoints::{Datapoint, TranscriptSource};
use crate::model::ingest::AudioObject;

#[derive(Debug, PartialEq, Eq)]
pub enum ProcessOutcome {
    Done { datapoint_id: Uuid },
    AwaitingTranscription,
}

/// Runs ingest jobs for the queue's workers.
#[derive(Clone, Debug)]
pub struct IngestJobs {
    pub domain: Domain,
    pub stages: Stages,
}

impl JobRunner for IngestJobs {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let JobPayload::IngestV1 { ingest_id } = job.payload;
        let started = std::time::Instant::now();
        let outcome = process_ingest(&self.domain, &self.stages, job, ingest_id).await?;
        tracing::debug!(%ingest_id, ?outcome, elapsed_ms = started.elapsed().as_millis() as u64, "ingest processed");
        Ok(())
    }

    async fn record_failure(
        &self,
        job: &ClaimedJob,
        reason: &str,
        retry_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> crate::error::Result<()> {
        let JobPayload::IngestV1 { ingest_id } = job.payload;
        let now = self.domain.clock.now();
        self.domain.storage.fail_job(job.id, ingest_id, job.attempts, reason, retry_at, now).await
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(transient)`
/// A storage or other internal error as a retried job failure: the ingest's error (which
/// clients see) says what was being done, the log says why.
fn transient(error: crate::Error) -> JobError {
    error.log_if_internal();
    JobError::Transient(error.to_string())
}

pub async fn process_ingest(
    domain: &Domain,
    stages: &Stages,
    job: &ClaimedJob,
    ingest_id: Uuid,
) -> Result<ProcessOutcome, JobError> {
    let storage = &domain.storage;
    let (record, mut conversation) = storage
        .load_ingest(ingest_id)
        .await
        .map_err(transient)?
        .ok_or_else(|| JobError::Permanent(format!("ingest {ingest_id} no longer exists")))?;
    // Only slow jobs show `processing` (a commit of its own): a download or a transcription
    // can take minutes, while a transcript alone is stored in milliseconds.
    let slow = conversation.needs_transcription()
        || matches!(conversation.audio, Some(AudioSource::Url { .. }));
    if slow {
        storage
            .mark_ingest_processing(ingest_id, job.attempts, domain.clock.now())
            .await
            .map_err(transient)?;
    }

    let mut audio = match &conversation.audio {
        None => None,
        Some(AudioSource::Stored { audio_id }) => Some(
            LoadedAudio::load(domain, record.organization_id, record.project_id, *audio_id).await?,
        ),
        Some(AudioSource::Url { url, credentials }) => {
            let basic_auth = match credentials {
                None => None,
                Some(AudioCredentials::TwilioBasic { integration_id, account_sid }) => {
                    // The current secret set; a rotated-out token may no longer open the media.
                    let sets =
                        domain.verification_secrets(*integration_id).await.map_err(transient)?;
                    let token = sets
                        .first()
                        .and_then(|set| set.get("auth_token"))
                        .map(|token| token.expose().to_owned())
                        .ok_or_else(|| {
                            JobError::Permanent(
                                "the Twilio integration of this recording has no auth token".into(),
                            )
                        })?;
                    Some((account_sid.clone(), token))
                }
            };
            let basic_auth =
                basic_auth.as_ref().map(|(user, password)| (user.as_str(), password.as_str()));
            let bytes =
                stages.fetcher.fetch(url, basic_auth).await.map_err(|error| match error {
                    FetchError::Permanent(reason) => JobError::Permanent(reason),
                    FetchError::Transient(reason) => JobError::Transient(reason),
                })?;
            Some(
                store_fetched_audio(domain, record.organization_id, record.project_id, bytes)
                    .await?,
            )
        }
    };
    let audio_id = audio.as_ref().map(|audio| audio.object.id);
    if let Some(audio) = &mut audio {
        audio.probe_if_needed(domain).await?;
    }

    let mut speaker_labels_estimated = None;
    if let (true, Some(audio)) = (conversation.needs_transcription(), &mut audio) {
        let Some(asr) = &stages.asr else {
            storage.park_ingest(job.id, ingest_id, domain.clock.now()).await.map_err(transient)?;
            return Ok(ProcessOutcome::AwaitingTranscription);
        };
        let bytes = audio.bytes(domain).await?;
        let object = &audio.object;
        let hints = RoleHints {
            first_turn: conversation.first_turn,
            assistant_channel: conversation.assistant_channel,
        };
        let transcript = asr.transcribe(bytes, &object.content_type, hints).await.map_err(
            |error| match error {
                AsrError::BadAudio(reason) => {
                    JobError::Permanent(format!("the audio cannot be transcribed: {reason}"))
                }
                AsrError::Unavailable(reason) | AsrError::Failed(reason) => {
                    JobError::Transient(format!("transcription: {reason}"))
                }
            },
        )?;
        conversation.turns = transcript.turns;
        conversation.duration_ms = conversation.duration_ms.or(Some(transcript.duration_ms));
        speaker_labels_estimated = Some(transcript.speaker_labels_estimated);
    }
    let existing = storage
        .find_datapoint(record.project_id, &conversation.provider, &conversation.call_id)
        .await
        .map_err(transient)?;
    let mut datapoint = Datapoint::merge(
        existing,
        &conversation,
        audio_id,
        record.organization_id,
        record.project_id,
        domain.clock.now(),
    );
    if let Some(estimated) = speaker_labels_estimated {
        datapoint.transcript_source = TranscriptSource::Asr;
        datapoint.speaker_labels_estimated = estimated;
    }
    storage
        .finish_ingest(job.id, ingest_id, job.attempts, &datapoint, domain.clock.now())
        .await
        .map_err(transient)?;
    domain.metrics.datapoint_written();
    Ok(ProcessOutcome::Done { datapoint_id: datapoint.id })
}

async fn store_fetched_audio(
    domain: &Domain,
    organization_id: Uuid,
    project_id: Uuid,
    bytes: Bytes,
) -> Result<LoadedAudio, JobError> {
    let content_type = sniff_audio_content_type(&bytes).ok_or_else(|| {
        JobError::Permanent("the audio URL did not return a recognised audio format".into())
    })?;
    let object = domain.new_audio_object(organization_id, project_id, &bytes, content_type);
    domain.blobs.put_if_absent(&object.blob_key, bytes.clone()).await.map_err(transient)?;
    domain.storage.insert_audio_object(&object).await.map_err(transient)?;
    Ok(LoadedAudio { object, bytes: Some(bytes) })
}

/// A conversation's audio object, with its bytes once something has needed them (downloaded
/// audio has them from the start): the blob is read at most once a job.
struct LoadedAudio {
    object: AudioObject,
    bytes: Option<Bytes>,
}

impl LoadedAudio {
    async fn load(
        domain: &Domain,
        organization_id: Uuid,
        project_id: Uuid,
        audio_id: Uuid,
    ) -> Result<Self, JobError> {
        let object = domain
            .storage
            .get_audio_object(organization_id, project_id, audio_id)
            .await
            .map_err(transient)?
            .ok_or_else(|| JobError::Permanent(format!("audio {audio_id} no longer exists")))?;
        Ok(Self { object, bytes: None })
    }

    async fn bytes(&mut self, domain: &Domain) -> Result<Bytes, JobError> {
        if let Some(bytes) = &self.bytes {
            return Ok(bytes.clone());
        }
        let bytes = domain.blobs.get(&self.object.blob_key).await.map_err(transient)?;
        self.bytes = Some(bytes.clone());
        Ok(bytes)
    }

    /// Records duration, channels and sample rate the first time an audio object is processed.
    /// Unreadable audio is kept as it is: transcription, which needs to decode it, decides then.
    async fn probe_if_needed(&mut self, domain: &Domain) -> Result<(), JobError> {
        if self.object.channels.is_some() || self.object.duration_ms.is_some() {
            return Ok(());
        }
        let bytes = self.bytes(domain).await?;
        let content_type = self.object.content_type.clone();
        let probed =
            tokio::task::spawn_blocking(move || probe::probe(bytes.to_vec(), &content_type))
                .await
                .map_err(|error| JobError::Transient(format!("probing audio: {error}")))?;
        let audio_id = self.object.id;
        match probed {
            Ok(probed) => {
                domain.storage.update_audio_probe(audio_id, &probed).await.map_err(transient)
            }
            Err(reason) => {
                tracing::warn!(%audio_id, reason = %reason, "audio could not be probed");
                Ok(())
            }
        }
    }
}
