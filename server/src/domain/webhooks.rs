//! Storing a call that arrived by webhook, after the provider layer verified and normalized it.

use bytes::Bytes;
use uuid::Uuid;

use super::Domain;
use super::conversation::{AudioSource, Conversation};
use super::deliveries::NewDelivery;
use super::ingest::{IngestOutcome, IngestWrite, NewIngest, dedup_key};
use crate::error::{Error, Result};

/// Whose call it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallOwner {
    pub organization_id: Uuid,
    pub project_id: Uuid,
}

/// What storing a webhook call came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmittedCall {
    pub call_id: String,
    pub ingest_id: Uuid,
    /// The same content was stored before: nothing new was written.
    pub duplicate: bool,
}

impl Domain {
    /// Stores `conversation` in the owner's project, with `inline_audio` (stored first, as the
    /// conversation's audio) when the payload carried it, and the request's `delivery` record
    /// in the same transaction. Returns after the durable commit. Audio URLs go through the
    /// SSRF guard here, and again when a worker fetches them.
    pub async fn admit_webhook_call(
        &self,
        owner: CallOwner,
        mut conversation: Conversation,
        inline_audio: Option<Vec<u8>>,
        delivery: Option<NewDelivery>,
    ) -> Result<AdmittedCall> {
        let mut write = IngestWrite { delivery, ..IngestWrite::default() };
        let mut blobs = Vec::new();
        if let Some(bytes) = inline_audio {
            let object = self
                .inline_audio_object(owner.organization_id, owner.project_id, &bytes)
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
            organization_id: owner.organization_id,
            project_id: owner.project_id,
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
