//! Checks, monitors and check results. Results of monitors are written by the commits that
//! store datapoints (`evaluate_into`, called by `store_at_intake` and `finish_ingests` with
//! the datapoints they store), so a call is evaluated in the transaction that stores it. A
//! worker's batch of new calls is evaluated and its rows built before the write turn
//! (`EarlyEvaluation`); the turn reads the monitors again and stores that evaluation only if
//! they are unchanged, else evaluates the batch again.
//!
//! A call's results are one row (`datapoint_checks`), whatever the number of checks: a row per
//! result made five monitors of five checks write 25 rows per call and cut the intake rate by
//! 62 % (docs/BENCHMARKS.md). The row names the monitors that matched the call with their
//! results (`StoredMatches`, m0028: values in the order of each monitor version's checks, not
//! keyed by check id) and lists the other results (`StoredResult`: attached, resolved). Open
//! issues get a row each (`check_issues`), for the `failed_check` search. A monitor's
//! explanation is not stored: it follows from the rule of the check version (kept in
//! `check_versions`) and the value.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::entities::{
    check, check_issue, check_version, datapoint, datapoint_check, monitor, monitor_backfill,
    monitor_datapoint, monitor_rollup, monitor_version,
};
use super::rollups::{RollupChanges, by_check, parts_of, take_out};
use super::{Batch, Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::checks::{
    Check, CheckRecord, CheckResult, CheckValue, Origin, Rule, Subject, ValueType,
};
use crate::model::datapoints::Datapoint;
use crate::model::monitors::{self, Monitor, MonitorFilter};

impl Storage {
    /// A new check at version 1. A name the organization already uses is `AlreadyExists`.
    pub async fn insert_check(&self, stored: &CheckRecord) -> Result<(), Error> {
        let context = "creating a check";
        let rule_json = to_json(&stored.check.rule)?;
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let inserted = check::Entity::insert(check::ActiveModel {
            id: Set(stored.check.id.to_string()),
            organization_id: Set(stored.organization_id.to_string()),
            name: Set(stored.check.name.clone()),
            description: Set(stored.description.clone()),
            version: Set(stored.check.version),
            rule_json: Set(rule_json.clone()),
            created_at_ms: Set(to_millis(stored.created_at)),
            updated_at_ms: Set(to_millis(stored.updated_at)),
        })
        .exec(&transaction)
        .await;
        if let Err(error) = inserted {
            return Err(name_taken(error, "a check", &stored.check.name, context));
        }
        insert_version(&transaction, &stored.check, &rule_json, stored.created_at, context).await?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// Replaces a check's description, and its rule when `rule` differs from the current one,
    /// which makes a new version (the old one stays readable by the results it produced).
    /// `None` when the organization has no such check.
    pub async fn update_check(
        &self,
        organization_id: Uuid,
        id: Uuid,
        description: Option<String>,
        rule: Option<Rule>,
        now: DateTime<Utc>,
    ) -> Result<Option<CheckRecord>, Error> {
        let context = "updating a check";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let Some(model) = check::Entity::find_by_id(id.to_string())
            .filter(check::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&transaction)
            .await
            .map_err(db_error(context))?
        else {
            return Ok(None);
        };
        let mut stored = stored_check(model)?;
        if let Some(description) = description {
            stored.description = description;
        }
        if let Some(rule) = rule.filter(|rule| *rule != stored.check.rule) {
            stored.check.rule = rule;
            stored.check.version += 1;
            let rule_json = to_json(&stored.check.rule)?;
            insert_version(&transaction, &stored.check, &rule_json, now, context).await?;
        }
        stored.updated_at = now;
        check::Entity::update_many()
            .col_expr(check::Column::Description, Expr::value(stored.description.clone()))
            .col_expr(check::Column::Version, Expr::value(stored.check.version))
            .col_expr(check::Column::RuleJson, Expr::value(to_json(&stored.check.rule)?))
            .col_expr(check::Column::UpdatedAtMs, Expr::value(to_millis(now)))
            .filter(check::Column::Id.eq(id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(Some(stored))
    }

    pub async fn get_check(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<CheckRecord>, Error> {
        check::Entity::find_by_id(id.to_string())
            .filter(check::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading a check"))?
            .map(stored_check)
            .transpose()
    }

    /// The organization's checks, by name.
    pub async fn list_checks(&self, organization_id: Uuid) -> Result<Vec<CheckRecord>, Error> {
        check::Entity::find()
            .filter(check::Column::OrganizationId.eq(organization_id.to_string()))
            .order_by_asc(check::Column::Name)
            .all(&self.db)
            .await
            .map_err(db_error("listing checks"))?
            .into_iter()
            .map(stored_check)
            .collect()
    }

    /// The monitors of the organization that use check `id`, by name: a check in use is not
    /// deleted.
    pub async fn monitors_using(
        &self,
        organization_id: Uuid,
        check_id: Uuid,
    ) -> Result<Vec<String>, Error> {
        Ok(self
            .list_monitors(organization_id)
            .await?
            .into_iter()
            .filter(|monitor| monitor.checks.iter().any(|check| check.id == check_id))
            .map(|monitor| monitor.name)
            .collect())
    }

    /// Removes a check; its results stay on their datapoints, and its versions stay to explain
    /// them. Whether it existed.
    pub async fn delete_check(&self, organization_id: Uuid, id: Uuid) -> Result<bool, Error> {
        let context = "deleting a check";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let deleted = check::Entity::delete_many()
            .filter(check::Column::Id.eq(id.to_string()))
            .filter(check::Column::OrganizationId.eq(organization_id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?
            .rows_affected;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(deleted > 0)
    }

    /// A new monitor. A name the organization already uses is `AlreadyExists`.
    pub async fn insert_monitor(&self, monitor: &Monitor) -> Result<(), Error> {
        let context = "creating a monitor";
        let check_ids: Vec<String> =
            monitor.checks.iter().map(|check| check.id.to_string()).collect();
        let check_ids_json = to_json(&check_ids)?;
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let inserted = monitor::Entity::insert(monitor::ActiveModel {
            id: Set(monitor.id.to_string()),
            organization_id: Set(monitor.organization_id.to_string()),
            name: Set(monitor.name.clone()),
            description: Set(monitor.description.clone()),
            filter_json: Set(to_json(&monitor.filter)?),
            check_ids_json: Set(check_ids_json.clone()),
            version: Set(monitor.version),
            created_at_ms: Set(to_millis(monitor.created_at)),
            updated_at_ms: Set(to_millis(monitor.updated_at)),
        })
        .exec(&transaction)
        .await;
        if let Err(error) = inserted {
            return Err(name_taken(error, "a monitor", &monitor.name, context));
        }
        insert_monitor_version(&transaction, monitor.id, monitor.version, check_ids_json, context)
            .await?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// Replaces a monitor's name, description, filter and checks: its version, when its list of
    /// checks changed, is the next one (recorded in `monitor_versions`). None when the
    /// organization has no such monitor.
    pub async fn update_monitor(&self, monitor: &Monitor) -> Result<Option<i32>, Error> {
        let context = "updating a monitor";
        let check_ids: Vec<String> =
            monitor.checks.iter().map(|check| check.id.to_string()).collect();
        let check_ids_json = to_json(&check_ids)?;
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let Some(current) = monitor::Entity::find_by_id(monitor.id.to_string())
            .filter(monitor::Column::OrganizationId.eq(monitor.organization_id.to_string()))
            .one(&transaction)
            .await
            .map_err(db_error(context))?
        else {
            return Ok(None);
        };
        let version = if current.check_ids_json == check_ids_json {
            current.version
        } else {
            let version = current.version + 1;
            insert_monitor_version(
                &transaction,
                monitor.id,
                version,
                check_ids_json.clone(),
                context,
            )
            .await?;
            version
        };
        let updated = monitor::Entity::update_many()
            .col_expr(monitor::Column::Name, Expr::value(monitor.name.clone()))
            .col_expr(monitor::Column::Description, Expr::value(monitor.description.clone()))
            .col_expr(monitor::Column::FilterJson, Expr::value(to_json(&monitor.filter)?))
            .col_expr(monitor::Column::CheckIdsJson, Expr::value(check_ids_json))
            .col_expr(monitor::Column::Version, Expr::value(version))
            .col_expr(monitor::Column::UpdatedAtMs, Expr::value(to_millis(monitor.updated_at)))
            .filter(monitor::Column::Id.eq(monitor.id.to_string()))
            .exec(&transaction)
            .await;
        if let Err(error) = updated {
            return Err(name_taken(error, "a monitor", &monitor.name, context));
        }
        transaction.commit().await.map_err(db_error(context))?;
        Ok(Some(version))
    }

    pub async fn get_monitor(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Monitor>, Error> {
        let models = monitor::Entity::find_by_id(id.to_string())
            .filter(monitor::Column::OrganizationId.eq(organization_id.to_string()))
            .all(&self.db)
            .await
            .map_err(db_error("reading a monitor"))?;
        Ok(monitors_from_models(&self.db, models, "reading a monitor").await?.pop())
    }

    /// The organization's monitors, by name, each with its checks at their current versions.
    pub async fn list_monitors(&self, organization_id: Uuid) -> Result<Vec<Monitor>, Error> {
        monitors_of(&self.db, &[organization_id], "listing monitors").await
    }

    /// Removes a monitor with its list of matched calls, its summary and backfills; the
    /// results of its checks stay on the calls, and so its versions' lists of checks, which give
    /// the ids of the results its matches hold (m0028). Whether it existed.
    pub async fn delete_monitor(&self, organization_id: Uuid, id: Uuid) -> Result<bool, Error> {
        let context = "deleting a monitor";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let deleted = monitor::Entity::delete_many()
            .filter(monitor::Column::Id.eq(id.to_string()))
            .filter(monitor::Column::OrganizationId.eq(organization_id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?
            .rows_affected;
        if deleted > 0 {
            let id = id.to_string();
            let mut batch = Batch::new(transaction.get_database_backend());
            batch.push(
                &Query::delete()
                    .from_table(monitor_datapoint::Entity)
                    .and_where(monitor_datapoint::Column::MonitorId.eq(id.clone()))
                    .to_owned(),
            );
            batch.push(
                &Query::delete()
                    .from_table(monitor_rollup::Entity)
                    .and_where(monitor_rollup::Column::MonitorId.eq(id.clone()))
                    .to_owned(),
            );
            batch.push(
                &Query::delete()
                    .from_table(monitor_backfill::Entity)
                    .and_where(monitor_backfill::Column::MonitorId.eq(id))
                    .to_owned(),
            );
            batch.execute(&transaction, context).await?;
        }
        transaction.commit().await.map_err(db_error(context))?;
        Ok(deleted > 0)
    }

    /// The check results of each of `datapoint_ids`, by check name. The ids are of datapoints
    /// the caller has read for its organization.
    pub(super) async fn check_results_of(
        &self,
        datapoint_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<CheckResult>>, Error> {
        let context = "reading check results";
        let mut rows = Vec::new();
        for chunk in datapoint_ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
            for model in super::rollups::results_rows(chunk)
                .all(&self.db)
                .await
                .map_err(db_error(context))?
            {
                rows.push(ResultsRow::of(&model)?);
            }
        }
        let versions = versions_named_by(&self.db, &rows, context).await?;
        let mut stored: Vec<(Uuid, Vec<StoredResult>)> = Vec::with_capacity(rows.len());
        for row in &rows {
            stored.push((row.datapoint_id, row.results(&versions)));
        }
        let versions = versions_of(
            &self.db,
            stored.iter().flat_map(|(_, results)| results.iter()).map(|result| result.check_id),
            context,
        )
        .await?;
        Ok(stored
            .into_iter()
            .map(|(datapoint_id, results)| {
                let mut results: Vec<CheckResult> =
                    results.into_iter().map(|result| result.into_result(&versions)).collect();
                results.sort_by(|a, b| a.value.name.cmp(&b.value.name));
                (datapoint_id, results)
            })
            .collect())
    }
}

/// What a change to one call's results did.
#[derive(Debug, PartialEq, Eq)]
pub enum ResultsChange {
    Done,
    /// The organization has no such call.
    NoDatapoint,
}

impl Storage {
    /// Attaches `results` (external, each for a check of the organization at the version given)
    /// to a call, replacing its earlier results of those checks, in one transaction. A check
    /// whose result on the call a monitor produced is refused (`results[i].check_id`): the
    /// monitor's summary counts that result, and the next evaluation would replace it.
    pub async fn attach_check_results(
        &self,
        organization_id: Uuid,
        datapoint_id: Uuid,
        results: Vec<CheckValue>,
        now: DateTime<Utc>,
    ) -> Result<ResultsChange, Error> {
        self.change_results(
            organization_id,
            datapoint_id,
            now,
            "attaching check results",
            |stored| {
                let mut violations = crate::error::Violations::new();
                for (index, value) in results.iter().enumerate() {
                    if stored.iter().any(|result| {
                        result.check_id == value.check_id && result.origin == Origin::Monitor
                    }) {
                        violations.add(
                            format!("results[{index}].check_id"),
                            "a monitor evaluates this check on the call: attach results to a check no monitor runs",
                        );
                    }
                }
                violations.into_result()?;
                for value in results {
                    stored.retain(|result| result.check_id != value.check_id);
                    stored.push(StoredResult::of(value, Origin::External));
                }
                Ok(())
            },
        )
        .await
    }

    /// Marks the call's results of `check_ids` resolved at `now`, or, with `reopen`, not.
    pub async fn resolve_issues(
        &self,
        organization_id: Uuid,
        datapoint_id: Uuid,
        check_ids: &[Uuid],
        reopen: bool,
        now: DateTime<Utc>,
    ) -> Result<ResultsChange, Error> {
        self.change_results(organization_id, datapoint_id, now, "resolving issues", |stored| {
            for result in stored.iter_mut().filter(|result| check_ids.contains(&result.check_id)) {
                result.resolved_at_ms = if reopen { None } else { Some(to_millis(now)) };
            }
            Ok(())
        })
        .await
    }

    /// Rewrites one call's results with `change` in a write transaction, and with them its
    /// open issues' rows and count.
    async fn change_results(
        &self,
        organization_id: Uuid,
        datapoint_id: Uuid,
        now: DateTime<Utc>,
        context: &'static str,
        change: impl FnOnce(&mut Vec<StoredResult>) -> Result<(), Error>,
    ) -> Result<ResultsChange, Error> {
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let id = datapoint_id;
        let Some(datapoint) = datapoint::Entity::find_by_id(id)
            .filter(datapoint::Column::OrganizationId.eq(organization_id))
            .one(&transaction)
            .await
            .map_err(db_error(context))?
        else {
            return Ok(ResultsChange::NoDatapoint);
        };
        // The monitors that matched the call, and the results they hold, stay in its row.
        let row = datapoint_check::Entity::find_by_id(id)
            .one(&transaction)
            .await
            .map_err(db_error(context))?;
        let (mut stored, matches_json, held) = match row {
            Some(model) => {
                let row = [ResultsRow::of(&model)?];
                let versions = versions_named_by(&transaction, &row, context).await?;
                (row[0].results(&versions), model.matches_json, row[0].held(&versions))
            }
            None => (Vec::new(), String::new(), HashSet::new()),
        };
        change(&mut stored)?;
        let versions =
            versions_of(&transaction, stored.iter().map(|result| result.check_id), context).await?;
        let mut batch = Batch::new(transaction.get_database_backend());
        batch.push(
            &Query::delete()
                .from_table(check_issue::Entity)
                .and_where(check_issue::Column::DatapointId.eq(id))
                .to_owned(),
        );
        batch.push(
            &Query::delete()
                .from_table(datapoint_check::Entity)
                .and_where(datapoint_check::Column::DatapointId.eq(id))
                .to_owned(),
        );
        let open: Vec<check_issue::ActiveModel> = stored
            .iter()
            .filter(|result| result.is_open_issue())
            .map(|result| check_issue::ActiveModel {
                datapoint_id: Set(id),
                check_id: Set(result.check_id.to_string()),
                organization_id: Set(datapoint.organization_id),
                name: Set(result.name(&versions).to_owned()),
                occurred_at_ms: Set(datapoint.occurred_at_ms),
            })
            .collect();
        let count = i32::try_from(open.len()).unwrap_or(i32::MAX);
        batch.insert_rows(open, None);
        if !stored.is_empty() || !matches_json.is_empty() {
            batch.insert_rows(
                vec![datapoint_check::ActiveModel {
                    datapoint_id: Set(id),
                    organization_id: Set(datapoint.organization_id),
                    results_json: Set(listed_json(&listed(&stored, &held))?),
                    matches_json: Set(matches_json),
                    updated_at_ms: Set(to_millis(now)),
                }],
                None,
            );
        }
        batch.push(&open_issues(&[(id, count)]));
        batch.execute(&transaction, context).await?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(ResultsChange::Done)
    }
}

fn is_monitor(origin: &Origin) -> bool {
    *origin == Origin::Monitor
}

/// One result in `datapoint_checks.results_json`, kept small: a call evaluated by 25 checks
/// stores 25 of these, a row larger than the datapoint's own when each carried its name, type
/// and explanation. A monitor's result keeps the check's id (32 hex digits), version, value and
/// verdict; its name and type come from the check version (`check_versions`) and its
/// explanation from the version's rule. An external result keeps all of them. A shipped form
/// is never changed (new fields are optional).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct StoredResult {
    #[serde(rename = "c", with = "uuid::serde::simple")]
    pub(super) check_id: Uuid,
    #[serde(rename = "v")]
    check_version: i32,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub(super) value: Option<crate::model::checks::Value>,
    #[serde(rename = "i", default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) is_issue: bool,
    #[serde(rename = "o", default, skip_serializing_if = "is_monitor")]
    pub(super) origin: Origin,
    /// External results only: a monitor's are its check version's.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    value_type: Option<ValueType>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    explanation: Option<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    resolved_at_ms: Option<i64>,
}

/// A check version as results read it: its name and rule.
struct Version {
    name: String,
    rule: Rule,
}

impl StoredResult {
    fn of(value: CheckValue, origin: Origin) -> Self {
        let external = origin == Origin::External;
        Self {
            check_id: value.check_id,
            check_version: value.check_version,
            value: value.value,
            is_issue: value.is_issue,
            origin,
            name: external.then_some(value.name),
            value_type: external.then_some(value.value_type),
            explanation: external.then_some(value.explanation),
            resolved_at_ms: None,
        }
    }

    fn is_open_issue(&self) -> bool {
        self.is_issue && self.resolved_at_ms.is_none()
    }

    /// Its check's name: its own (an external result's), else its check version's; empty when
    /// neither is known.
    fn name<'a>(&'a self, versions: &'a HashMap<(Uuid, i32), Version>) -> &'a str {
        match (&self.name, versions.get(&(self.check_id, self.check_version))) {
            (Some(name), _) => name,
            (None, Some(version)) => &version.name,
            (None, None) => "",
        }
    }

    fn into_result(self, versions: &HashMap<(Uuid, i32), Version>) -> CheckResult {
        let version = versions.get(&(self.check_id, self.check_version));
        let name = self.name(versions).to_owned();
        let explanation = match (&self.explanation, version) {
            (Some(explanation), _) => explanation.clone(),
            (None, Some(version)) => {
                crate::model::checks::explain(&version.rule, self.value.as_ref(), self.is_issue)
            }
            (None, None) => String::new(),
        };
        let value_type = self
            .value_type
            .or_else(|| self.value.as_ref().map(crate::model::checks::Value::value_type))
            .or_else(|| version.map(|version| version.rule.measure.value_type()))
            .unwrap_or(ValueType::Number);
        CheckResult {
            value: CheckValue {
                name,
                value: self.value,
                value_type,
                check_id: self.check_id,
                check_version: self.check_version,
                is_issue: self.is_issue,
                explanation,
            },
            origin: self.origin,
            resolved_at: self.resolved_at_ms.map(from_millis),
        }
    }
}

/// The monitors that matched a call and their results, as its results row keeps them
/// (`matches_json`, m0028): the call's time when they matched it, and per monitor its key as
/// stored, the version that evaluated the call, whether any of its checks was an issue and its
/// checks' results. With it a call's rows in `monitor_datapoints` are found by their key, and
/// its part taken out of the summaries. A shipped form is never changed:
///
/// `{"t":1796000000000,"m":[["<monitor id>",2,false,[[1,412.5],[3,null],[1,true,true]]]]}`
///
/// Each result is its check's version, its value and, when it is an issue, `true`, in the
/// order of the checks of the monitor's version (`monitor_versions`), which gives their ids: a
/// result takes ten to twenty bytes instead of the fifty it takes with its check's id in
/// `results_json`. A match written by m0028's migration has no results (its call's are all in
/// `results_json`).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct StoredMatches {
    occurred_at_ms: i64,
    monitors: Vec<StoredMatch>,
}

/// One monitor's part of `StoredMatches`.
#[derive(Clone, Debug, PartialEq)]
struct StoredMatch {
    monitor_id: String,
    version: i32,
    is_issue: bool,
    /// Per check of the version, in its order: the check's version, the value, whether it is
    /// an issue.
    results: Option<Vec<HeldResult>>,
}

/// A monitor's result as a match holds it: its check's version, its value, its verdict.
type HeldResult = (i32, Option<crate::model::checks::Value>, bool);

impl StoredMatches {
    /// The stored form, as `evaluate_into` writes it (`MatchesJson`); empty when no monitor
    /// matched.
    #[cfg(test)]
    fn to_json(&self) -> Result<String, Error> {
        let mut json = MatchesJson::new(self.occurred_at_ms);
        for monitor in &self.monitors {
            let results = monitor.results.as_ref().map(|results| {
                results
                    .iter()
                    .map(|(version, value, is_issue)| (*version, value.as_ref(), *is_issue))
            });
            json.push(&monitor.monitor_id, monitor.version, monitor.is_issue, results)?;
        }
        json.finish()
    }

    /// The matches of results row `model`; none when its `matches_json` is empty.
    fn of(model: &datapoint_check::Model) -> Result<Self, Error> {
        use serde_json::Value as Json;
        let context = "reading a call's matches";
        if model.matches_json.is_empty() {
            return Ok(Self { occurred_at_ms: 0, monitors: Vec::new() });
        }
        let malformed = || Error::internal(context, format!("malformed: {}", model.matches_json));
        let json: Json = serde_json::from_str(&model.matches_json)
            .map_err(|error| Error::internal(context, error))?;
        let occurred_at_ms = json.get("t").and_then(Json::as_i64).ok_or_else(malformed)?;
        let version = |json: Option<&Json>| {
            json.and_then(Json::as_i64).and_then(|version| i32::try_from(version).ok())
        };
        let mut monitors = Vec::new();
        for entry in json.get("m").and_then(Json::as_array).ok_or_else(malformed)? {
            let entry = entry.as_array().ok_or_else(malformed)?;
            let results = match entry.get(3) {
                None => None,
                Some(results) => {
                    let mut held = Vec::new();
                    for result in results.as_array().ok_or_else(malformed)? {
                        let result = result.as_array().ok_or_else(malformed)?;
                        let value = match result.get(1) {
                            None | Some(Json::Null) => None,
                            Some(value) => Some(
                                serde_json::from_value(value.clone())
                                    .map_err(|error| Error::internal(context, error))?,
                            ),
                        };
                        let is_issue = result.get(2).and_then(Json::as_bool).unwrap_or(false);
                        held.push((
                            version(result.first()).ok_or_else(malformed)?,
                            value,
                            is_issue,
                        ));
                    }
                    Some(held)
                }
            };
            monitors.push(StoredMatch {
                monitor_id: entry.first().and_then(Json::as_str).ok_or_else(malformed)?.to_owned(),
                version: version(entry.get(1)).ok_or_else(malformed)?,
                is_issue: entry.get(2).and_then(Json::as_bool).ok_or_else(malformed)?,
                results,
            });
        }
        Ok(Self { occurred_at_ms, monitors })
    }

    /// The call's rows in `monitor_datapoints`.
    fn rows(&self, datapoint_id: Uuid) -> Vec<monitor_datapoint::Model> {
        self.monitors
            .iter()
            .map(|monitor| monitor_datapoint::Model {
                monitor_id: monitor.monitor_id.clone(),
                occurred_at_ms: self.occurred_at_ms,
                datapoint_id,
                is_issue: monitor.is_issue,
                monitor_version: monitor.version,
            })
            .collect()
    }

    /// The monitors' results the matches hold, each with its check's id from the check list of
    /// its monitor's version (`versions`); a check in two monitors once. A match whose
    /// version's list is unknown, or of another length, holds none.
    fn results(&self, versions: &MonitorVersions) -> Vec<StoredResult> {
        let mut results: Vec<StoredResult> = Vec::new();
        for monitor in &self.monitors {
            let (Some(held), Some(check_ids)) =
                (&monitor.results, versions.get(&(monitor.monitor_id.clone(), monitor.version)))
            else {
                continue;
            };
            if held.len() != check_ids.len() {
                continue;
            }
            for (check_id, (check_version, value, is_issue)) in check_ids.iter().zip(held) {
                if results.iter().any(|result| result.check_id == *check_id) {
                    continue;
                }
                results.push(StoredResult {
                    check_id: *check_id,
                    check_version: *check_version,
                    value: value.clone(),
                    is_issue: *is_issue,
                    origin: Origin::Monitor,
                    name: None,
                    value_type: None,
                    explanation: None,
                    resolved_at_ms: None,
                });
            }
        }
        results
    }
}

/// A call's `matches_json` (`StoredMatches`' form), written directly as its matches are found,
/// from the results where they are: every evaluated call stores one inside the write turn.
struct MatchesJson {
    json: Vec<u8>,
    monitors: usize,
}

impl MatchesJson {
    fn new(occurred_at_ms: i64) -> Self {
        use std::io::Write;
        let mut json = Vec::with_capacity(192);
        let _infallible = write!(json, r#"{{"t":{occurred_at_ms},"m":["#);
        Self { json, monitors: 0 }
    }

    /// Adds a monitor's match: its key as stored, version and verdict, and, when it holds them,
    /// its checks' results (check version, value, verdict) in its version's order.
    fn push<'v>(
        &mut self,
        monitor_id: &str,
        version: i32,
        is_issue: bool,
        results: Option<impl Iterator<Item = (i32, Option<&'v crate::model::checks::Value>, bool)>>,
    ) -> Result<(), Error> {
        use std::io::Write;
        let failed = |error: serde_json::Error| Error::internal("encoding matches", error);
        let json = &mut self.json;
        if self.monitors > 0 {
            json.push(b',');
        }
        self.monitors += 1;
        json.push(b'[');
        serde_json::to_writer(&mut *json, monitor_id).map_err(failed)?;
        let _infallible = write!(json, ",{version}");
        json.extend_from_slice(if is_issue { b",true" } else { b",false" });
        if let Some(results) = results {
            json.extend_from_slice(b",[");
            for (index, (version, value, is_issue)) in results.enumerate() {
                if index > 0 {
                    json.push(b',');
                }
                let _infallible = write!(json, "[{version},");
                match value {
                    Some(value) => serde_json::to_writer(&mut *json, value).map_err(failed)?,
                    None => json.extend_from_slice(b"null"),
                }
                if is_issue {
                    json.extend_from_slice(b",true");
                }
                json.push(b']');
            }
            json.push(b']');
        }
        json.push(b']');
        Ok(())
    }

    /// The text: empty when no monitor matched.
    fn finish(mut self) -> Result<String, Error> {
        if self.monitors == 0 {
            return Ok(String::new());
        }
        self.json.extend_from_slice(b"]}");
        String::from_utf8(self.json).map_err(|error| Error::internal("encoding matches", error))
    }
}

/// The check ids of monitor versions, by (monitor id as stored, version)
/// (`rollups::monitor_versions_of`).
pub(super) type MonitorVersions = HashMap<(String, i32), Vec<Uuid>>;

/// A call's results row as read, each of its JSON columns parsed once.
pub(super) struct ResultsRow {
    pub(super) datapoint_id: Uuid,
    matches: StoredMatches,
    /// The results of `results_json`.
    listed: Vec<StoredResult>,
}

impl ResultsRow {
    pub(super) fn of(model: &datapoint_check::Model) -> Result<Self, Error> {
        let listed = if model.results_json.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&model.results_json)
                .map_err(|error| Error::internal("reading check results", error))?
        };
        Ok(Self { datapoint_id: model.datapoint_id, matches: StoredMatches::of(model)?, listed })
    }

    /// The call's rows in `monitor_datapoints`.
    pub(super) fn match_rows(&self) -> Vec<monitor_datapoint::Model> {
        self.matches.rows(self.datapoint_id)
    }

    /// The checks whose results the matches hold (`versions` as for `results`).
    fn held(&self, versions: &MonitorVersions) -> HashSet<Uuid> {
        self.matches.results(versions).iter().map(|result| result.check_id).collect()
    }

    /// The call's results: its monitors' results the matches hold (their checks' ids from
    /// `versions`, which holds the versions of the monitors the row names,
    /// `versions_named_by`), and those `results_json` lists (attached results, resolved ones,
    /// and every result of a row written before m0028), which take the place of a held result
    /// of their check.
    pub(super) fn results(&self, versions: &MonitorVersions) -> Vec<StoredResult> {
        let mut results = self.matches.results(versions);
        results.retain(|held| !self.listed.iter().any(|result| result.check_id == held.check_id));
        results.extend(self.listed.iter().cloned());
        results
    }
}

/// The versions of the monitors `rows`' matches name.
pub(super) async fn versions_named_by(
    connection: &impl ConnectionTrait,
    rows: &[ResultsRow],
    context: &'static str,
) -> Result<MonitorVersions, Error> {
    super::rollups::monitor_versions_of(connection, &monitors_named_by(rows), context).await
}

/// The ids of the monitors `rows`' matches name, sorted, each once.
pub(super) fn monitors_named_by(rows: &[ResultsRow]) -> Vec<String> {
    let mut monitors: Vec<String> = rows
        .iter()
        .flat_map(|row| row.matches.monitors.iter().map(|monitor| monitor.monitor_id.clone()))
        .collect();
    monitors.sort_unstable();
    monitors.dedup();
    monitors
}

/// What `results_json` keeps of a call's `results` when its matches hold the results of the
/// `held` checks: every other result (attached, resolved, or of a check no match holds).
fn listed<S: std::hash::BuildHasher>(
    results: &[StoredResult],
    held: &HashSet<Uuid, S>,
) -> Vec<StoredResult> {
    results
        .iter()
        .filter(|result| {
            result.origin != Origin::Monitor
                || result.resolved_at_ms.is_some()
                || !held.contains(&result.check_id)
        })
        .cloned()
        .collect()
}

/// `results` in `results_json`'s form: empty when there are none.
fn listed_json(results: &[StoredResult]) -> Result<String, Error> {
    if results.is_empty() { Ok(String::new()) } else { results_json(results) }
}

/// Every version of `check_ids` (results take their names, types and explanations from them),
/// in one query per chunk of checks.
async fn versions_of(
    connection: &impl ConnectionTrait,
    check_ids: impl IntoIterator<Item = Uuid>,
    context: &'static str,
) -> Result<HashMap<(Uuid, i32), Version>, Error> {
    let mut wanted: Vec<String> = check_ids.into_iter().map(|id| id.to_string()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut versions = HashMap::new();
    for chunk in wanted.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        for model in check_version::Entity::find()
            .filter(check_version::Column::CheckId.is_in(chunk.iter().cloned()))
            .all(connection)
            .await
            .map_err(db_error(context))?
        {
            let rule: Rule = serde_json::from_str(&model.rule_json)
                .map_err(|error| Error::internal(context, error))?;
            versions.insert(
                (parse_uuid(context, &model.check_id)?, model.version),
                Version { name: model.name, rule },
            );
        }
    }
    Ok(versions)
}

/// What each monitor found in one `evaluate_into`: calls matched, and those with an issue.
pub(super) type MonitorCounts = foldhash::HashMap<Uuid, (u64, u64)>;

/// A monitor's check that is an issue on a call, as `check.failed` tells it.
#[derive(Clone, Debug)]
pub(super) struct CheckFailure {
    pub(super) datapoint_id: Uuid,
    pub(super) monitor_id: Uuid,
    pub(super) data: serde_json::Value,
}

/// What one `evaluate_into` found: per monitor, and each failed check.
#[derive(Debug, Default)]
pub(super) struct Evaluated {
    pub(super) counts: MonitorCounts,
    pub(super) failures: Vec<CheckFailure>,
}

/// A monitor as `evaluate_into` writes its matches.
struct Evaluating<'a> {
    /// Its checks' ids, at its current version.
    checks: Vec<Uuid>,
    version: i32,
    /// Its id as stored.
    key: String,
    /// Its version's list of checks (`monitor_versions`).
    listed: &'a [Uuid],
}

/// What the organizations' monitors find on a batch of datapoints (`Prepared::read`, in the
/// transaction that stores them or, for calls not stored before, outside it:
/// `EarlyEvaluation`), which `evaluate_into` writes.
pub(super) struct Prepared<'a> {
    /// The datapoints' organizations, each once: those whose monitors were read.
    organizations: Vec<Uuid>,
    monitors: Vec<Monitor>,
    /// The monitors' versions' lists of checks, in whose order a match holds its results.
    versions: MonitorVersions,
    calls: Vec<PreparedCall<'a>>,
}

/// What the monitors found on one datapoint.
struct PreparedCall<'a> {
    datapoint: &'a Datapoint,
    /// Each matching monitor, and whether any of its checks is an issue.
    monitors: Vec<(Uuid, bool)>,
    /// The monitors' results, one per check.
    results: Vec<StoredResult>,
    /// The names of the checks that are issues (a monitor's stored result leaves its name out).
    names: HashMap<Uuid, String>,
    failures: Vec<CheckFailure>,
}

/// Datapoints' `transcript_search_text` by id, where the caller built them anyway (for the
/// full-text index): the checks read them instead of folding the turns' words again.
pub(super) type SearchTexts<'t> = foldhash::HashMap<Uuid, &'t str>;

impl<'a> Prepared<'a> {
    /// Reads the monitors of `datapoints`' organizations and evaluates them (each datapoint with
    /// its text from `texts` when there). A datapoint given twice (two results of one call in a
    /// batch) counts as the later.
    pub(super) async fn read(
        connection: &impl ConnectionTrait,
        datapoints: &[&'a Datapoint],
        texts: &SearchTexts<'_>,
        context: &'static str,
    ) -> Result<Self, Error> {
        let mut seen = HashSet::with_capacity(datapoints.len());
        let mut latest: Vec<&Datapoint> = datapoints
            .iter()
            .rev()
            .copied()
            .filter(|datapoint| seen.insert(datapoint.id))
            .collect();
        latest.reverse();
        let organizations = organizations_of(&latest);
        let (monitors, versions) =
            monitors_and_versions(connection, &organizations, context).await?;
        Ok(Self::of(organizations, monitors, versions, latest, texts))
    }

    fn of(
        organizations: Vec<Uuid>,
        monitors: Vec<Monitor>,
        versions: MonitorVersions,
        datapoints: Vec<&'a Datapoint>,
        texts: &SearchTexts<'_>,
    ) -> Self {
        let calls = if monitors.is_empty() {
            datapoints
                .into_iter()
                .map(|datapoint| PreparedCall {
                    datapoint,
                    monitors: Vec::new(),
                    results: Vec::new(),
                    names: HashMap::new(),
                    failures: Vec::new(),
                })
                .collect()
        } else {
            datapoints
                .into_iter()
                .map(|datapoint| {
                    PreparedCall::of(&monitors, datapoint, texts.get(&datapoint.id).copied())
                })
                .collect()
        };
        Self { organizations, monitors, versions, calls }
    }
}

impl<'a> PreparedCall<'a> {
    /// `monitors` on `datapoint`, whose `transcript_search_text` is `text` when given.
    fn of(monitors: &[Monitor], datapoint: &'a Datapoint, text: Option<&str>) -> Self {
        let subject = match text {
            Some(text) => Subject::with_search_text(datapoint, text),
            None => Subject::new(datapoint),
        };
        let evaluation = monitors::evaluate(monitors, &subject);
        let mut failures = Vec::new();
        let mut names: HashMap<Uuid, String> = HashMap::new();
        for (monitor_id, _) in evaluation.monitors.iter().filter(|(_, issue)| *issue) {
            let Some(monitor) = monitors.iter().find(|monitor| monitor.id == *monitor_id) else {
                continue;
            };
            for check in &monitor.checks {
                if let Some(value) =
                    evaluation.results.get(&check.id).filter(|value| value.is_issue)
                {
                    names.entry(check.id).or_insert_with(|| check.name.clone());
                    failures.push(CheckFailure {
                        datapoint_id: datapoint.id,
                        monitor_id: *monitor_id,
                        data: crate::model::events::check_failed(datapoint, monitor, check, value),
                    });
                }
            }
        }
        let results = evaluation
            .results
            .into_values()
            .map(|value| StoredResult::of(value, Origin::Monitor))
            .collect();
        Self { datapoint, monitors: evaluation.monitors, results, names, failures }
    }
}

/// A batch of datapoints not stored before, evaluated before its write turn: the statements
/// `evaluate_into` wrote for it and the monitors it was evaluated by, which the turn reads
/// again (`confirm`). The checks, the results' JSON and the rows' values are then built while
/// another writer holds the turn, not in the single writer's turn (docs/BENCHMARKS.md).
pub(super) struct EarlyEvaluation {
    organizations: Vec<Uuid>,
    monitors: Vec<Monitor>,
    statements: Batch,
    evaluated: Evaluated,
}

impl EarlyEvaluation {
    /// Evaluates `datapoints`, none of them stored yet, by the monitors of their
    /// organizations as `connection` (outside any write turn) reads them.
    pub(super) async fn of(
        connection: &impl ConnectionTrait,
        datapoints: &[&Datapoint],
        texts: &SearchTexts<'_>,
        now: DateTime<Utc>,
        context: &'static str,
    ) -> Result<Self, Error> {
        let prepared = Prepared::read(connection, datapoints, texts, context).await?;
        let organizations = prepared.organizations.clone();
        let monitors = prepared.monitors.clone();
        let mut statements = Batch::new(connection.get_database_backend());
        let evaluated =
            evaluate_into(connection, prepared, &HashSet::new(), &mut statements, now, context)
                .await?;
        Ok(Self { organizations, monitors, statements, evaluated })
    }

    /// In the write turn (`connection`): the statements `of` wrote and what it found, if the
    /// monitors (each with its version, filter and checks) are still those it evaluated by;
    /// `None` if any changed since, and the turn evaluates the batch again. Their versions'
    /// lists of checks are not read again: a (monitor, version) row of `monitor_versions` is
    /// written once, by the commit that gives the monitor that version, and never changed, so
    /// the same monitors at the same versions have the same lists (one read fewer in the turn).
    pub(super) async fn confirm(
        self,
        connection: &impl ConnectionTrait,
        context: &'static str,
    ) -> Result<Option<(Batch, Evaluated)>, Error> {
        let monitors = monitors_of(connection, &self.organizations, context).await?;
        let unchanged = monitors == self.monitors;
        Ok(unchanged.then_some((self.statements, self.evaluated)))
    }
}

/// The organizations of `datapoints`, each once.
fn organizations_of(datapoints: &[&Datapoint]) -> Vec<Uuid> {
    let mut organizations: Vec<Uuid> =
        datapoints.iter().map(|datapoint| datapoint.organization_id).collect();
    organizations.sort_unstable();
    organizations.dedup();
    organizations
}

/// Writes, into `batch`, what `prepared` found (on datapoints being stored in the same
/// transaction): each datapoint's results row, its open issues and the monitors it matched
/// (with the version of each), replacing what an earlier evaluation wrote (results attached
/// from outside are kept unless a monitor's check of the same id replaces them), its count of
/// open issues, and the monitors' summaries (what the earlier evaluation had added taken out,
/// what this one found added). `replaced` says which datapoints were stored before: only
/// theirs are read and deleted, in a few queries; no monitor and nothing replaced, no
/// statement.
pub(super) async fn evaluate_into(
    connection: &impl ConnectionTrait,
    prepared: Prepared<'_>,
    replaced: &HashSet<Uuid>,
    batch: &mut Batch,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<Evaluated, Error> {
    let Prepared { monitors, versions, calls, .. } = prepared;
    let stale: Vec<Uuid> = calls
        .iter()
        .filter(|call| replaced.contains(&call.datapoint.id))
        .map(|call| call.datapoint.id)
        .collect();
    let mut counts = MonitorCounts::default();
    let mut failures = Vec::new();
    if monitors.is_empty() && stale.is_empty() {
        return Ok(Evaluated::default());
    }
    let mut rollups = RollupChanges::default();
    // What earlier evaluations and callers stored on the replaced datapoints.
    let mut earlier = take_out(connection, &stale, &mut rollups, context).await?;
    forget_results(batch, &stale, &earlier.matches)?;
    // Per monitor: its checks, its version, its key as stored (spelled out once for all its
    // matches), and its version's list of checks, in whose order a match holds its results
    // (a check deleted since is in the list but not among the checks: its match then holds
    // none, and the results are listed in full).
    let checks_of: foldhash::HashMap<Uuid, Evaluating<'_>> = monitors
        .iter()
        .map(|monitor| {
            let key = monitor.id.to_string();
            let listed =
                versions.get(&(key.clone(), monitor.version)).map_or(&[][..], Vec::as_slice);
            let checks = monitor.checks.iter().map(|check| check.id).collect();
            (monitor.id, Evaluating { checks, version: monitor.version, key, listed })
        })
        .collect();
    let mut rows: Vec<[sea_orm::Value; 5]> = Vec::new();
    let mut issues = Vec::new();
    // (monitor key, time, call, issue, version): each monitor's matches of the batch.
    let mut matched: Vec<(&str, i64, Uuid, bool, i32)> = Vec::new();
    let mut open_counts: Vec<(Uuid, i32)> = Vec::new();
    for call in calls {
        let PreparedCall { datapoint, monitors: evaluated, mut results, names, failures: found } =
            call;
        let id = datapoint.id;
        failures.extend(found);
        let kept: Vec<StoredResult> = earlier
            .results
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .filter(|result| {
                result.origin == Origin::External
                    && !results.iter().any(|fresh| fresh.check_id == result.check_id)
            })
            .collect();
        results.extend(kept);
        let occurred_at_ms = to_millis(datapoint.occurred_at());
        let organization_id = datapoint.organization_id;
        let results_by_check = by_check(&results);
        let mut matches = MatchesJson::new(occurred_at_ms);
        // The checks whose results the matches hold.
        let mut held: foldhash::HashSet<Uuid> = foldhash::HashSet::default();
        // A monitor's results in its version's order.
        let mut ordered: Vec<&StoredResult> = Vec::new();
        for (monitor_id, is_issue) in evaluated {
            let Evaluating { checks: check_ids, version, key: monitor_key, listed } =
                &checks_of[&monitor_id];
            let count = counts.entry(monitor_id).or_default();
            count.0 += 1;
            count.1 += u64::from(is_issue);
            rollups.count(
                monitor_id,
                occurred_at_ms,
                is_issue,
                parts_of(check_ids, &results_by_check),
                1,
            );
            matched.push((monitor_key, occurred_at_ms, id, is_issue, *version));
            ordered.clear();
            ordered.extend(listed.iter().map_while(|id| results_by_check.get(id).copied()));
            let complete = ordered.len() == listed.len();
            if complete {
                held.extend(listed.iter().copied());
            }
            let results = complete.then(|| {
                ordered
                    .iter()
                    .map(|result| (result.check_version, result.value.as_ref(), result.is_issue))
            });
            matches.push(monitor_key, *version, is_issue, results)?;
        }
        let open: Vec<&StoredResult> =
            results.iter().filter(|result| result.is_open_issue()).collect();
        for result in &open {
            issues.push(check_issue::ActiveModel {
                datapoint_id: Set(id),
                check_id: Set(result.check_id.to_string()),
                organization_id: Set(organization_id),
                name: Set(result
                    .name
                    .clone()
                    .or_else(|| names.get(&result.check_id).cloned())
                    .unwrap_or_default()),
                occurred_at_ms: Set(occurred_at_ms),
            });
        }
        // A fresh datapoint is stored with no open issues.
        if !open.is_empty() || replaced.contains(&datapoint.id) {
            open_counts.push((id, i32::try_from(open.len()).unwrap_or(i32::MAX)));
        }
        let matches = matches.finish()?;
        if !results.is_empty() || !matches.is_empty() {
            rows.push([
                id.into(),
                organization_id.into(),
                listed_json(&listed(&results, &held))?.into(),
                matches.into(),
                to_millis(now).into(),
            ]);
        }
    }
    {
        use datapoint_check::Column as Results;
        use sea_orm::{EntityName, IdenStatic};
        batch.insert_values(
            datapoint_check::Entity.table_name(),
            [
                Results::DatapointId,
                Results::OrganizationId,
                Results::ResultsJson,
                Results::MatchesJson,
                Results::UpdatedAtMs,
            ]
            .map(|column| column.as_str()),
            rows,
        );
    }
    batch.insert_rows(issues, None);
    insert_matches(batch, &matched);
    for chunk in open_counts.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        batch.push(&open_issues(chunk));
    }
    rollups.write_into(batch);
    Ok(Evaluated { counts, failures })
}

/// Monitors whose matches one `insert_matches` statement writes: a call's bit mask over them
/// fits in a positive `BIGINT`.
const MASK_MONITORS: usize = 63;

/// Calls whose matches one `insert_matches` statement writes.
const MATCH_CHUNK_CALLS: usize = 500;

/// Inserts a batch's `matched` (monitor key as stored, call's time, call, issue, monitor
/// version) into `monitor_datapoints`, bound as a list of the batch's monitors and a list of
/// its calls, each call with two bit masks over the monitors (those that matched it, and those
/// of them it is an issue for), from which one `INSERT … SELECT` per chunk makes the rows: four
/// values a call instead of five for each of its monitors. A bound value costs more on the way
/// to SQLite (sea-orm's copy of it, sqlx's conversion, SQLite's own copy) than the row it goes
/// into, and all of it in the writer's turn (docs/BENCHMARKS.md, "Match rows from two lists").
/// The rows come out in the order searches by monitor read (SQLite's key since m0028,
/// PostgreSQL's `monitor_datapoints_by_time`): the monitors, in key order, the outer loop of
/// the `CROSS JOIN`, the calls by time within each, so each monitor's matches go into its part
/// of the B-tree one after another.
pub(super) fn insert_matches(batch: &mut Batch, matched: &[(&str, i64, Uuid, bool, i32)]) {
    use monitor_datapoint::Column as Matches;
    use sea_orm::{EntityName, IdenStatic};
    use std::fmt::Write;
    let table = monitor_datapoint::Entity.table_name();
    let mut monitors: Vec<(&str, i32)> =
        matched.iter().map(|&(key, _, _, _, version)| (key, version)).collect();
    monitors.sort_unstable();
    monitors.dedup();
    let backend = batch.backend();
    for group in monitors.chunks(MASK_MONITORS) {
        // Per call, by time: the bits of the group's monitors that matched it, and of its issues.
        let mut calls: std::collections::BTreeMap<(i64, Uuid), (i64, i64)> = Default::default();
        for &(key, occurred_at_ms, id, is_issue, version) in matched {
            let Ok(bit) = group.binary_search(&(key, version)) else {
                continue;
            };
            let masks = calls.entry((occurred_at_ms, id)).or_default();
            masks.0 |= 1 << bit;
            if is_issue {
                masks.1 |= 1 << bit;
            }
        }
        let calls: Vec<_> = calls.into_iter().collect();
        for chunk in calls.chunks(MATCH_CHUNK_CALLS) {
            let mut values: Vec<sea_orm::Value> =
                Vec::with_capacity(3 * group.len() + 4 * chunk.len());
            let mut sql = String::with_capacity(64 + 16 * group.len() + 20 * chunk.len());
            sql.push_str("WITH m (k, n, v) AS (VALUES ");
            for (bit, (key, version)) in group.iter().enumerate() {
                if bit > 0 {
                    sql.push_str(", ");
                }
                batch.push_row(&mut sql, 3, values.len());
                values.extend([
                    (*key).into(),
                    i32::try_from(bit).unwrap_or(i32::MAX).into(),
                    (*version).into(),
                ]);
            }
            sql.push_str("), c (id, t, mask, issues) AS (VALUES ");
            for (index, ((occurred_at_ms, id), (mask, issues))) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push_str(", ");
                }
                batch.push_row(&mut sql, 4, values.len());
                values.extend([
                    (*id).into(),
                    (*occurred_at_ms).into(),
                    (*mask).into(),
                    (*issues).into(),
                ]);
            }
            let _infallible = write!(
                sql,
                r#") INSERT INTO "{table}" ("{}", "{}", "{}", "{}", "{}") "#,
                Matches::MonitorId.as_str(),
                Matches::OccurredAtMs.as_str(),
                Matches::DatapointId.as_str(),
                Matches::IsIssue.as_str(),
                Matches::MonitorVersion.as_str(),
            );
            sql.push_str(
                "SELECT m.k, c.t, c.id, ((c.issues >> m.n) & 1) = 1, m.v \
                 FROM m CROSS JOIN c WHERE ((c.mask >> m.n) & 1) = 1",
            );
            batch.push_statement(sea_orm::Statement::from_sql_and_values(backend, sql, values));
        }
    }
}

/// Deletes, in `batch`, what evaluations stored on the calls `ids`: their results, open
/// issues and matches (`matches`, from `take_out`). On SQLite each match goes by its whole key,
/// the table's only one (m0028); on PostgreSQL by call, its primary key's first column.
pub(super) fn forget_results(
    batch: &mut Batch,
    ids: &[Uuid],
    matches: &[monitor_datapoint::Model],
) -> Result<(), Error> {
    for chunk in ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        batch.push(
            &Query::delete()
                .from_table(check_issue::Entity)
                .and_where(check_issue::Column::DatapointId.is_in(chunk.iter().copied()))
                .to_owned(),
        );
        batch.push(
            &Query::delete()
                .from_table(datapoint_check::Entity)
                .and_where(datapoint_check::Column::DatapointId.is_in(chunk.iter().copied()))
                .to_owned(),
        );
        if batch.backend() == sea_orm::DbBackend::Postgres {
            batch.push(
                &Query::delete()
                    .from_table(monitor_datapoint::Entity)
                    .and_where(monitor_datapoint::Column::DatapointId.is_in(chunk.iter().copied()))
                    .to_owned(),
            );
        }
    }
    if batch.backend() != sea_orm::DbBackend::Postgres {
        for row in matches {
            batch.push(&forget_match(row)?);
        }
    }
    Ok(())
}

/// The delete of one match by its entity's primary key (SQLite's table's whole key), a seek.
pub(super) fn forget_match(
    row: &monitor_datapoint::Model,
) -> Result<sea_orm::sea_query::DeleteStatement, Error> {
    let delete = sea_orm::query::ValidatedDeleteOne::try_from(monitor_datapoint::Entity::delete(
        monitor_datapoint::ActiveModel::from(row.clone()),
    ))
    .map_err(db_error("forgetting a call's matches"))?;
    Ok(sea_orm::QueryTrait::into_query(delete))
}

/// Sets each datapoint's count of open issues: one `UPDATE … FROM (VALUES (id, count), …)`
/// joined on the id, each row found by a seek (as `ingests_done`).
fn open_issues(counts: &[(Uuid, i32)]) -> sea_orm::sea_query::UpdateStatement {
    use sea_orm::sea_query::{Alias, TableRef, ValueTuple};
    let counted = || Alias::new("counted");
    let values = TableRef::ValuesList(
        counts.iter().map(|(id, count)| ValueTuple::Two((*id).into(), (*count).into())).collect(),
        counted().into_iden(),
    );
    Query::update()
        .table(datapoint::Entity)
        .value(datapoint::Column::OpenIssues, Expr::col((counted(), Alias::new("column2"))))
        .from(values)
        .and_where(
            Expr::col((datapoint::Entity, datapoint::Column::Id))
                .equals((counted(), Alias::new("column1"))),
        )
        .to_owned()
}

/// Calls on which the check named `name` is an open issue: a probe of the call's
/// `check_issues` rows by their primary key's datapoint.
pub(super) fn failed_check_condition(name: &str) -> sea_orm::sea_query::SimpleExpr {
    let failing = Query::select()
        .expr(Expr::val(1))
        .from(check_issue::Entity)
        .and_where(
            Expr::col((check_issue::Entity, check_issue::Column::DatapointId))
                .equals((datapoint::Entity, datapoint::Column::Id)),
        )
        .and_where(Expr::col((check_issue::Entity, check_issue::Column::Name)).eq(name))
        .to_owned();
    Expr::exists(failing)
}

/// Calls monitor `monitor_id` matched: a probe of `monitor_datapoints` by its whole key.
pub(super) fn matched_by_condition(monitor_id: Uuid) -> sea_orm::sea_query::SimpleExpr {
    let matched = Query::select()
        .expr(Expr::val(1))
        .from(monitor_datapoint::Entity)
        .and_where(
            Expr::col((monitor_datapoint::Entity, monitor_datapoint::Column::MonitorId))
                .eq(monitor_id.to_string()),
        )
        .and_where(
            Expr::col((monitor_datapoint::Entity, monitor_datapoint::Column::OccurredAtMs))
                .equals((datapoint::Entity, datapoint::Column::OccurredAtMs)),
        )
        .and_where(
            Expr::col((monitor_datapoint::Entity, monitor_datapoint::Column::DatapointId))
                .equals((datapoint::Entity, datapoint::Column::Id)),
        )
        .to_owned();
    Expr::exists(matched)
}

/// The monitors of `organizations` (`monitors_of`) and their versions' lists of checks.
async fn monitors_and_versions(
    connection: &impl ConnectionTrait,
    organizations: &[Uuid],
    context: &'static str,
) -> Result<(Vec<Monitor>, MonitorVersions), Error> {
    let monitors = monitors_of(connection, organizations, context).await?;
    let ids: Vec<String> = monitors.iter().map(|monitor| monitor.id.to_string()).collect();
    let versions = super::rollups::monitor_versions_of(connection, &ids, context).await?;
    Ok((monitors, versions))
}

/// The monitors of `organizations`, by name, with their checks at their current versions (a
/// check deleted since is left out of its monitors).
pub(super) async fn monitors_of(
    connection: &impl ConnectionTrait,
    organizations: &[Uuid],
    context: &'static str,
) -> Result<Vec<Monitor>, Error> {
    if organizations.is_empty() {
        return Ok(Vec::new());
    }
    let models = monitor::Entity::find()
        .filter(monitor::Column::OrganizationId.is_in(organizations.iter().map(Uuid::to_string)))
        .order_by_asc(monitor::Column::Name)
        .all(connection)
        .await
        .map_err(db_error(context))?;
    monitors_from_models(connection, models, context).await
}

pub(super) async fn monitors_from_models(
    connection: &impl ConnectionTrait,
    models: Vec<monitor::Model>,
    context: &'static str,
) -> Result<Vec<Monitor>, Error> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let mut check_ids: Vec<Vec<String>> = Vec::with_capacity(models.len());
    for model in &models {
        check_ids.push(
            serde_json::from_str(&model.check_ids_json)
                .map_err(|error| Error::internal(context, error))?,
        );
    }
    let wanted: HashSet<&String> = check_ids.iter().flatten().collect();
    let mut checks: HashMap<String, Check> = HashMap::new();
    let wanted: Vec<&String> = wanted.into_iter().collect();
    for chunk in wanted.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        for model in check::Entity::find()
            .filter(check::Column::Id.is_in(chunk.iter().map(|id| (*id).clone())))
            .all(connection)
            .await
            .map_err(db_error(context))?
        {
            let stored = stored_check(model)?;
            checks.insert(stored.check.id.to_string(), stored.check);
        }
    }
    models
        .into_iter()
        .zip(check_ids)
        .map(|(model, ids)| {
            Ok(Monitor {
                id: parse_uuid(context, &model.id)?,
                organization_id: parse_uuid(context, &model.organization_id)?,
                filter: serde_json::from_str::<MonitorFilter>(&model.filter_json)
                    .map_err(|error| Error::internal(context, error))?,
                checks: ids.iter().filter_map(|id| checks.get(id).cloned()).collect(),
                version: model.version,
                name: model.name,
                description: model.description,
                created_at: from_millis(model.created_at_ms),
                updated_at: from_millis(model.updated_at_ms),
            })
        })
        .collect()
}

async fn insert_version(
    connection: &impl ConnectionTrait,
    check: &Check,
    rule_json: &str,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), Error> {
    check_version::Entity::insert(check_version::ActiveModel {
        check_id: Set(check.id.to_string()),
        version: Set(check.version),
        name: Set(check.name.clone()),
        rule_json: Set(rule_json.to_owned()),
        created_at_ms: Set(to_millis(now)),
    })
    .exec(connection)
    .await
    .map_err(db_error(context))?;
    Ok(())
}

async fn insert_monitor_version(
    connection: &impl ConnectionTrait,
    monitor_id: Uuid,
    version: i32,
    check_ids_json: String,
    context: &'static str,
) -> Result<(), Error> {
    monitor_version::Entity::insert(monitor_version::ActiveModel {
        monitor_id: Set(monitor_id.to_string()),
        version: Set(version),
        check_ids_json: Set(check_ids_json),
    })
    .exec_without_returning(connection)
    .await
    .map_err(db_error(context))?;
    Ok(())
}

/// The name of each of `check_ids` at its latest version (kept after the check is deleted).
pub(super) async fn latest_names(
    connection: &impl ConnectionTrait,
    check_ids: Vec<Uuid>,
    context: &'static str,
) -> Result<HashMap<Uuid, String>, Error> {
    let mut latest: HashMap<Uuid, (i32, String)> = HashMap::new();
    for ((id, version), Version { name, .. }) in versions_of(connection, check_ids, context).await?
    {
        if latest.get(&id).is_none_or(|(newest, _)| *newest < version) {
            latest.insert(id, (version, name));
        }
    }
    Ok(latest.into_iter().map(|(id, (_, name))| (id, name)).collect())
}

fn stored_check(model: check::Model) -> Result<CheckRecord, Error> {
    let context = "reading a check";
    Ok(CheckRecord {
        check: Check {
            id: parse_uuid(context, &model.id)?,
            name: model.name,
            version: model.version,
            rule: serde_json::from_str(&model.rule_json)
                .map_err(|error| Error::internal(context, error))?,
        },
        organization_id: parse_uuid(context, &model.organization_id)?,
        description: model.description,
        created_at: from_millis(model.created_at_ms),
        updated_at: from_millis(model.updated_at_ms),
    })
}

/// A unique-name violation as `AlreadyExists` naming `what`; anything else as `db_error`.
fn name_taken(error: sea_orm::DbErr, what: &str, name: &str, context: &'static str) -> Error {
    match error.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            Error::AlreadyExists(format!("{what} named {name:?} already exists"))
        }
        _ => db_error(context)(error),
    }
}

/// `results` in their stored form, as `serde_json` writes them, with a monitor's own results
/// (most of them: id, version, value, verdict) written directly: every evaluated call stores
/// one such list, inside the write turn.
fn results_json(results: &[StoredResult]) -> Result<String, Error> {
    let context = "encoding check results";
    let mut json = Vec::with_capacity(results.len() * 64 + 2);
    json.push(b'[');
    for (index, result) in results.iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        // Every field named, so that a field added to the stored form cannot be left out here.
        let StoredResult {
            check_id,
            check_version,
            value,
            is_issue,
            origin,
            name,
            value_type,
            explanation,
            resolved_at_ms,
        } = result;
        let plain = *origin == Origin::Monitor
            && name.is_none()
            && value_type.is_none()
            && explanation.is_none()
            && resolved_at_ms.is_none();
        if !plain {
            serde_json::to_writer(&mut json, result)
                .map_err(|error| Error::internal(context, error))?;
            continue;
        }
        json.extend_from_slice(br#"{"c":""#);
        json.extend_from_slice(
            check_id.simple().encode_lower(&mut Uuid::encode_buffer()).as_bytes(),
        );
        json.extend_from_slice(br#"","v":"#);
        json.extend_from_slice(check_version.to_string().as_bytes());
        if let Some(value) = value {
            json.extend_from_slice(br#","x":"#);
            serde_json::to_writer(&mut json, value)
                .map_err(|error| Error::internal(context, error))?;
        }
        if *is_issue {
            json.extend_from_slice(br#","i":true"#);
        }
        json.push(b'}');
    }
    json.push(b']');
    String::from_utf8(json).map_err(|error| Error::internal(context, error))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|error| Error::internal("encoding a check", error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::checks::Value;

    /// Results of one check at `version`, with the name, type and explanation given (kept only
    /// by external results), by verdict and value.
    fn results_of(
        version: i32,
        name: &str,
        value_type: ValueType,
        explanation: &str,
    ) -> impl Fn(bool, Option<Value>) -> CheckValue {
        let (name, explanation) = (name.to_owned(), explanation.to_owned());
        move |is_issue, value| CheckValue {
            name: name.clone(),
            value,
            value_type,
            check_id: Uuid::parse_str("0190b0a1-2c3d-7e4f-8a9b-0c1d2e3f4a5b").unwrap(),
            check_version: version,
            is_issue,
            explanation: explanation.clone(),
        }
    }

    /// The stored form of results is pinned: a monitor's result keeps id, version, value and a
    /// true verdict; an external one its name, type and explanation too.
    #[test]
    fn stored_results_keep_their_shape() {
        let value = results_of(
            2,
            "slow responses",
            ValueType::Number,
            "p95_response_latency_ms is 1830 ms, greater than 1500 ms: an issue",
        );
        let stored = vec![
            StoredResult::of(value(true, Some(Value::Number(1_830.0))), Origin::Monitor),
            StoredResult::of(value(false, None), Origin::Monitor),
            StoredResult::of(value(true, Some(Value::Number(1_830.0))), Origin::External),
        ];
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"[{"c":"0190b0a12c3d7e4f8a9b0c1d2e3f4a5b","v":2,"x":1830.0,"i":true},"#,
                r#"{"c":"0190b0a12c3d7e4f8a9b0c1d2e3f4a5b","v":2},"#,
                r#"{"c":"0190b0a12c3d7e4f8a9b0c1d2e3f4a5b","v":2,"x":1830.0,"i":true,"o":"external","#,
                r#""n":"slow responses","t":"number","#,
                r#""e":"p95_response_latency_ms is 1830 ms, greater than 1500 ms: an issue"}]"#
            )
        );
        assert_eq!(results_json(&stored).unwrap(), json);
        assert_eq!(serde_json::from_str::<Vec<StoredResult>>(&json).unwrap(), stored);
    }

    /// The direct encoding writes what `serde_json` writes, for every kind of value and result.
    #[test]
    fn results_are_encoded_as_serde_json_encodes_them() {
        let value = results_of(12, "a \"quoted\" name", ValueType::Text, "why");
        let values = [
            None,
            Some(Value::Bool(false)),
            Some(Value::Number(0.1 + 0.2)),
            Some(Value::Number(-3.0)),
            Some(Value::Number(1e21)),
            Some(Value::Number(f64::NAN)),
            Some(Value::Text("Négatif \"très\"\n".into())),
        ];
        let mut stored = Vec::new();
        for value_of in &values {
            for is_issue in [false, true] {
                for origin in [Origin::Monitor, Origin::External] {
                    stored.push(StoredResult::of(value(is_issue, value_of.clone()), origin));
                }
            }
        }
        let mut resolved = StoredResult::of(value(true, None), Origin::Monitor);
        resolved.resolved_at_ms = Some(1_764_500_000_000);
        stored.push(resolved);
        assert_eq!(results_json(&stored).unwrap(), serde_json::to_string(&stored).unwrap());
        assert_eq!(results_json(&[]).unwrap(), "[]");
        assert_eq!(
            results_json(&stored[..1]).unwrap(),
            serde_json::to_string(&stored[..1]).unwrap()
        );
    }

    fn results_row(matches_json: &str, results_json: &str) -> datapoint_check::Model {
        datapoint_check::Model {
            datapoint_id: Uuid::from_u128(1),
            organization_id: Uuid::from_u128(2),
            results_json: results_json.into(),
            matches_json: matches_json.into(),
            updated_at_ms: 0,
        }
    }

    /// The stored form of matches is pinned, with and without the results they hold (m0028's
    /// migration writes none), every kind of value among them, and read back as written.
    #[test]
    fn stored_matches_keep_their_shape() {
        let matches = StoredMatches {
            occurred_at_ms: 1_796_000_000_000,
            monitors: vec![
                StoredMatch {
                    monitor_id: "0190b0a1-2c3d-7e4f-8a9b-0c1d2e3f4a5b".into(),
                    version: 2,
                    is_issue: true,
                    results: Some(vec![
                        (1, Some(Value::Number(412.5)), false),
                        (3, None, false),
                        (1, Some(Value::Bool(true)), true),
                        (1, Some(Value::Text("Négatif \"très\"".into())), false),
                    ]),
                },
                StoredMatch {
                    monitor_id: "0190b0a1-2c3d-7e4f-8a9b-0c1d2e3f4a5c".into(),
                    version: 0,
                    is_issue: false,
                    results: None,
                },
            ],
        };
        let json = matches.to_json().unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"t":1796000000000,"m":[["0190b0a1-2c3d-7e4f-8a9b-0c1d2e3f4a5b",2,true,"#,
                r#"[[1,412.5],[3,null],[1,true,true],[1,"Négatif \"très\""]]],"#,
                r#"["0190b0a1-2c3d-7e4f-8a9b-0c1d2e3f4a5c",0,false]]}"#
            )
        );
        assert_eq!(StoredMatches::of(&results_row(&json, "")).unwrap(), matches);
        let none = StoredMatches { occurred_at_ms: 1, monitors: Vec::new() };
        assert_eq!(none.to_json().unwrap(), "");
        assert!(StoredMatches::of(&results_row("", "")).unwrap().monitors.is_empty());
        for malformed in
            [r#"{"m":[]}"#, r#"{"t":1,"m":[["m",1]]}"#, r#"{"t":1,"m":[["m",1,false,[[null,1]]]]}"#]
        {
            assert!(StoredMatches::of(&results_row(malformed, "")).is_err(), "{malformed}");
        }
    }

    /// A call's results are those its matches hold, each named by the check list of its
    /// monitor's version (a check in two monitors once), with the results `results_json` keeps
    /// in place of a held one of the same check; a match whose version is unknown, or whose
    /// list is of another length, holds none; what `results_json` keeps is every result but a
    /// held, unresolved monitor result.
    #[test]
    fn results_are_read_from_matches_and_the_listed_ones() {
        let check = |n: u8| Uuid::from_bytes([n; 16]);
        let monitor = |n: u8, version: i32, results: Vec<HeldResult>| StoredMatch {
            monitor_id: format!("monitor {n}"),
            version,
            is_issue: false,
            results: Some(results),
        };
        let held = |version: i32, value: f64| (version, Some(Value::Number(value)), false);
        let matches = StoredMatches {
            occurred_at_ms: 5,
            monitors: vec![
                monitor(1, 1, vec![held(1, 10.0), held(2, 20.0)]),
                monitor(2, 1, vec![held(2, 20.0), held(1, 30.0)]),
                monitor(3, 7, vec![held(1, 40.0)]),
                monitor(4, 1, vec![held(1, 50.0)]),
            ],
        };
        let versions: MonitorVersions = [
            (("monitor 1".to_owned(), 1), vec![check(1), check(2)]),
            (("monitor 2".to_owned(), 1), vec![check(2), check(3)]),
            (("monitor 4".to_owned(), 1), vec![check(4), check(5)]),
        ]
        .into_iter()
        .collect();
        let mut resolved = StoredResult::of(
            CheckValue {
                name: String::new(),
                value: Some(Value::Number(10.0)),
                value_type: ValueType::Number,
                check_id: check(1),
                check_version: 1,
                is_issue: true,
                explanation: String::new(),
            },
            Origin::Monitor,
        );
        resolved.resolved_at_ms = Some(99);
        let external = StoredResult::of(
            CheckValue {
                check_id: check(9),
                name: "judge".into(),
                ..resolved.clone().into_result(&HashMap::new()).value
            },
            Origin::External,
        );
        let row = results_row(
            &matches.to_json().unwrap(),
            &results_json(&[resolved.clone(), external.clone()]).unwrap(),
        );
        let results = ResultsRow::of(&row).unwrap().results(&versions);
        let values: Vec<(Uuid, Option<Value>, Option<i64>, Origin)> = results
            .iter()
            .map(|result| {
                (result.check_id, result.value.clone(), result.resolved_at_ms, result.origin)
            })
            .collect();
        assert_eq!(
            values,
            [
                (check(2), Some(Value::Number(20.0)), None, Origin::Monitor),
                (check(3), Some(Value::Number(30.0)), None, Origin::Monitor),
                (check(1), Some(Value::Number(10.0)), Some(99), Origin::Monitor),
                (check(9), Some(Value::Number(10.0)), None, Origin::External),
            ]
        );
        let held: HashSet<Uuid> = [check(1), check(2), check(3)].into_iter().collect();
        assert_eq!(listed(&results, &held), [resolved, external]);
    }
}
