//! Datapoints: the one searchable record kept per call (project, provider, call id).
//!
//! A later event of the same call enriches the datapoint: present fields of the new conversation
//! win, absent ones keep what was there, tags are united and metadata keys merged.

use uuid::Uuid;

use super::Domain;
use crate::error::{Error, Result};
use crate::model::auth::{Principal, Scope};
use crate::model::datapoints::{
    DEFAULT_SEARCH_PAGE, DatapointCursor, DatapointPage, DatapointQuery, DatapointView,
    MAX_SEARCH_PAGE, RelevanceCursor, SearchOrder,
};
use crate::model::deliveries::WebhookDelivery;
use crate::model::ingest::IngestRecord;

impl Domain {
    pub async fn search_datapoints(
        &self,
        principal: &Principal,
        mut query: DatapointQuery,
    ) -> Result<DatapointPage> {
        principal.require(Scope::Read)?;
        query.check()?;
        match query.project_id {
            Some(project_id) => {
                self.project_for(principal, project_id).await?;
            }
            None => query.project_id = principal.project_id,
        }
        query.page_size = match query.page_size {
            0 => DEFAULT_SEARCH_PAGE,
            size => size.min(MAX_SEARCH_PAGE),
        };
        let page_size = query.page_size;
        query.page_size += 1;
        if query.order == SearchOrder::Relevance {
            let mut found =
                self.storage.search_by_relevance(principal.organization_id, &query).await?;
            let next_page_token =
                super::finish_page_with(&mut found, page_size, |(last, score)| {
                    RelevanceCursor { score: *score, id: last.datapoint.id }.to_token()
                });
            let datapoints = found.into_iter().map(|(view, _)| view).collect();
            return Ok(DatapointPage { datapoints, next_page_token });
        }
        let mut found = self.storage.search_datapoints(principal.organization_id, &query).await?;
        let next_page_token = super::finish_page_with(&mut found, page_size, |last| {
            DatapointCursor::after(&last.datapoint).to_token()
        });
        Ok(DatapointPage { datapoints: found, next_page_token })
    }

    pub async fn get_datapoint(&self, principal: &Principal, id: Uuid) -> Result<DatapointView> {
        principal.require(Scope::Read)?;
        let not_found = || Error::not_found(format!("datapoint {id} not found"));
        let view = self
            .storage
            .get_datapoint(principal.organization_id, id)
            .await?
            .ok_or_else(not_found)?;
        if !principal.may_access_project(view.datapoint.project_id) {
            return Err(not_found());
        }
        Ok(view)
    }

    /// What stored a call: its ingests (each delivery or SDK request that carried it) and the
    /// webhook deliveries behind them, newest first, at most `limit` of each.
    pub async fn call_history(
        &self,
        principal: &Principal,
        datapoint: &crate::model::datapoints::Datapoint,
        limit: usize,
    ) -> Result<(Vec<IngestRecord>, Vec<WebhookDelivery>)> {
        principal.require(Scope::Read)?;
        if !principal.may_access_project(datapoint.project_id) {
            return Err(Error::not_found(format!("datapoint {} not found", datapoint.id)));
        }
        let ingests = self
            .storage
            .call_ingests(
                principal.organization_id,
                datapoint.project_id,
                &datapoint.provider,
                &datapoint.call_id,
                limit,
            )
            .await?;
        let ids: Vec<Uuid> = ingests.iter().map(|ingest| ingest.id).collect();
        let deliveries = self.storage.ingest_deliveries(&ids, limit).await?;
        Ok((ingests, deliveries))
    }
}
