//! Monitor summaries: per monitor and hour, the calls it matched and those with an issue, and
//! per check the calls it evaluated, its issues and the sum of its numeric values
//! (`monitor_rollups`, m0016). The commits that evaluate calls add what they found
//! (`RollupChanges`, summed per row, one upsert per row touched) and take out what an earlier
//! evaluation of the same calls had added (`take_out`), so a summary reads a few rows per hour,
//! whatever the number of calls, and stays exact when calls are evaluated again or deleted.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::entities::{
    datapoint_check, monitor, monitor_datapoint, monitor_rollup, monitor_version,
};
use super::monitors::{MonitorVersions, ResultsRow, StoredResult, monitors_named_by};
use super::{Batch, Storage, db_error, parse_uuid};
use crate::clock::from_millis;
use crate::error::Error;
use crate::model::checks::Origin;
use crate::model::monitors::{CheckFigures, Granularity, Monitor, MonitorSummary, SummaryFigures};

/// Changes to `monitor_rollups`, summed per (monitor, hour, check) before they are written;
/// the call's own row (the monitor's calls and issues) has no check. Each call of a batch
/// counts once per monitor, with each of the monitor's checks: so the changes are kept per
/// (monitor, hour), found by one lookup (ids, not their text, hashed by `foldhash`), with the
/// monitor's few checks in a list beside it.
#[derive(Debug, Default)]
pub(super) struct RollupChanges(foldhash::HashMap<(Uuid, i64), CheckChanges>);

/// A monitor's changes in one hour: per check (none for the call's own row), few enough to be
/// found by looking through them.
type CheckChanges = Vec<(Option<Uuid>, Figures)>;

#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    datapoints: i64,
    issues: i64,
    value_count: i64,
    value_sum: f64,
}

impl RollupChanges {
    /// Adds (`sign` 1) or takes out (-1) monitor `monitor_id`'s evaluation of one call: the
    /// call, whether it was an issue, and each of the monitor's checks' results on it (`parts`).
    pub(super) fn count<'a>(
        &mut self,
        monitor_id: Uuid,
        occurred_at_ms: i64,
        is_issue: bool,
        parts: impl IntoIterator<Item = &'a StoredResult>,
        sign: i64,
    ) {
        let bucket = Granularity::Hour.bucket_of(occurred_at_ms);
        let checks = self.0.entry((monitor_id, bucket)).or_default();
        let mut add = |check_id: Option<Uuid>, is_issue: bool, value: Option<f64>| {
            let index = match checks.iter().position(|(id, _)| *id == check_id) {
                Some(index) => index,
                None => {
                    checks.push((check_id, Figures::default()));
                    checks.len() - 1
                }
            };
            let figures = &mut checks[index].1;
            figures.datapoints += sign;
            figures.issues += sign * i64::from(is_issue);
            if let Some(value) = value {
                figures.value_count += sign;
                #[allow(clippy::cast_precision_loss)] // sign is 1 or -1
                let signed = sign as f64 * value;
                figures.value_sum += signed;
            }
        };
        add(None, is_issue, None);
        for part in parts {
            add(
                Some(part.check_id),
                part.is_issue,
                part.value.as_ref().and_then(crate::model::checks::Value::as_number),
            );
        }
    }

    /// Adds the changes to their rows: a multi-row upsert that adds to a row already there.
    pub(super) fn write_into(self, batch: &mut Batch) {
        if self.0.is_empty() {
            return;
        }
        use monitor_rollup::Column;
        let added = |column: Column| {
            Expr::col((monitor_rollup::Entity, column))
                .add(Expr::col((Alias::new("excluded"), column)))
        };
        let on_conflict =
            OnConflict::columns([Column::MonitorId, Column::BucketMs, Column::CheckId])
                .value(Column::Datapoints, added(Column::Datapoints))
                .value(Column::Issues, added(Column::Issues))
                .value(Column::ValueCount, added(Column::ValueCount))
                .value(Column::ValueSum, added(Column::ValueSum))
                .to_owned();
        let mut rows: Vec<_> = self
            .0
            .into_iter()
            .flat_map(|((monitor_id, bucket_ms), checks)| {
                checks
                    .into_iter()
                    .map(move |(check_id, figures)| ((monitor_id, bucket_ms, check_id), figures))
            })
            .collect();
        // One order, so that two writers (PostgreSQL) lock rows in the same order.
        rows.sort_by_key(|row| row.0);
        let rows = rows
            .into_iter()
            .map(|((monitor_id, bucket_ms, check_id), figures)| monitor_rollup::ActiveModel {
                monitor_id: Set(monitor_id.to_string()),
                bucket_ms: Set(bucket_ms),
                check_id: Set(check_id.map(|id| id.to_string()).unwrap_or_default()),
                datapoints: Set(figures.datapoints),
                issues: Set(figures.issues),
                value_count: Set(figures.value_count),
                value_sum: Set(figures.value_sum),
            })
            .collect();
        batch.insert_rows(rows, Some(&on_conflict));
    }
}

/// A call's results by check, a monitor's own only (the first of a check's, as stored): what
/// `parts_of` reads, built once per call rather than searched once per monitor and check.
pub(super) fn by_check(results: &[StoredResult]) -> foldhash::HashMap<Uuid, &StoredResult> {
    let mut index = foldhash::HashMap::with_capacity_and_hasher(
        results.len(),
        foldhash::fast::RandomState::default(),
    );
    for result in results.iter().filter(|result| result.origin == Origin::Monitor) {
        index.entry(result.check_id).or_insert(result);
    }
    index
}

/// A monitor's part in one call's results: the monitor's results of `check_ids` (its checks at
/// the version that evaluated the call), from the call's `by_check`.
pub(super) fn parts_of<'a>(
    check_ids: &'a [Uuid],
    results: &'a foldhash::HashMap<Uuid, &'a StoredResult>,
) -> impl Iterator<Item = &'a StoredResult> + 'a {
    check_ids.iter().filter_map(|id| results.get(id).copied())
}

/// What evaluations and callers stored on some calls (`take_out`).
#[derive(Debug, Default)]
pub(super) struct Earlier {
    /// Their results, by datapoint id.
    pub(super) results: HashMap<Uuid, Vec<StoredResult>>,
    /// Their rows in `monitor_datapoints`, from their results rows (m0028).
    pub(super) matches: Vec<monitor_datapoint::Model>,
}

/// What evaluations and callers stored on the calls `ids` (about to be evaluated again, or
/// deleted), read from their results rows, and, taken out of `changes`, what each monitor that
/// matched them had added to its summary. The caller deletes or replaces the rows
/// (`monitors::forget_results`).
pub(super) async fn take_out(
    connection: &impl ConnectionTrait,
    ids: &[Uuid],
    changes: &mut RollupChanges,
    context: &'static str,
) -> Result<Earlier, Error> {
    let mut earlier = Earlier::default();
    let mut rows = Vec::new();
    for chunk in ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        for model in results_rows(chunk).all(connection).await.map_err(db_error(context))? {
            rows.push(ResultsRow::of(&model)?);
        }
    }
    let monitors = monitors_named_by(&rows);
    let versions = monitor_versions_of(connection, &monitors, context).await?;
    for row in &rows {
        earlier.matches.extend(row.match_rows());
        earlier.results.insert(row.datapoint_id, row.results(&versions));
    }
    let matched = &earlier.matches;
    if matched.is_empty() {
        return Ok(earlier);
    }
    // A deleted monitor has no summary to take a call out of.
    let present = existing_monitors(connection, &monitors, context).await?;
    let indexes: HashMap<Uuid, foldhash::HashMap<Uuid, &StoredResult>> =
        earlier.results.iter().map(|(id, stored)| (*id, by_check(stored))).collect();
    let none = foldhash::HashMap::default();
    for row in matched.iter().filter(|row| present.contains(&row.monitor_id)) {
        let check_ids = versions
            .get(&(row.monitor_id.clone(), row.monitor_version))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let stored = indexes.get(&row.datapoint_id).unwrap_or(&none);
        changes.count(
            parse_uuid(context, &row.monitor_id)?,
            row.occurred_at_ms,
            row.is_issue,
            parts_of(check_ids, stored),
            -1,
        );
    }
    drop(indexes);
    Ok(earlier)
}

/// The results rows of the calls `ids` (the primary key).
pub(super) fn results_rows(ids: &[Uuid]) -> sea_orm::Select<datapoint_check::Entity> {
    datapoint_check::Entity::find()
        .filter(datapoint_check::Column::DatapointId.is_in(ids.iter().copied()))
}

/// A monitor's hourly rows in `[from_ms, to_ms)`, in order: a range of the primary key.
pub(super) fn summary_rows(
    monitor_id: Uuid,
    from_ms: i64,
    to_ms: i64,
) -> sea_orm::Select<monitor_rollup::Entity> {
    monitor_rollup::Entity::find()
        .filter(monitor_rollup::Column::MonitorId.eq(monitor_id.to_string()))
        .filter(monitor_rollup::Column::BucketMs.gte(Granularity::Hour.bucket_of(from_ms)))
        .filter(monitor_rollup::Column::BucketMs.lt(to_ms))
        .order_by_asc(monitor_rollup::Column::BucketMs)
        .order_by_asc(monitor_rollup::Column::CheckId)
}

/// Which of `monitors` exist (a deleted monitor's versions stay, for its results on calls).
async fn existing_monitors(
    connection: &impl ConnectionTrait,
    monitors: &[String],
    context: &'static str,
) -> Result<std::collections::HashSet<String>, Error> {
    use sea_orm::QuerySelect;
    let mut present = std::collections::HashSet::new();
    for chunk in monitors.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        let ids: Vec<String> = monitor::Entity::find()
            .select_only()
            .column(monitor::Column::Id)
            .filter(monitor::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(connection)
            .await
            .map_err(db_error(context))?;
        present.extend(ids);
    }
    Ok(present)
}

/// The check ids of every version of `monitors`.
pub(super) async fn monitor_versions_of(
    connection: &impl ConnectionTrait,
    monitors: &[String],
    context: &'static str,
) -> Result<MonitorVersions, Error> {
    let mut versions = HashMap::new();
    for chunk in monitors.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        for model in monitor_version::Entity::find()
            .filter(monitor_version::Column::MonitorId.is_in(chunk.iter().cloned()))
            .all(connection)
            .await
            .map_err(db_error(context))?
        {
            let ids: Vec<String> = serde_json::from_str(&model.check_ids_json)
                .map_err(|error| Error::internal(context, error))?;
            let ids = ids.iter().map(|id| parse_uuid(context, id)).collect::<Result<_, _>>()?;
            versions.insert((model.monitor_id, model.version), ids);
        }
    }
    Ok(versions)
}

impl Storage {
    /// What `monitor` found on the calls that took place in `[from_ms, to_ms)`, by hour or day
    /// (UTC): its hourly rows read by their primary key, in order, and added up.
    pub async fn monitor_summary(
        &self,
        monitor: &Monitor,
        from_ms: i64,
        to_ms: i64,
        granularity: Granularity,
    ) -> Result<MonitorSummary, Error> {
        let context = "summarizing a monitor";
        let rows = summary_rows(monitor.id, from_ms, to_ms)
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        // A check the monitor no longer runs is named by its latest version.
        let mut names: HashMap<Uuid, String> =
            monitor.checks.iter().map(|check| (check.id, check.name.clone())).collect();
        let others: Vec<Uuid> = rows
            .iter()
            .filter(|row| !row.check_id.is_empty())
            .filter_map(|row| Uuid::parse_str(&row.check_id).ok())
            .filter(|id| !names.contains_key(id))
            .collect();
        names.extend(super::monitors::latest_names(&self.db, others, context).await?);
        let order: Vec<Uuid> = monitor.checks.iter().map(|check| check.id).collect();
        let mut buckets: Vec<(i64, Sums)> = Vec::new();
        let mut total = Sums::default();
        for row in rows {
            let start = granularity.bucket_of(row.bucket_ms);
            if buckets.last().is_none_or(|(last, _)| *last != start) {
                buckets.push((start, Sums::default()));
            }
            let figures = Figures {
                datapoints: row.datapoints,
                issues: row.issues,
                value_count: row.value_count,
                value_sum: row.value_sum,
            };
            let check = if row.check_id.is_empty() {
                None
            } else {
                Some(parse_uuid(context, &row.check_id)?)
            };
            if let Some((_, sums)) = buckets.last_mut() {
                sums.add(check, figures);
            }
            total.add(check, figures);
        }
        let first = buckets.first().map(|(start, _)| from_millis(*start));
        Ok(MonitorSummary {
            monitor_id: monitor.id,
            granularity,
            buckets: buckets
                .into_iter()
                .map(|(start, sums)| sums.figures(Some(from_millis(start)), &order, &names))
                .filter(|figures| figures.datapoints > 0)
                .collect(),
            total: total.figures(first, &order, &names),
        })
    }
}

/// A bucket's rows added up.
#[derive(Default)]
struct Sums {
    monitor: Figures,
    checks: HashMap<Uuid, Figures>,
}

impl Sums {
    fn add(&mut self, check: Option<Uuid>, figures: Figures) {
        let sum = match check {
            None => &mut self.monitor,
            Some(id) => self.checks.entry(id).or_default(),
        };
        sum.datapoints += figures.datapoints;
        sum.issues += figures.issues;
        sum.value_count += figures.value_count;
        sum.value_sum += figures.value_sum;
    }

    /// The figures, the monitor's checks in its order and others after them by name.
    fn figures(
        self,
        start: Option<chrono::DateTime<chrono::Utc>>,
        order: &[Uuid],
        names: &HashMap<Uuid, String>,
    ) -> SummaryFigures {
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        let mut checks: Vec<CheckFigures> = self
            .checks
            .into_iter()
            .filter(|(_, figures)| figures.datapoints > 0)
            .map(|(check_id, figures)| CheckFigures {
                check_id,
                name: names.get(&check_id).cloned().unwrap_or_default(),
                datapoints: count(figures.datapoints),
                issues: count(figures.issues),
                mean: (figures.value_count > 0).then(|| {
                    #[allow(clippy::cast_precision_loss)]
                    let mean = figures.value_sum / figures.value_count as f64;
                    mean
                }),
            })
            .collect();
        let position = |id: &Uuid| order.iter().position(|other| other == id).unwrap_or(usize::MAX);
        checks.sort_by(|a, b| {
            (position(&a.check_id), &a.name).cmp(&(position(&b.check_id), &b.name))
        });
        SummaryFigures {
            start,
            datapoints: count(self.monitor.datapoints),
            issues: count(self.monitor.issues),
            checks,
        }
    }
}
