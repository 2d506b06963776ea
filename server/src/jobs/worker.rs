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
        let period = self.context.settings.lease / 3;
        beside_renewals(work, period, held, |held| self.renewed(held)).await
    }

    /// Renews the lease of every job in `held`, in one statement, and returns those still held:
    /// a job whose lease another worker took is not (one running goes on: its result is written
    /// either way), nor one already finished. When the statement fails, all of them, to be tried
    /// again at the next beat.
    async fn renewed(&self, held: Vec<Uuid>) -> Vec<Uuid> {
        let context = &self.context;
        let until = context.clock.now()
            + chrono::Duration::from_std(context.settings.lease)
                .unwrap_or(chrono::Duration::minutes(5));
        match context.queue.extend_leases(&held, &self.id, until).await {
            Ok(still_held) => still_held,
            Err(error) => {
                tracing::warn!(error = %error, "renewing job leases failed");
                held
            }
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

/// Awaits `work` while `renew` runs every `period` beside it: given the ids in `held`, a
/// renewal returns those still held, and `held` keeps only them. A renewal never keeps the work
/// from being polled: the work may hold the writer's turn, which a renewal waits for. (Run
/// instead of the work, a renewal waited for it forever, and with it every write of the
/// process: a worker whose heartbeat came while its batch was in its write turn, as after the
/// process was paused for longer than a beat.) A renewal under way when the work ends is
/// finished, not dropped halfway through its statement; the jobs it did not find then are not
/// reported lost, since the work may have just finished them.
async fn beside_renewals<T, F>(
    work: impl Future<Output = T>,
    period: std::time::Duration,
    held: &mut Vec<Uuid>,
    renew: impl Fn(Vec<Uuid>) -> F,
) -> T
where
    F: Future<Output = Vec<Uuid>>,
{
    tokio::pin!(work);
    let mut heartbeat = tokio::time::interval(period);
    // After a pause, one renewal rather than one for every beat missed.
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = heartbeat.tick() => {}
        }
        let renewal = renew(held.clone());
        tokio::pin!(renewal);
        let (still_held, ended) = tokio::select! {
            still_held = &mut renewal => (still_held, None),
            result = &mut work => (renewal.await, Some(result)),
        };
        if ended.is_none() {
            for job_id in held.iter().filter(|job_id| !still_held.contains(job_id)) {
                tracing::warn!(%job_id, "lost the lease of a claimed job");
            }
        }
        held.retain(|job_id| still_held.contains(job_id));
        if let Some(result) = ended {
            return result;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use uuid::Uuid;

    use super::beside_renewals;
    use crate::jobs::queue::WriteTurn;

    /// A renewal that waits for the writer's turn while the work holds it goes on beside the
    /// work: the work ends, gives up the turn, and the renewal then takes it and finishes.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_waiting_for_the_turn_the_work_holds_lets_the_work_end() {
        let turns = &WriteTurn::one_writer();
        let renewals = &AtomicUsize::new(0);
        let ids = vec![Uuid::now_v7(), Uuid::now_v7()];
        let mut held = ids.clone();
        let work = async {
            let _turn = turns.take().await;
            // Three beats' time in the turn.
            tokio::time::sleep(Duration::from_secs(35)).await;
            "done"
        };
        let renew = |held: Vec<Uuid>| async move {
            let _turn = turns.take().await;
            renewals.fetch_add(1, Ordering::SeqCst);
            held[1..].to_vec()
        };
        let period = Duration::from_secs(10);
        let outcome = tokio::time::timeout(
            Duration::from_secs(3600),
            beside_renewals(work, period, &mut held, renew),
        )
        .await;
        assert_eq!(outcome, Ok("done"), "the work ends though a renewal waits for its turn");
        assert_eq!(renewals.load(Ordering::SeqCst), 1, "the renewal waiting then ran, once");
        assert_eq!(held, ids[1..], "and what it returned is what is held");
        assert!(turns.take().await.is_some(), "nothing holds the turn any more");
    }

    /// With the turn free, a renewal runs at every beat while the work goes on, and one beat
    /// missed many times over (a paused process) makes one renewal, not one a beat.
    #[tokio::test(start_paused = true)]
    async fn renewals_run_every_beat_and_once_after_a_pause() {
        let renewals = &AtomicUsize::new(0);
        let renew = |held: Vec<Uuid>| async move {
            renewals.fetch_add(1, Ordering::SeqCst);
            held
        };
        let mut held = vec![Uuid::now_v7()];
        let period = Duration::from_secs(10);
        let work = tokio::time::sleep(Duration::from_secs(35));
        beside_renewals(work, period, &mut held, renew).await;
        assert_eq!(renewals.load(Ordering::SeqCst), 3, "at 10, 20 and 30 s");
        assert_eq!(held.len(), 1);

        renewals.store(0, Ordering::SeqCst);
        let paused = async {
            // Blocks the thread as a stopped process would, with the clock going on.
            tokio::time::advance(Duration::from_secs(95)).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        beside_renewals(paused, period, &mut held, renew).await;
        assert_eq!(renewals.load(Ordering::SeqCst), 1, "one renewal for nine beats missed");
    }
}
