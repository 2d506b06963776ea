//! Searching datapoints.

use chrono::{DateTime, Utc};
use earshot_proto::v1 as pb;

use crate::conversation::timestamp;

/// Filters for [`Client::search_datapoints`](crate::Client::search_datapoints); they combine
/// with AND. Without a project the client's project is searched.
///
/// ```
/// let query = earshot::DatapointQuery::new()
///     .provider("retell")
///     .tags_any(["escalated", "refund"])
///     .metadata_equals("customer_id", "cust_123")
///     .text_contains("cancel")
///     .page_size(50);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatapointQuery(pb::SearchDatapointsRequest);

impl DatapointQuery {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn project_id(mut self, project_id: impl Into<String>) -> Self {
        self.0.project_id = project_id.into();
        self
    }

    #[must_use]
    pub fn context_token(mut self, context_token: impl Into<String>) -> Self {
        self.0.context_token = context_token.into();
        self
    }

    #[must_use]
    pub fn call_id(mut self, call_id: impl Into<String>) -> Self {
        self.0.call_id = call_id.into();
        self
    }

    /// How calls arrived: webhook, sdk or api.
    #[must_use]
    pub fn source(mut self, source: pb::Source) -> Self {
        self.0.source = source as i32;
        self
    }

    /// The source platform (retell, twilio, ..., custom).
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.0.provider = provider.into();
        self
    }

    /// Datapoints with at least one of these tags.
    #[must_use]
    pub fn tags_any(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.0.tags_any.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Datapoints with every one of these tags.
    #[must_use]
    pub fn tags_all(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.0.tags_all.extend(tags.into_iter().map(Into::into));
        self
    }

    /// `metadata[key] == value`, compared as strings.
    #[must_use]
    pub fn metadata_equals(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.metadata_equals.insert(key.into(), value.into());
        self
    }

    /// Calls that started at or after this time.
    #[must_use]
    pub fn start_time(mut self, start: DateTime<Utc>) -> Self {
        self.0.start_time = Some(timestamp(start));
        self
    }

    /// Calls that started before this time.
    #[must_use]
    pub fn end_time(mut self, end: DateTime<Utc>) -> Self {
        self.0.end_time = Some(timestamp(end));
        self
    }

    /// Words of the transcript, each of which must occur, and phrases in double quotes: whole
    /// words, case- and accent-insensitive.
    #[must_use]
    pub fn text_contains(mut self, text: impl Into<String>) -> Self {
        self.0.text_contains = text.into();
        self
    }

    /// Calls delivered by this integration's webhook.
    #[must_use]
    pub fn integration_id(mut self, integration_id: impl Into<String>) -> Self {
        self.0.integration_id = integration_id.into();
        self
    }

    /// Calls with an issue nobody marked resolved (a failed check of a monitor).
    #[must_use]
    pub fn issues_only(mut self) -> Self {
        self.0.issues_only = true;
        self
    }

    /// Calls on which the check of this name is an unresolved issue.
    #[must_use]
    pub fn failed_check(mut self, name: impl Into<String>) -> Self {
        self.0.failed_check = name.into();
        self
    }

    /// Calls this monitor matched.
    #[must_use]
    pub fn monitor_id(mut self, monitor_id: impl Into<String>) -> Self {
        self.0.monitor_id = monitor_id.into();
        self
    }

    /// Calls the provider judged successful (or, with false, not).
    #[must_use]
    pub fn successful(mut self, successful: bool) -> Self {
        self.0.successful = Some(successful);
        self
    }

    /// Calls with this sentiment from the provider (case ignored).
    #[must_use]
    pub fn sentiment(mut self, sentiment: impl Into<String>) -> Self {
        self.0.sentiment = sentiment.into();
        self
    }

    /// Calls with this outcome from the provider (case ignored).
    #[must_use]
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.0.outcome = outcome.into();
        self
    }

    /// Most relevant first (with `text_contains`): the best transcript matches among the 2,000
    /// newest matching calls, instead of newest first.
    #[must_use]
    pub fn order_by_relevance(mut self) -> Self {
        self.0.order = pb::SearchOrder::Relevance as i32;
        self
    }

    /// At most 500; 0 takes 100.
    #[must_use]
    pub fn page_size(mut self, page_size: i32) -> Self {
        self.0.page_size = page_size;
        self
    }

    /// The `next_page_token` of the previous page.
    #[must_use]
    pub fn page_token(mut self, page_token: impl Into<String>) -> Self {
        self.0.page_token = page_token.into();
        self
    }

    pub(crate) fn into_proto(self) -> pb::SearchDatapointsRequest {
        self.0
    }
}
