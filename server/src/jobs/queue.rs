//! The queue's SQL: the `jobs` table, portable over SQLite and Postgres. Functions that write
//! with something else take the caller's connection or transaction (storage enqueues a job in
//! the transaction that stores its ingest, and finishes it in the one that stores its result);
//! `Queue` holds a connection for the worker loop's own statements (claim, renew).
//!
//! With `storage/`, the only place that imports `sea_orm`: the queue keeps its SQL beside its
//! records and worker loop. Errors are sea-orm's; callers map them (storage into `Error` with
//! its context, the worker loop into a log line).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use super::entity as job;
use super::{ClaimedJob, JobPayload, JobStatus};
use crate::clock::to_millis;

/// Turns at writing, for an embedded SQLite database, shared by every writer of the process
/// (storage's transactions and the queue's claims). SQLite has one writer at a time, and a
/// connection that finds the write lock taken sleeps in its busy handler (1 ms, growing to
/// 100 ms) instead of waking when the lock is free: under load the ingest writer and the workers
/// spent most of their time asleep, and acks waited up to 100 ms. Writers wait their turn here
/// instead, in order, and are woken at once. PostgreSQL locks rows, not the database: no turns.
#[derive(Clone, Debug, Default)]
pub struct WriteTurn(Option<Turns>);

#[derive(Clone, Debug)]
struct Turns {
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Told (without waiting) when a turn ends.
    ended: Option<tokio::sync::mpsc::Sender<()>>,
    held: std::sync::Arc<HeldTurns>,
}

/// The turns that ended and how long they were held, in total.
#[derive(Debug, Default)]
struct HeldTurns {
    turns: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

/// A writer's turn: it lasts until this drops.
#[derive(Debug)]
pub struct Turn {
    _held: tokio::sync::OwnedMutexGuard<()>,
    ended: Option<tokio::sync::mpsc::Sender<()>>,
    taken: tokio::time::Instant,
    counted: std::sync::Arc<HeldTurns>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let nanos = u64::try_from(self.taken.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counted.nanos.fetch_add(nanos, Relaxed);
        self.counted.turns.fetch_add(1, Relaxed);
        if let Some(ended) = &self.ended {
            // Full means a notice is already waiting: one is enough.
            let _already_told = ended.try_send(());
        }
    }
}

impl WriteTurn {
    /// Turns for a database that allows one writer at a time.
    pub fn one_writer() -> Self {
        Self(Some(Turns { lock: std::sync::Arc::default(), ended: None, held: Default::default() }))
    }

    /// `one_writer`, telling `ended` whenever a turn ends (a notice is dropped when one is
    /// already waiting).
    pub fn one_writer_telling(ended: tokio::sync::mpsc::Sender<()>) -> Self {
        Self(Some(Turns {
            lock: std::sync::Arc::default(),
            ended: Some(ended),
            held: Default::default(),
        }))
    }

    /// The turns that have ended and the seconds they were held, in total: how busy the one
    /// writer has been (`/metrics`). Zero without turns.
    pub fn held(&self) -> (u64, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.as_ref().map_or((0, 0.0), |turns| {
            (turns.held.turns.load(Relaxed), turns.held.nanos.load(Relaxed) as f64 / 1e9)
        })
    }

    /// Waits for this writer's turn, which lasts as long as the returned `Turn`.
    pub async fn take(&self) -> Option<Turn> {
        match &self.0 {
            Some(turns) => {
                let held = turns.lock.clone().lock_owned().await;
                Some(Turn {
                    _held: held,
                    ended: turns.ended.clone(),
                    taken: tokio::time::Instant::now(),
                    counted: turns.held.clone(),
                })
            }
            None => None,
        }
    }
}

/// The worker loop's handle on the `jobs` table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Queue {
    /// For reads.
    db: DatabaseConnection,
    /// For writes, taken in turns (see `Storage`'s writer).
    writer: DatabaseConnection,
    write_turn: WriteTurn,
}

impl Queue {
    pub fn new(db: DatabaseConnection, writer: DatabaseConnection, write_turn: WriteTurn) -> Self {
        Self { db, writer, write_turn }
    }

    /// Claims up to `limit` due jobs for `worker`: first running jobs whose lease expired (their
    /// holder stopped renewing), then queued jobs that are due, oldest first. Each path is one
    /// `UPDATE … RETURNING` over an index range (`jobs_by_status_lease`, `jobs_by_status_due`),
    /// so a claim costs the same whatever the backlog; on PostgreSQL the candidates are locked
    /// with `FOR UPDATE SKIP LOCKED`, so concurrent workers of several processes take different
    /// jobs without waiting, and on SQLite the single writer serializes them.
    pub async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, DbErr> {
        let now_ms = to_millis(now);
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let _turn = self.write_turn.take().await;
        let mut claimed = self
            .claim_path(ClaimPath::ExpiredLease, worker, now_ms, now_ms + lease_ms, limit)
            .await?;
        if claimed.len() < limit {
            let remaining = limit - claimed.len();
            claimed.extend(
                self.claim_path(ClaimPath::Due, worker, now_ms, now_ms + lease_ms, remaining)
                    .await?,
            );
        }
        Ok(claimed)
    }

    async fn claim_path(
        &self,
        path: ClaimPath,
        worker: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, DbErr> {
        let backend = self.db.get_database_backend();
        let postgres = backend == DbBackend::Postgres;
        let placeholder = |index| placeholder(postgres, index);
        let sql = format!(
            "UPDATE jobs SET status = {running}, lease_owner = {owner}, \
             lease_expires_at_ms = {until}, attempts = attempts + 1, updated_at_ms = {now} \
             WHERE id IN ({candidates}) \
             RETURNING id, payload_json, input_json, attempts, max_attempts",
            running = placeholder(1),
            owner = placeholder(2),
            until = placeholder(3),
            now = placeholder(4),
            candidates = candidates_sql(path, postgres, 5),
        );
        let values: [sea_orm::Value; 7] = [
            JobStatus::Running.as_str().into(),
            worker.into(),
            lease_until_ms.into(),
            now_ms.into(),
            path.status().as_str().into(),
            now_ms.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ];
        let rows =
            self.writer.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        let mut claimed: Vec<ClaimedJob> = rows
            .iter()
            .map(|row| {
                claimed_job(
                    &row.try_get::<String>("", "id")?,
                    &row.try_get::<String>("", "payload_json")?,
                    row.try_get("", "input_json")?,
                    row.try_get("", "attempts")?,
                    row.try_get("", "max_attempts")?,
                )
            })
            .collect::<Result<_, DbErr>>()?;
        // RETURNING gives no order; the oldest first.
        claimed.sort_by_key(|job| job.id);
        Ok(claimed)
    }

    /// Puts every job left `running` back in the queue, due now, and returns how many. For the
    /// embedded SQLite default only, where one process owns the database file: when it starts,
    /// no worker of a previous process can still hold a lease, so there is no need to wait for
    /// the leases to expire.
    pub async fn reclaim_abandoned(&self, now: DateTime<Utc>) -> Result<u64, DbErr> {
        let _turn = self.write_turn.take().await;
        let updated = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Queued.as_str()))
            .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(job::Column::LeaseExpiresAtMs, Expr::value(Option::<i64>::None))
            .col_expr(job::Column::RunAfterMs, Expr::value(to_millis(now)))
            .col_expr(job::Column::UpdatedAtMs, Expr::value(to_millis(now)))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
            .exec(&self.writer)
            .await?;
        Ok(updated.rows_affected)
    }

    /// Whether the queue lives in an embedded SQLite file (one process owns it).
    pub fn is_embedded(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Sqlite
    }

    /// Pushes the leases `worker` still holds among `job_ids` to `until`, in one statement, and
    /// returns the ids it still holds (a lease that expired may have gone to another worker).
    pub async fn extend_leases(
        &self,
        job_ids: &[Uuid],
        worker: &str,
        until: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, DbErr> {
        let _turn = self.write_turn.take().await;
        let renewed = job::Entity::update_many()
            .col_expr(job::Column::LeaseExpiresAtMs, Expr::value(to_millis(until)))
            .filter(job::Column::Id.is_in(job_ids.iter().map(Uuid::to_string)))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
            .filter(job::Column::LeaseOwner.eq(worker))
            .exec_with_returning(&self.writer)
            .await?;
        renewed
            .iter()
            .map(|model| Uuid::parse_str(&model.id).map_err(|error| DbErr::Type(error.to_string())))
            .collect()
    }

    /// The queue's depth by status and the wait of its oldest due job, for `/metrics`: one
    /// grouped count over the status index's ranges of the unfinished statuses, and one index
    /// seek, both read from the index alone (`state_queries`). Succeeded jobs leave the table
    /// (`succeed`; databases from before that may still hold some) and are not counted: a
    /// scrape costs what the queue holds, not what the database holds (`earshot_jobs_total`
    /// counts successes).
    pub async fn state(&self, now: DateTime<Utc>) -> Result<crate::metrics::QueueState, DbErr> {
        let [by_status_query, oldest_query] = state_queries(now);
        let counts: Vec<(String, i64)> = by_status_query.into_tuple().all(&self.db).await?;
        let by_status = unfinished_statuses()
            .map(|status| {
                let count = counts
                    .iter()
                    .find(|(name, _)| name == status.as_str())
                    .map_or(0, |(_, count)| u64::try_from(*count).unwrap_or(0));
                (status.as_str(), count)
            })
            .collect();
        let oldest: Option<i64> = oldest_query.into_tuple().one(&self.db).await?;
        let oldest_due_seconds =
            oldest.map_or(0, |due| u64::try_from((to_millis(now) - due) / 1000).unwrap_or(0));
        let (write_turns, write_turn_seconds) = self.write_turn.held();
        Ok(crate::metrics::QueueState {
            by_status,
            oldest_due_seconds,
            intake_log_requests: 0,
            write_turns,
            write_turn_seconds,
        })
    }

    /// Gives jobs `worker` claimed and did not start back to the queue (a stopping worker), with
    /// the attempt their claim counted taken back.
    pub async fn release(&self, job_ids: &[Uuid], worker: &str) -> Result<u64, DbErr> {
        let _turn = self.write_turn.take().await;
        let updated = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Queued.as_str()))
            .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(job::Column::LeaseExpiresAtMs, Expr::value(Option::<i64>::None))
            .col_expr(job::Column::Attempts, Expr::col(job::Column::Attempts).sub(1))
            .filter(job::Column::Id.is_in(job_ids.iter().map(Uuid::to_string)))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
            .filter(job::Column::LeaseOwner.eq(worker))
            .exec(&self.writer)
            .await?;
        Ok(updated.rows_affected)
    }

    /// Counts jobs by status, for tests and operations.
    pub async fn count(&self, status: JobStatus) -> Result<u64, DbErr> {
        job::Entity::find().filter(job::Column::Status.eq(status.as_str())).count(&self.db).await
    }
}

/// The two index-driven ways a job becomes claimable.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ClaimPath {
    /// Running, but its holder stopped renewing the lease.
    ExpiredLease,
    /// Queued and due.
    Due,
}

impl ClaimPath {
    #[cfg(test)]
    pub(crate) const ALL: [ClaimPath; 2] = [ClaimPath::ExpiredLease, ClaimPath::Due];

    fn status(self) -> JobStatus {
        match self {
            ClaimPath::ExpiredLease => JobStatus::Running,
            ClaimPath::Due => JobStatus::Queued,
        }
    }
}

/// The statuses of jobs still in the queue (a succeeded job leaves it).
fn unfinished_statuses() -> impl Iterator<Item = JobStatus> + Clone {
    JobStatus::ALL.into_iter().filter(|status| *status != JobStatus::Succeeded)
}

/// What `Queue::state` reads: the unfinished jobs counted by status, and the due time of the
/// oldest due queued job. Both are answered from the status indexes without reading a job's
/// row: `COUNT(*)`, not a count of a column the indexes do not hold (which read every queued
/// job's row, the whole backlog's inputs, on every scrape).
pub(crate) fn state_queries(now: DateTime<Utc>) -> [sea_orm::Select<job::Entity>; 2] {
    let by_status = job::Entity::find()
        .select_only()
        .column(job::Column::Status)
        .column_as(Expr::from(Func::count(Expr::col(Asterisk))), "count")
        .filter(job::Column::Status.is_in(unfinished_statuses().map(JobStatus::as_str)))
        .group_by(job::Column::Status);
    let oldest = job::Entity::find()
        .select_only()
        .column(job::Column::RunAfterMs)
        .filter(job::Column::Status.eq(JobStatus::Queued.as_str()))
        .filter(job::Column::RunAfterMs.lte(to_millis(now)))
        .order_by_asc(job::Column::RunAfterMs)
        .limit(1);
    [by_status, oldest]
}

/// Bind parameter `index` (from 1) as each engine writes it: `$1` on PostgreSQL, `?` on SQLite.
fn placeholder(postgres: bool, index: usize) -> String {
    if postgres { format!("${index}") } else { "?".to_owned() }
}

/// The ids a claim takes on `path`: parameters `first` (status), `first + 1` (now) and
/// `first + 2` (how many); in index order, so the database reads a range of the index and
/// sorts nothing.
pub(crate) fn candidates_sql(path: ClaimPath, postgres: bool, first: usize) -> String {
    let placeholder = |index| placeholder(postgres, index);
    let (column, comparison) = match path {
        ClaimPath::ExpiredLease => ("lease_expires_at_ms", "<"),
        ClaimPath::Due => ("run_after_ms", "<="),
    };
    format!(
        "SELECT id FROM jobs WHERE status = {status} AND {column} {comparison} {now} \
         ORDER BY {column} LIMIT {limit}{lock}",
        status = placeholder(first),
        now = placeholder(first + 1),
        limit = placeholder(first + 2),
        lock = if postgres { " FOR UPDATE SKIP LOCKED" } else { "" },
    )
}

fn claimed_job(
    id: &str,
    payload_json: &str,
    input: Option<String>,
    attempts: i32,
    max_attempts: i32,
) -> Result<ClaimedJob, DbErr> {
    let payload: JobPayload = serde_json::from_str(payload_json)
        .map_err(|error| DbErr::Json(format!("job {id}: {error}")))?;
    let id = Uuid::parse_str(id).map_err(|error| DbErr::Type(error.to_string()))?;
    Ok(ClaimedJob { id, payload, input, attempts, max_attempts })
}

/// The row of a queued job, due now: built before the write turn, written with `enqueue`. A
/// job's id is that of what it processes (an ingest's job shares the ingest's id); `input` is
/// what it works on when that travels with the job.
pub fn new_job(
    id: Uuid,
    payload: &JobPayload,
    input: Option<String>,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> Result<NewJob, DbErr> {
    let payload_json =
        serde_json::to_string(payload).map_err(|error| DbErr::Json(error.to_string()))?;
    Ok(NewJob(job::ActiveModel {
        id: Set(id.to_string()),
        kind: Set(payload.kind().to_owned()),
        payload_json: Set(payload_json),
        input_json: Set(input),
        status: Set(JobStatus::Queued.as_str().to_owned()),
        attempts: Set(0),
        max_attempts: Set(max_attempts),
        run_after_ms: Set(to_millis(now)),
        lease_owner: Set(None),
        lease_expires_at_ms: Set(None),
        last_error: Set(String::new()),
        created_at_ms: Set(to_millis(now)),
        updated_at_ms: Set(to_millis(now)),
    }))
}

/// A job's row, ready to write.
#[derive(Clone, Debug)]
pub struct NewJob(job::ActiveModel);

/// Writes jobs (`new_job`) in the caller's transaction: a multi-row statement per chunk.
pub async fn enqueue(connection: &impl ConnectionTrait, jobs: Vec<NewJob>) -> Result<(), DbErr> {
    let mut jobs = jobs.into_iter().map(|job| job.0).peekable();
    while jobs.peek().is_some() {
        job::Entity::insert_many(jobs.by_ref().take(ID_CHUNK))
            .exec_without_returning(connection)
            .await?;
    }
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

/// Takes succeeded jobs out of the queue, in one statement per chunk of ids. What they
/// processed records the success (an ingest is `done`, with its datapoint); the table keeps only
/// work that is waiting, running, parked or dead, so it stays as small as the backlog and a
/// success costs no status and index updates.
pub async fn succeed(connection: &impl ConnectionTrait, job_ids: &[Uuid]) -> Result<(), DbErr> {
    for chunk in job_ids.chunks(ID_CHUNK) {
        job::Entity::delete_many()
            .filter(job::Column::Id.is_in(chunk.iter().map(Uuid::to_string)))
            .exec(connection)
            .await?;
    }
    Ok(())
}

/// Ids of one `IN (…)` list.
const ID_CHUNK: usize = 500;

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

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::WriteTurn;

    /// One writer at a time, woken as soon as the one before it is done; without turns (a
    /// database that locks rows) nobody waits.
    #[tokio::test]
    async fn writers_take_turns_in_order() {
        let turns = WriteTurn::one_writer();
        let first = turns.take().await;
        let mut second = Box::pin(turns.take());
        assert!(second.as_mut().now_or_never().is_none(), "the second waits for the first");
        drop(first);
        assert!(second.now_or_never().is_some(), "and goes on once the first is done");
        let free = WriteTurn::default();
        let _held = free.take().await;
        assert!(free.take().now_or_never().is_some());
    }

    /// Each ended turn is counted with the time it was held, from taken to dropped.
    #[tokio::test(start_paused = true)]
    async fn turns_count_the_time_they_are_held() {
        let turns = WriteTurn::one_writer();
        assert_eq!(turns.held(), (0, 0.0));
        let turn = turns.take().await;
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
        assert_eq!(turns.held(), (0, 0.0), "a turn under way is not counted yet");
        drop(turn);
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        let turn = turns.take().await;
        tokio::time::advance(std::time::Duration::from_millis(20)).await;
        drop(turn);
        assert_eq!(turns.held(), (2, 0.025), "5 and 20 ms held, the 100 ms between not");
        assert_eq!(WriteTurn::default().held(), (0, 0.0));
    }

    /// Turns that tell when they end leave one notice for any number of ended turns not yet
    /// read (the checkpointer needs to know that something was written, not how often).
    #[tokio::test]
    async fn ended_turns_leave_one_notice() {
        let (ended, mut notices) = tokio::sync::mpsc::channel(1);
        let turns = WriteTurn::one_writer_telling(ended);
        assert!(notices.try_recv().is_err(), "nothing ended yet");
        let turn = turns.take().await;
        assert!(notices.try_recv().is_err(), "a turn under way is not over");
        drop(turn);
        drop(turns.take().await);
        drop(turns.take().await);
        assert!(notices.try_recv().is_ok());
        assert!(notices.try_recv().is_err(), "three turns, one notice");
        drop(turns);
        assert!(notices.recv().await.is_none(), "no turns left: the notices end");
    }
}
