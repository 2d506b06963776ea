//! The worker loop: claim a due job, run it, record the result. Workers run until shutdown; a
//! job in hand when the process dies is claimed again once its lease expires. What a job does
//! is the `JobRunner`'s business (the pipeline's): the loop owns claiming, lease renewal, and
//! the retry-or-dead decision.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::{ClaimedJob, JobSettings, Queue, retry_delay};
use crate::clock::SharedClock;

/// Why a run failed, which decides whether it is tried again.
#[derive(Debug)]
pub enum JobError {
    /// Retrying cannot help (the audio is not there, not audio, too large, refused).
    Permanent(String),
    /// May succeed later.
    Transient(String),
}

/// What became of one job of a batch given to `JobRunner::run_batch`.
#[derive(Debug)]
pub enum BatchOutcome {
    /// Run: its result committed (with the others of the batch), or its failure, which the
    /// loop records.
    Ran(Result<(), JobError>),
    /// Slow work (a download, a transcription) that must not hold the batch: run on its own
    /// through `JobRunner::run`.
    RunAlone,
}

/// Runs jobs and records their failures.
pub trait JobRunner: Clone + Send + Sync + 'static {
    /// Runs the jobs of a claimed batch that can be done together, committing their results in
    /// one transaction; one outcome per job, in the batch's order.
    fn run_batch(&self, jobs: &[ClaimedJob]) -> impl Future<Output = Vec<BatchOutcome>> + Send;

    /// Does one job's work and commits its result (finishing the job in that commit).
    fn run(&self, job: &ClaimedJob) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Records a failed attempt: queued again at `retry_at`, or dead when None. Whatever the job
    /// processes takes the same state in the same transaction.
    fn record_failure(
        &self,
        job: &ClaimedJob,
        reason: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), crate::Error>> + Send;
}

/// What every worker shares.
#[derive(Clone, Debug)]
pub struct WorkerContext {
    pub queue: Queue,
    pub clock: SharedClock,
    /// Notified when new jobs are committed.
    pub wakeup: Arc<Notify>,
    pub settings: JobSettings,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Waited on before each claim: workers give way to a saturated intake.
    pub intake: super::IntakeLoad,
}

/// Starts `context.settings.workers` workers; they stop when `stop` turns true.
pub fn spawn_workers<R: JobRunner>(
    context: &WorkerContext,
    runner: &R,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..context.settings.workers)
        .map(|index| {
            let worker = Worker {
                id: format!("{}-{index}", Uuid::now_v7()),
                context: context.clone(),
                runner: runner.clone(),
            };
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect()
}

/// Jobs one claim takes: one claim commit and one result commit for up to this many quick
/// jobs (backlogs drained at 4,400–6,300 jobs/s with 64, 8,700–10,900 with 256: runs 5a, 5 and
/// 7 of docs/BENCHMARKS.md). Slow jobs of a batch are not held: the worker keeps one and gives
/// the others back.
const CLAIM_BATCH: usize = 256;

struct Worker<R> {
    id: String,
    context: WorkerContext,
    runner: R,
}

impl<R: JobRunner> Worker<R> {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let context = &self.context;
        loop {
            if *stop.borrow() {
                return;
            }
            // A claim and its batch's results take the writer's turn from requests waiting for
            // their acks: while the intake is saturated, its requests go first.
            tokio::select! {
                () = context.intake.eased(super::intake_load::MOST_A_WORKER_WAITS) => {}
                _ = stop.changed() => continue,
            }
            // Registered before the claim looks, so a commit that lands between an empty claim
            // and the wait below still wakes this worker (notify_waiters keeps no permit).
            let wakeup = context.wakeup.notified();
            tokio::pin!(wakeup);
            wakeup.as_mut().enable();
            let claimed = context
                .queue
                .claim(&self.id, context.clock.now(), context.settings.lease, CLAIM_BATCH)
                .await;
            match claimed {
                Ok(jobs) if !jobs.is_empty() => {
                    self.run_claimed(jobs, &stop).await;
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "claiming jobs failed"),
            }
            // Nothing due: wait for new work, a stop, or the poll interval (retries, leases).
            tokio::select! {
                () = wakeup => {}
                _ = stop.changed() => {}
                () = tokio::time::sleep(context.settings.poll_interval) => {}
            }
        }
    }

    /// Runs a claimed batch: what can run together in one go, then one slow job, while the
    /// other slow jobs go back to the queue at once for any free worker. The batch's leases are
    /// renewed together while it runs.
    async fn run_claimed(&self, jobs: Vec<ClaimedJob>, stop: &watch::Receiver<bool>) {
        let mut held: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
        let outcomes = self.with_heartbeat(self.runner.run_batch(&jobs), &mut held).await;
        let mut alone = Vec::new();
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            match outcome {
                BatchOutcome::Ran(result) => {
                    held.retain(|job_id| *job_id != job.id);
                    self.record(&job, result).await;
                }
                BatchOutcome::RunAlone => alone.push(job),
            }
        }
        let mut alone = alone.into_iter();
        let first = alone.next();
        self.give_back(alone.map(|job| job.id).collect(), &mut held).await;
        if let Some(job) = first.filter(|_| !*stop.borrow()) {
            let result = self.with_heartbeat(self.runner.run(&job), &mut held).await;
            held.retain(|job_id| *job_id != job.id);
            self.record(&job, result).await;
        }
        // Stopping: give back what was claimed and not started.
        self.give_back(held.clone(), &mut held).await;
    }

    /// Releases `job_ids` (claimed, not started) and drops them from `held`.
    async fn give_back(&self, job_ids: Vec<Uuid>, held: &mut Vec<Uuid>) {
        if job_ids.is_empty() {
            return;
        }
        if let Err(error) = self.context.queue.release(&job_ids, &self.id).await {
            tracing::warn!(error = %error, "releasing claimed jobs failed");
        }
        held.retain(|job_id| !job_ids.contains(job_id));
    }

    /// Awaits `work` while renewing the leases of `held`: a long transcription (or one waiting
    /// its turn) outlives a lease, and no other worker may start the jobs meanwhile.
    async fn with_heartbeat<T>(&self, work: impl Future<Output = T>, held: &mut Vec<Uuid>) -> T {
        tokio::pin!(work);
        let mut heartbeat = tokio::time::interval(self.context.settings.lease / 3);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                result = &mut work => break result,
                _ = heartbeat.tick() => self.renew_leases(held).await,
            }
        }
    }

    /// Renews the lease of every job in `held`, in one statement; a job whose lease another
    /// worker took is dropped from it (one running goes on: its result is written either way).
    async fn renew_leases(&self, held: &mut Vec<Uuid>) {
        let context = &self.context;
        let until = context.clock.now()
            + chrono::Duration::from_std(context.settings.lease)
                .unwrap_or(chrono::Duration::minutes(5));
        match context.queue.extend_leases(held, &self.id, until).await {
            Ok(still_held) => {
                for job_id in held.iter().filter(|job_id| !still_held.contains(job_id)) {
                    tracing::warn!(%job_id, "lost the lease of a claimed job");
                }
                held.retain(|job_id| still_held.contains(job_id));
            }
            Err(error) => tracing::warn!(error = %error, "renewing job leases failed"),
        }
    }

    /// Records a job's result: a success is already committed; a failure is queued again
    /// with backoff, or dead after its last attempt or when retrying cannot help.
    async fn record(&self, job: &ClaimedJob, result: Result<(), JobError>) {
        let settings = &self.context.settings;
        let job_id = job.id;
        let now = self.context.clock.now();
        let metrics = &self.context.metrics;
        let recorded = match result {
            Ok(()) => {
                metrics.job("succeeded");
                Ok(())
            }
            Err(JobError::Permanent(reason)) => {
                metrics.job("dead");
                tracing::warn!(%job_id, reason = %reason, "job failed permanently");
                self.runner.record_failure(job, &reason, None).await
            }
            Err(JobError::Transient(reason)) if job.attempts >= job.max_attempts => {
                metrics.job("dead");
                tracing::warn!(%job_id, reason = %reason, attempts = job.attempts, "job failed its last attempt");
                self.runner.record_failure(job, &reason, None).await
            }
            Err(JobError::Transient(reason)) => {
                metrics.job("retried");
                let delay = retry_delay(job.attempts, settings.retry_base, settings.retry_max);
                let retry_at = now
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
                tracing::info!(%job_id, reason = %reason, attempts = job.attempts, retry_in_ms = delay.as_millis() as u64, "job will be retried");
                self.runner.record_failure(job, &reason, Some(retry_at)).await
            }
        };
        if let Err(error) = recorded {
            // The lease expires and another worker takes the job again.
            tracing::error!(%job_id, error = %error, "recording a job result failed");
        }
    }
}
