//! Storing a call that arrived by webhook, after the provider layer verified and normalized it.

use bytes::Bytes;
use uuid::Uuid;

use super::Domain;
use super::conversation::{AudioSource, Conversation};
use super::ingest::{IngestOutcome, IngestWrite, NewIngest, dedup_key};
use super::integrations::Integration;
use crate::error::{Error, Result};

/// What storing a webhook call came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmittedCall {
    pub call_id: String,
    pub ingest_id: Uuid,
    /// The same content was stored before: nothing new was written.
    pub duplicate: bool,
}

impl Domain {
    /// Stores `conversation` for `integration`'s project, with `inline_audio` (stored first, as
    /// the conversation's audio) when the payload carried it. Returns after the durable commit.
    /// Audio URLs go through the SSRF guard here, and again when a worker fetches them.
    pub async fn admit_webhook_call(
        &self,
        integration: &Integration,
        mut conversation: Conversation,
        inline_audio: Option<Vec<u8>>,
    ) -> Result<AdmittedCall> {
        let mut write = IngestWrite::default();
        let mut blobs = Vec::new();
        if let Some(bytes) = inline_audio {
            let object = self
                .inline_audio_object(integration.organization_id, integration.project_id, &bytes)
                .ok_or_else(|| Error::invalid("audio", "is not a recognised audio format"))?;
            conversation.audio = Some(AudioSource::Stored { audio_id: object.id });
            blobs.push((object.blob_key.clone(), Bytes::from(bytes)));
            write.audio_objects.push(object);
        }
        if let Some(AudioSource::Url { url, .. }) = &conversation.audio {
            crate::ssrf::check_url(url, self.settings.allow_private_networks)
                .await
                .map_err(|reason| Error::invalid("audio.url", reason))?;
        }
        let call_id = conversation.call_id.clone();
        write.ingests.push(NewIngest {
            id: Uuid::now_v7(),
            organization_id: integration.organization_id,
            project_id: integration.project_id,
            dedup_key: dedup_key(&conversation),
            conversation,
        });
        let outcome = self
            .commit_ingest(blobs, write)
            .await?
            .pop()
            .ok_or_else(|| Error::internal("storing a webhook call", "no outcome"))?;
        Ok(AdmittedCall {
            call_id,
            ingest_id: outcome.ingest_id(),
            duplicate: matches!(outcome, IngestOutcome::Duplicate(_)),
        })
    }
}
