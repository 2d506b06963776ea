//! Persistence. The only module that imports `sea_orm`; repositories take and return domain
//! types.
//!
//! Everything here is portable SQL built by sea-query, except `sqlite_connect_options`, the
//! one place that holds SQLite-only settings.

mod backfills;
mod changes;
mod console;
mod datapoints;
mod deliveries;
mod documents;
#[cfg(test)]
mod documents_tests;
mod entities;
mod events;
#[cfg(test)]
mod events_tests;
mod group_commit;
mod ingest;
#[cfg(test)]
pub(crate) mod ingest_tests;
mod intake_log;
#[cfg(test)]
mod intake_log_tests;
mod integrations;
mod lifecycle;
mod migrations;
mod monitors;
#[cfg(test)]
mod monitors_tests;
mod presets;
mod projects;
mod rollups;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod stored_formats_tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::error::Error;
use crate::jobs::queue::WriteTurn;

pub use changes::{Change, Changes, LiveProcesses};
pub use datapoints::{CallKey, FinishedIngest};
pub use deliveries::DeliveryIntegrations;
pub use events::{
    AttemptOutcome, DueDelivery, NextStep, SealedEndpoint, StoredHeaders, StoredSecret,
};
pub use group_commit::IngestWriter;
pub use ingest::{Committed, Expanded, IntakeSettings, LogBatch, StoredLog};
pub use intake_log::LoggedWrite;
pub use lifecycle::OrphanBlob;
pub use monitors::ResultsChange;

/// A pool of database connections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    db: DatabaseConnection,
    /// The connection transactions that write go through (`begin_write`, the queue's writes).
    /// On a SQLite file, one connection of its own: SQLite empties a connection's page cache
    /// whenever another connection committed since its last transaction, so writes spread
    /// over the pool read every page they touch again; one writer keeps its cache warm. On
    /// PostgreSQL and in memory, the pool itself.
    writer: DatabaseConnection,
    /// Turns at writing on SQLite (see `WriteTurn`), shared with the queue.
    write_turn: WriteTurn,
    /// On a SQLite file, the write-ahead log the writer's commits wait on (`WriteTransaction`).
    log: Option<Arc<LogSync>>,
    /// Keys of the intake log's writes not stored yet (`intake_log`).
    pending: Arc<intake_log::PendingKeys>,
}

impl Storage {
    /// Connects to `sqlite://...` or `postgres://...`. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false).acquire_timeout(Duration::from_secs(10));
        if url.starts_with("sqlite:") {
            sqlite_connect_options(&mut options, url);
        } else {
            options.max_connections(16).min_connections(1);
        }
        let connect = |options: ConnectOptions| async move {
            Database::connect(options).await.map_err(|error| {
                Error::internal("connecting to the database", redact_db_error(&error, url))
            })
        };
        let db = connect(options.clone()).await?;
        let (writer, write_turn, log) = match db.get_database_backend() {
            DbBackend::Sqlite if !sqlite_in_memory(url) => {
                let (ended, turns_ended) = tokio::sync::mpsc::channel(1);
                tokio::spawn(checkpoint_after_writes(db.clone(), turns_ended));
                let writer = connect(sqlite_writer_options(options)).await?;
                let log = LogSync::of(&writer).await?;
                (writer, WriteTurn::one_writer_telling(ended), Some(Arc::new(log)))
            }
            DbBackend::Sqlite => (db.clone(), WriteTurn::one_writer(), None),
            _ => (db.clone(), WriteTurn::default(), None),
        };
        Ok(Self { db, writer, write_turn, log, pending: Arc::default() })
    }

    /// Applies pending migrations; safe to call on every start.
    pub async fn migrate(&self) -> Result<(), Error> {
        migrations::Migrator::up(&self.db, None)
            .await
            .map_err(|error| Error::internal("running database migrations", error))
    }

    /// Names of applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<String>, Error> {
        let applied = migrations::Migrator::get_applied_migrations(&self.db)
            .await
            .map_err(|error| Error::internal("reading applied migrations", error))?;
        Ok(applied.into_iter().map(|migration| migration.name().to_owned()).collect())
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), Error> {
        self.db
            .ping()
            .await
            .map_err(|error| Error::Unavailable(format!("database unreachable: {error}")))
    }

    /// The job queue's handle on this database, for the worker loop.
    pub fn queue(&self) -> crate::jobs::Queue {
        crate::jobs::Queue::new(self.db.clone(), self.writer.clone(), self.write_turn.clone())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    pub async fn close(self) -> Result<(), Error> {
        self.writer
            .close()
            .await
            .and(self.db.close().await)
            .map_err(|error| Error::internal("closing the database", error))
    }
}

// ---- SQLite-only settings: the one place. ----
//
// WAL lets readers proceed during a write; synchronous=FULL makes every commit durable (fsync of
// the WAL) before it returns, which is what "a 2xx means stored" rests on. A busy timeout makes
// concurrent writers wait instead of failing. Foreign keys are not relied upon.
fn sqlite_connect_options(options: &mut ConnectOptions, url: &str) {
    let in_memory = sqlite_in_memory(url);
    options.map_sqlx_sqlite_opts(move |sqlite| sqlite_settings(sqlite, in_memory));
    // An in-memory database lives in one connection; a file database serves several readers.
    if in_memory {
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>);
    } else {
        options.max_connections(8).min_connections(1);
    }
}

fn sqlite_settings(
    sqlite: sea_orm::sqlx::sqlite::SqliteConnectOptions,
    in_memory: bool,
) -> sea_orm::sqlx::sqlite::SqliteConnectOptions {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    let sqlite = sqlite.busy_timeout(Duration::from_secs(10)).synchronous(SqliteSynchronous::Full);
    if in_memory { sqlite } else { sqlite.journal_mode(SqliteJournalMode::Wal) }
}

fn sqlite_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The writer's pool of a SQLite file: one connection, kept open, which leaves checkpoints to
/// `checkpoint_after_writes` unless the WAL passes `WRITER_CHECKPOINT_PAGES`, and whose commits
/// leave the fsync of the log to `LogSync` (`synchronous = NORMAL`: SQLite still syncs the log
/// before each checkpoint and when it starts reusing it, so only a commit's own frames wait).
fn sqlite_writer_options(mut options: ConnectOptions) -> ConnectOptions {
    options
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None::<Duration>)
        .max_lifetime(None::<Duration>)
        // A round trip to SQLite's thread before each turn, which checks nothing a file's
        // connection can lose.
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite_settings(sqlite, false)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string())
        });
    options
}

/// Checkpoints (copies the WAL's pages into the database file and fsyncs it) after writers'
/// turns, from a connection of the read pool, at most once per `CHECKPOINT_INTERVAL`. By
/// default SQLite checkpoints in the committing connection whenever the WAL passes 1,000 pages:
/// under load the single writer stopped several times a second to copy and fsync megabytes,
/// with every ack waiting behind it. A passive checkpoint from another connection runs beside
/// the writer; pages written many times between two checkpoints (the queue's, the indexes'
/// last pages) are copied once. The writer still checkpoints itself past
/// `WRITER_CHECKPOINT_PAGES` (this task stopped, or never catching up), which bounds the WAL.
async fn checkpoint_after_writes(
    db: DatabaseConnection,
    mut turns_ended: tokio::sync::mpsc::Receiver<()>,
) {
    use sea_orm::ConnectionTrait;
    while turns_ended.recv().await.is_some() {
        if let Err(error) = db.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::debug!(error = %error, "checkpoint failed; the next one will retry");
        }
        // Not a wait for anything: the least time between two checkpoints.
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
    }
}

/// Small checkpoints keep the writer's rare slow commits short. About every half second under
/// load one commit took 12-20 ms instead of ~1.5 (the first after a complete checkpoint, which
/// starts the log over and, at `synchronous = NORMAL`, syncs its header in that commit), and the
/// requests waiting behind it made the ack latency's tail: p99 21-25 ms at 30 ms against 28-32
/// ms at 100 ms and 37-50 ms at 300 ms and more, at the same ack rate (docs/BENCHMARKS.md, run
/// 17); 10 and 15 ms changed nothing more. A checkpoint after every turn cost acks.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(30);

/// 64 MiB of 4 KiB pages.
const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

impl Storage {
    /// Begins a transaction that will write. On SQLite it starts as `BEGIN IMMEDIATE`, taking the
    /// write lock up front (waiting up to the busy timeout): a deferred transaction that reads
    /// first and then writes fails at once with SQLITE_BUSY_SNAPSHOT whenever another connection
    /// committed in between, which the busy timeout does not retry. Postgres ignores the mode.
    ///
    /// It first waits for this process's turn at writing (`WriteTurn`), held until the
    /// transaction commits or drops.
    pub(crate) async fn begin_write(&self) -> Result<WriteTransaction, DbErr> {
        use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
        let waited = std::time::Instant::now();
        let turn = self.write_turn.take().await;
        tracing::debug!(waited_us = waited.elapsed().as_micros() as u64, "write turn");
        let transaction = self
            .writer
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        Ok(WriteTransaction { transaction, turn, log: self.log.clone() })
    }
}

/// A transaction that writes (`Storage::begin_write`), holding the writer's turn until it
/// commits or drops (a drop rolls it back). `commit` returns once the commit is durable. On a
/// SQLite file the writer's connection commits without an fsync, gives up its turn, and then
/// waits for an fsync of the write-ahead log that began after its commit (`LogSync`), one fsync
/// serving every commit waiting at that moment: the next writer's statements run while the log
/// is synced, instead of after it.
#[derive(Debug)]
pub(crate) struct WriteTransaction {
    transaction: sea_orm::DatabaseTransaction,
    turn: Option<crate::jobs::queue::Turn>,
    log: Option<Arc<LogSync>>,
}

impl WriteTransaction {
    /// Commits; returns once what was committed is durable.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.commit_unsynced().await?.wait().await
    }

    /// Commits and gives up the turn without waiting for durability, which `Durable::wait`
    /// gives: for the group commit, which answers its requests once their group is durable and
    /// meanwhile writes the next one.
    pub(crate) async fn commit_unsynced(self) -> Result<Durable, DbErr> {
        let Self { transaction, turn, log } = self;
        transaction.commit().await?;
        drop(turn);
        Ok(Durable { pending: log.map(|log| (log.ticket(), log)) })
    }
}

/// A commit that is durable once `wait` returns.
#[derive(Debug)]
#[must_use = "a commit counts as stored only after `wait`"]
pub(crate) struct Durable {
    pending: Option<(u64, Arc<LogSync>)>,
}

impl Durable {
    pub(crate) async fn wait(self) -> Result<(), DbErr> {
        match self.pending {
            Some((ticket, log)) => log.wait(ticket).await,
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl sea_orm::ConnectionTrait for WriteTransaction {
    fn get_database_backend(&self) -> DbBackend {
        self.transaction.get_database_backend()
    }

    async fn execute_raw(
        &self,
        statement: sea_orm::Statement,
    ) -> Result<sea_orm::ExecResult, DbErr> {
        self.transaction.execute_raw(statement).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, DbErr> {
        self.transaction.execute_unprepared(sql).await
    }

    async fn query_one_raw(
        &self,
        statement: sea_orm::Statement,
    ) -> Result<Option<sea_orm::QueryResult>, DbErr> {
        self.transaction.query_one_raw(statement).await
    }

    async fn query_all_raw(
        &self,
        statement: sea_orm::Statement,
    ) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        self.transaction.query_all_raw(statement).await
    }

    fn support_returning(&self) -> bool {
        self.transaction.support_returning()
    }
}

/// The fsyncs of a SQLite file's write-ahead log that make the writer's commits durable. Each
/// commit takes a ticket once it has committed; `wait` returns when an fsync that began after
/// the ticket was taken has ended (the log is written in order, so an fsync covers every commit
/// before it). Waiters queue on one lock: the first runs an fsync for every ticket taken so far,
/// and those queued behind it find themselves covered, or run the next one for all of them.
#[derive(Debug)]
struct LogSync {
    path: std::path::PathBuf,
    taken: AtomicU64,
    synced: tokio::sync::Mutex<u64>,
    /// fsyncs run so far.
    syncs: AtomicU64,
}

impl LogSync {
    /// The log of the database `writer` is connected to (`<file>-wal`).
    async fn of(writer: &DatabaseConnection) -> Result<Self, Error> {
        use sea_orm::ConnectionTrait;
        let context = "finding the database file";
        let row = writer
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
            ))
            .await
            .map_err(|error| Error::internal(context, error))?
            .ok_or_else(|| Error::internal(context, "no main database"))?;
        let file: String =
            row.try_get("", "file").map_err(|error| Error::internal(context, error))?;
        Ok(Self {
            path: format!("{file}-wal").into(),
            taken: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
            syncs: AtomicU64::new(0),
        })
    }

    fn ticket(&self) -> u64 {
        self.taken.fetch_add(1, Ordering::SeqCst) + 1
    }

    async fn wait(&self, ticket: u64) -> Result<(), DbErr> {
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            return Ok(());
        }
        let covered = self.taken.load(Ordering::SeqCst);
        let path = self.path.clone();
        // The log exists while any connection is open, and the writer's is.
        let outcome = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new().write(true).open(&path)?.sync_data()
        })
        .await;
        match outcome {
            Ok(Ok(())) => {
                self.syncs.fetch_add(1, Ordering::SeqCst);
                *synced = covered;
                Ok(())
            }
            Ok(Err(error)) => Err(DbErr::Custom(format!("syncing the write-ahead log: {error}"))),
            Err(error) => Err(DbErr::Custom(format!("syncing the write-ahead log: {error}"))),
        }
    }
}
// ---- end of SQLite-only settings ----

/// Statements of one transaction whose only answer is success, sent together. On SQLite they
/// go as one multi-statement string, their `?` parameters bound in order across the
/// statements (sqlx runs each in turn), so a write turn makes one round trip to SQLite's thread
/// for all of them instead of one per table: under load each round trip waits for a scheduler
/// slot on both sides, and a group commit's writer spent most of its turn waiting so. On
/// PostgreSQL, whose extended protocol takes one statement at a time, they run one after another.
#[derive(Debug)]
pub(crate) struct Batch {
    backend: DbBackend,
    statements: Vec<sea_orm::Statement>,
}

impl Batch {
    pub(crate) fn new(backend: DbBackend) -> Self {
        Self { backend, statements: Vec::new() }
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
    }

    pub(crate) fn push(&mut self, statement: &impl sea_orm::StatementBuilder) {
        self.statements.push(self.backend.build(statement));
    }

    /// Adds the statements of `other`, after those already in this batch.
    pub(crate) fn append(&mut self, other: Batch) {
        self.statements.extend(other.statements);
    }

    /// Adds a statement written by hand, for this batch's backend.
    pub(crate) fn push_statement(&mut self, statement: sea_orm::Statement) {
        self.statements.push(statement);
    }

    /// Inserts `rows`, a multi-row `INSERT` per `INSERT_CHUNK_ROWS` of them, each with
    /// `on_conflict` when given.
    pub(crate) fn insert_rows<A>(
        &mut self,
        rows: Vec<A>,
        on_conflict: Option<&sea_orm::sea_query::OnConflict>,
    ) where
        A: sea_orm::ActiveModelTrait,
    {
        use sea_orm::{EntityTrait, QueryTrait};
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut insert = A::Entity::insert_many(rows.by_ref().take(INSERT_CHUNK_ROWS));
            if let Some(on_conflict) = on_conflict {
                insert = insert.on_conflict(on_conflict.clone());
            }
            self.statements.push(insert.build(self.backend));
        }
    }

    /// Inserts `rows` of `columns` of `table`, each row's values in the columns' order, as
    /// `insert_rows` does, but with the statement written here and the values moved into it:
    /// for the many small rows of a commit (a call's results rows), where an active model per
    /// row, and sea-query's copy of every value, cost more than the statement.
    pub(crate) fn insert_values<const N: usize>(
        &mut self,
        table: &str,
        columns: [&str; N],
        rows: Vec<[sea_orm::Value; N]>,
    ) {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut sql =
                format!(r#"INSERT INTO "{table}" ("{}") VALUES "#, columns.join(r#"", ""#));
            let mut values = Vec::new();
            for (index, row) in rows.by_ref().take(INSERT_CHUNK_ROWS).enumerate() {
                if index > 0 {
                    sql.push_str(", ");
                }
                self.push_row(&mut sql, N, values.len());
                values.extend(row);
            }
            self.statements.push(sea_orm::Statement::from_sql_and_values(
                self.backend,
                sql,
                values,
            ));
        }
    }

    /// Writes a row of `count` parameters into `sql`, `(?, ?)` or on PostgreSQL `($3, $4)`,
    /// the statement's values before it being `first` in number.
    pub(crate) fn push_row(&self, sql: &mut String, count: usize, first: usize) {
        use std::fmt::Write;
        sql.push('(');
        for index in 0..count {
            if index > 0 {
                sql.push_str(", ");
            }
            match self.backend {
                DbBackend::Postgres => {
                    let _infallible = write!(sql, "${}", first + index + 1);
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }

    /// Runs the statements in `connection` (the caller's transaction), in order.
    pub(crate) async fn execute(
        self,
        connection: &impl sea_orm::ConnectionTrait,
        context: &'static str,
    ) -> Result<(), Error> {
        if self.backend == DbBackend::Sqlite && self.statements.len() > 1 {
            let mut sql = String::new();
            let mut values = Vec::new();
            for statement in self.statements {
                sql.push_str(&statement.sql);
                sql.push_str(";\n");
                values.extend(statement.values.map(|values| values.0).unwrap_or_default());
            }
            let statement = sea_orm::Statement::from_sql_and_values(self.backend, sql, values);
            connection.execute_raw(statement).await.map_err(db_error(context))?;
            return Ok(());
        }
        for statement in self.statements {
            connection.execute_raw(statement).await.map_err(db_error(context))?;
        }
        Ok(())
    }
}

/// Rows of one multi-row `INSERT`: with at most 26 columns, far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
const INSERT_CHUNK_ROWS: usize = 200;

/// Joins `select` to `keys`, a `VALUES` list whose rows each hold values of `columns` of
/// `table` in order: the rows of `table` matching any key. Unlike an OR of one term per key,
/// which PostgreSQL plans as a scan testing every term on every row, both databases seek each
/// key in an index on `columns`, with or without statistics (`keyed_lookups_seek_each_key`).
fn join_keys<T, C>(
    select: &mut sea_orm::sea_query::SelectStatement,
    table: T,
    columns: &[C],
    keys: Vec<sea_orm::sea_query::ValueTuple>,
) where
    T: sea_orm::sea_query::IntoIden + Copy + 'static,
    C: sea_orm::sea_query::IntoIden + Copy + 'static,
{
    use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, IntoIden, JoinType, TableRef};
    // VALUES columns are named column1, column2, … on both databases.
    let key = || Alias::new("key");
    let on = columns.iter().enumerate().fold(Condition::all(), |on, (index, column)| {
        on.add(
            Expr::col((table, *column)).equals((key(), Alias::new(format!("column{}", index + 1)))),
        )
    });
    select.join(JoinType::InnerJoin, TableRef::ValuesList(keys, key().into_iden()), on);
}

/// A row's `updated_at_ms` as stored (m0043): 0 while the row is as it was created, a time no
/// row is changed at, which takes no byte of a SQLite record where the time takes six.
fn stored_updated_at(created_at_ms: i64, updated_at_ms: i64) -> i64 {
    if updated_at_ms == created_at_ms { 0 } else { updated_at_ms }
}

/// A row's `updated_at_ms` as written by `stored_updated_at`, or by earlier versions (the time
/// itself).
fn read_updated_at(created_at_ms: i64, stored: i64) -> chrono::DateTime<chrono::Utc> {
    crate::clock::from_millis(if stored == 0 { created_at_ms } else { stored })
}

/// A listing's order, newest first, and its condition after the row `before`: by `table`'s
/// rowids where `by_rowid` (SQLite's listings, m0042), else by the `id` column.
fn listing_order(
    table: &str,
    id: impl sea_orm::ColumnTrait,
    by_rowid: bool,
    before: Option<uuid::Uuid>,
) -> (sea_orm::sea_query::SimpleExpr, Option<sea_orm::sea_query::SimpleExpr>) {
    if by_rowid {
        (listed_by_rowid(table), before.map(|before| rowid_after(table, before)))
    } else {
        (sea_orm::sea_query::Expr::col(id), before.map(|before| id.lt(before)))
    }
}

/// A listing newest stored first (on SQLite, m0042): the order of `table`'s rowids, which end
/// every entry of its listing index, and the key of each row (`rowid_after`).
fn listed_by_rowid(table: &str) -> sea_orm::sea_query::SimpleExpr {
    sea_orm::sea_query::Expr::cust(format!(r#""{table}"."rowid""#))
}

/// The rows of a listing by rowid (`listed_by_rowid`) after the row `before`: those stored
/// before it, its rowid read by its id. A row deleted since gives the rowid of the first row
/// with a later id (a v7 id is the time it was made), or, with none, a rowid above every row's,
/// so that a page resumes where it was, as near as the ids tell, and skips nothing.
fn rowid_after(table: &str, before: uuid::Uuid) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let cursor = Expr::cust_with_values(
        format!(
            "COALESCE((SELECT rowid FROM {table} WHERE id = ?), \
             (SELECT rowid FROM {table} WHERE id > ? ORDER BY id LIMIT 1), {})",
            i64::MAX
        ),
        [before, before],
    );
    listed_by_rowid(table).lt(cursor)
}

/// Database errors may echo the URL, which can carry a password.
fn redact_db_error(error: &DbErr, url: &str) -> String {
    let text = error.to_string();
    match url.rfind('@') {
        Some(_) => text.replace(url, "[database url]"),
        None => text,
    }
}

fn db_error(context: &'static str) -> impl FnOnce(DbErr) -> Error {
    move |error| match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            Error::Unavailable(format!("database unavailable while {context}"))
        }
        other if is_transient(&other) => {
            tracing::warn!(error = %other, context, "transient database condition");
            Error::Unavailable(format!("the database is busy while {context}; retry"))
        }
        other => Error::internal(context, other),
    }
}

/// Conditions that pass on their own, so a retry succeeds: SQLite's busy and locked results,
/// PostgreSQL's serialization failures, deadlocks, lock timeouts, shutdowns and full connection
/// slots, and a pool that timed out.
fn is_transient(error: &DbErr) -> bool {
    const TRANSIENT_CODES: [&str; 9] =
        ["5", "6", "261", "517", "40001", "40P01", "55P03", "57P01", "53300"];
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(error))) = error
    else {
        return false;
    };
    match error.as_ref() {
        sea_orm::sqlx::Error::PoolTimedOut => true,
        sea_orm::sqlx::Error::Database(database) => {
            database.code().is_some_and(|code| TRANSIENT_CODES.contains(&code.as_ref()))
        }
        _ => false,
    }
}

/// Deflates `input` onto the end of `output`, into its spare capacity only, with `preset`
/// (empty for none; `presets`) as what the stream may refer back to: false (`output` as it
/// was) when the whole stream does not fit. Each thread reuses one compressor: setting one
/// up allocates and clears a few hundred kilobytes of tables, more than compressing a call
/// costs. Delivery bodies and datapoint documents are stored this way, at deflate's second
/// level: zlib-rs's first (`Compression::fast()`) kept the bench's request and body in 844
/// bytes and its document in 715, the second in 669 and 547 (4.9 → 4.3 KB a stored call) for
/// about 15 µs more a call, and neither acks nor the drain moved beyond the noise (run 21,
/// docs/BENCHMARKS.md).
fn deflate_within(input: &[u8], preset: &[u8], output: &mut Vec<u8>) -> bool {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(DEFLATE_LEVEL, false));
    }
    let kept = output.len();
    COMPRESSOR.with_borrow_mut(|compressor| {
        compressor.reset();
        if !preset.is_empty() && compressor.set_dictionary(preset).is_err() {
            return false;
        }
        match compressor.compress_vec(input, output, flate2::FlushCompress::Finish) {
            Ok(flate2::Status::StreamEnd) => true,
            _ => {
                output.truncate(kept);
                false
            }
        }
    })
}

/// The level of `deflate_within`.
const DEFLATE_LEVEL: flate2::Compression = flate2::Compression::new(2);

/// `CASE WHEN id = … THEN … ELSE column END` over `values` (a row's id, its new value): one
/// statement sets a chunk of rows each to a value of its own, leaving the others as they are.
/// `None` without values.
fn value_by_id<C, V>(
    id: C,
    column: C,
    values: impl IntoIterator<Item = (uuid::Uuid, V)>,
) -> Option<sea_orm::sea_query::Expr>
where
    C: sea_orm::ColumnTrait + sea_orm::sea_query::IntoColumnRef,
    V: Into<sea_orm::sea_query::Expr>,
{
    let mut values = values.into_iter();
    let (first, value) = values.next()?;
    let mut case = sea_orm::sea_query::Expr::case(id.eq(first), value);
    for (row, value) in values {
        case = case.case(id.eq(row), value);
    }
    Some(case.finally(sea_orm::sea_query::Expr::col(column)).into())
}

/// A raw deflate stream (as `deflate_within` writes it, with the same `preset`) inflated. Each
/// thread keeps one decompressor, reset for each stream, so that reading a page of calls does
/// not set up a window and its tables for every document and body.
fn inflate(deflated: &[u8], preset: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<flate2::Decompress> =
            std::cell::RefCell::new(flate2::Decompress::new(false));
    }
    DECOMPRESSOR.with_borrow_mut(|decompressor| {
        decompressor.reset(false);
        inflate_with(decompressor, deflated, preset)
    })
}

fn inflate_with(
    decompressor: &mut flate2::Decompress,
    deflated: &[u8],
    preset: &[u8],
) -> std::io::Result<Vec<u8>> {
    let invalid = |error: flate2::DecompressError| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, error)
    };
    if !preset.is_empty() {
        decompressor.set_dictionary(preset).map_err(invalid)?;
    }
    let mut inflated = Vec::with_capacity(deflated.len() * 3);
    loop {
        let read = usize::try_from(decompressor.total_in()).unwrap_or(usize::MAX);
        let rest = deflated.get(read..).unwrap_or_default();
        inflated.reserve(inflated.len().max(256));
        let before = (decompressor.total_in(), decompressor.total_out());
        match decompressor
            .decompress_vec(rest, &mut inflated, flate2::FlushDecompress::Finish)
            .map_err(invalid)?
        {
            flate2::Status::StreamEnd => return Ok(inflated),
            // Room was short: go on with more. No progress with room to spare: it ends early.
            _ if (decompressor.total_in(), decompressor.total_out()) != before => {}
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the deflate stream ends early",
                ));
            }
        }
    }
}

fn parse_uuid(context: &'static str, value: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(value).map_err(|error| Error::internal(context, error))
}

/// The `context_token` column's form of a call's context token (m0030): empty when it is the
/// call's id, which it is unless the sender gave one of its own (`model::conversation`), so most
/// calls neither spell their id twice nor take an entry in `datapoints_by_own_context_token`.
/// A context token is never empty, so the empty column can mean nothing else.
fn stored_context_token(context_token: &str, call_id: &str) -> String {
    if context_token == call_id { String::new() } else { context_token.to_owned() }
}

/// A call's context token from its `context_token` column (`stored_context_token`).
fn read_context_token(stored: String, call_id: &str) -> String {
    if stored.is_empty() { call_id.to_owned() } else { stored }
}

/// Databases of their own for tests, shared by the unit and the integration suites. Not part
/// of the API (the `testing` feature); failures panic, as test setup should.
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
pub mod testing {
    use sea_orm::ConnectionTrait;

    use super::Storage;

    /// An enabled event endpoint of `organization_id` receiving `event_types` that pass
    /// `filter`, as stored, with a placeholder sealed secret (enough for the outbox; the sender
    /// cannot sign with it).
    pub fn event_endpoint(
        organization_id: uuid::Uuid,
        event_types: &[&str],
        filter: crate::model::events::EventFilter,
    ) -> super::SealedEndpoint {
        use chrono::TimeZone;
        let created = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let url = "https://receiver.example/hook".to_owned();
        super::SealedEndpoint {
            endpoint: crate::model::events::Endpoint {
                event_types: event_types.iter().map(|kind| (*kind).to_owned()).collect(),
                filter,
                ..crate::model::events::Endpoint::new(
                    uuid::Uuid::now_v7(),
                    organization_id,
                    url,
                    created,
                )
            },
            secrets: vec![super::StoredSecret {
                key_id: "k".into(),
                sealed: "AAAA".into(),
                expires_at_ms: None,
            }],
            headers: super::StoredHeaders::default(),
        }
    }

    /// Intake that leaves every conversation to the workers, with `max_attempts` per job: for
    /// tests of the workers' path.
    pub fn jobs_only(max_attempts: i32) -> super::IntakeSettings {
        super::IntakeSettings { max_attempts, transcripts_at_intake: false }
    }

    /// The variable naming a PostgreSQL server where tests may create databases; unset, tests
    /// use SQLite.
    pub const POSTGRES_URL_VARIABLE: &str = "EARSHOT_TEST_POSTGRES_URL";

    /// A fresh, empty database named `earshot_test_<suffix>` on the PostgreSQL server of
    /// EARSHOT_TEST_POSTGRES_URL, created if it does not exist yet, and its URL; `None` when the
    /// variable is unset.
    pub async fn postgres_database(suffix: &str) -> Option<String> {
        let admin_url = std::env::var(POSTGRES_URL_VARIABLE).ok()?;
        let name = format!("earshot_test_{suffix}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{name}");
        let admin = Storage::connect(&admin_url).await.unwrap();
        let exists = admin
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                admin.db.get_database_backend(),
                format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            ))
            .await
            .unwrap()
            .is_some();
        if !exists {
            admin.db.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        }
        admin.close().await.unwrap();
        Some(database_url(&admin_url, &name))
    }

    /// A migrated, empty database of its own for one test: in-memory SQLite, or a fresh database
    /// in the Postgres server of EARSHOT_TEST_POSTGRES_URL when that is set, so the same suite
    /// runs on both engines.
    pub async fn storage() -> Storage {
        let url = postgres_database(&uuid::Uuid::new_v4().simple().to_string()).await;
        let storage = Storage::connect(url.as_deref().unwrap_or("sqlite::memory:")).await.unwrap();
        storage.migrate().await.unwrap();
        storage
    }

    /// A new organization, stored, and its id: a call's tag and metadata rows name their
    /// organization by its row on SQLite (m0041), as a real call's organization is stored.
    pub async fn organization(storage: &Storage) -> uuid::Uuid {
        use sea_orm::{ActiveValue::Set, EntityTrait};
        let id = uuid::Uuid::now_v7();
        super::entities::organization::Entity::insert(super::entities::organization::ActiveModel {
            id: Set(id.to_string()),
            name: Set(format!("organization {id}")),
            created_at_ms: Set(0),
        })
        .exec(&storage.db)
        .await
        .unwrap();
        id
    }

    /// Runs `sql` (no parameters) on `storage`'s database: to write a row as an earlier
    /// version stored it.
    pub async fn execute(storage: &Storage, sql: &str) {
        let backend = storage.db.get_database_backend();
        storage
            .db
            .execute_raw(sea_orm::Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap();
    }

    /// Runs the migration `name` and every later one still applied down: to hold rows as an
    /// earlier version stored them, before running them up again.
    pub async fn migrate_down_through(storage: &Storage, name: &str) {
        use sea_orm_migration::MigratorTrait;
        let known = super::migrations::Migrator::migrations()
            .iter()
            .any(|migration| migration.name() == name);
        assert!(known, "a known migration: {name}");
        // Migrations are named in their order.
        let applied =
            format!("SELECT COUNT(*) AS n FROM seaql_migrations WHERE version >= '{name}'");
        let undone = u32::try_from(count(storage, &applied).await).unwrap();
        super::migrations::Migrator::down(&storage.db, Some(undone)).await.unwrap();
    }

    /// Runs every migration not run yet.
    pub async fn migrate_up(storage: &Storage) {
        use sea_orm_migration::MigratorTrait;
        super::migrations::Migrator::up(&storage.db, None).await.unwrap();
    }

    /// `id` as a literal of a column that holds ids as 16 bytes (m0029): a blob on SQLite, a
    /// quoted `uuid` on PostgreSQL.
    pub fn id_literal(storage: &Storage, id: uuid::Uuid) -> String {
        match storage.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => format!("'{id}'"),
            _ => format!("x'{}'", id.simple()),
        }
    }

    /// The datapoint of a call, if stored (`Storage::find_datapoint`, the key's parts named
    /// in order).
    pub async fn stored_call(
        storage: &Storage,
        organization_id: uuid::Uuid,
        project_id: uuid::Uuid,
        provider: &str,
        call_id: &str,
    ) -> Option<crate::model::datapoints::Datapoint> {
        let key = super::CallKey { organization_id, project_id, provider, call_id };
        storage.find_datapoint(key).await.unwrap()
    }

    /// The count `sql` (a query with no parameters) reads into its column `n`.
    pub async fn count(storage: &Storage, sql: &str) -> i64 {
        let backend = storage.db.get_database_backend();
        let row = storage
            .db
            .query_one_raw(sea_orm::Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    /// Runs `sql` (one or more statements, no parameters) on the database at `url`, and returns
    /// whether it is PostgreSQL: for benchmarks that fill a database with bulk SQL.
    pub async fn execute_script(url: &str, sql: &str) -> bool {
        let storage = Storage::connect(url).await.unwrap();
        storage.db.execute_unprepared(sql).await.unwrap();
        let postgres = storage.db.get_database_backend() == sea_orm::DbBackend::Postgres;
        storage.close().await.unwrap();
        postgres
    }

    /// The same server URL with another database name.
    fn database_url(url: &str, database: &str) -> String {
        let (base, query) =
            url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        match query {
            Some(query) => format!("{server}/{database}?{query}"),
            None => format!("{server}/{database}"),
        }
    }

    #[test]
    fn database_url_replaces_only_the_name() {
        assert_eq!(database_url("postgres://u:p@h:5432/earshot", "t1"), "postgres://u:p@h:5432/t1");
        assert_eq!(
            database_url("postgres://u:p@h/earshot?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
    }
}

#[cfg(test)]
mod transient_tests {
    use sea_orm::{ConnectionTrait, Database};

    use super::db_error;
    use crate::error::Error;

    /// A write that meets another connection's lock answers "unavailable, retry" (503), not an
    /// internal error (500).
    #[tokio::test]
    async fn a_locked_database_is_unavailable_not_internal() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", directory.path().join("locked.db").display());
        let holder = Database::connect(&url).await.unwrap();
        holder.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        let other = Database::connect(&url).await.unwrap();
        other.execute_unprepared("PRAGMA busy_timeout = 0").await.unwrap();
        holder.execute_unprepared("BEGIN EXCLUSIVE").await.unwrap();
        let refused = other.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap_err();
        let error = db_error("writing a test row")(refused);
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
        holder.execute_unprepared("ROLLBACK").await.unwrap();
    }
}

#[cfg(test)]
mod batch_tests {
    use sea_orm::sea_query::{Alias, Expr, Query};
    use sea_orm::{ConnectionTrait, TransactionTrait};

    use super::Batch;
    use super::testing::storage;

    fn insert(table: &str, values: [&str; 2]) -> sea_orm::sea_query::InsertStatement {
        Query::insert()
            .into_table(Alias::new(table))
            .columns([Alias::new("a"), Alias::new("b")])
            .values_panic(values.map(Expr::val))
            .to_owned()
    }

    async fn rows(storage: &super::Storage, table: &str) -> Vec<(String, String)> {
        let select = Query::select()
            .columns([Alias::new("a"), Alias::new("b")])
            .from(Alias::new(table))
            .order_by(Alias::new("a"), sea_orm::Order::Asc)
            .to_owned();
        let backend = storage.db.get_database_backend();
        storage
            .db
            .query_all_raw(backend.build(&select))
            .await
            .unwrap()
            .iter()
            .map(|row| (row.try_get("", "a").unwrap(), row.try_get("", "b").unwrap()))
            .collect()
    }

    /// The statements of a batch run in order with each its own parameters (on SQLite, one
    /// string whose `?` are bound across its statements), and a failing one leaves the
    /// transaction to roll back whole.
    #[tokio::test]
    async fn a_batch_binds_each_statement_its_own_values_and_fails_whole() {
        let storage = storage().await;
        let backend = storage.db.get_database_backend();
        storage
            .db
            .execute_unprepared(
                "CREATE TABLE batch_one (a TEXT PRIMARY KEY, b TEXT NOT NULL); \
                 CREATE TABLE batch_two (a TEXT PRIMARY KEY, b TEXT NOT NULL)",
            )
            .await
            .unwrap();

        let transaction = storage.db.begin().await.unwrap();
        let mut batch = Batch::new(backend);
        batch.push(&insert("batch_one", ["1", "one"]));
        batch.push(&insert("batch_two", ["2", "two"]));
        batch.push(&insert("batch_one", ["3", "three"]));
        batch.execute(&transaction, "testing").await.unwrap();
        transaction.commit().await.unwrap();
        assert_eq!(
            rows(&storage, "batch_one").await,
            [("1".into(), "one".into()), ("3".into(), "three".into())]
        );
        assert_eq!(rows(&storage, "batch_two").await, [("2".into(), "two".into())]);

        let transaction = storage.db.begin().await.unwrap();
        let mut batch = Batch::new(backend);
        batch.push(&insert("batch_two", ["4", "four"]));
        batch.push(&insert("batch_one", ["1", "again"]));
        assert!(batch.execute(&transaction, "testing").await.is_err());
        transaction.rollback().await.unwrap();
        assert_eq!(rows(&storage, "batch_two").await, [("2".into(), "two".into())]);
    }
}

#[cfg(test)]
mod log_sync_tests {
    use std::sync::atomic::Ordering;

    use sea_orm::ConnectionTrait;

    use super::Storage;

    async fn file_storage(directory: &tempfile::TempDir) -> Storage {
        let url = format!("sqlite://{}?mode=rwc", directory.path().join("log.db").display());
        let storage = Storage::connect(&url).await.unwrap();
        storage.db.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        storage
    }

    async fn write(storage: &Storage) -> super::WriteTransaction {
        let transaction = storage.begin_write().await.unwrap();
        transaction.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
        transaction
    }

    /// A commit returns after an fsync of the log that began after it; commits waiting
    /// together share one, and a commit made after an fsync began gets one of its own.
    #[tokio::test]
    async fn commits_wait_for_an_fsync_begun_after_them_and_share_it() {
        let directory = tempfile::tempdir().unwrap();
        let storage = file_storage(&directory).await;
        let log = storage.log.clone().expect("a SQLite file's writer syncs its log");
        assert!(log.path.exists(), "{}", log.path.display());
        let synchronous = |connection: sea_orm::DatabaseConnection| async move {
            let statement =
                sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, "PRAGMA synchronous");
            let row = connection.query_one_raw(statement).await.unwrap().unwrap();
            row.try_get_by_index::<i32>(0).unwrap()
        };
        // NORMAL (1) on the writer, whose commits wait for `LogSync`; FULL (2) elsewhere.
        assert_eq!(synchronous(storage.writer.clone()).await, 1);
        assert_eq!(synchronous(storage.db.clone()).await, 2);

        write(&storage).await.commit().await.unwrap();
        assert_eq!(log.syncs.load(Ordering::SeqCst), 1);

        let first = write(&storage).await.commit_unsynced().await.unwrap();
        let second = write(&storage).await.commit_unsynced().await.unwrap();
        assert_eq!(log.syncs.load(Ordering::SeqCst), 1, "nothing synced before a wait");
        let (first, second) = tokio::join!(first.wait(), second.wait());
        first.unwrap();
        second.unwrap();
        assert_eq!(log.syncs.load(Ordering::SeqCst), 2, "one fsync for both");

        // Already covered: no fsync.
        let third = write(&storage).await.commit_unsynced().await.unwrap();
        let later = write(&storage).await.commit_unsynced().await.unwrap();
        third.wait().await.unwrap();
        later.wait().await.unwrap();
        assert_eq!(log.syncs.load(Ordering::SeqCst), 3, "the first wait covered the later commit");
        storage.close().await.unwrap();
    }

    /// In memory and on PostgreSQL a commit is durable (or as durable as it gets) by itself.
    #[tokio::test]
    async fn only_a_sqlite_file_has_a_log_to_sync() {
        let storage = super::testing::storage().await;
        assert!(storage.log.is_none());
    }
}
