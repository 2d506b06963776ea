//! The data lifecycle: export, deletion, its audit log, and retention.

use earshot_proto::v1 as pb;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use crate::client::{Client, missing};
use crate::datapoints::DatapointQuery;
use crate::error::{Error, Result};

/// How long a deletion may take before the client stops waiting: large deletions run in
/// batches on the server and answer when all are done.
const DELETE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

impl Client {
    /// Every datapoint matching `query` (its page size and token are ignored), newest call
    /// first, each once, as a stream read a page at a time. Without a project in the query the
    /// client's project is exported. With `include_audio_links`, calls with a stored recording
    /// carry an `audio_url` to download it with the API key.
    ///
    /// ```no_run
    /// # async fn run(client: earshot::Client) -> earshot::Result<()> {
    /// use futures_util::TryStreamExt;
    /// let mut calls = client
    ///     .export_datapoints(earshot::DatapointQuery::new().provider("retell"), false)
    ///     .await?;
    /// while let Some(item) = calls.try_next().await? {
    ///     println!("{}", item.datapoint.map(|d| d.call_id).unwrap_or_default());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn export_datapoints(
        &self,
        query: DatapointQuery,
        include_audio_links: bool,
    ) -> Result<BoxStream<'static, Result<pb::ExportDatapointsResponse>>> {
        let mut filter = query.into_proto();
        if filter.project_id.is_empty() {
            filter.project_id = self.project_or_default(None);
        }
        let mut client = self.datapoints.clone();
        let request = pb::ExportDatapointsRequest { filter: Some(filter), include_audio_links };
        let stream = client.export_datapoints(request).await?.into_inner();
        Ok(stream.map_err(Error::from).boxed())
    }

    /// Deletes these datapoints' calls with everything stored of them (admin scope); returns
    /// the audit record, with what was removed.
    pub async fn delete_datapoints(
        &self,
        datapoint_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<pb::Deletion> {
        let request = pb::DeleteDatapointsRequest {
            datapoint_ids: datapoint_ids.into_iter().map(Into::into).collect(),
            filter: None,
        };
        self.delete(request).await
    }

    /// Deletes every call matching `query` (a call id, a context token, or any search filter;
    /// its page size and token are ignored) with everything stored of it (admin scope). A query
    /// that names nothing is refused; the client's project is added only to a query that names
    /// something, so an empty query never deletes a whole project.
    pub async fn delete_matching(&self, query: DatapointQuery) -> Result<pb::Deletion> {
        let mut filter = query.into_proto();
        let names_something = filter
            != pb::SearchDatapointsRequest {
                page_size: filter.page_size,
                page_token: filter.page_token.clone(),
                ..Default::default()
            };
        if filter.project_id.is_empty() && names_something {
            filter.project_id = self.project_or_default(None);
        }
        self.delete(pb::DeleteDatapointsRequest { datapoint_ids: Vec::new(), filter: Some(filter) })
            .await
    }

    async fn delete(&self, request: pb::DeleteDatapointsRequest) -> Result<pb::Deletion> {
        let mut client = self.datapoints.clone();
        let mut request = tonic::Request::new(request);
        request.set_timeout(DELETE_TIMEOUT.max(self.timeout));
        let response = match tokio::time::timeout(
            DELETE_TIMEOUT.max(self.timeout),
            client.delete_datapoints(request),
        )
        .await
        {
            Ok(result) => result?.into_inner(),
            Err(_) => return Err(Error::deadline_exceeded(DELETE_TIMEOUT.max(self.timeout))),
        };
        response.deletion.ok_or_else(|| missing("deletion"))
    }

    /// The organization's deletions, by request and by retention, newest first (admin scope).
    pub async fn list_deletions(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListDeletionsResponse> {
        let mut client = self.datapoints.clone();
        let request = pb::ListDeletionsRequest { page_size, page_token: page_token.to_owned() };
        self.unary(client.list_deletions(self.request(request))).await
    }

    /// Replaces how long a project keeps its calls, its recordings and its webhook deliveries
    /// (admin scope): a field left `None` keeps calls and recordings forever, and deliveries as
    /// the server's settings say.
    ///
    /// ```no_run
    /// # async fn run(client: earshot::Client) -> earshot::Result<()> {
    /// let retention = earshot::proto::ProjectRetention {
    ///     datapoint_days: Some(365),
    ///     audio_days: Some(90),
    ///     ..Default::default()
    /// };
    /// client.set_project_retention("0193...", retention).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_project_retention(
        &self,
        project_id: &str,
        retention: pb::ProjectRetention,
    ) -> Result<pb::Project> {
        let mut grpc = self.projects.clone();
        let request = pb::SetProjectRetentionRequest {
            project_id: project_id.to_owned(),
            retention: Some(retention),
        };
        let response = self.unary(grpc.set_project_retention(self.request(request))).await?;
        response.project.ok_or_else(|| missing("project"))
    }
}
