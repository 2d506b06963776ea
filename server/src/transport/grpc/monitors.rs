//! MonitorService over gRPC.

use earshot_proto::v1 as pb;
use earshot_proto::v1::monitor_service_server::MonitorService;
use tonic::{Request, Response, Status};

use super::auth::authenticate;
use super::convert;
use crate::domain::monitors::{ExternalResult, MonitorInput, RuleInput};
use crate::domain::{Domain, parse_id};
use crate::model::monitors::MonitorFilter;

#[derive(Clone, Debug)]
pub struct MonitorApi {
    pub domain: Domain,
}

fn rule_input(rule: pb::CheckRule) -> RuleInput {
    RuleInput {
        measure: rule.measure,
        comparator: rule.comparator,
        threshold: rule.threshold,
        phrase: rule.phrase,
    }
}

fn optional_id(field: &str, value: &str) -> Result<Option<uuid::Uuid>, Status> {
    if value.is_empty() { Ok(None) } else { Ok(Some(parse_id(field, value)?)) }
}

fn monitor_input(
    name: String,
    description: String,
    filter: Option<pb::MonitorFilter>,
    check_ids: &[String],
) -> Result<MonitorInput, Status> {
    let filter = filter.unwrap_or_default();
    let non_empty = |value: String| Some(value).filter(|value| !value.is_empty());
    Ok(MonitorInput {
        name,
        description,
        filter: MonitorFilter {
            project_id: optional_id("filter.project_id", &filter.project_id)?,
            provider: non_empty(filter.provider),
            source: convert::source_from_proto(filter.source)?,
            tags_any: filter.tags_any,
            tags_all: filter.tags_all,
            metadata_equals: filter.metadata_equals.into_iter().collect(),
            from: convert::time_filter("filter.start_time", filter.start_time)?,
            to: convert::time_filter("filter.end_time", filter.end_time)?,
            text_contains: non_empty(filter.text_contains),
            integration_id: optional_id("filter.integration_id", &filter.integration_id)?,
            successful: filter.successful,
            sentiment: non_empty(filter.sentiment),
            outcome: non_empty(filter.outcome),
        },
        check_ids: check_ids
            .iter()
            .enumerate()
            .map(|(index, id)| parse_id(&format!("check_ids[{index}]"), id))
            .collect::<Result<_, _>>()?,
    })
}

#[tonic::async_trait]
impl MonitorService for MonitorApi {
    async fn create_check(
        &self,
        request: Request<pb::CreateCheckRequest>,
    ) -> Result<Response<pb::CreateCheckResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let rule = request.rule.map(rule_input);
        let check = self
            .domain
            .create_check(&principal, &request.name, &request.description, rule.as_ref())
            .await?;
        Ok(Response::new(pb::CreateCheckResponse { check: Some(convert::check(&check)) }))
    }

    async fn update_check(
        &self,
        request: Request<pb::UpdateCheckRequest>,
    ) -> Result<Response<pb::UpdateCheckResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let rule = request.rule.map(rule_input);
        let check = self
            .domain
            .update_check(&principal, id, request.description.as_deref(), rule.as_ref())
            .await?;
        Ok(Response::new(pb::UpdateCheckResponse { check: Some(convert::check(&check)) }))
    }

    async fn get_check(
        &self,
        request: Request<pb::GetCheckRequest>,
    ) -> Result<Response<pb::GetCheckResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let check = self.domain.get_check(&principal, id).await?;
        Ok(Response::new(pb::GetCheckResponse { check: Some(convert::check(&check)) }))
    }

    async fn list_checks(
        &self,
        request: Request<pb::ListChecksRequest>,
    ) -> Result<Response<pb::ListChecksResponse>, Status> {
        let principal = authenticate(&request)?;
        let checks = self.domain.list_checks(&principal).await?;
        Ok(Response::new(pb::ListChecksResponse {
            checks: checks.iter().map(convert::check).collect(),
        }))
    }

    async fn delete_check(
        &self,
        request: Request<pb::DeleteCheckRequest>,
    ) -> Result<Response<pb::DeleteCheckResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.domain.delete_check(&principal, id).await?;
        Ok(Response::new(pb::DeleteCheckResponse {}))
    }

    async fn create_monitor(
        &self,
        request: Request<pb::CreateMonitorRequest>,
    ) -> Result<Response<pb::CreateMonitorResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let input =
            monitor_input(request.name, request.description, request.filter, &request.check_ids)?;
        let monitor = self.domain.create_monitor(&principal, input).await?;
        Ok(Response::new(pb::CreateMonitorResponse { monitor: Some(convert::monitor(&monitor)) }))
    }

    async fn update_monitor(
        &self,
        request: Request<pb::UpdateMonitorRequest>,
    ) -> Result<Response<pb::UpdateMonitorResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let input =
            monitor_input(request.name, request.description, request.filter, &request.check_ids)?;
        let monitor = self.domain.update_monitor(&principal, id, input).await?;
        Ok(Response::new(pb::UpdateMonitorResponse { monitor: Some(convert::monitor(&monitor)) }))
    }

    async fn get_monitor(
        &self,
        request: Request<pb::GetMonitorRequest>,
    ) -> Result<Response<pb::GetMonitorResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let monitor = self.domain.get_monitor(&principal, id).await?;
        Ok(Response::new(pb::GetMonitorResponse { monitor: Some(convert::monitor(&monitor)) }))
    }

    async fn list_monitors(
        &self,
        request: Request<pb::ListMonitorsRequest>,
    ) -> Result<Response<pb::ListMonitorsResponse>, Status> {
        let principal = authenticate(&request)?;
        let monitors = self.domain.list_monitors(&principal).await?;
        Ok(Response::new(pb::ListMonitorsResponse {
            monitors: monitors.iter().map(convert::monitor).collect(),
        }))
    }

    async fn delete_monitor(
        &self,
        request: Request<pb::DeleteMonitorRequest>,
    ) -> Result<Response<pb::DeleteMonitorResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.domain.delete_monitor(&principal, id).await?;
        Ok(Response::new(pb::DeleteMonitorResponse {}))
    }

    async fn attach_check_results(
        &self,
        request: Request<pb::AttachCheckResultsRequest>,
    ) -> Result<Response<pb::AttachCheckResultsResponse>, Status> {
        use crate::model::checks::Value;
        use pb::external_check_result::Value as Given;
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let datapoint_id = parse_id("datapoint_id", &request.datapoint_id)?;
        let results = request
            .results
            .into_iter()
            .enumerate()
            .map(|(index, result)| {
                Ok(ExternalResult {
                    check_id: parse_id(&format!("results[{index}].check_id"), &result.check_id)?,
                    value: result.value.map(|value| match value {
                        Given::NumberValue(number) => Value::Number(number),
                        Given::BoolValue(flag) => Value::Bool(flag),
                        Given::TextValue(text) => Value::Text(text),
                    }),
                    is_issue: result.is_issue,
                    explanation: result.explanation,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let view = self.domain.attach_check_results(&principal, datapoint_id, results).await?;
        Ok(Response::new(pb::AttachCheckResultsResponse {
            datapoint: Some(convert::datapoint(&view)),
        }))
    }

    async fn resolve_issues(
        &self,
        request: Request<pb::ResolveIssuesRequest>,
    ) -> Result<Response<pb::ResolveIssuesResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let datapoint_id = parse_id("datapoint_id", &request.datapoint_id)?;
        let check_ids = request
            .check_ids
            .iter()
            .enumerate()
            .map(|(index, id)| parse_id(&format!("check_ids[{index}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        let view = self
            .domain
            .resolve_issues(&principal, datapoint_id, &check_ids, request.reopen)
            .await?;
        Ok(Response::new(pb::ResolveIssuesResponse { datapoint: Some(convert::datapoint(&view)) }))
    }

    async fn backfill_monitor(
        &self,
        request: Request<pb::BackfillMonitorRequest>,
    ) -> Result<Response<pb::BackfillMonitorResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let monitor_id = parse_id("monitor_id", &request.monitor_id)?;
        let from = convert::time_filter("start_time", request.start_time)?;
        let to = convert::time_filter("end_time", request.end_time)?;
        let backfill = self.domain.backfill_monitor(&principal, monitor_id, from, to).await?;
        Ok(Response::new(pb::BackfillMonitorResponse {
            backfill: Some(convert::backfill(&backfill)),
        }))
    }

    async fn get_backfill(
        &self,
        request: Request<pb::GetBackfillRequest>,
    ) -> Result<Response<pb::GetBackfillResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let backfill = self.domain.get_backfill(&principal, id).await?;
        Ok(Response::new(pb::GetBackfillResponse { backfill: Some(convert::backfill(&backfill)) }))
    }

    async fn list_backfills(
        &self,
        request: Request<pb::ListBackfillsRequest>,
    ) -> Result<Response<pb::ListBackfillsResponse>, Status> {
        let principal = authenticate(&request)?;
        let monitor_id = parse_id("monitor_id", &request.get_ref().monitor_id)?;
        let backfills = self.domain.list_backfills(&principal, monitor_id).await?;
        Ok(Response::new(pb::ListBackfillsResponse {
            backfills: backfills.iter().map(convert::backfill).collect(),
        }))
    }

    async fn get_monitor_summary(
        &self,
        request: Request<pb::GetMonitorSummaryRequest>,
    ) -> Result<Response<pb::GetMonitorSummaryResponse>, Status> {
        use crate::model::monitors::Granularity;
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let monitor_id = parse_id("monitor_id", &request.monitor_id)?;
        let granularity = match pb::SummaryGranularity::try_from(request.granularity) {
            Ok(pb::SummaryGranularity::Unspecified | pb::SummaryGranularity::Hour) => {
                Granularity::Hour
            }
            Ok(pb::SummaryGranularity::Day) => Granularity::Day,
            Err(_) => {
                return Err(crate::Error::invalid("granularity", "unknown granularity").into());
            }
        };
        let from = convert::time_filter("start_time", request.start_time)?;
        let to = convert::time_filter("end_time", request.end_time)?;
        let summary =
            self.domain.monitor_summary(&principal, monitor_id, from, to, granularity).await?;
        Ok(Response::new(pb::GetMonitorSummaryResponse {
            buckets: summary.buckets.iter().map(convert::summary_bucket).collect(),
            total: Some(convert::summary_bucket(&summary.total)),
        }))
    }
}
