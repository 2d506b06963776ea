//! Monitor backfills (m0016): a monitor evaluated over stored calls, newest first, in batches.
//! Each batch is one write transaction that reads the next calls after the cursor, evaluates
//! them as a stored call is evaluated when it arrives again (every monitor of the organization,
//! `evaluate_into`, its earlier results and summary contributions replaced), and moves the
//! cursor and the counts with them: a crash loses at most the batch in flight, which the job,
//! claimed again, redoes from the same cursor, so nothing is counted twice.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::{monitor, monitor_backfill};
use super::{Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::jobs::{JobPayload, JobStatus, queue};
use crate::model::datapoints::{Datapoint, DatapointCursor, DatapointQuery};
use crate::model::monitors::{Backfill, BackfillState, Monitor};

/// Backfills one listing returns, newest first.
pub const LISTED_BACKFILLS: u64 = 100;

impl Storage {
    /// The calls of the organization `monitor`'s filter matches in `[from, to)`: a backfill's
    /// total, counted once when it starts (the searches' statement, counted).
    pub async fn count_backfill_calls(
        &self,
        monitor: &Monitor,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<u64, Error> {
        let query = backfill_query(monitor, from, to, None, i64::MAX as usize);
        let text = self.narrowing(monitor.organization_id, &query).await?;
        let backend = self.db.get_database_backend();
        super::datapoints::search_statement(monitor.organization_id, &query, text.as_ref(), backend)
            .count(&self.db)
            .await
            .map_err(db_error("counting a backfill's calls"))
    }

    /// A new backfill with its job, in one transaction.
    pub async fn start_backfill(
        &self,
        backfill: &Backfill,
        max_attempts: i32,
    ) -> Result<(), Error> {
        let context = "starting a backfill";
        let job = queue::new_job(
            backfill.id,
            &JobPayload::MonitorBackfillV1 { backfill_id: backfill.id },
            None,
            max_attempts,
            backfill.created_at,
        )
        .map_err(db_error(context))?;
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        monitor_backfill::Entity::insert(model_of(backfill))
            .exec_without_returning(&transaction)
            .await
            .map_err(db_error(context))?;
        queue::enqueue(&transaction, vec![job]).await.map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    pub async fn get_backfill(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Backfill>, Error> {
        let context = "reading a backfill";
        monitor_backfill::Entity::find_by_id(id.to_string())
            .filter(monitor_backfill::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error(context))?
            .map(|model| backfill_from_model(model, context))
            .transpose()
    }

    /// A monitor's backfills, newest first (`monitor_backfills_by_monitor`).
    pub async fn list_backfills(
        &self,
        organization_id: Uuid,
        monitor_id: Uuid,
    ) -> Result<Vec<Backfill>, Error> {
        let context = "listing backfills";
        backfills_of(organization_id, monitor_id)
            .all(&self.db)
            .await
            .map_err(db_error(context))?
            .into_iter()
            .map(|model| backfill_from_model(model, context))
            .collect()
    }

    /// Evaluates the next `batch_size` calls of a running backfill and moves it on, in one
    /// transaction; a batch shorter than asked for ends it (`succeeded`, its job done in the same
    /// commit). The backfill as it stands after the batch; None when it is gone (its monitor was
    /// deleted), its job then done too.
    pub async fn backfill_step(
        &self,
        id: Uuid,
        batch_size: usize,
        now: DateTime<Utc>,
    ) -> Result<Option<Backfill>, Error> {
        let context = "backfilling a monitor";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let Some(model) = monitor_backfill::Entity::find_by_id(id.to_string())
            .one(&transaction)
            .await
            .map_err(db_error(context))?
        else {
            queue::succeed(&transaction, &[id]).await.map_err(db_error(context))?;
            transaction.commit().await.map_err(db_error(context))?;
            return Ok(None);
        };
        let mut backfill = backfill_from_model(model.clone(), context)?;
        if backfill.state != BackfillState::Running {
            queue::succeed(&transaction, &[id]).await.map_err(db_error(context))?;
            transaction.commit().await.map_err(db_error(context))?;
            return Ok(Some(backfill));
        }
        let monitors = monitor::Entity::find_by_id(model.monitor_id.clone())
            .filter(monitor::Column::OrganizationId.eq(model.organization_id.clone()))
            .all(&transaction)
            .await
            .map_err(db_error(context))?;
        let Some(monitor) =
            super::monitors::monitors_from_models(&transaction, monitors, context).await?.pop()
        else {
            queue::succeed(&transaction, &[id]).await.map_err(db_error(context))?;
            transaction.commit().await.map_err(db_error(context))?;
            return Ok(None);
        };
        let query =
            backfill_query(&monitor, backfill.from, backfill.to, backfill.cursor, batch_size);
        let text = self.narrowing(backfill.organization_id, &query).await?;
        let backend = transaction.get_database_backend();
        let models = super::datapoints::search_page(
            &transaction,
            backfill.organization_id,
            &query,
            text.as_ref(),
            context,
        )
        .await?;
        let datapoints: Vec<Datapoint> =
            super::datapoints::datapoints_from_models(&transaction, models, context).await?;
        let mut batch = super::Batch::new(backend);
        let evaluated: Vec<&Datapoint> = datapoints.iter().collect();
        let stored = datapoints.iter().map(|datapoint| datapoint.id).collect();
        // A backfill tells no endpoint about old calls' failed checks (`check.failed` is for
        // calls as they are stored).
        let texts = super::monitors::SearchTexts::default();
        let prepared =
            super::monitors::Prepared::read(&transaction, &evaluated, &texts, context).await?;
        let counts = super::monitors::evaluate_into(
            &transaction,
            prepared,
            &stored,
            &mut batch,
            now,
            context,
        )
        .await?
        .counts;
        let (matched, issues) = counts.get(&monitor.id).copied().unwrap_or_default();
        backfill.processed += datapoints.len() as u64;
        backfill.matched += matched;
        backfill.issues += issues;
        backfill.cursor = datapoints.last().map(DatapointCursor::after).or(backfill.cursor);
        backfill.updated_at = now;
        if datapoints.len() < batch_size {
            backfill.state = BackfillState::Succeeded;
            backfill.finished_at = Some(now);
        }
        batch.execute(&transaction, context).await?;
        monitor_backfill::Entity::update(model_of(&backfill))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        if backfill.state == BackfillState::Succeeded {
            queue::succeed(&transaction, &[id]).await.map_err(db_error(context))?;
        }
        transaction.commit().await.map_err(db_error(context))?;
        Ok(Some(backfill))
    }

    /// Records a failed attempt of a backfill's job: queued again at `retry_at` (from its
    /// cursor), or, when None, dead, and the backfill `failed` with `error`.
    pub async fn fail_backfill(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "recording a failed backfill";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let status = if retry_at.is_some() { JobStatus::Queued } else { JobStatus::Dead };
        queue::set_status(&transaction, id, status, retry_at, error, now)
            .await
            .map_err(db_error(context))?;
        if retry_at.is_none() {
            monitor_backfill::Entity::update_many()
                .col_expr(
                    monitor_backfill::Column::State,
                    Expr::value(BackfillState::Failed.as_str()),
                )
                .col_expr(monitor_backfill::Column::Error, Expr::value(error))
                .col_expr(monitor_backfill::Column::UpdatedAtMs, Expr::value(to_millis(now)))
                .col_expr(monitor_backfill::Column::FinishedAtMs, Expr::value(to_millis(now)))
                .filter(monitor_backfill::Column::Id.eq(id.to_string()))
                .exec(&transaction)
                .await
                .map_err(db_error(context))?;
        }
        transaction.commit().await.map_err(db_error(context))
    }
}

/// A monitor's latest backfills (`monitor_backfills_by_monitor`, newest first).
pub(super) fn backfills_of(
    organization_id: Uuid,
    monitor_id: Uuid,
) -> sea_orm::Select<monitor_backfill::Entity> {
    monitor_backfill::Entity::find()
        .filter(monitor_backfill::Column::MonitorId.eq(monitor_id.to_string()))
        .filter(monitor_backfill::Column::OrganizationId.eq(organization_id.to_string()))
        .order_by_desc(monitor_backfill::Column::CreatedAtMs)
        .limit(LISTED_BACKFILLS)
}

/// The calls a backfill of `monitor` evaluates: its filter, within `[from, to)` as well, after
/// `cursor`, newest first.
fn backfill_query(
    monitor: &Monitor,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<DatapointCursor>,
    page_size: usize,
) -> DatapointQuery {
    let mut query = monitor.filter.as_query();
    // `None` orders first: the later of two starts, the earlier of two ends.
    query.from = query.from.max(from);
    query.to = match (query.to, to) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    query.before = cursor;
    query.page_size = page_size;
    query
}

fn model_of(backfill: &Backfill) -> monitor_backfill::ActiveModel {
    monitor_backfill::ActiveModel {
        id: Set(backfill.id.to_string()),
        organization_id: Set(backfill.organization_id.to_string()),
        monitor_id: Set(backfill.monitor_id.to_string()),
        state: Set(backfill.state.as_str().to_owned()),
        from_ms: Set(backfill.from.map(to_millis)),
        to_ms: Set(backfill.to.map(to_millis)),
        cursor_occurred_at_ms: Set(backfill.cursor.map(|cursor| cursor.occurred_at_ms)),
        cursor_id: Set(backfill.cursor.map(|cursor| cursor.id.to_string())),
        total: Set(i64::try_from(backfill.total).unwrap_or(i64::MAX)),
        processed: Set(i64::try_from(backfill.processed).unwrap_or(i64::MAX)),
        matched: Set(i64::try_from(backfill.matched).unwrap_or(i64::MAX)),
        issues: Set(i64::try_from(backfill.issues).unwrap_or(i64::MAX)),
        error: Set(backfill.error.clone()),
        created_at_ms: Set(to_millis(backfill.created_at)),
        updated_at_ms: Set(to_millis(backfill.updated_at)),
        finished_at_ms: Set(backfill.finished_at.map(to_millis)),
    }
}

fn backfill_from_model(
    model: monitor_backfill::Model,
    context: &'static str,
) -> Result<Backfill, Error> {
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    let cursor = match (model.cursor_occurred_at_ms, &model.cursor_id) {
        (Some(occurred_at_ms), Some(id)) => {
            Some(DatapointCursor { occurred_at_ms, id: parse_uuid(context, id)? })
        }
        _ => None,
    };
    Ok(Backfill {
        id: parse_uuid(context, &model.id)?,
        organization_id: parse_uuid(context, &model.organization_id)?,
        monitor_id: parse_uuid(context, &model.monitor_id)?,
        state: BackfillState::parse(&model.state)
            .ok_or_else(|| Error::internal(context, format!("unknown state {}", model.state)))?,
        from: model.from_ms.map(from_millis),
        to: model.to_ms.map(from_millis),
        cursor,
        total: count(model.total),
        processed: count(model.processed),
        matched: count(model.matched),
        issues: count(model.issues),
        error: model.error,
        created_at: from_millis(model.created_at_ms),
        updated_at: from_millis(model.updated_at_ms),
        finished_at: model.finished_at_ms.map(from_millis),
    })
}
