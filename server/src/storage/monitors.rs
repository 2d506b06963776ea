//! Checks, monitors and check results. Results of monitors are written by the commits that
//! store datapoints (`evaluate_into`, called by `store_at_intake` and `finish_ingests` with
//! the datapoints they store), so a call is evaluated in the transaction that stores it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::entities::{check, check_result, check_version, datapoint, monitor, monitor_datapoint};
use super::{Batch, Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::checks::{Check, CheckResult, CheckValue, Rule, ValueType};
use crate::model::datapoints::Datapoint;
use crate::model::monitors::{self, Monitor, MonitorFilter};

/// A check with what the API shows besides its rule.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCheck {
    pub check: Check,
    pub organization_id: Uuid,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a result came from: a monitor (a result attached from outside will say `external`).
pub const ORIGIN_MONITOR: &str = "monitor";

impl Storage {
    /// A new check at version 1. A name the organization already uses is `AlreadyExists`.
    pub async fn insert_check(&self, stored: &StoredCheck) -> Result<(), Error> {
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
    ) -> Result<Option<StoredCheck>, Error> {
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
    ) -> Result<Option<StoredCheck>, Error> {
        check::Entity::find_by_id(id.to_string())
            .filter(check::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading a check"))?
            .map(stored_check)
            .transpose()
    }

    /// The organization's checks, by name.
    pub async fn list_checks(&self, organization_id: Uuid) -> Result<Vec<StoredCheck>, Error> {
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

    /// Removes a check and its versions; its results stay on their datapoints. Whether it
    /// existed.
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
        if deleted > 0 {
            check_version::Entity::delete_many()
                .filter(check_version::Column::CheckId.eq(id.to_string()))
                .exec(&transaction)
                .await
                .map_err(db_error(context))?;
        }
        transaction.commit().await.map_err(db_error(context))?;
        Ok(deleted > 0)
    }

    /// A new monitor. A name the organization already uses is `AlreadyExists`.
    pub async fn insert_monitor(&self, monitor: &Monitor) -> Result<(), Error> {
        let context = "creating a monitor";
        let check_ids: Vec<String> =
            monitor.checks.iter().map(|check| check.id.to_string()).collect();
        let inserted = monitor::Entity::insert(monitor::ActiveModel {
            id: Set(monitor.id.to_string()),
            organization_id: Set(monitor.organization_id.to_string()),
            name: Set(monitor.name.clone()),
            description: Set(monitor.description.clone()),
            filter_json: Set(to_json(&monitor.filter)?),
            check_ids_json: Set(to_json(&check_ids)?),
            created_at_ms: Set(to_millis(monitor.created_at)),
            updated_at_ms: Set(to_millis(monitor.updated_at)),
        })
        .exec(&self.writer)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) => Err(name_taken(error, "a monitor", &monitor.name, context)),
        }
    }

    /// Replaces a monitor's name, description, filter and checks; whether it existed.
    pub async fn update_monitor(&self, monitor: &Monitor) -> Result<bool, Error> {
        let context = "updating a monitor";
        let check_ids: Vec<String> =
            monitor.checks.iter().map(|check| check.id.to_string()).collect();
        let updated = monitor::Entity::update_many()
            .col_expr(monitor::Column::Name, Expr::value(monitor.name.clone()))
            .col_expr(monitor::Column::Description, Expr::value(monitor.description.clone()))
            .col_expr(monitor::Column::FilterJson, Expr::value(to_json(&monitor.filter)?))
            .col_expr(monitor::Column::CheckIdsJson, Expr::value(to_json(&check_ids)?))
            .col_expr(monitor::Column::UpdatedAtMs, Expr::value(to_millis(monitor.updated_at)))
            .filter(monitor::Column::Id.eq(monitor.id.to_string()))
            .filter(monitor::Column::OrganizationId.eq(monitor.organization_id.to_string()))
            .exec(&self.writer)
            .await;
        match updated {
            Ok(result) => Ok(result.rows_affected > 0),
            Err(error) => Err(name_taken(error, "a monitor", &monitor.name, context)),
        }
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

    /// Removes a monitor and its list of matched calls; the results of its checks stay on the
    /// calls. Whether it existed.
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
            monitor_datapoint::Entity::delete_many()
                .filter(monitor_datapoint::Column::MonitorId.eq(id.to_string()))
                .exec(&transaction)
                .await
                .map_err(db_error(context))?;
        }
        transaction.commit().await.map_err(db_error(context))?;
        Ok(deleted > 0)
    }

    /// The check results of each of `datapoint_ids`, by check name. The ids are of datapoints
    /// the caller has read for its organization.
    pub(super) async fn check_results_of(
        &self,
        datapoint_ids: &[String],
    ) -> Result<HashMap<Uuid, Vec<CheckResult>>, Error> {
        let context = "reading check results";
        let mut found: HashMap<Uuid, Vec<CheckResult>> = HashMap::new();
        for chunk in datapoint_ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
            let models = check_result::Entity::find()
                .filter(check_result::Column::DatapointId.is_in(chunk.iter().cloned()))
                .order_by_asc(check_result::Column::Name)
                .all(&self.db)
                .await
                .map_err(db_error(context))?;
            for model in models {
                let datapoint_id = parse_uuid(context, &model.datapoint_id)?;
                found.entry(datapoint_id).or_default().push(stored_result(model)?);
            }
        }
        Ok(found)
    }
}

/// Writes, into `batch`, what the organizations' monitors find on `datapoints` (being stored
/// in the same transaction): each datapoint's earlier monitor results and monitor rows are
/// replaced, results attached from outside are kept, and its count of open issues is counted
/// again. `replaced` says which datapoints were stored before (a fresh one has nothing to
/// replace). One query for the monitors of the datapoints' organizations, another for their
/// checks; no monitor, no rows.
pub(super) async fn evaluate_into(
    connection: &impl ConnectionTrait,
    datapoints: &[&Datapoint],
    replaced: &HashSet<Uuid>,
    batch: &mut Batch,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), Error> {
    // A datapoint given twice (two results of one call in a batch) counts as the later.
    let mut seen = HashSet::with_capacity(datapoints.len());
    let mut latest: Vec<&Datapoint> =
        datapoints.iter().rev().copied().filter(|datapoint| seen.insert(datapoint.id)).collect();
    latest.reverse();
    let datapoints = latest.as_slice();
    let mut organizations: Vec<Uuid> =
        datapoints.iter().map(|datapoint| datapoint.organization_id).collect();
    organizations.sort_unstable();
    organizations.dedup();
    let monitors = monitors_of(connection, &organizations, context).await?;
    let stale: Vec<String> = datapoints
        .iter()
        .filter(|datapoint| replaced.contains(&datapoint.id))
        .map(|datapoint| datapoint.id.to_string())
        .collect();
    for chunk in stale.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        batch.push(
            &Query::delete()
                .from_table(check_result::Entity)
                .and_where(check_result::Column::DatapointId.is_in(chunk.iter().cloned()))
                .and_where(check_result::Column::Origin.eq(ORIGIN_MONITOR))
                .to_owned(),
        );
        batch.push(
            &Query::delete()
                .from_table(monitor_datapoint::Entity)
                .and_where(monitor_datapoint::Column::DatapointId.is_in(chunk.iter().cloned()))
                .to_owned(),
        );
    }
    if monitors.is_empty() && stale.is_empty() {
        return Ok(());
    }
    let mut results = Vec::new();
    let mut matched = Vec::new();
    let mut evaluated = Vec::new();
    for datapoint in datapoints {
        let evaluation = monitors::evaluate(&monitors, datapoint);
        if evaluation.monitors.is_empty() {
            continue;
        }
        evaluated.push(datapoint.id.to_string());
        let occurred_at_ms = to_millis(datapoint.occurred_at());
        for value in evaluation.results.into_values() {
            results.push(result_model(datapoint, value, ORIGIN_MONITOR, occurred_at_ms, now)?);
        }
        for (monitor_id, is_issue) in evaluation.monitors {
            matched.push(monitor_datapoint::ActiveModel {
                monitor_id: Set(monitor_id.to_string()),
                datapoint_id: Set(datapoint.id.to_string()),
                organization_id: Set(datapoint.organization_id.to_string()),
                occurred_at_ms: Set(occurred_at_ms),
                is_issue: Set(is_issue),
            });
        }
    }
    // A result attached from outside under the same check as a monitor's is replaced by it.
    let on_conflict = sea_orm::sea_query::OnConflict::columns([
        check_result::Column::DatapointId,
        check_result::Column::CheckId,
    ])
    .update_columns([
        check_result::Column::CheckVersion,
        check_result::Column::Name,
        check_result::Column::ValueJson,
        check_result::Column::ValueType,
        check_result::Column::IsIssue,
        check_result::Column::Explanation,
        check_result::Column::Origin,
        check_result::Column::OccurredAtMs,
        check_result::Column::ResolvedAtMs,
        check_result::Column::UpdatedAtMs,
    ])
    .to_owned();
    batch.insert_rows(results, Some(&on_conflict));
    batch.insert_rows(matched, None);
    let mut counted = stale;
    counted.extend(evaluated);
    counted.sort_unstable();
    counted.dedup();
    for chunk in counted.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        batch.push(&count_open_issues(chunk));
    }
    Ok(())
}

/// Calls on which the check named `name` is an unresolved issue: a probe of the call's results
/// by their primary key (datapoint, check).
pub(super) fn failed_check_condition(name: &str) -> sea_orm::sea_query::SimpleExpr {
    let failing = Query::select()
        .expr(Expr::val(1))
        .from(check_result::Entity)
        .and_where(
            Expr::col((check_result::Entity, check_result::Column::DatapointId))
                .equals((datapoint::Entity, datapoint::Column::Id)),
        )
        .and_where(Expr::col((check_result::Entity, check_result::Column::Name)).eq(name))
        .and_where(Expr::col((check_result::Entity, check_result::Column::IsIssue)).eq(true))
        .and_where(Expr::col((check_result::Entity, check_result::Column::ResolvedAtMs)).is_null())
        .to_owned();
    Expr::exists(failing)
}

/// Calls monitor `monitor_id` matched: a probe of `monitor_datapoints` by its primary key.
pub(super) fn matched_by_condition(monitor_id: Uuid) -> sea_orm::sea_query::SimpleExpr {
    let matched = Query::select()
        .expr(Expr::val(1))
        .from(monitor_datapoint::Entity)
        .and_where(
            Expr::col((monitor_datapoint::Entity, monitor_datapoint::Column::MonitorId))
                .eq(monitor_id.to_string()),
        )
        .and_where(
            Expr::col((monitor_datapoint::Entity, monitor_datapoint::Column::DatapointId))
                .equals((datapoint::Entity, datapoint::Column::Id)),
        )
        .to_owned();
    Expr::exists(matched)
}

/// `UPDATE datapoints SET open_issues = (their unresolved issues) WHERE id IN (…)`: each
/// count is a seek of `check_results`' primary key.
pub(super) fn count_open_issues(datapoint_ids: &[String]) -> sea_orm::sea_query::UpdateStatement {
    let open = Query::select()
        .expr(Expr::col((check_result::Entity, check_result::Column::DatapointId)).count())
        .from(check_result::Entity)
        .and_where(
            Expr::col((check_result::Entity, check_result::Column::DatapointId))
                .equals((datapoint::Entity, datapoint::Column::Id)),
        )
        .and_where(Expr::col((check_result::Entity, check_result::Column::IsIssue)).eq(true))
        .and_where(Expr::col((check_result::Entity, check_result::Column::ResolvedAtMs)).is_null())
        .to_owned();
    Query::update()
        .table(datapoint::Entity)
        .value(
            datapoint::Column::OpenIssues,
            sea_orm::sea_query::Expr::from(sea_orm::sea_query::SubQueryStatement::from(open)),
        )
        .and_where(datapoint::Column::Id.is_in(datapoint_ids.iter().cloned()))
        .to_owned()
}

fn result_model(
    datapoint: &Datapoint,
    value: CheckValue,
    origin: &str,
    occurred_at_ms: i64,
    now: DateTime<Utc>,
) -> Result<check_result::ActiveModel, Error> {
    Ok(check_result::ActiveModel {
        datapoint_id: Set(datapoint.id.to_string()),
        check_id: Set(value.check_id.to_string()),
        organization_id: Set(datapoint.organization_id.to_string()),
        check_version: Set(value.check_version),
        name: Set(value.name),
        value_json: Set(to_json(&value.value)?),
        value_type: Set(value.value_type.as_str().to_owned()),
        is_issue: Set(value.is_issue),
        explanation: Set(value.explanation),
        origin: Set(origin.to_owned()),
        occurred_at_ms: Set(occurred_at_ms),
        resolved_at_ms: Set(None),
        updated_at_ms: Set(to_millis(now)),
    })
}

fn stored_result(model: check_result::Model) -> Result<CheckResult, Error> {
    let context = "reading check results";
    let value_type = match model.value_type.as_str() {
        "number" => ValueType::Number,
        "bool" => ValueType::Bool,
        "text" => ValueType::Text,
        other => return Err(Error::internal(context, format!("unknown value type {other:?}"))),
    };
    Ok(CheckResult {
        value: CheckValue {
            name: model.name,
            value: serde_json::from_str(&model.value_json)
                .map_err(|error| Error::internal(context, error))?,
            value_type,
            check_id: parse_uuid(context, &model.check_id)?,
            check_version: model.check_version,
            is_issue: model.is_issue,
            explanation: model.explanation,
        },
        origin: model.origin,
        resolved_at: model.resolved_at_ms.map(from_millis),
    })
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

async fn monitors_from_models(
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
        rule_json: Set(rule_json.to_owned()),
        created_at_ms: Set(to_millis(now)),
    })
    .exec(connection)
    .await
    .map_err(db_error(context))?;
    Ok(())
}

fn stored_check(model: check::Model) -> Result<StoredCheck, Error> {
    let context = "reading a check";
    Ok(StoredCheck {
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

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|error| Error::internal("encoding a check", error))
}
