//! Checks and monitors: their definitions, checked and scoped. Their evaluation happens where
//! datapoints are stored (`storage::monitors::evaluate_into`).

use uuid::Uuid;

use super::Domain;
use crate::error::{Error, Result, Violations};
use crate::model::auth::{Principal, Scope};
use crate::model::checks::{Check, CheckRecord, Rule};
use crate::model::monitors::{
    Backfill, BackfillState, Granularity, Monitor, MonitorFilter, MonitorSummary,
};

/// A rule as the APIs carry it: names and text, checked by `Rule::parse`.
#[derive(Clone, Debug, Default)]
pub struct RuleInput {
    pub measure: String,
    pub comparator: String,
    pub threshold: String,
    pub phrase: String,
}

/// A monitor's definition as the APIs carry it.
#[derive(Clone, Debug, Default)]
pub struct MonitorInput {
    pub name: String,
    pub description: String,
    pub filter: MonitorFilter,
    pub check_ids: Vec<Uuid>,
}

/// Most checks one monitor runs.
pub const MAX_MONITOR_CHECKS: usize = 50;
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 2_000;

impl Domain {
    pub async fn create_check(
        &self,
        principal: &Principal,
        name: &str,
        description: &str,
        rule: Option<&RuleInput>,
    ) -> Result<CheckRecord> {
        super::require_organization_admin(principal, "checks and monitors")?;
        let mut violations = Violations::new();
        let name = checked_name(name, &mut violations);
        check_description(description, &mut violations);
        let rule = match rule {
            Some(rule) => parse_rule(rule, &mut violations),
            None => {
                violations.add("rule", "required");
                None
            }
        };
        violations.into_result()?;
        let (Some(name), Some(rule)) = (name, rule) else {
            return Err(Error::invalid("rule", "required"));
        };
        let now = self.clock.now();
        let stored = CheckRecord {
            check: Check { id: Uuid::now_v7(), name, version: 1, rule },
            organization_id: principal.organization_id,
            description: description.trim().to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.storage.insert_check(&stored).await?;
        Ok(stored)
    }

    pub async fn update_check(
        &self,
        principal: &Principal,
        id: Uuid,
        description: Option<&str>,
        rule: Option<&RuleInput>,
    ) -> Result<CheckRecord> {
        super::require_organization_admin(principal, "checks and monitors")?;
        let mut violations = Violations::new();
        if let Some(description) = description {
            check_description(description, &mut violations);
        }
        let rule = rule.and_then(|rule| parse_rule(rule, &mut violations));
        violations.into_result()?;
        self.storage
            .update_check(
                principal.organization_id,
                id,
                description.map(|description| description.trim().to_owned()),
                rule,
                self.clock.now(),
            )
            .await?
            .ok_or_else(|| Error::not_found("check not found"))
    }

    pub async fn get_check(&self, principal: &Principal, id: Uuid) -> Result<CheckRecord> {
        principal.require(Scope::Read)?;
        self.storage
            .get_check(principal.organization_id, id)
            .await?
            .ok_or_else(|| Error::not_found("check not found"))
    }

    pub async fn list_checks(&self, principal: &Principal) -> Result<Vec<CheckRecord>> {
        principal.require(Scope::Read)?;
        self.storage.list_checks(principal.organization_id).await
    }

    /// Refused while a monitor uses the check.
    pub async fn delete_check(&self, principal: &Principal, id: Uuid) -> Result<()> {
        super::require_organization_admin(principal, "checks and monitors")?;
        let users = self.storage.monitors_using(principal.organization_id, id).await?;
        if !users.is_empty() {
            return Err(Error::invalid(
                "id",
                format!(
                    "the check is used by monitors {}: remove it from them first",
                    users.join(", ")
                ),
            ));
        }
        if self.storage.delete_check(principal.organization_id, id).await? {
            Ok(())
        } else {
            Err(Error::not_found("check not found"))
        }
    }

    pub async fn create_monitor(
        &self,
        principal: &Principal,
        input: MonitorInput,
    ) -> Result<Monitor> {
        super::require_organization_admin(principal, "checks and monitors")?;
        let (name, checks) = self.checked_monitor(principal, &input).await?;
        let now = self.clock.now();
        let monitor = Monitor {
            id: Uuid::now_v7(),
            organization_id: principal.organization_id,
            name,
            description: input.description.trim().to_owned(),
            filter: input.filter,
            checks,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.storage.insert_monitor(&monitor).await?;
        Ok(monitor)
    }

    /// Replaces the whole definition; calls stored from then on are evaluated by it.
    pub async fn update_monitor(
        &self,
        principal: &Principal,
        id: Uuid,
        input: MonitorInput,
    ) -> Result<Monitor> {
        super::require_organization_admin(principal, "checks and monitors")?;
        let existing = self.get_monitor(principal, id).await?;
        let (name, checks) = self.checked_monitor(principal, &input).await?;
        let monitor = Monitor {
            name,
            description: input.description.trim().to_owned(),
            filter: input.filter,
            checks,
            updated_at: self.clock.now(),
            ..existing
        };
        match self.storage.update_monitor(&monitor).await? {
            Some(version) => Ok(Monitor { version, ..monitor }),
            None => Err(Error::not_found("monitor not found")),
        }
    }

    pub async fn get_monitor(&self, principal: &Principal, id: Uuid) -> Result<Monitor> {
        principal.require(Scope::Read)?;
        self.storage
            .get_monitor(principal.organization_id, id)
            .await?
            .ok_or_else(|| Error::not_found("monitor not found"))
    }

    pub async fn list_monitors(&self, principal: &Principal) -> Result<Vec<Monitor>> {
        principal.require(Scope::Read)?;
        self.storage.list_monitors(principal.organization_id).await
    }

    pub async fn delete_monitor(&self, principal: &Principal, id: Uuid) -> Result<()> {
        super::require_organization_admin(principal, "checks and monitors")?;
        if self.storage.delete_monitor(principal.organization_id, id).await? {
            Ok(())
        } else {
            Err(Error::not_found("monitor not found"))
        }
    }

    /// The monitor's name and its checks (each of the organization), every problem named.
    async fn checked_monitor(
        &self,
        principal: &Principal,
        input: &MonitorInput,
    ) -> Result<(String, Vec<Check>)> {
        let mut violations = Violations::new();
        let name = checked_name(&input.name, &mut violations);
        check_description(&input.description, &mut violations);
        if let Err(Error::InvalidArgument(fields)) = input.filter.as_query().check() {
            for field in fields {
                violations.add(format!("filter.{}", field.field), field.description);
            }
        }
        if input.check_ids.is_empty() {
            violations.add("check_ids", "a monitor needs at least one check");
        }
        if input.check_ids.len() > MAX_MONITOR_CHECKS {
            violations.add("check_ids", format!("at most {MAX_MONITOR_CHECKS} checks"));
        }
        let known = self.storage.list_checks(principal.organization_id).await?;
        let mut checks = Vec::with_capacity(input.check_ids.len());
        for (index, id) in input.check_ids.iter().enumerate() {
            if input.check_ids[..index].contains(id) {
                violations.add(format!("check_ids[{index}]"), "given twice");
                continue;
            }
            match known.iter().find(|stored| stored.check.id == *id) {
                Some(stored) => checks.push(stored.check.clone()),
                None => violations.add(format!("check_ids[{index}]"), "no such check"),
            }
        }
        violations.into_result()?;
        Ok((name.unwrap_or_default(), checks))
    }
}

/// Buckets one summary may span.
pub const MAX_SUMMARY_BUCKETS: i64 = 10_000;

impl Domain {
    /// Starts evaluating a monitor over the calls stored in `[from, to)` (every stored call
    /// without them), newest first, by a job whose progress the returned backfill reports. Each
    /// call is evaluated as when it is stored again: by every monitor, its earlier results and
    /// summary contributions replaced, so a backfill gives what live evaluation gives.
    pub async fn backfill_monitor(
        &self,
        principal: &Principal,
        monitor_id: Uuid,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Backfill> {
        super::require_organization_admin(principal, "checks and monitors")?;
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(Error::invalid("end_time", "must be after start_time"));
        }
        let monitor = self.get_monitor(principal, monitor_id).await?;
        let total = self.storage.count_backfill_calls(&monitor, from, to).await?;
        let now = self.clock.now();
        let backfill = Backfill::start(principal.organization_id, monitor_id, from, to, total, now);
        self.storage
            .start_backfill(&backfill, self.settings.monitors.backfill_max_attempts)
            .await?;
        self.jobs_wakeup.notify_waiters();
        Ok(backfill)
    }

    pub async fn get_backfill(&self, principal: &Principal, id: Uuid) -> Result<Backfill> {
        principal.require(Scope::Read)?;
        self.storage
            .get_backfill(principal.organization_id, id)
            .await?
            .ok_or_else(|| Error::not_found("backfill not found"))
    }

    /// A monitor's backfills, newest first.
    pub async fn list_backfills(
        &self,
        principal: &Principal,
        monitor_id: Uuid,
    ) -> Result<Vec<Backfill>> {
        let monitor = self.get_monitor(principal, monitor_id).await?;
        self.storage.list_backfills(principal.organization_id, monitor.id).await
    }

    /// Runs a backfill's job: its batches, one transaction each, until it ends.
    pub async fn run_backfill(&self, id: Uuid) -> Result<()> {
        let monitors = &self.settings.monitors;
        loop {
            let step = self
                .storage
                .backfill_step(id, monitors.backfill_batch_size, self.clock.now())
                .await?;
            match step {
                Some(backfill) if backfill.state == BackfillState::Running => {
                    tracing::debug!(backfill_id = %id, processed = backfill.processed, total = backfill.total, "backfill batch");
                }
                _ => return Ok(()),
            }
            if !monitors.backfill_pause.is_zero() {
                tokio::time::sleep(monitors.backfill_pause).await;
            }
        }
    }

    /// What a monitor found per hour or day (UTC) on the calls that took place in
    /// `[from, to)`, `from` taken back to the start of its bucket: by default the last 48 hours by hour, or the last 30 days by day, up to
    /// the current bucket.
    pub async fn monitor_summary(
        &self,
        principal: &Principal,
        monitor_id: Uuid,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        granularity: Granularity,
    ) -> Result<MonitorSummary> {
        let monitor = self.get_monitor(principal, monitor_id).await?;
        let step = granularity.millis();
        let to_ms = match to {
            Some(to) => to.timestamp_millis(),
            None => granularity.bucket_of(self.clock.now().timestamp_millis()) + step,
        };
        let default_buckets = match granularity {
            Granularity::Hour => 48,
            Granularity::Day => 30,
        };
        // Buckets are whole: a start inside one takes all of it.
        let from_ms = granularity
            .bucket_of(from.map_or(to_ms - default_buckets * step, |from| from.timestamp_millis()));
        if from_ms >= to_ms {
            return Err(Error::invalid("end_time", "must be after start_time"));
        }
        if (to_ms - from_ms) / step > MAX_SUMMARY_BUCKETS {
            return Err(Error::invalid(
                "start_time",
                format!("at most {MAX_SUMMARY_BUCKETS} buckets in one summary"),
            ));
        }
        self.storage.monitor_summary(&monitor, from_ms, to_ms, granularity).await
    }
}

fn checked_name(name: &str, violations: &mut Violations) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        violations.add("name", "required");
        return None;
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        violations
            .add("name", format!("at most {MAX_NAME_CHARS} characters, no control characters"));
        return None;
    }
    Some(name.to_owned())
}

fn check_description(description: &str, violations: &mut Violations) {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        violations.add("description", format!("at most {MAX_DESCRIPTION_CHARS} characters"));
    }
}

fn parse_rule(rule: &RuleInput, violations: &mut Violations) -> Option<Rule> {
    fn optional(text: &str) -> Option<&str> {
        Some(text).filter(|text| !text.trim().is_empty())
    }
    Rule::parse(
        "rule.",
        &rule.measure,
        &rule.comparator,
        optional(&rule.threshold),
        optional(&rule.phrase),
        violations,
    )
}

/// A result computed outside earshot, as the APIs carry it.
#[derive(Clone, Debug)]
pub struct ExternalResult {
    pub check_id: Uuid,
    pub value: Option<crate::model::checks::Value>,
    pub is_issue: bool,
    pub explanation: String,
}

/// Most results one request attaches.
pub const MAX_ATTACHED_RESULTS: usize = 50;

impl Domain {
    /// Attaches results of the organization's checks (at their current versions) to a call the
    /// key can see, and returns the call as it now reads.
    pub async fn attach_check_results(
        &self,
        principal: &Principal,
        datapoint_id: Uuid,
        results: Vec<ExternalResult>,
    ) -> Result<crate::model::datapoints::DatapointView> {
        use crate::model::checks::{CheckValue, Value};
        principal.require(Scope::Ingest)?;
        self.visible_datapoint(principal, datapoint_id).await?;
        let mut violations = Violations::new();
        if results.is_empty() {
            violations.add("results", "at least one");
        }
        if results.len() > MAX_ATTACHED_RESULTS {
            violations.add("results", format!("at most {MAX_ATTACHED_RESULTS}"));
        }
        let checks = self.storage.list_checks(principal.organization_id).await?;
        let mut values = Vec::with_capacity(results.len());
        for (index, result) in results.into_iter().enumerate() {
            let field = |name: &str| format!("results[{index}].{name}");
            if values.iter().any(|value: &CheckValue| value.check_id == result.check_id) {
                violations.add(field("check_id"), "given twice");
                continue;
            }
            let Some(stored) = checks.iter().find(|stored| stored.check.id == result.check_id)
            else {
                violations.add(field("check_id"), "no such check");
                continue;
            };
            if let Some(Value::Number(number)) = &result.value
                && !number.is_finite()
            {
                violations.add(field("number_value"), "must be a finite number");
            }
            if let Some(Value::Text(text)) = &result.value
                && text.chars().count() > crate::model::checks::MAX_TEXT_CHARS
            {
                violations.add(
                    field("text_value"),
                    format!("at most {} characters", crate::model::checks::MAX_TEXT_CHARS),
                );
            }
            if result.explanation.chars().count() > MAX_DESCRIPTION_CHARS {
                violations.add(
                    field("explanation"),
                    format!("at most {MAX_DESCRIPTION_CHARS} characters"),
                );
            }
            values.push(CheckValue {
                name: stored.check.name.clone(),
                value_type: result
                    .value
                    .as_ref()
                    .map_or(stored.check.rule.measure.value_type(), Value::value_type),
                value: result.value,
                check_id: stored.check.id,
                check_version: stored.check.version,
                is_issue: result.is_issue,
                explanation: result.explanation.trim().to_owned(),
            });
        }
        violations.into_result()?;
        let now = self.clock.now();
        let change = self
            .storage
            .attach_check_results(principal.organization_id, datapoint_id, values, now)
            .await?;
        if change == crate::storage::ResultsChange::NoDatapoint {
            return Err(Error::not_found("datapoint not found"));
        }
        self.visible_datapoint(principal, datapoint_id).await
    }

    /// Marks the call's issues of `check_ids` resolved (or, with `reopen`, open again).
    pub async fn resolve_issues(
        &self,
        principal: &Principal,
        datapoint_id: Uuid,
        check_ids: &[Uuid],
        reopen: bool,
    ) -> Result<crate::model::datapoints::DatapointView> {
        principal.require(Scope::Ingest)?;
        self.visible_datapoint(principal, datapoint_id).await?;
        if check_ids.is_empty() {
            return Err(Error::invalid("check_ids", "at least one"));
        }
        let now = self.clock.now();
        let change = self
            .storage
            .resolve_issues(principal.organization_id, datapoint_id, check_ids, reopen, now)
            .await?;
        if change == crate::storage::ResultsChange::NoDatapoint {
            return Err(Error::not_found("datapoint not found"));
        }
        self.visible_datapoint(principal, datapoint_id).await
    }

    /// The call, when it is of the key's organization and a project the key may touch.
    async fn visible_datapoint(
        &self,
        principal: &Principal,
        datapoint_id: Uuid,
    ) -> Result<crate::model::datapoints::DatapointView> {
        match self.storage.get_datapoint(principal.organization_id, datapoint_id).await? {
            Some(view) if principal.may_access_project(view.datapoint.project_id) => Ok(view),
            _ => Err(Error::not_found("datapoint not found")),
        }
    }
}
