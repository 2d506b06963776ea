//! Checks and monitors: rules that flag bad calls, and the saved filters that apply them to
//! every call stored.

use earshot_proto::v1 as pb;

use crate::client::{Client, missing};
use crate::error::Result;

/// A check's rule: `measure comparator threshold`, e.g.
/// `CheckRule::new("p95_response_latency_ms", "greater_than", "1500")`, or
/// `CheckRule::new("transcript_contains", "equal", "true").phrase("speak to a human")`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckRule(pb::CheckRule);

impl CheckRule {
    pub fn new(
        measure: impl Into<String>,
        comparator: impl Into<String>,
        threshold: impl Into<String>,
    ) -> Self {
        Self(pb::CheckRule {
            measure: measure.into(),
            comparator: comparator.into(),
            threshold: threshold.into(),
            phrase: String::new(),
        })
    }

    /// The words `transcript_contains` looks for.
    #[must_use]
    pub fn phrase(mut self, phrase: impl Into<String>) -> Self {
        self.0.phrase = phrase.into();
        self
    }
}

/// What a monitor is: a name, the calls it looks at (every given filter must match) and its
/// checks, by id.
///
/// ```
/// let monitor = earshot::MonitorDefinition::new("retell quality")
///     .provider("retell")
///     .check("0190...")
///     .check("0191...");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorDefinition {
    name: String,
    description: String,
    filter: pb::MonitorFilter,
    check_ids: Vec<String>,
}

impl MonitorDefinition {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    #[must_use]
    pub fn check(mut self, check_id: impl Into<String>) -> Self {
        self.check_ids.push(check_id.into());
        self
    }

    #[must_use]
    pub fn project_id(mut self, project_id: impl Into<String>) -> Self {
        self.filter.project_id = project_id.into();
        self
    }

    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.filter.provider = provider.into();
        self
    }

    #[must_use]
    pub fn source(mut self, source: pb::Source) -> Self {
        self.filter.source = source as i32;
        self
    }

    #[must_use]
    pub fn tags_any(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.filter.tags_any.extend(tags.into_iter().map(Into::into));
        self
    }

    #[must_use]
    pub fn tags_all(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.filter.tags_all.extend(tags.into_iter().map(Into::into));
        self
    }

    #[must_use]
    pub fn metadata_equals(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.filter.metadata_equals.insert(key.into(), value.into());
        self
    }

    #[must_use]
    pub fn text_contains(mut self, text: impl Into<String>) -> Self {
        self.filter.text_contains = text.into();
        self
    }

    /// Calls the provider judged successful (true) or not (false).
    #[must_use]
    pub fn successful(mut self, successful: bool) -> Self {
        self.filter.successful = Some(successful);
        self
    }

    /// Calls with this provider sentiment (case ignored).
    #[must_use]
    pub fn sentiment(mut self, sentiment: impl Into<String>) -> Self {
        self.filter.sentiment = sentiment.into();
        self
    }

    /// Calls with this provider outcome (case ignored).
    #[must_use]
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.filter.outcome = outcome.into();
        self
    }

    #[must_use]
    pub fn integration_id(mut self, integration_id: impl Into<String>) -> Self {
        self.filter.integration_id = integration_id.into();
        self
    }
}

impl Client {
    /// Creates a check (admin scope). Its name is unique in the organization.
    pub async fn create_check(
        &self,
        name: &str,
        description: &str,
        rule: CheckRule,
    ) -> Result<pb::Check> {
        let mut grpc = self.monitors.clone();
        let request = pb::CreateCheckRequest {
            name: name.to_owned(),
            description: description.to_owned(),
            rule: Some(rule.0),
        };
        let response = self.unary(grpc.create_check(self.request(request))).await?;
        response.check.ok_or_else(|| missing("check"))
    }

    /// Changes a check's rule (a new version when it differs) and, when given, its description.
    pub async fn update_check(
        &self,
        id: &str,
        description: Option<&str>,
        rule: Option<CheckRule>,
    ) -> Result<pb::Check> {
        let mut grpc = self.monitors.clone();
        let request = pb::UpdateCheckRequest {
            id: id.to_owned(),
            description: description.map(str::to_owned),
            rule: rule.map(|rule| rule.0),
        };
        let response = self.unary(grpc.update_check(self.request(request))).await?;
        response.check.ok_or_else(|| missing("check"))
    }

    pub async fn get_check(&self, id: &str) -> Result<pb::Check> {
        let mut grpc = self.monitors.clone();
        let request = pb::GetCheckRequest { id: id.to_owned() };
        let response = self.unary(grpc.get_check(self.request(request))).await?;
        response.check.ok_or_else(|| missing("check"))
    }

    pub async fn list_checks(&self) -> Result<Vec<pb::Check>> {
        let mut grpc = self.monitors.clone();
        let response = self.unary(grpc.list_checks(self.request(pb::ListChecksRequest {}))).await?;
        Ok(response.checks)
    }

    /// Refused while a monitor uses the check.
    pub async fn delete_check(&self, id: &str) -> Result<()> {
        let mut grpc = self.monitors.clone();
        let request = pb::DeleteCheckRequest { id: id.to_owned() };
        self.unary(grpc.delete_check(self.request(request))).await?;
        Ok(())
    }

    /// Creates a monitor (admin scope): every call stored from now on that matches its filter
    /// gets its checks' results.
    pub async fn create_monitor(&self, definition: MonitorDefinition) -> Result<pb::Monitor> {
        let mut grpc = self.monitors.clone();
        let request = pb::CreateMonitorRequest {
            name: definition.name,
            description: definition.description,
            filter: Some(definition.filter),
            check_ids: definition.check_ids,
        };
        let response = self.unary(grpc.create_monitor(self.request(request))).await?;
        response.monitor.ok_or_else(|| missing("monitor"))
    }

    /// Replaces a monitor's whole definition.
    pub async fn update_monitor(
        &self,
        id: &str,
        definition: MonitorDefinition,
    ) -> Result<pb::Monitor> {
        let mut grpc = self.monitors.clone();
        let request = pb::UpdateMonitorRequest {
            id: id.to_owned(),
            name: definition.name,
            description: definition.description,
            filter: Some(definition.filter),
            check_ids: definition.check_ids,
        };
        let response = self.unary(grpc.update_monitor(self.request(request))).await?;
        response.monitor.ok_or_else(|| missing("monitor"))
    }

    pub async fn get_monitor(&self, id: &str) -> Result<pb::Monitor> {
        let mut grpc = self.monitors.clone();
        let request = pb::GetMonitorRequest { id: id.to_owned() };
        let response = self.unary(grpc.get_monitor(self.request(request))).await?;
        response.monitor.ok_or_else(|| missing("monitor"))
    }

    pub async fn list_monitors(&self) -> Result<Vec<pb::Monitor>> {
        let mut grpc = self.monitors.clone();
        let request = pb::ListMonitorsRequest {};
        Ok(self.unary(grpc.list_monitors(self.request(request))).await?.monitors)
    }

    pub async fn delete_monitor(&self, id: &str) -> Result<()> {
        let mut grpc = self.monitors.clone();
        let request = pb::DeleteMonitorRequest { id: id.to_owned() };
        self.unary(grpc.delete_monitor(self.request(request))).await?;
        Ok(())
    }
}

/// A result computed outside earshot (an LLM judge, a reviewer) for one of the organization's
/// checks: `ExternalResult::new(check_id, true).bool_value(false).explanation("...")`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExternalResult(pb::ExternalCheckResult);

impl ExternalResult {
    pub fn new(check_id: impl Into<String>, is_issue: bool) -> Self {
        Self(pb::ExternalCheckResult { check_id: check_id.into(), is_issue, ..Default::default() })
    }

    #[must_use]
    pub fn number_value(mut self, value: f64) -> Self {
        self.0.value = Some(pb::external_check_result::Value::NumberValue(value));
        self
    }

    #[must_use]
    pub fn bool_value(mut self, value: bool) -> Self {
        self.0.value = Some(pb::external_check_result::Value::BoolValue(value));
        self
    }

    #[must_use]
    pub fn text_value(mut self, value: impl Into<String>) -> Self {
        self.0.value = Some(pb::external_check_result::Value::TextValue(value.into()));
        self
    }

    #[must_use]
    pub fn explanation(mut self, explanation: impl Into<String>) -> Self {
        self.0.explanation = explanation.into();
        self
    }
}

impl Client {
    /// Attaches results computed outside earshot to a call (ingest scope); attaching again for
    /// the same check replaces the earlier result. Returns the call as it now reads.
    pub async fn attach_check_results(
        &self,
        datapoint_id: &str,
        results: Vec<ExternalResult>,
    ) -> Result<pb::Datapoint> {
        let mut grpc = self.monitors.clone();
        let request = pb::AttachCheckResultsRequest {
            datapoint_id: datapoint_id.to_owned(),
            results: results.into_iter().map(|result| result.0).collect(),
        };
        let response = self.unary(grpc.attach_check_results(self.request(request))).await?;
        response.datapoint.ok_or_else(|| missing("datapoint"))
    }

    /// Marks the call's issues of these checks resolved, or with `reopen` open again.
    pub async fn resolve_issues(
        &self,
        datapoint_id: &str,
        check_ids: &[&str],
        reopen: bool,
    ) -> Result<pb::Datapoint> {
        let mut grpc = self.monitors.clone();
        let request = pb::ResolveIssuesRequest {
            datapoint_id: datapoint_id.to_owned(),
            check_ids: check_ids.iter().map(|id| (*id).to_owned()).collect(),
            reopen,
        };
        let response = self.unary(grpc.resolve_issues(self.request(request))).await?;
        response.datapoint.ok_or_else(|| missing("datapoint"))
    }
}

/// How a monitor's summary groups calls: by the UTC hour or day they took place in.
pub use pb::SummaryGranularity;

impl Client {
    /// Starts evaluating a monitor over the calls already stored that took place in
    /// `[from, to)` (every stored call without them); returns at once, `get_backfill` reports
    /// its progress.
    pub async fn backfill_monitor(
        &self,
        monitor_id: &str,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<pb::Backfill> {
        let mut grpc = self.monitors.clone();
        let request = pb::BackfillMonitorRequest {
            monitor_id: monitor_id.to_owned(),
            start_time: from.map(crate::conversation::timestamp),
            end_time: to.map(crate::conversation::timestamp),
        };
        let response = self.unary(grpc.backfill_monitor(self.request(request))).await?;
        response.backfill.ok_or_else(|| missing("backfill"))
    }

    pub async fn get_backfill(&self, id: &str) -> Result<pb::Backfill> {
        let mut grpc = self.monitors.clone();
        let request = pb::GetBackfillRequest { id: id.to_owned() };
        let response = self.unary(grpc.get_backfill(self.request(request))).await?;
        response.backfill.ok_or_else(|| missing("backfill"))
    }

    /// A monitor's backfills, newest first.
    pub async fn list_backfills(&self, monitor_id: &str) -> Result<Vec<pb::Backfill>> {
        let mut grpc = self.monitors.clone();
        let request = pb::ListBackfillsRequest { monitor_id: monitor_id.to_owned() };
        Ok(self.unary(grpc.list_backfills(self.request(request))).await?.backfills)
    }

    /// What a monitor found per hour or day on the calls that took place in `[from, to)`
    /// (defaults: the last 48 hours, or 30 days).
    pub async fn monitor_summary(
        &self,
        monitor_id: &str,
        granularity: SummaryGranularity,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<pb::GetMonitorSummaryResponse> {
        let mut grpc = self.monitors.clone();
        let request = pb::GetMonitorSummaryRequest {
            monitor_id: monitor_id.to_owned(),
            granularity: granularity as i32,
            start_time: from.map(crate::conversation::timestamp),
            end_time: to.map(crate::conversation::timestamp),
        };
        self.unary(grpc.get_monitor_summary(self.request(request))).await
    }
}

impl Client {
    /// Polls a backfill until it ends (succeeded or failed), pausing up to half a second
    /// between looks; `DeadlineExceeded` after `timeout`.
    pub async fn wait_for_backfill(
        &self,
        id: &str,
        timeout: std::time::Duration,
    ) -> Result<pb::Backfill> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            let backfill = self.get_backfill(id).await?;
            if backfill.state != "running" {
                return Ok(backfill);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(crate::error::Error::Status {
                    code: tonic::Code::DeadlineExceeded,
                    message: format!(
                        "backfill {id} still running after {timeout:?} ({} of {} calls)",
                        backfill.processed, backfill.total
                    ),
                    field_violations: Vec::new(),
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(500));
        }
    }
}
