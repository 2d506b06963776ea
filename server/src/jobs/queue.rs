//! The queue's SQL: the `jobs` table, portable over SQLite and Postgres. Functions that write
//! with something else take the caller's connection or transaction (storage enqueues a job in
//! the transaction that stores its ingest, and finishes it in the one that stores its result);
//! `Queue` holds a connection for the worker loop's own statements (claim, renew).
//!
//! With `storage/`, the only place that imports `sea_orm`: the queue keeps its SQL beside its
//! records and worker loop. Errors are sea-orm's; callers map them (storage into `Error` with
//! its context, the worker loop into a log line).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entity as job;
use super::{ClaimedJob, JobPayload, JobStatus};
use crate::clock::to_millis;

/// The worker loop's handle on the `jobs` table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Queue {
    db: DatabaseConnection,
}

impl Queue {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Claims up to `limit` due jobs (queued and due, or running with an expired lease) for
    /// `worker`. Each claim is a conditional update that re-checks claimability, so concurrent
    /// workers, in this process or another, never hold the same job.
    pub async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, DbErr> {
        let now_ms = to_millis(now);
        let claimable = || {
            Condition::any()
                .add(
                    Condition::all()
                        .add(job::Column::Status.eq(JobStatus::Queued.as_str()))
                        .add(job::Column::RunAfterMs.lte(now_ms)),
                )
                .add(
                    Condition::all()
                        .add(job::Column::Status.eq(JobStatus::Running.as_str()))
                        .add(job::Column::LeaseExpiresAtMs.lt(now_ms)),
                )
        };
        let candidates = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(claimable())
            .order_by_asc(job::Column::RunAfterMs)
            .order_by_asc(job::Column::Id)
            .limit(u64::try_from(limit * 4).unwrap_or(64))
            .into_tuple::<String>()
            .all(&self.db)
            .await?;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let mut claimed = Vec::new();
        for id in candidates {
            if claimed.len() >= limit {
                break;
            }
            let updated = job::Entity::update_many()
                .col_expr(job::Column::Status, Expr::value(JobStatus::Running.as_str()))
                .col_expr(job::Column::LeaseOwner, Expr::value(worker))
                .col_expr(job::Column::LeaseExpiresAtMs, Expr::value(now_ms + lease_ms))
                .col_expr(job::Column::Attempts, Expr::col(job::Column::Attempts).add(1))
                .col_expr(job::Column::UpdatedAtMs, Expr::value(now_ms))
                .filter(job::Column::Id.eq(id.clone()))
                .filter(claimable())
                .exec(&self.db)
                .await?;
            if updated.rows_affected == 0 {
                continue;
            }
            let Some(row) = job::Entity::find_by_id(id).one(&self.db).await? else {
                continue;
            };
            claimed.push(claimed_job(&row)?);
        }
        Ok(claimed)
    }

    /// Pushes the lease of a job `worker` still holds to `until`; false when it no longer holds
    /// it (the lease expired and another worker claimed the job).
    pub async fn extend_lease(
        &self,
        job_id: Uuid,
        worker: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let updated = job::Entity::update_many()
            .col_expr(job::Column::LeaseExpiresAtMs, Expr::value(to_millis(until)))
            .filter(job::Column::Id.eq(job_id.to_string()))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
            .filter(job::Column::LeaseOwner.eq(worker))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Counts jobs by status, for tests and operations.
    pub async fn count(&self, status: JobStatus) -> Result<u64, DbErr> {
        job::Entity::find().filter(job::Column::Status.eq(status.as_str())).count(&self.db).await
    }
}

fn claimed_job(row: &job::Model) -> Result<ClaimedJob, DbErr> {
    let payload: JobPayload = serde_json::from_str(&row.payload_json)
        .map_err(|error| DbErr::Json(format!("job {}: {error}", row.id)))?;
    let id = Uuid::parse_str(&row.id).map_err(|error| DbErr::Type(error.to_string()))?;
    Ok(ClaimedJob { id, payload, attempts: row.attempts, max_attempts: row.max_attempts })
}

/// Writes a queued job, due now, in the caller's transaction. Its id is that of what it
/// processes (an ingest's job shares the ingest's id).
pub async fn enqueue(
    connection: &impl ConnectionTrait,
    id: Uuid,
    payload: &JobPayload,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let payload_json =
        serde_json::to_string(payload).map_err(|error| DbErr::Json(error.to_string()))?;
    job::Entity::insert(job::ActiveModel {
        id: Set(id.to_string()),
        kind: Set(payload.kind().to_owned()),
        payload_json: Set(payload_json),
        status: Set(JobStatus::Queued.as_str().to_owned()),
        attempts: Set(0),
        max_attempts: Set(max_attempts),
        run_after_ms: Set(to_millis(now)),
        lease_owner: Set(None),
        lease_expires_at_ms: Set(None),
        last_error: Set(String::new()),
        created_at_ms: Set(to_millis(now)),
        updated_at_ms: Set(to_millis(now)),
    })
    .exec_without_returning(connection)
    .await?;
    Ok(())
}

/// Ends a job's lease with `status` (queued again at `run_after`, or finished), recording
/// `error`.
pub async fn set_status(
    connection: &impl ConnectionTrait,
    job_id: Uuid,
    status: JobStatus,
    run_after: Option<DateTime<Utc>>,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut update = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(status.as_str()))
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseExpiresAtMs, Expr::value(Option::<i64>::None))
        .col_expr(job::Column::LastError, Expr::value(error))
        .col_expr(job::Column::UpdatedAtMs, Expr::value(to_millis(now)));
    if let Some(run_after) = run_after {
        update = update.col_expr(job::Column::RunAfterMs, Expr::value(to_millis(run_after)));
    }
    update.filter(job::Column::Id.eq(job_id.to_string())).exec(connection).await?;
    Ok(())
}

/// Queues a job again, due now, with a fresh attempt budget.
pub async fn requeue(
    connection: &impl ConnectionTrait,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Queued.as_str()))
        .col_expr(job::Column::Attempts, Expr::value(0))
        .col_expr(job::Column::RunAfterMs, Expr::value(to_millis(now)))
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseExpiresAtMs, Expr::value(Option::<i64>::None))
        .col_expr(job::Column::UpdatedAtMs, Expr::value(to_millis(now)))
        .filter(job::Column::Id.eq(job_id.to_string()))
        .exec(connection)
        .await?;
    Ok(())
}
