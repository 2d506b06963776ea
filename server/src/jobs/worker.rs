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

/// Runs jobs and records their failures.
pub trait JobRunner: Clone + Send + Sync + 'static {
    /// Does the job's work and commits its result (finishing the job in that commit).
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

/// Jobs one claim takes: fewer claim commits per job, while a worker holding a batch does not
/// keep much work from the others.
const CLAIM_BATCH: usize = 8;

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
                    // The batch's leases are renewed together while its jobs run one by one.
                    let mut held: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
                    for job in jobs {
                        if *stop.borrow() {
                            break;
                        }
                        if held.contains(&job.id) {
                            self.run_job(job, &mut held).await;
                        }
                    }
                    if !held.is_empty() {
                        // Stopping: give back what was claimed and not started.
                        if let Err(error) = context.queue.release(&held, &self.id).await {
                            tracing::warn!(error = %error, "releasing claimed jobs failed");
                        }
                    }
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

    /// Renews the lease of every job in `held`; a job whose lease another worker took is dropped
    /// from it (the one running goes on: its result is written either way).
    async fn renew_leases(&self, held: &mut Vec<Uuid>) {
        let context = &self.context;
        let until = context.clock.now()
            + chrono::Duration::from_std(context.settings.lease)
                .unwrap_or(chrono::Duration::minutes(5));
        let mut lost = Vec::new();
        for job_id in held.iter().copied() {
            match context.queue.extend_lease(job_id, &self.id, until).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(%job_id, "lost the lease of a claimed job");
                    lost.push(job_id);
                }
                Err(error) => {
                    tracing::warn!(%job_id, error = %error, "renewing a job lease failed");
                }
            }
        }
        held.retain(|job_id| !lost.contains(job_id));
    }

    async fn run_job(&self, job: ClaimedJob, held: &mut Vec<Uuid>) {
        let settings = &self.context.settings;
        let result = {
            let work = self.runner.run(&job);
            tokio::pin!(work);
            // A long transcription (or a transcription waiting its turn) outlives a lease: the
            // lease is renewed while the work runs, so no other worker starts the job again.
            let mut heartbeat = tokio::time::interval(settings.lease / 3);
            heartbeat.tick().await;
            loop {
                tokio::select! {
                    result = &mut work => break result,
                    _ = heartbeat.tick() => self.renew_leases(held).await,
                }
            }
        };
        held.retain(|job_id| *job_id != job.id);
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
                self.runner.record_failure(&job, &reason, None).await
            }
            Err(JobError::Transient(reason)) if job.attempts >= job.max_attempts => {
                metrics.job("dead");
                tracing::warn!(%job_id, reason = %reason, attempts = job.attempts, "job failed its last attempt");
                self.runner.record_failure(&job, &reason, None).await
            }
            Err(JobError::Transient(reason)) => {
                metrics.job("retried");
                let delay = retry_delay(job.attempts, settings.retry_base, settings.retry_max);
                let retry_at = now
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
                tracing::info!(%job_id, reason = %reason, attempts = job.attempts, retry_in_ms = delay.as_millis() as u64, "job will be retried");
                self.runner.record_failure(&job, &reason, Some(retry_at)).await
            }
        };
        if let Err(error) = recorded {
            // The lease expires and another worker takes the job again.
            tracing::error!(%job_id, error = %error, "recording a job result failed");
        }
    }
}
