//! Group commit: concurrent ingest requests share one transaction and one fsync. A single
//! writer task takes every request waiting at that moment, commits them together, and only then
//! answers each; while it commits, new requests queue up for the next group. When a group's
//! transaction fails, each of its requests is committed again on its own, so one bad write fails
//! alone (with its cause in the log) and the others are stored.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Storage;
use super::ingest::{Committed, IntakeSettings, PreparedWrite};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::commit::IngestWrite;
use crate::model::ingest::IngestOutcome;

const QUEUE_DEPTH: usize = 4096;

struct Pending {
    write: PreparedWrite,
    reply: oneshot::Sender<Result<Committed>>,
}

/// The handle requests submit to. Cheap to clone.
#[derive(Clone, Debug)]
pub struct IngestWriter {
    sender: mpsc::Sender<Pending>,
    clock: SharedClock,
    settings: IntakeSettings,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Pending").field("ingests", &self.write.ingest_count()).finish()
    }
}

impl IngestWriter {
    /// Starts the writer task on the current runtime. `max_group` bounds the requests of one
    /// transaction, and so its size and latency.
    pub fn start(
        storage: Storage,
        settings: IntakeSettings,
        max_group: usize,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(storage, max_group.max(1), metrics, receiver));
        Self { sender, clock, settings }
    }

    /// Returns once `write` is committed, with one outcome per ingest in order and what was
    /// stored. Its rows are built here, in the caller's task, not in the writer's
    /// (`PreparedWrite`).
    pub async fn submit(&self, write: IngestWrite) -> Result<Committed> {
        let write = PreparedWrite::new(write, self.settings, self.clock.now())?;
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { write, reply })
            .await
            .map_err(|_| Error::Unavailable("the ingest writer has stopped".into()))?;
        answer.await.map_err(|_| Error::Unavailable("the ingest writer has stopped".into()))?
    }
}

async fn run(
    storage: Storage,
    max_group: usize,
    metrics: Arc<Metrics>,
    mut receiver: mpsc::Receiver<Pending>,
) {
    while let Some(first) = receiver.recv().await {
        let mut group: Vec<Pending> = Vec::with_capacity(max_group);
        group.push(first);
        while group.len() < max_group {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        metrics.group_commit(group.len());
        let writes: Vec<&PreparedWrite> = group.iter().map(|pending| &pending.write).collect();
        let started = std::time::Instant::now();
        let result = storage.commit_prepared_writes_unsynced(&writes).await;
        tracing::debug!(
            requests = group.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "group commit"
        );
        match result {
            // Answered once durable, while this task writes the next group.
            Ok((outcomes, durable)) => {
                tokio::spawn(answer_when_durable(group, outcomes, durable, metrics.clone()));
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
                    let alone = storage.commit_prepared_writes(&[&pending.write]).await;
                    let reply = match alone {
                        Ok(mut outcomes) => {
                            let committed =
                                pending.write.committed(outcomes.pop().unwrap_or_default());
                            metrics.datapoints_written(committed.datapoints);
                            Ok(committed)
                        }
                        Err(error) => {
                            error.log_if_internal();
                            Err(not_stored())
                        }
                    };
                    let _receiver_gone = pending.reply.send(reply);
                }
            }
        }
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
