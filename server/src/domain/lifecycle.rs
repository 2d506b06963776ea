//! Deletion on request, retention, and the removal of recordings no call names any more.
//!
//! A deletion takes its calls in batches of `LifecycleSettings::batch_size`, one transaction
//! each (`Storage::delete_calls`), so a deletion of many calls leaves intake its turns at
//! writing; every batch adds its counts to the audit record. A call deleted and then delivered
//! again is stored again as new: nothing of it is kept to recognise it by.

use uuid::Uuid;

use super::Domain;
use crate::error::{Error, Result};
use crate::model::auth::{Principal, Scope};
use crate::model::datapoints::{DatapointCursor, DatapointPage, DatapointQuery, DatapointView};
use crate::model::lifecycle::{CallRef, Deletion, DeletionReason, Removed};

/// The most datapoint ids one deletion request may name.
pub const MAX_DELETE_IDS: usize = 1000;

/// What a deletion request names: datapoints by id, or every call matching a search filter
/// (a call id or a context token among them).
#[derive(Clone, Debug, Default)]
pub struct DeleteRequest {
    pub datapoint_ids: Vec<Uuid>,
    /// Its paging fields are ignored.
    pub filter: DatapointQuery,
}

/// Recordings the audio store's sweep takes at a time.
const BLOB_SWEEP: usize = 500;

impl Domain {
    /// Deletes the calls `request` names, each with everything stored of it (datapoint, search
    /// rows, ingests and their payloads, delivery bodies, and its recording unless another
    /// call names it), and returns the audit record with what went. Needs the admin scope.
    pub async fn delete_datapoints(
        &self,
        principal: &Principal,
        request: DeleteRequest,
    ) -> Result<Deletion> {
        principal.require(Scope::Admin)?;
        let DeleteRequest { datapoint_ids, mut filter } = request;
        filter.check().map_err(in_filter)?;
        let by_ids = !datapoint_ids.is_empty();
        if by_ids && has_filter(&filter) {
            return Err(Error::invalid(
                "datapoint_ids",
                "give datapoint ids or a filter, not both",
            ));
        }
        if !by_ids && !has_filter(&filter) {
            return Err(Error::invalid(
                "filter",
                "names no call: give datapoint ids, a call id, a context token or other filters \
                 (a project id alone deletes every call of that project)",
            ));
        }
        if datapoint_ids.len() > MAX_DELETE_IDS {
            return Err(Error::invalid(
                "datapoint_ids",
                format!("at most {MAX_DELETE_IDS} ids a request"),
            ));
        }
        match filter.project_id {
            Some(project_id) => {
                self.project_for(principal, project_id).await?;
            }
            None => filter.project_id = principal.project_id,
        }
        let mut deletion = Deletion {
            id: Uuid::now_v7(),
            organization_id: principal.organization_id,
            project_id: filter.project_id,
            actor: format!("api_key:{}", principal.api_key_id),
            reason: DeletionReason::Request,
            filter: if by_ids {
                serde_json::json!({ "datapoint_ids": datapoint_ids })
            } else {
                filter_json(&filter)
            },
            requested_at: self.clock.now(),
            finished_at: None,
            removed: Removed::default(),
        };
        let batch = self.settings.lifecycle.batch_size;
        if by_ids {
            for ids in datapoint_ids.chunks(batch) {
                let calls: Vec<CallRef> = self
                    .storage
                    .calls_by_ids(principal.organization_id, ids)
                    .await?
                    .into_iter()
                    .filter(|call| principal.may_access_project(call.project_id))
                    .collect();
                self.delete_batch(&mut deletion, &calls).await?;
            }
        } else {
            loop {
                let calls =
                    self.storage.matching_calls(principal.organization_id, &filter, batch).await?;
                if calls.is_empty() {
                    break;
                }
                self.delete_batch(&mut deletion, &calls).await?;
                if calls.len() < batch {
                    break;
                }
            }
        }
        self.finish_deletion(&mut deletion).await?;
        tracing::info!(
            deletion_id = %deletion.id,
            actor = %deletion.actor,
            datapoints = deletion.removed.datapoints,
            recordings = deletion.removed.recordings,
            "deleted calls on request"
        );
        Ok(deletion)
    }

    /// The organization's deletions, newest first (requests and retention sweeps). Needs the
    /// admin scope.
    pub async fn list_deletions(
        &self,
        principal: &Principal,
        page_size: usize,
        page_token: &str,
    ) -> Result<(Vec<Deletion>, Option<String>)> {
        principal.require(Scope::Admin)?;
        let before = super::decode_page_token(page_token)?;
        let page_size = if page_size == 0 { 50 } else { page_size.min(500) };
        let mut deletions = self
            .storage
            .list_deletions(principal.organization_id, before, page_size + 1)
            .await?
            .into_iter()
            .filter(|deletion| {
                principal.project_id.is_none() || deletion.project_id == principal.project_id
            })
            .collect();
        let next = super::finish_page(&mut deletions, page_size, |deletion| deletion.id);
        Ok((deletions, next))
    }

    /// Removes what every project's retention says has expired, a batch at a time: calls older
    /// than the datapoint retention, then recordings older than the audio retention; then the
    /// recordings whose grace is over. Each project's sweep that removed something leaves an
    /// audit record. Returns what was removed.
    pub async fn sweep_retention(&self) -> Result<Removed> {
        let mut total = Removed::default();
        let batch = self.settings.lifecycle.batch_size;
        for project in self.storage.projects_with_retention().await? {
            let now = self.clock.now();
            let record = |reason: DeletionReason, days: u32| Deletion {
                id: Uuid::now_v7(),
                organization_id: project.organization_id,
                project_id: Some(project.id),
                actor: "retention".to_owned(),
                reason,
                filter: serde_json::json!({
                    "project_id": project.id,
                    "older_than_days": days,
                }),
                requested_at: now,
                finished_at: None,
                removed: Removed::default(),
            };
            if let Some(days) = project.retention.datapoint_days {
                let before = now - chrono::Duration::days(days.into());
                let mut deletion = record(DeletionReason::Retention, days);
                loop {
                    let calls = self.storage.calls_before(project.id, before, batch).await?;
                    if calls.is_empty() {
                        break;
                    }
                    self.delete_batch(&mut deletion, &calls).await?;
                    if calls.len() < batch {
                        break;
                    }
                }
                if !deletion.removed.is_empty() {
                    self.finish_deletion(&mut deletion).await?;
                    total.add(deletion.removed);
                }
            }
            if let Some(days) = project.retention.audio_days {
                let before = now - chrono::Duration::days(days.into());
                let mut deletion = record(DeletionReason::AudioRetention, days);
                loop {
                    let calls = self.storage.recordings_before(project.id, before, batch).await?;
                    if calls.is_empty() {
                        break;
                    }
                    let due = self.clock.now() + self.settings.lifecycle.audio_grace;
                    let removed = self.storage.drop_recordings(&calls, &deletion, due).await?;
                    deletion.removed.add(removed);
                    if calls.len() < batch {
                        break;
                    }
                }
                if !deletion.removed.is_empty() {
                    self.finish_deletion(&mut deletion).await?;
                    total.add(deletion.removed);
                }
            }
        }
        self.remove_orphan_blobs().await?;
        Ok(total)
    }

    /// Removes from the audio store the recordings whose grace is over and that no audio
    /// object names again; returns how many blobs went.
    pub async fn remove_orphan_blobs(&self) -> Result<u64> {
        let mut removed = 0;
        loop {
            let due = self.storage.due_orphan_blobs(self.clock.now(), BLOB_SWEEP).await?;
            if due.is_empty() {
                return Ok(removed);
            }
            let mut done = Vec::with_capacity(due.len());
            for blob in &due {
                if !blob.still_used {
                    self.blobs.delete(&blob.blob_key).await?;
                    removed += 1;
                }
                done.push(blob.blob_key.clone());
            }
            self.storage.forget_orphan_blobs(&done).await?;
            if due.len() < BLOB_SWEEP {
                return Ok(removed);
            }
        }
    }

    async fn delete_batch(&self, deletion: &mut Deletion, calls: &[CallRef]) -> Result<()> {
        let due = self.clock.now() + self.settings.lifecycle.audio_grace;
        let removed = self.storage.delete_calls(calls, deletion, due).await?;
        deletion.removed.add(removed);
        Ok(())
    }

    /// Marks the audit record finished (creating it when no batch ran), and removes at once the
    /// recordings that are due (with no grace configured, the ones this deletion left).
    async fn finish_deletion(&self, deletion: &mut Deletion) -> Result<()> {
        deletion.finished_at = Some(self.clock.now());
        self.storage.record_deletion(deletion, Removed::default()).await?;
        if self.settings.lifecycle.audio_grace <= chrono::Duration::zero() {
            self.remove_orphan_blobs().await?;
        }
        Ok(())
    }
}

/// Calls an export reads a page at a time.
const EXPORT_PAGE: usize = 500;

/// The URL that downloads the recording of `datapoint_id` with an API key.
pub fn audio_url(public_base_url: &str, datapoint_id: Uuid) -> String {
    format!("{public_base_url}/v0/datapoints/{datapoint_id}/audio")
}

impl Domain {
    /// Every datapoint matching `filter` that the key can see, newest call first, read a page
    /// at a time after the last one sent (the searches' cursor), so each call comes once and
    /// memory stays at a page. The first page is read before this returns: a bad filter is an
    /// error here, not in the stream. Needs the read scope.
    pub async fn export_datapoints(
        &self,
        principal: Principal,
        mut filter: DatapointQuery,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<DatapointView>>> {
        use futures_util::StreamExt;
        filter.check().map_err(in_filter)?;
        filter.page_size = EXPORT_PAGE;
        filter.offset = 0;
        // An export follows the searches' own order, whatever was asked.
        filter.order = crate::model::datapoints::SearchOrder::NewestFirst;
        filter.after_relevance = None;
        let first = self.search_datapoints(&principal, filter.clone()).await?;
        let domain = self.clone();
        let pages = futures_util::stream::unfold(Export::Page(first, filter), move |state| {
            let domain = domain.clone();
            let principal = principal.clone();
            async move {
                match state {
                    Export::Done => None,
                    // This page's calls, then the page after its last.
                    Export::Page(page, filter) => {
                        let next = match (&page.next_page_token, page.datapoints.last()) {
                            (Some(_), Some(last)) => Export::Fetch(DatapointQuery {
                                before: Some(DatapointCursor::after(&last.datapoint)),
                                ..filter
                            }),
                            _ => Export::Done,
                        };
                        Some((page.datapoints.into_iter().map(Ok).collect(), next))
                    }
                    Export::Fetch(filter) => {
                        match domain.search_datapoints(&principal, filter.clone()).await {
                            Ok(page) => Some((Vec::new(), Export::Page(page, filter))),
                            Err(error) => Some((vec![Err(error)], Export::Done)),
                        }
                    }
                }
            }
        });
        Ok(pages.flat_map(futures_util::stream::iter).boxed())
    }
}

/// Where an export stands.
enum Export {
    Page(DatapointPage, DatapointQuery),
    Fetch(DatapointQuery),
    Done,
}

/// A violation of the search filter of a request that nests it, named as nested.
fn in_filter(error: Error) -> Error {
    match error {
        Error::InvalidArgument(violations) => Error::InvalidArgument(
            violations
                .into_iter()
                .map(|violation| crate::error::FieldViolation {
                    field: format!("filter.{}", violation.field),
                    description: violation.description,
                })
                .collect(),
        ),
        other => other,
    }
}

/// Whether `query` names anything to match (paging aside).
fn has_filter(query: &DatapointQuery) -> bool {
    query.project_id.is_some()
        || query.context_token.is_some()
        || query.call_id.is_some()
        || query.source.is_some()
        || query.provider.is_some()
        || !query.tags_any.is_empty()
        || !query.tags_all.is_empty()
        || !query.metadata_equals.is_empty()
        || query.from.is_some()
        || query.to.is_some()
        || query.text_contains.is_some()
        || query.integration_id.is_some()
}

/// The filter of a deletion as its audit record keeps it: the fields given.
fn filter_json(query: &DatapointQuery) -> serde_json::Value {
    let mut filter = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        filter.insert(key.to_owned(), value);
    };
    if let Some(project_id) = query.project_id {
        put("project_id", project_id.to_string().into());
    }
    if let Some(token) = &query.context_token {
        put("context_token", token.clone().into());
    }
    if let Some(call_id) = &query.call_id {
        put("call_id", call_id.clone().into());
    }
    if let Some(source) = query.source {
        put("source", source.as_str().into());
    }
    if let Some(provider) = &query.provider {
        put("provider", provider.clone().into());
    }
    if !query.tags_any.is_empty() {
        put("tags_any", query.tags_any.clone().into());
    }
    if !query.tags_all.is_empty() {
        put("tags_all", query.tags_all.clone().into());
    }
    if !query.metadata_equals.is_empty() {
        put(
            "metadata_equals",
            query
                .metadata_equals
                .iter()
                .map(|(key, value)| (key.clone(), serde_json::Value::from(value.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
    }
    if let Some(from) = query.from {
        put("start_time", from.to_rfc3339().into());
    }
    if let Some(to) = query.to {
        put("end_time", to.to_rfc3339().into());
    }
    if let Some(text) = &query.text_contains {
        put("text_contains", text.clone().into());
    }
    if let Some(integration_id) = query.integration_id {
        put("integration_id", integration_id.to_string().into());
    }
    serde_json::Value::Object(filter)
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
