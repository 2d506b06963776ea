//! Ingest: a batch is validated as a whole, its inline audio stored, then every conversation is
//! written with its job in one group-committed transaction before the caller gets an answer. A
//! repeated delivery of the same content is reported as a duplicate and creates nothing.

use bytes::Bytes;
use uuid::Uuid;

use super::Domain;
use crate::model::auth::{Principal, Scope};
use crate::model::commit::IngestWrite;
use crate::model::conversation::{
    AudioSource, ConversationInput, PendingAudio, Source, validate_batch,
};
use crate::model::ingest::{
    AudioObject, IngestOutcome, IngestRecord, IngestState, NewIngest, audio_object_id, dedup_key,
};
use futures_util::{Stream, StreamExt};

use crate::blob::{BlobStore, BlobWriter, sniff_audio_content_type};
use crate::error::{Error, Result, Violations};

#[derive(Clone, Debug)]
pub struct IngestRequest {
    pub project_id: Option<Uuid>,
    pub conversations: Vec<ConversationInput>,
    pub mut_id: Option<String>,
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestedConversation {
    pub call_id: String,
    pub context_token: String,
    pub ingest_id: Uuid,
    pub duplicate: bool,
}

/// Metadata of an audio upload; the bytes follow.
#[derive(Clone, Debug, Default)]
pub struct UploadMetadata {
    pub project_id: Option<Uuid>,
    pub content_type: Option<String>,
    pub sha256: Option<String>,
    pub size_bytes: Option<u64>,
}

impl Domain {
    /// Validates, stores and acknowledges a batch. Returns only after every conversation (and
    /// its audio) is durably committed.
    pub async fn ingest_conversations(
        &self,
        principal: &Principal,
        request: IngestRequest,
    ) -> Result<Vec<IngestedConversation>> {
        principal.require(Scope::Ingest)?;
        let project_id = self.ingest_project(principal, request.project_id).await?;
        let mut violations = Violations::new();
        let limits = &self.settings.ingest_limits;
        let mut valid = validate_batch(
            request.conversations,
            request.source,
            request.mut_id.as_deref(),
            limits,
            &mut violations,
        );
        violations.into_result()?;

        let mut violations = Violations::new();
        let mut write = IngestWrite::default();
        let mut blobs: Vec<(String, Bytes)> = Vec::new();
        let mut url_checks = tokio::task::JoinSet::new();
        let mut known_audio: std::collections::HashMap<Uuid, bool> =
            std::collections::HashMap::new();
        for (index, item) in valid.iter_mut().enumerate() {
            let field = format!("conversations[{index}].audio");
            match item.audio.take() {
                None => {}
                Some(PendingAudio::Inline(bytes)) => {
                    let Some(object) =
                        self.inline_audio_object(principal.organization_id, project_id, &bytes)
                    else {
                        violations.add(format!("{field}.inline_b64"), NOT_AUDIO);
                        continue;
                    };
                    item.conversation.audio = Some(AudioSource::Stored { audio_id: object.id });
                    if !write.audio_objects.iter().any(|existing| existing.id == object.id) {
                        blobs.push((object.blob_key.clone(), Bytes::from(bytes)));
                        write.audio_objects.push(object);
                    }
                }
                Some(PendingAudio::AudioId(audio_id)) => {
                    // A batch often reuses one upload: each id is looked up once.
                    let exists = match known_audio.get(&audio_id) {
                        Some(exists) => *exists,
                        None => {
                            let exists = self
                                .storage
                                .get_audio_object(principal.organization_id, project_id, audio_id)
                                .await?
                                .is_some();
                            known_audio.insert(audio_id, exists);
                            exists
                        }
                    };
                    if exists {
                        item.conversation.audio = Some(AudioSource::Stored { audio_id });
                    } else {
                        violations.add(
                            format!("{field}.audio_id"),
                            format!(
                                "unknown audio id {audio_id} in this project; upload the file first"
                            ),
                        );
                    }
                }
                Some(PendingAudio::Url(url)) => {
                    let allow_private = self.settings.allow_private_networks;
                    item.conversation.audio =
                        Some(AudioSource::Url { url: url.clone(), credentials: None });
                    url_checks.spawn(async move {
                        (index, crate::ssrf::check_url(&url, allow_private).await)
                    });
                }
            }
        }
        while let Some(checked) = url_checks.join_next().await {
            let (index, result) =
                checked.map_err(|error| Error::internal("checking audio URLs", error))?;
            if let Err(reason) = result {
                violations.add(format!("conversations[{index}].audio.url"), reason);
            }
        }
        violations.into_result()?;

        write.ingests = valid
            .into_iter()
            .map(|item| NewIngest {
                id: Uuid::now_v7(),
                organization_id: principal.organization_id,
                project_id,
                dedup_key: dedup_key(&item.conversation),
                conversation: item.conversation,
            })
            .collect();
        let answers: Vec<(String, String)> = write
            .ingests
            .iter()
            .map(|ingest| {
                (ingest.conversation.call_id.clone(), ingest.conversation.context_token.clone())
            })
            .collect();
        let outcomes = self.commit_ingest(blobs, write).await?;
        Ok(answers
            .into_iter()
            .zip(outcomes)
            .map(|((call_id, context_token), outcome)| IngestedConversation {
                call_id,
                context_token,
                ingest_id: outcome.ingest_id(),
                duplicate: matches!(outcome, IngestOutcome::Duplicate(_)),
            })
            .collect())
    }

    /// Stores an uploaded file as its chunks arrive and returns its audio object (the same one
    /// for the same bytes). The bytes stream to a staging blob while they are hashed, so memory
    /// stays flat whatever the size; nothing is kept when the upload fails or is refused.
    pub async fn upload_audio<S>(
        &self,
        principal: &Principal,
        metadata: UploadMetadata,
        chunks: S,
    ) -> Result<AudioObject>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin,
    {
        principal.require(Scope::Ingest)?;
        if let Some(content_type) = metadata.content_type.as_deref()
            && !is_media_type(content_type)
        {
            return Err(Error::invalid(
                "metadata.content_type",
                "must be a media type such as audio/wav (letters, digits and !#$&^_.+- around \
                 one /, at most 100 bytes)",
            ));
        }
        let project_id = self.ingest_project(principal, metadata.project_id).await?;
        let mut writer = self.blobs.writer().await?;
        let limit = self.settings.max_upload_bytes as u64;
        if let Err(error) = receive_upload(&mut writer, chunks, limit).await {
            writer.abort().await;
            return Err(error);
        }
        let sha256 = writer.sha256_hex();
        let sniffed = sniff_audio_content_type(writer.head());
        if let Err(error) = check_upload(&metadata, writer.size(), &sha256, sniffed) {
            writer.abort().await;
            return Err(error);
        }
        let content_type = metadata
            .content_type
            .filter(|given| given.starts_with("audio/"))
            .or_else(|| sniffed.map(str::to_owned))
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let object = self.audio_object(
            principal.organization_id,
            project_id,
            sha256,
            writer.size(),
            &content_type,
        );
        writer.commit(&self.blobs, &object.blob_key).await?;
        self.storage.insert_audio_object(&object).await?;
        Ok(self
            .storage
            .get_audio_object(principal.organization_id, project_id, object.id)
            .await?
            .unwrap_or(object))
    }

    pub async fn get_ingest(&self, principal: &Principal, id: Uuid) -> Result<IngestRecord> {
        let not_found = || ingest_not_found(id);
        if !principal.has_scope(Scope::Ingest) && !principal.has_scope(Scope::Read) {
            return Err(Error::PermissionDenied(
                "this API key lacks the ingest or read scope".into(),
            ));
        }
        let record =
            self.storage.get_ingest(principal.organization_id, id).await?.ok_or_else(not_found)?;
        if !principal.may_access_project(record.project_id) {
            return Err(not_found());
        }
        Ok(record)
    }

    pub async fn list_ingests(
        &self,
        principal: &Principal,
        project_id: Option<Uuid>,
        state: Option<IngestState>,
        page_size: usize,
        page_token: &str,
    ) -> Result<(Vec<IngestRecord>, Option<String>)> {
        principal.require(Scope::Read)?;
        let before = super::decode_page_token(page_token)?;
        let project_id = self.ingest_project(principal, project_id).await?;
        let page_size = if page_size == 0 { 100 } else { page_size.min(500) };
        let mut records = self
            .storage
            .list_ingests(principal.organization_id, project_id, state, before, page_size + 1)
            .await?;
        let next = super::finish_page(&mut records, page_size, |record| record.id);
        Ok((records, next))
    }

    /// Each reachable project's ingests waiting or stuck, by state (queued, processing,
    /// awaiting transcription, failed, dead), each count stopping at `cap` + 1.
    pub async fn queue_depth(
        &self,
        principal: &Principal,
        cap: u64,
    ) -> Result<Vec<(crate::model::projects::Project, Vec<(IngestState, u64)>)>> {
        principal.require(Scope::Read)?;
        let mut depths = Vec::new();
        for project in self.list_projects(principal).await? {
            let mut counts = Vec::new();
            for state in [
                IngestState::Queued,
                IngestState::Processing,
                IngestState::AwaitingTranscription,
                IngestState::Failed,
                IngestState::Dead,
            ] {
                counts.push((state, self.storage.count_ingests(project.id, state, cap).await?));
            }
            depths.push((project, counts));
        }
        Ok(depths)
    }

    /// Queues a failed or dead ingest again, with a fresh attempt budget.
    pub async fn retry_ingest(&self, principal: &Principal, id: Uuid) -> Result<IngestRecord> {
        principal.require(Scope::Ingest)?;
        let record = self.get_ingest(principal, id).await?;
        if !matches!(record.state, IngestState::Failed | IngestState::Dead) {
            return Err(Error::invalid(
                "ingest_id",
                format!(
                    "ingest is {}; only failed or dead ingests can be retried",
                    record.state.as_str()
                ),
            ));
        }
        // The ingest as the retry left it, queued: a worker woken now may already be at it.
        let requeued = self.storage.requeue_ingest(id, self.clock.now()).await?;
        self.jobs_wakeup.notify_waiters();
        requeued.ok_or_else(|| ingest_not_found(id))
    }

    /// The project a key ingests into: the one named, else the key's own.
    pub async fn ingest_project(
        &self,
        principal: &Principal,
        project_id: Option<Uuid>,
    ) -> Result<Uuid> {
        let project_id = project_id.or(principal.project_id).ok_or_else(|| {
            Error::invalid("project_id", "required (the API key is not restricted to one project)")
        })?;
        self.project_for(principal, project_id).await?;
        Ok(project_id)
    }

    /// Writes `blobs`, then commits `write` through the group-commit writer and wakes the
    /// workers. Audio first: once the rows that point at it commit, it must already be on disk.
    pub(crate) async fn commit_ingest(
        &self,
        blobs: Vec<(String, Bytes)>,
        write: IngestWrite,
    ) -> Result<Vec<IngestOutcome>> {
        for (key, bytes) in blobs {
            self.blobs.put_if_absent(&key, bytes).await?;
        }
        let source = write.ingests.first().map(|ingest| ingest.conversation.source.as_str());
        let started = std::time::Instant::now();
        let committed = self.ingest_writer.submit(write).await?;
        self.metrics.ack_latency(started.elapsed());
        if committed.jobs > 0 {
            self.jobs_wakeup.notify_waiters();
        }
        let outcomes = committed.outcomes;
        if let Some(source) = source {
            let duplicates = outcomes
                .iter()
                .filter(|outcome| matches!(outcome, IngestOutcome::Duplicate(_)))
                .count() as u64;
            self.metrics.acknowledged(source, "duplicate", duplicates);
            self.metrics.acknowledged(source, "created", outcomes.len() as u64 - duplicates);
        }
        Ok(outcomes)
    }

    /// The audio object for inline bytes; `None` when they are not a recognised audio format.
    pub(crate) fn inline_audio_object(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        bytes: &[u8],
    ) -> Option<AudioObject> {
        let content_type = sniff_audio_content_type(bytes)?;
        Some(self.new_audio_object(organization_id, project_id, bytes, content_type))
    }

    pub(crate) fn new_audio_object(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        bytes: &[u8],
        content_type: &str,
    ) -> AudioObject {
        let sha256 = crate::crypto::sha256_hex(bytes);
        self.audio_object(organization_id, project_id, sha256, bytes.len() as u64, content_type)
    }

    fn audio_object(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        sha256: String,
        size_bytes: u64,
        content_type: &str,
    ) -> AudioObject {
        AudioObject {
            id: audio_object_id(project_id, &sha256),
            organization_id,
            project_id,
            blob_key: BlobStore::key_for(&sha256),
            sha256,
            content_type: content_type.to_owned(),
            size_bytes: i64::try_from(size_bytes).unwrap_or(i64::MAX),
            duration_ms: None,
            channels: None,
            sample_rate_hz: None,
            created_at: self.clock.now(),
        }
    }
}

const NOT_AUDIO: &str = "is not a recognised audio format (WAV, MP3, OGG, FLAC, AU, MP4, WebM)";

/// Writes the chunks of an upload, refusing it once it passes `limit` bytes.
async fn receive_upload<S>(writer: &mut BlobWriter, mut chunks: S, limit: u64) -> Result<()>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if writer.size() + chunk.len() as u64 > limit {
            return Err(Error::invalid(
                "chunk",
                format!("the upload exceeds the limit of {limit} bytes"),
            ));
        }
        writer.write(&chunk).await?;
    }
    Ok(())
}

/// What the upload's metadata promised against what arrived.
/// `type/subtype` in RFC 6838 characters, nothing else (no parameters, spaces or line breaks),
/// as stored and echoed back.
fn is_media_type(text: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&byte))
    };
    text.len() <= 100
        && text.split_once('/').is_some_and(|(kind, subtype)| token(kind) && token(subtype))
}

fn check_upload(
    metadata: &UploadMetadata,
    size: u64,
    sha256: &str,
    sniffed: Option<&str>,
) -> Result<()> {
    let mut violations = Violations::new();
    if size == 0 {
        violations.add("chunk", "the upload has no bytes");
    }
    if let Some(expected) = metadata.size_bytes
        && expected != size
    {
        violations.add("metadata.size_bytes", format!("says {expected} bytes but {size} arrived"));
    }
    if let Some(expected) = metadata.sha256.as_deref().filter(|expected| !expected.is_empty())
        && !expected.eq_ignore_ascii_case(sha256)
    {
        violations
            .add("metadata.sha256", format!("does not match the received bytes (sha256 {sha256})"));
    }
    if sniffed.is_none() && size > 0 {
        violations.add("chunk", NOT_AUDIO);
    }
    violations.into_result()
}

/// The answer for an ingest the caller cannot see: unknown, another organization's, or a
/// project the key may not reach.
fn ingest_not_found(id: Uuid) -> Error {
    Error::not_found(format!("ingest {id} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ids_follow_content_and_project() {
        let project = Uuid::now_v7();
        let sha = crate::crypto::sha256_hex(b"x");
        assert_eq!(audio_object_id(project, &sha), audio_object_id(project, &sha));
        assert_ne!(audio_object_id(project, &sha), audio_object_id(Uuid::now_v7(), &sha));
        assert_ne!(
            audio_object_id(project, &sha),
            audio_object_id(project, &crate::crypto::sha256_hex(b"y"))
        );
    }

    #[test]
    fn states_round_trip() {
        for state in ["queued", "processing", "awaiting_transcription", "done", "failed", "dead"] {
            assert_eq!(IngestState::parse(state).unwrap().as_str(), state);
        }
    }
}
