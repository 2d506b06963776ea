//! Group commit: concurrent ingest requests share one transaction and one fsync. A single
//! writer task takes every request waiting at that moment, commits them together, and only then
//! answers each; while it commits, new requests queue up for the next group. When a group's
//! transaction fails, each of its requests is committed again on its own, so one bad write fails
//! alone (with its cause in the log) and the others are stored.
//!
//! While the intake is saturated (`IntakeLoad`), requests hand in their writes encoded for the
//! intake log instead of as rows, a group's logged writes become one log row, and the
//! `Expander` task stores the log's rows after (`intake_log`).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use super::Storage;
use super::ingest::{Committed, IntakeSettings, PreparedWrite};
use super::intake_log::LoggedWrite;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::jobs::{IntakeLoad, IntakeLogging};
use crate::metrics::Metrics;
use crate::model::commit::IngestWrite;
use crate::model::ingest::IngestOutcome;

const QUEUE_DEPTH: usize = 4096;

/// Rows of the intake log one expansion stores together (~30 requests each under a
/// saturating load).
const EXPANDED_ROWS: u64 = 16;

struct Pending {
    write: Submitted,
    reply: oneshot::Sender<Result<Committed>>,
}

/// A request's write as it reaches the writer.
#[derive(Debug)]
enum Submitted {
    /// To be stored as its rows.
    Rows(Box<PreparedWrite>),
    /// To go into the intake log (the intake is saturated).
    Logged(LoggedWrite),
}

impl Submitted {
    fn committed(&self, outcomes: Vec<IngestOutcome>) -> Committed {
        match self {
            Submitted::Rows(write) => write.committed(outcomes),
            Submitted::Logged(_) => Committed { outcomes, datapoints: 0, jobs: 0 },
        }
    }

    fn ingest_count(&self) -> usize {
        match self {
            Submitted::Rows(write) => write.ingest_count(),
            Submitted::Logged(write) => write.ingest_count(),
        }
    }
}

/// The handle requests submit to. Cheap to clone.
#[derive(Clone, Debug)]
pub struct IngestWriter {
    sender: mpsc::Sender<Pending>,
    clock: SharedClock,
    settings: IntakeSettings,
    load: IntakeLoad,
    logging: IntakeLogging,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Pending").field("ingests", &self.write.ingest_count()).finish()
    }
}

impl IngestWriter {
    /// Starts the writer task on the current runtime, and with `logging`, the task that stores
    /// the intake log's writes, waking `jobs_wakeup` when they queue jobs. `max_group` bounds
    /// the requests of one transaction, and so its size and latency. The intake is saturated
    /// from `load`'s rate of requests.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        storage: Storage,
        settings: IntakeSettings,
        max_group: usize,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        logging: IntakeLogging,
        load: IntakeLoad,
        jobs_wakeup: Arc<Notify>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let logged = Arc::new(Notify::new());
        let writer = Writer {
            storage: storage.clone(),
            max_group: max_group.max(1),
            metrics: metrics.clone(),
            logged: logged.clone(),
        };
        tokio::spawn(writer.run(receiver));
        if logging != IntakeLogging::Never {
            let expander = Expander {
                storage,
                settings,
                metrics,
                load: load.clone(),
                jobs_wakeup,
                held: Arc::default(),
            };
            tokio::spawn(expander.run(logged));
        }
        Self { sender, clock, settings, load, logging }
    }

    /// Whether this writer is saturated, for what gives way to it (the workers).
    pub fn load(&self) -> IntakeLoad {
        self.load.clone()
    }

    /// Returns once `write` is committed, with one outcome per ingest in order and what was
    /// stored. Its rows are built here, in the caller's task, not in the writer's
    /// (`PreparedWrite`); while the intake is saturated, its encoding for the intake log.
    pub async fn submit(&self, write: IngestWrite) -> Result<Committed> {
        let _in_flight = self.load.arrived();
        let log = match self.logging {
            IntakeLogging::Never => false,
            IntakeLogging::WhenSaturated => self.load.is_saturated(),
            IntakeLogging::Always => true,
        };
        let write = if log {
            Submitted::Logged(LoggedWrite::new(&write, self.clock.now())?)
        } else {
            Submitted::Rows(Box::new(PreparedWrite::new(write, self.settings, self.clock.now())?))
        };
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { write, reply })
            .await
            .map_err(|_| Error::Unavailable("the ingest writer has stopped".into()))?;
        answer.await.map_err(|_| Error::Unavailable("the ingest writer has stopped".into()))?
    }
}

/// The single task that commits groups.
struct Writer {
    storage: Storage,
    max_group: usize,
    metrics: Arc<Metrics>,
    /// Told when a group committed a log row.
    logged: Arc<Notify>,
}

impl Writer {
    async fn run(self, mut receiver: mpsc::Receiver<Pending>) {
        while let Some(first) = receiver.recv().await {
            let mut group: Vec<Pending> = Vec::with_capacity(self.max_group);
            group.push(first);
            while group.len() < self.max_group {
                match receiver.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            self.metrics.group_commit(group.len());
            let started = std::time::Instant::now();
            let result =
                self.commit(&group.iter().map(|pending| &pending.write).collect::<Vec<_>>()).await;
            tracing::debug!(
                requests = group.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "group commit"
            );
            match result {
                // Answered once durable, while this task writes the next group.
                Ok((outcomes, durable)) => {
                    if group.iter().any(|pending| matches!(pending.write, Submitted::Logged(_))) {
                        self.logged.notify_one();
                    }
                    tokio::spawn(answer_when_durable(
                        group,
                        outcomes,
                        durable,
                        self.metrics.clone(),
                    ));
                }
                Err(error) if group.len() == 1 => {
                    error.log_if_internal();
                    for pending in group {
                        let _receiver_gone = pending.reply.send(Err(not_stored()));
                    }
                }
                Err(error) => {
                    error.log_if_internal();
                    tracing::warn!(
                        requests = group.len(),
                        "group commit failed; committing its requests one by one"
                    );
                    for pending in group {
                        self.commit_alone(pending).await;
                    }
                }
            }
        }
    }

    /// Commits one request of a group that failed by itself, and answers it once durable.
    async fn commit_alone(&self, pending: Pending) {
        let alone = match self.commit(&[&pending.write]).await {
            Ok((mut outcomes, durable)) => durable
                .wait()
                .await
                .map(|()| outcomes.pop().unwrap_or_default())
                .map_err(crate::storage::db_error("committing ingests")),
            Err(error) => Err(error),
        };
        let reply = match alone {
            Ok(outcomes) => {
                if matches!(pending.write, Submitted::Logged(_)) {
                    self.logged.notify_one();
                }
                let committed = pending.write.committed(outcomes);
                self.metrics.datapoints_written(committed.datapoints);
                Ok(committed)
            }
            Err(error) => {
                error.log_if_internal();
                Err(not_stored())
            }
        };
        let _receiver_gone = pending.reply.send(reply);
    }

    /// Commits `writes` in one transaction: outcomes in their order, and when it is durable.
    async fn commit(
        &self,
        writes: &[&Submitted],
    ) -> Result<(Vec<Vec<IngestOutcome>>, super::Durable)> {
        let rows: Vec<&PreparedWrite> = writes
            .iter()
            .filter_map(|write| match write {
                Submitted::Rows(write) => Some(&**write),
                Submitted::Logged(_) => None,
            })
            .collect();
        let logged: Vec<&LoggedWrite> = writes
            .iter()
            .filter_map(|write| match write {
                Submitted::Logged(write) => Some(write),
                Submitted::Rows(_) => None,
            })
            .collect();
        let (rows_outcomes, logged_outcomes, durable) =
            self.storage.commit_group_unsynced(&rows, &logged).await?;
        let (mut rows_outcomes, mut logged_outcomes) =
            (rows_outcomes.into_iter(), logged_outcomes.into_iter());
        let outcomes = writes
            .iter()
            .map(|write| match write {
                Submitted::Rows(_) => rows_outcomes.next(),
                Submitted::Logged(_) => logged_outcomes.next(),
            })
            .map(Option::unwrap_or_default)
            .collect();
        Ok((outcomes, durable))
    }
}

/// The task that stores the intake log's writes: woken by each commit that logged some, it
/// stores the log's oldest rows in batches until none is left, giving way to a saturated intake
/// (at most `MOST_A_WORKER_WAITS` at a time) as the workers do. A row it cannot read or store
/// is held (kept in the log, tried again after `HELD_ROW_RETRY`) while the rows after it are
/// stored.
#[derive(Clone)]
struct Expander {
    storage: Storage,
    settings: IntakeSettings,
    metrics: Arc<Metrics>,
    load: IntakeLoad,
    jobs_wakeup: Arc<Notify>,
    /// Rows held, by id: when each is tried again.
    held: Arc<std::sync::Mutex<HashMap<i64, tokio::time::Instant>>>,
}

/// How long a row of the intake log that could not be read or stored waits before it is tried
/// again.
const HELD_ROW_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

impl Expander {
    async fn run(self, logged: Arc<Notify>) {
        loop {
            // Rows left by a previous process, then whatever was logged since.
            let retry = match self.expand().await {
                // The log could not be read: tried again in a second.
                Err(error) => {
                    error.log_if_internal();
                    Some(tokio::time::Instant::now() + std::time::Duration::from_secs(1))
                }
                Ok(()) => self.next_retry(),
            };
            // Tried again on the next commit that logs, or when due.
            match retry {
                Some(due) => {
                    let _woken = tokio::time::timeout_at(due, logged.notified()).await;
                }
                None => logged.notified().await,
            }
        }
    }

    /// Stores the log until only held rows are left. Each batch is read and prepared while the
    /// one before it is stored: the preparation (decoding, building rows) runs beside the
    /// writer's turn.
    async fn expand(&self) -> Result<()> {
        let mut next = Some(self.read(0).await?);
        while let Some(batch) = next.take().filter(|batch| !batch.is_empty()) {
            let ids = batch.row_ids();
            let reading = tokio::spawn({
                let expander = self.clone();
                let after_id = batch.last_id;
                async move { expander.read(after_id).await }
            });
            let stored = self.storage.store_intake_log(batch).await;
            let read = reading.await;
            self.hold(stored.failed, &ids);
            self.metrics.datapoints_written(stored.expanded.datapoints);
            if stored.expanded.jobs > 0 {
                self.jobs_wakeup.notify_waiters();
            }
            next = Some(read.map_err(|error| Error::internal("reading the intake log", error))??);
        }
        Ok(())
    }

    /// Holds the rows that `failed`, each until `HELD_ROW_RETRY` from now, and lets go of the
    /// others of `tried` (stored now).
    fn hold(&self, failed: Vec<(i64, Error)>, tried: &[i64]) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in tried {
            held.remove(id);
        }
        for (id, error) in failed {
            tracing::error!(
                row = id,
                error = %error,
                "an intake log row could not be stored; it is kept and tried again"
            );
            held.insert(id, tokio::time::Instant::now() + HELD_ROW_RETRY);
        }
    }

    /// When the first held row is due to be tried again.
    fn next_retry(&self) -> Option<tokio::time::Instant> {
        let held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.values().min().copied()
    }

    /// The batch after `after_id`, read once a saturated intake eased (at most
    /// `MOST_A_WORKER_WAITS` later): one row while it is still saturated, so that the turn
    /// that stores it is short. Held rows not due yet are left out.
    async fn read(&self, after_id: i64) -> Result<super::LogBatch> {
        self.load.eased(crate::jobs::intake_load::MOST_A_WORKER_WAITS).await;
        let rows = if self.load.is_saturated() { 1 } else { EXPANDED_ROWS };
        let now = tokio::time::Instant::now();
        let skip: Vec<i64> = {
            let held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            held.iter().filter(|(_, due)| **due > now).map(|(id, _)| *id).collect()
        };
        self.storage.read_intake_log(after_id, rows, &skip, self.settings).await
    }
}

/// Answers a committed group's requests once the commit is durable, or, when the log could not
/// be synced, that nothing was stored (a retry finds what was, and is answered as a repeat).
async fn answer_when_durable(
    group: Vec<Pending>,
    outcomes: Vec<Vec<IngestOutcome>>,
    durable: super::Durable,
    metrics: Arc<Metrics>,
) {
    if let Err(error) = durable.wait().await {
        crate::storage::db_error("committing ingests")(error).log_if_internal();
        for pending in group {
            let _receiver_gone = pending.reply.send(Err(not_stored()));
        }
        return;
    }
    for (pending, outcomes) in group.into_iter().zip(outcomes) {
        let committed = pending.write.committed(outcomes);
        metrics.datapoints_written(committed.datapoints);
        let _receiver_gone = pending.reply.send(Ok(committed));
    }
}

fn not_stored() -> Error {
    Error::Unavailable("storage is unavailable; nothing was stored, retry".into())
}
