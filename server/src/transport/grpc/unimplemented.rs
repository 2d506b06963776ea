//! IngestService and DatapointService: the contract is served (reflection lists it, clients
//! compile against it) and every method authenticates, then answers UNIMPLEMENTED until the
//! ingest pipeline lands.

use earshot_proto::v1 as pb;
use earshot_proto::v1::datapoint_service_server::DatapointService;
use earshot_proto::v1::ingest_service_server::IngestService;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::authenticate;
use crate::domain::Domain;
use crate::error::Error;

#[derive(Clone, Debug)]
pub struct PendingApi {
    pub domain: Domain,
}

impl PendingApi {
    async fn pending<T>(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        method: &str,
    ) -> Result<T, Status> {
        authenticate(&self.domain, metadata).await?;
        Err(Error::Unimplemented(format!("{method} is not implemented yet")).into())
    }
}

#[tonic::async_trait]
impl IngestService for PendingApi {
    async fn ingest_conversations(
        &self,
        request: Request<pb::IngestConversationsRequest>,
    ) -> Result<Response<pb::IngestConversationsResponse>, Status> {
        self.pending(request.metadata(), "IngestConversations").await
    }

    async fn upload_audio(
        &self,
        request: Request<Streaming<pb::UploadAudioRequest>>,
    ) -> Result<Response<pb::UploadAudioResponse>, Status> {
        self.pending(request.metadata(), "UploadAudio").await
    }

    async fn get_ingest_status(
        &self,
        request: Request<pb::GetIngestStatusRequest>,
    ) -> Result<Response<pb::GetIngestStatusResponse>, Status> {
        self.pending(request.metadata(), "GetIngestStatus").await
    }

    async fn list_ingests(
        &self,
        request: Request<pb::ListIngestsRequest>,
    ) -> Result<Response<pb::ListIngestsResponse>, Status> {
        self.pending(request.metadata(), "ListIngests").await
    }

    async fn retry_ingest(
        &self,
        request: Request<pb::RetryIngestRequest>,
    ) -> Result<Response<pb::RetryIngestResponse>, Status> {
        self.pending(request.metadata(), "RetryIngest").await
    }
}

#[tonic::async_trait]
impl DatapointService for PendingApi {
    type GetDatapointAudioStream = BoxStream<pb::GetDatapointAudioResponse>;

    async fn search_datapoints(
        &self,
        request: Request<pb::SearchDatapointsRequest>,
    ) -> Result<Response<pb::SearchDatapointsResponse>, Status> {
        self.pending(request.metadata(), "SearchDatapoints").await
    }

    async fn get_datapoint(
        &self,
        request: Request<pb::GetDatapointRequest>,
    ) -> Result<Response<pb::GetDatapointResponse>, Status> {
        self.pending(request.metadata(), "GetDatapoint").await
    }

    async fn get_datapoint_audio(
        &self,
        request: Request<pb::GetDatapointAudioRequest>,
    ) -> Result<Response<Self::GetDatapointAudioStream>, Status> {
        self.pending(request.metadata(), "GetDatapointAudio").await
    }
}
