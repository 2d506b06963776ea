//! DatapointService over gRPC.

use earshot_proto::v1 as pb;
use earshot_proto::v1::datapoint_service_server::DatapointService;
use futures_util::StreamExt;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::auth::authenticate;
use super::convert;
use crate::domain::{Domain, parse_id};
use crate::model::datapoints::{DatapointCursor, DatapointQuery, RelevanceCursor, SearchOrder};

#[derive(Clone, Debug)]
pub struct DatapointApi {
    pub domain: Domain,
}

/// Size of the chunks GetDatapointAudio streams.
const AUDIO_CHUNK_BYTES: usize = 64 * 1024;

fn non_empty(value: String) -> Option<String> {
    Some(value).filter(|value| !value.is_empty())
}

/// The query of a search request; `prefix` names its fields when it is nested (`filter.`).
fn search_query(
    request: pb::SearchDatapointsRequest,
    prefix: &str,
) -> Result<DatapointQuery, Status> {
    let field = |name: &str| format!("{prefix}{name}");
    let relevance = match pb::SearchOrder::try_from(request.order) {
        Ok(pb::SearchOrder::Relevance) => true,
        Ok(pb::SearchOrder::Unspecified | pb::SearchOrder::NewestFirst) => false,
        Err(_) => {
            return Err(crate::Error::invalid(
                field("order"),
                "must be SEARCH_ORDER_NEWEST_FIRST or SEARCH_ORDER_RELEVANCE",
            )
            .into());
        }
    };
    Ok(DatapointQuery {
        project_id: if request.project_id.is_empty() {
            None
        } else {
            Some(parse_id(&field("project_id"), &request.project_id)?)
        },
        context_token: non_empty(request.context_token),
        call_id: non_empty(request.call_id),
        source: convert::source_from_proto(request.source)?,
        provider: non_empty(request.provider),
        tags_any: request.tags_any,
        tags_all: request.tags_all,
        metadata_equals: request.metadata_equals.into_iter().collect(),
        from: convert::time_filter(&field("start_time"), request.start_time)?,
        to: convert::time_filter(&field("end_time"), request.end_time)?,
        text_contains: non_empty(request.text_contains),
        integration_id: if request.integration_id.is_empty() {
            None
        } else {
            Some(parse_id(&field("integration_id"), &request.integration_id)?)
        },
        page_size: usize::try_from(request.page_size.max(0)).unwrap_or(0),
        before: if relevance { None } else { DatapointCursor::from_token(&request.page_token)? },
        after_relevance: if relevance {
            RelevanceCursor::from_token(&request.page_token)?
        } else {
            None
        },
        order: if relevance { SearchOrder::Relevance } else { SearchOrder::NewestFirst },
        offset: 0,
        issues_only: request.issues_only,
        failed_check: non_empty(request.failed_check),
        monitor_id: if request.monitor_id.is_empty() {
            None
        } else {
            Some(parse_id(&field("monitor_id"), &request.monitor_id)?)
        },
        successful: request.successful,
        sentiment: non_empty(request.sentiment),
        outcome: non_empty(request.outcome),
    })
}

#[tonic::async_trait]
impl DatapointService for DatapointApi {
    type GetDatapointAudioStream = BoxStream<pb::GetDatapointAudioResponse>;
    type ExportDatapointsStream = BoxStream<pb::ExportDatapointsResponse>;

    async fn export_datapoints(
        &self,
        request: Request<pb::ExportDatapointsRequest>,
    ) -> Result<Response<Self::ExportDatapointsStream>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let mut filter = search_query(request.filter.unwrap_or_default(), "filter.")?;
        filter.before = None;
        let links = request.include_audio_links;
        let base = self.domain.settings.public_base_url.clone();
        let views = self.domain.export_datapoints(principal, filter).await?;
        let stream = views.map(move |view| {
            let view = view?;
            let audio_url = match (&view.audio, links) {
                (Some(_), true) => crate::domain::lifecycle::audio_url(&base, view.datapoint.id),
                _ => String::new(),
            };
            Ok(pb::ExportDatapointsResponse {
                datapoint: Some(convert::datapoint(&view)),
                audio_url,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn delete_datapoints(
        &self,
        request: Request<pb::DeleteDatapointsRequest>,
    ) -> Result<Response<pb::DeleteDatapointsResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let datapoint_ids = request
            .datapoint_ids
            .iter()
            .enumerate()
            .map(|(index, id)| parse_id(&format!("datapoint_ids[{index}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = search_query(request.filter.unwrap_or_default(), "filter.")?;
        let deletion = self
            .domain
            .delete_datapoints(
                &principal,
                crate::domain::lifecycle::DeleteRequest { datapoint_ids, filter },
            )
            .await?;
        Ok(Response::new(pb::DeleteDatapointsResponse {
            deletion: Some(convert::deletion(&deletion)),
        }))
    }

    async fn list_deletions(
        &self,
        request: Request<pb::ListDeletionsRequest>,
    ) -> Result<Response<pb::ListDeletionsResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let page_size = usize::try_from(request.page_size.max(0)).unwrap_or(0);
        let (deletions, next) =
            self.domain.list_deletions(&principal, page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListDeletionsResponse {
            deletions: deletions.iter().map(convert::deletion).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn search_datapoints(
        &self,
        request: Request<pb::SearchDatapointsRequest>,
    ) -> Result<Response<pb::SearchDatapointsResponse>, Status> {
        let principal = authenticate(&request)?;
        let query = search_query(request.into_inner(), "")?;
        let page = self.domain.search_datapoints(&principal, query).await?;
        Ok(Response::new(pb::SearchDatapointsResponse {
            datapoints: page.datapoints.iter().map(convert::datapoint).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_datapoint(
        &self,
        request: Request<pb::GetDatapointRequest>,
    ) -> Result<Response<pb::GetDatapointResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let view = self.domain.get_datapoint(&principal, id).await?;
        Ok(Response::new(pb::GetDatapointResponse { datapoint: Some(convert::datapoint(&view)) }))
    }

    async fn get_datapoint_audio(
        &self,
        request: Request<pb::GetDatapointAudioRequest>,
    ) -> Result<Response<Self::GetDatapointAudioStream>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("datapoint_id", &request.get_ref().datapoint_id)?;
        let view = self.domain.get_datapoint(&principal, id).await?;
        let audio = view.audio.ok_or_else(|| {
            crate::Error::not_found(format!("datapoint {id} has no stored audio"))
        })?;
        let blob = self.domain.blobs.stream(&audio.blob_key).await?;
        let info = pb::GetDatapointAudioResponse {
            part: Some(pb::get_datapoint_audio_response::Part::Info(convert::audio_info(&audio))),
        };
        let chunks = blob.flat_map(|result| {
            let messages: Vec<Result<pb::GetDatapointAudioResponse, Status>> = match result {
                Ok(bytes) => bytes
                    .chunks(AUDIO_CHUNK_BYTES)
                    .map(|chunk| {
                        Ok(pb::GetDatapointAudioResponse {
                            part: Some(pb::get_datapoint_audio_response::Part::Chunk(
                                bytes::Bytes::copy_from_slice(chunk).into(),
                            )),
                        })
                    })
                    .collect(),
                Err(error) => vec![Err(Status::from(error))],
            };
            futures_util::stream::iter(messages)
        });
        let stream = futures_util::stream::once(async move { Ok(info) }).chain(chunks);
        Ok(Response::new(Box::pin(stream)))
    }
}
