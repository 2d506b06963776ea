//! One ingest job: resolve the audio (download URL audio behind the SSRF guard), probe it,
//! transcribe audio-only calls that ask for it (or park them where transcription is off), merge
//! the conversation into its datapoint, and record the result in one transaction.

use std::collections::HashMap;

use bytes::Bytes;
use uuid::Uuid;

use super::Stages;
use super::fetch::FetchError;
use crate::asr::{AsrError, RoleHints};
use crate::audio::probe;
use crate::blob::sniff_audio_content_type;
use crate::domain::Domain;
use crate::jobs::{BatchOutcome, ClaimedJob, JobError, JobPayload, JobRunner};
use crate::model::conversation::{AudioCredentials, AudioSource, Conversation};
use crate::model::datapoints::{Datapoint, TranscriptSource};
use crate::model::ingest::{AudioObject, IngestRecord};
use crate::storage::{CallKey, FinishedIngest};

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
    async fn run_batch(&self, jobs: &[ClaimedJob]) -> Vec<BatchOutcome> {
        match process_together(&self.domain, jobs).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                let reason = error.to_string();
                error.log_if_internal();
                jobs.iter()
                    .map(|_| BatchOutcome::Ran(Err(JobError::Transient(reason.clone()))))
                    .collect()
            }
        }
    }

    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let ingest_id = match job.payload {
            JobPayload::IngestV1 { ingest_id } => ingest_id,
            JobPayload::MonitorBackfillV1 { backfill_id } => {
                return self.domain.run_backfill(backfill_id).await.map_err(transient);
            }
        };
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
        let now = self.domain.clock.now();
        match job.payload {
            JobPayload::IngestV1 { ingest_id } => {
                self.domain
                    .storage
                    .fail_job(
                        job.id,
                        ingest_id,
                        job.input.as_deref(),
                        job.attempts,
                        reason,
                        retry_at,
                        now,
                    )
                    .await
            }
            JobPayload::MonitorBackfillV1 { backfill_id } => {
                self.domain.storage.fail_backfill(backfill_id, reason, retry_at, now).await
            }
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(transient)`
/// A storage or other internal error as a retried job failure: the ingest's error (which
/// clients see) says what was being done, the log says why.
fn transient(error: crate::Error) -> JobError {
    error.log_if_internal();
    JobError::Transient(error.to_string())
}

/// The ingest jobs of a batch whose conversations carry no audio, processed together: their
/// ingests loaded in one query, their existing datapoints in another, merged in order (two
/// ingests of one call merge one after the other), and stored in one transaction. Jobs with
/// audio (a download, a probe, a transcription) are left to run alone. When the shared commit
/// fails, each result is committed on its own, so one bad result fails alone.
async fn process_together(
    domain: &Domain,
    jobs: &[ClaimedJob],
) -> crate::error::Result<Vec<BatchOutcome>> {
    let storage = &domain.storage;
    let ingest_ids: Vec<Option<Uuid>> = jobs.iter().map(|job| job.payload.ingest_id()).collect();
    let mut loaded: HashMap<Uuid, (IngestRecord, Conversation)> = storage
        .load_ingests(jobs)
        .await?
        .into_iter()
        .map(|(record, conversation)| (record.id, (record, conversation)))
        .collect();
    let mut outcomes: Vec<Option<BatchOutcome>> = Vec::with_capacity(jobs.len());
    let mut quick = Vec::new();
    for (index, ingest_id) in ingest_ids.iter().enumerate() {
        // Other jobs (a backfill) run alone.
        let Some(ingest_id) = ingest_id else {
            outcomes.push(Some(BatchOutcome::RunAlone));
            continue;
        };
        match loaded.remove(ingest_id) {
            None => outcomes.push(Some(BatchOutcome::Ran(Err(JobError::Permanent(format!(
                "ingest {ingest_id} no longer exists or is done"
            )))))),
            Some((_, conversation)) if conversation.audio.is_some() => {
                outcomes.push(Some(BatchOutcome::RunAlone));
            }
            Some(ingest) => {
                outcomes.push(None);
                quick.push((index, ingest));
            }
        }
    }
    let keys: Vec<CallKey<'_>> = quick
        .iter()
        .map(|(_, (record, conversation))| CallKey {
            organization_id: record.organization_id,
            project_id: record.project_id,
            provider: &conversation.provider,
            call_id: &conversation.call_id,
        })
        .collect();
    let mut current: HashMap<(Uuid, String, String), Datapoint> = storage
        .find_datapoints(&keys)
        .await?
        .into_iter()
        .map(|datapoint| {
            (
                (datapoint.project_id, datapoint.provider.clone(), datapoint.call_id.clone()),
                datapoint,
            )
        })
        .collect();
    let stored: std::collections::HashSet<Uuid> =
        current.values().map(|datapoint| datapoint.id).collect();
    let now = domain.clock.now();
    let mut merged = Vec::with_capacity(quick.len());
    for (_, (record, conversation)) in &quick {
        let key = (record.project_id, conversation.provider.clone(), conversation.call_id.clone());
        let datapoint = merge_quick(current.remove(&key), record, conversation, now);
        current.insert(key, datapoint.clone());
        merged.push(datapoint);
    }
    let finished: Vec<FinishedIngest<'_>> = quick
        .iter()
        .zip(&merged)
        .map(|((index, (record, _)), datapoint)| FinishedIngest {
            job_id: jobs[*index].id,
            ingest_id: record.id,
            attempts: jobs[*index].attempts,
            datapoint,
            new: !stored.contains(&datapoint.id),
        })
        .collect();
    let started = std::time::Instant::now();
    let committed = storage.finish_ingests(&finished, now).await;
    tracing::debug!(
        jobs = finished.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "batch of results committed"
    );
    let results: Vec<Result<(), JobError>> = match committed {
        Ok(()) => finished.iter().map(|_| Ok(())).collect(),
        Err(error) => {
            error.log_if_internal();
            tracing::warn!(
                jobs = finished.len(),
                "a batch of results failed to commit; committing them one by one"
            );
            let mut results = Vec::with_capacity(finished.len());
            for (result, (_, (record, conversation))) in finished.iter().zip(&quick) {
                // A batch of one has just failed alone.
                let stored = finished.len() > 1
                    && storage.finish_ingests(std::slice::from_ref(result), now).await.is_ok();
                results.push(if stored {
                    Ok(())
                } else {
                    let merge = |existing| merge_quick(existing, record, conversation, now);
                    store_merged_again(domain, result, conversation, merge).await
                });
            }
            results
        }
    };
    for (((index, _), result), datapoint) in quick.iter().zip(results).zip(&merged) {
        if result.is_ok() {
            domain.metrics.datapoint_written();
            tracing::debug!(job_id = %jobs[*index].id, datapoint_id = %datapoint.id, "ingest processed");
        }
        outcomes[*index] = Some(BatchOutcome::Ran(result));
    }
    Ok(outcomes.into_iter().map(|outcome| outcome.unwrap_or(BatchOutcome::RunAlone)).collect())
}

pub async fn process_ingest(
    domain: &Domain,
    stages: &Stages,
    job: &ClaimedJob,
    ingest_id: Uuid,
) -> Result<ProcessOutcome, JobError> {
    let storage = &domain.storage;
    let (record, mut conversation) =
        storage.load_ingest(job).await.map_err(transient)?.ok_or_else(|| {
            JobError::Permanent(format!("ingest {ingest_id} no longer exists or is done"))
        })?;
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
    let mut speech_coverage = None;
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
        let started = std::time::Instant::now();
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
        domain.metrics.transcribed(started.elapsed(), transcript.duration_ms);
        speech_coverage = transcript.speech_coverage();
        conversation.turns = transcript.turns;
        conversation.duration_ms = conversation.duration_ms.or(Some(transcript.duration_ms));
        speaker_labels_estimated = Some(transcript.speaker_labels_estimated);
    }
    let existing = storage
        .find_datapoint(CallKey {
            organization_id: record.organization_id,
            project_id: record.project_id,
            provider: &conversation.provider,
            call_id: &conversation.call_id,
        })
        .await
        .map_err(transient)?;
    let now = domain.clock.now();
    let merge = |existing| {
        let mut datapoint = Datapoint::merge(
            existing,
            &conversation,
            audio_id,
            record.organization_id,
            record.project_id,
            record.id,
            now,
        );
        if let Some(estimated) = speaker_labels_estimated {
            datapoint.transcript_source = TranscriptSource::Asr;
            datapoint.speaker_labels_estimated = estimated;
            datapoint.metrics.speech_coverage = speech_coverage;
        }
        datapoint
    };
    let new = existing.is_none();
    let datapoint = merge(existing);
    let finished = FinishedIngest {
        job_id: job.id,
        ingest_id,
        attempts: job.attempts,
        datapoint: &datapoint,
        new,
    };
    if storage.finish_ingests(&[finished], now).await.is_err() {
        store_merged_again(domain, &finished, &conversation, merge).await?;
    }
    domain.metrics.datapoint_written();
    Ok(ProcessOutcome::Done { datapoint_id: datapoint.id })
}

/// A conversation without audio merged into its call's datapoint (`existing`, or a new one).
fn merge_quick(
    existing: Option<Datapoint>,
    record: &IngestRecord,
    conversation: &Conversation,
    now: chrono::DateTime<chrono::Utc>,
) -> Datapoint {
    Datapoint::merge(
        existing,
        conversation,
        None,
        record.organization_id,
        record.project_id,
        record.id,
        now,
    )
}

/// Stores a result whose commit failed, merged again into its call's datapoint as the database
/// has it now. Two ingests of one call processed at once (by two workers) both find no datapoint
/// and both create one; the second commit meets the first's datapoint (a unique violation).
/// Merged into that one, it is an update and succeeds; another failure is the job's.
async fn store_merged_again(
    domain: &Domain,
    failed: &FinishedIngest<'_>,
    conversation: &Conversation,
    merge: impl FnOnce(Option<Datapoint>) -> Datapoint,
) -> Result<(), JobError> {
    let storage = &domain.storage;
    let existing = storage
        .find_datapoint(CallKey {
            organization_id: failed.datapoint.organization_id,
            project_id: failed.datapoint.project_id,
            provider: &conversation.provider,
            call_id: &conversation.call_id,
        })
        .await
        .map_err(transient)?;
    let new = existing.is_none();
    let datapoint = merge(existing);
    let again = FinishedIngest { datapoint: &datapoint, new, ..*failed };
    storage.finish_ingests(&[again], domain.clock.now()).await.map_err(transient)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::jobs::JobStatus;
    use crate::model::commit::IngestWrite;
    use crate::model::datapoints::DatapointQuery;
    use crate::model::ingest::IngestState;
    use crate::storage::ingest_tests::new_ingest;

    /// Quick jobs of a batch are stored together, two ingests of one call merged one after the
    /// other (the later one's tags added to the earlier's); a job with audio is left to run
    /// alone, untouched.
    #[tokio::test]
    async fn a_batch_runs_its_quick_jobs_together_and_leaves_audio_alone() {
        let clock = Arc::new(ManualClock::new(
            chrono::Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
        ));
        let (domain, _audio) = crate::domain::test_support::domain(clock.clone()).await;
        let organization = crate::storage::testing::organization(&domain.storage).await;
        let project = Uuid::now_v7();
        let mut first = new_ingest(organization, project, "call-a");
        first.conversation.tags = vec!["first".into()];
        let mut second = new_ingest(organization, project, "call-a");
        second.conversation.tags = vec!["second".into()];
        second.dedup_key = crate::model::ingest::dedup_key(&second.conversation);
        let other = new_ingest(organization, project, "call-b");
        let mut with_audio = new_ingest(organization, project, "call-c");
        with_audio.conversation.audio = Some(AudioSource::Stored { audio_id: Uuid::now_v7() });
        let ids = [first.id, second.id, other.id, with_audio.id];
        let write =
            IngestWrite { ingests: vec![first, second, other, with_audio], ..Default::default() };
        domain
            .storage
            .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), clock.now())
            .await
            .unwrap();
        let queue = domain.storage.queue();
        let mut jobs =
            queue.claim("w", clock.now(), std::time::Duration::from_secs(30), 10).await.unwrap();
        jobs.sort_by_key(|job| ids.iter().position(|id| *id == job.id));

        let outcomes = process_together(&domain, &jobs).await.unwrap();
        let ran: Vec<bool> = outcomes
            .iter()
            .map(|outcome| match outcome {
                BatchOutcome::Ran(result) => result.is_ok(),
                BatchOutcome::RunAlone => false,
            })
            .collect();
        assert_eq!(ran, [true, true, true, false], "{outcomes:?}");
        assert!(matches!(outcomes[3], BatchOutcome::RunAlone));

        let found = domain
            .storage
            .search_datapoints(
                organization,
                &DatapointQuery { page_size: 10, project_id: Some(project), ..Default::default() },
            )
            .await
            .unwrap();
        let calls: Vec<(&str, &[String])> = found
            .iter()
            .map(|view| (view.datapoint.call_id.as_str(), view.datapoint.tags.as_slice()))
            .collect();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls.contains(&("call-a", &["first".to_owned(), "second".to_owned()][..])));
        for id in &ids[..3] {
            let ingest = domain.storage.get_ingest(organization, *id).await.unwrap().unwrap();
            assert_eq!((ingest.state, ingest.attempts), (IngestState::Done, 1));
        }
        let waiting = domain.storage.get_ingest(organization, ids[3]).await.unwrap().unwrap();
        assert_eq!(waiting.state, IngestState::Queued);
        // Succeeded jobs leave the queue; the ingests record the success.
        assert_eq!(queue.count(JobStatus::Succeeded).await.unwrap(), 0);
        assert_eq!(queue.count(JobStatus::Queued).await.unwrap(), 0);
        assert_eq!(queue.count(JobStatus::Running).await.unwrap(), 1);
    }

    /// Two ingests of one call run by two workers at once: both may find no datapoint and create
    /// one; the later commit then meets the earlier's datapoint and is merged into it. Both
    /// ingests end done, on one datapoint holding both ingests' tags.
    #[tokio::test(flavor = "current_thread")]
    async fn two_workers_on_one_call_end_on_one_datapoint() {
        let clock = Arc::new(ManualClock::new(
            chrono::Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
        ));
        let (domain, _audio) = crate::domain::test_support::domain(clock.clone()).await;
        let organization = crate::storage::testing::organization(&domain.storage).await;
        let project = Uuid::now_v7();
        let mut first = new_ingest(organization, project, "call-race");
        first.conversation.tags = vec!["first".into()];
        first.dedup_key = crate::model::ingest::dedup_key(&first.conversation);
        let mut second = new_ingest(organization, project, "call-race");
        second.conversation.tags = vec!["second".into()];
        second.dedup_key = crate::model::ingest::dedup_key(&second.conversation);
        let ids = [first.id, second.id];
        let write = IngestWrite { ingests: vec![first, second], ..Default::default() };
        domain
            .storage
            .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), clock.now())
            .await
            .unwrap();
        let queue = domain.storage.queue();
        let lease = std::time::Duration::from_secs(30);
        let one = queue.claim("w1", clock.now(), lease, 1).await.unwrap();
        let two = queue.claim("w2", clock.now(), lease, 1).await.unwrap();

        let (one, two) =
            tokio::join!(process_together(&domain, &one), process_together(&domain, &two));
        for outcome in one.unwrap().into_iter().chain(two.unwrap()) {
            assert!(matches!(outcome, BatchOutcome::Ran(Ok(()))), "{outcome:?}");
        }
        let stored = crate::storage::testing::stored_call(
            &domain.storage,
            organization,
            project,
            "custom",
            "call-race",
        )
        .await
        .unwrap();
        let mut tags = stored.tags.clone();
        tags.sort();
        assert_eq!(tags, ["first", "second"]);
        for id in ids {
            let ingest = domain.storage.get_ingest(organization, id).await.unwrap().unwrap();
            assert_eq!((ingest.state, ingest.datapoint_id), (IngestState::Done, Some(stored.id)));
        }
    }
}
