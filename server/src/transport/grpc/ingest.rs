//! IngestService over gRPC.

use earshot_proto::v1 as pb;
use earshot_proto::v1::ingest_service_server::IngestService;
use tonic::{Request, Response, Status, Streaming};

use super::auth::authenticate;
use super::convert;
use crate::domain::ingest::{IngestRequest, UploadMetadata};
use crate::domain::{Domain, parse_id};
use crate::error::Error;
use crate::model::conversation::Source;

#[derive(Clone, Debug)]
pub struct IngestApi {
    pub domain: Domain,
}

/// Clients built on earshot's SDKs say so in this metadata key; their calls count as `sdk`.
const SDK_METADATA_KEY: &str = "x-earshot-sdk";

fn optional_id(field: &str, value: &str) -> Result<Option<uuid::Uuid>, Error> {
    if value.is_empty() { Ok(None) } else { parse_id(field, value).map(Some) }
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn ingest_conversations(
        &self,
        request: Request<pb::IngestConversationsRequest>,
    ) -> Result<Response<pb::IngestConversationsResponse>, Status> {
        let principal = authenticate(&request)?;
        let source = if request.metadata().contains_key(SDK_METADATA_KEY) {
            Source::Sdk
        } else {
            Source::Api
        };
        let request = request.into_inner();
        let ingested = self
            .domain
            .ingest_conversations(
                &principal,
                IngestRequest {
                    project_id: optional_id("project_id", &request.project_id)?,
                    conversations: convert::conversation_inputs(request.conversations)?,
                    mut_id: Some(request.mut_id).filter(|id| !id.is_empty()),
                    source,
                },
            )
            .await?;
        Ok(Response::new(pb::IngestConversationsResponse {
            status: "accepted".to_owned(),
            conversations: ingested
                .into_iter()
                .map(|item| pb::IngestedConversation {
                    call_id: item.call_id,
                    context_token: item.context_token,
                    ingest_id: item.ingest_id.to_string(),
                    duplicate: item.duplicate,
                })
                .collect(),
        }))
    }

    async fn upload_audio(
        &self,
        request: Request<Streaming<pb::UploadAudioRequest>>,
    ) -> Result<Response<pb::UploadAudioResponse>, Status> {
        let principal = authenticate(&request)?;
        let mut stream = request.into_inner();
        let metadata = match stream.message().await?.and_then(|message| message.part) {
            Some(pb::upload_audio_request::Part::Metadata(metadata)) => metadata,
            _ => return Err(Error::invalid("metadata", "required in the first message").into()),
        };
        let chunks = futures_util::stream::unfold(stream, |mut stream| async move {
            let chunk = match stream.message().await {
                Ok(None) => return None,
                Ok(Some(message)) => match message.part {
                    Some(pb::upload_audio_request::Part::Chunk(chunk)) => Ok(chunk.into()),
                    Some(pb::upload_audio_request::Part::Metadata(_)) => {
                        Err(Error::invalid("metadata", "must come once, in the first message"))
                    }
                    None => Err(Error::invalid("part", "each message carries metadata or a chunk")),
                },
                Err(status) => Err(Error::invalid(
                    "chunk",
                    format!("the upload stream failed: {}", status.message()),
                )),
            };
            Some((chunk, stream))
        });
        let object = self
            .domain
            .upload_audio(
                &principal,
                UploadMetadata {
                    project_id: optional_id("metadata.project_id", &metadata.project_id)?,
                    content_type: Some(metadata.content_type).filter(|value| !value.is_empty()),
                    sha256: Some(metadata.sha256).filter(|value| !value.is_empty()),
                    size_bytes: Some(metadata.size_bytes).filter(|size| *size > 0),
                },
                Box::pin(chunks),
            )
            .await?;
        Ok(Response::new(pb::UploadAudioResponse {
            audio_id: object.id.to_string(),
            sha256: object.sha256,
            size_bytes: u64::try_from(object.size_bytes).unwrap_or(0),
            content_type: object.content_type,
        }))
    }

    async fn get_ingest_status(
        &self,
        request: Request<pb::GetIngestStatusRequest>,
    ) -> Result<Response<pb::GetIngestStatusResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("ingest_id", &request.get_ref().ingest_id)?;
        let record = self.domain.get_ingest(&principal, id).await?;
        Ok(Response::new(pb::GetIngestStatusResponse {
            status: Some(convert::ingest_status(&record)),
        }))
    }

    async fn list_ingests(
        &self,
        request: Request<pb::ListIngestsRequest>,
    ) -> Result<Response<pb::ListIngestsResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let (records, next) = self
            .domain
            .list_ingests(
                &principal,
                optional_id("project_id", &request.project_id)?,
                convert::ingest_state_from_proto(request.state)?,
                usize::try_from(request.page_size.max(0)).unwrap_or(0),
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListIngestsResponse {
            ingests: records.iter().map(convert::ingest_status).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn retry_ingest(
        &self,
        request: Request<pb::RetryIngestRequest>,
    ) -> Result<Response<pb::RetryIngestResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("ingest_id", &request.get_ref().ingest_id)?;
        let record = self.domain.retry_ingest(&principal, id).await?;
        Ok(Response::new(pb::RetryIngestResponse { status: Some(convert::ingest_status(&record)) }))
    }
}
