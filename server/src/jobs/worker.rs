//! Workers: claim a due job, run it, record the result. They run until shutdown; a job in hand
//! when the process dies is claimed again once its lease expires.

use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use super::{JobSettings, retry_delay};
use crate::domain::Domain;
use crate::domain::jobs::{ClaimedJob, JobPayload};
use crate::pipeline::Stages;
use crate::pipeline::process::{self, ProcessError};

/// Starts `settings.workers` workers; they stop when `stop` turns true.
pub fn spawn_workers(
    domain: &Domain,
    stages: &Stages,
    settings: &JobSettings,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..settings.workers)
        .map(|index| {
            let worker = Worker {
                id: format!("{}-{index}", Uuid::now_v7()),
                domain: domain.clone(),
                stages: stages.clone(),
                settings: Arc::new(settings.clone()),
            };
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect()
}

struct Worker {
    id: String,
    domain: Domain,
    stages: Stages,
    settings: Arc<JobSettings>,
}

impl Worker {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let claimed = self
                .domain
                .storage
                .claim_jobs(&self.id, self.domain.clock.now(), self.settings.lease, 1)
                .await;
            match claimed {
                Ok(jobs) if !jobs.is_empty() => {
                    for job in jobs {
                        self.run_job(job).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "claiming jobs failed"),
            }
            // Nothing due: wait for new work, a stop, or the poll interval (retries, leases).
            tokio::select! {
                () = self.domain.jobs_wakeup.notified() => {}
                _ = stop.changed() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    async fn renew_lease(&self, job_id: Uuid) {
        let until = self.domain.clock.now()
            + chrono::Duration::from_std(self.settings.lease)
                .unwrap_or(chrono::Duration::minutes(5));
        match self.domain.storage.extend_lease(job_id, &self.id, until).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(%job_id, "lost the lease of a running job"),
            Err(error) => tracing::warn!(%job_id, error = %error, "renewing a job lease failed"),
        }
    }

    async fn run_job(&self, job: ClaimedJob) {
        let JobPayload::IngestV1 { ingest_id } = job.payload;
        let started = std::time::Instant::now();
        let result = {
            let work = process::process_ingest(&self.domain, &self.stages, &job, ingest_id);
            tokio::pin!(work);
            // A long transcription (or a transcription waiting its turn) outlives a lease: the
            // lease is renewed while the work runs, so no other worker starts the job again.
            let mut heartbeat = tokio::time::interval(self.settings.lease / 3);
            heartbeat.tick().await;
            loop {
                tokio::select! {
                    result = &mut work => break result,
                    _ = heartbeat.tick() => self.renew_lease(job.id).await,
                }
            }
        };
        let now = self.domain.clock.now();
        let recorded = match result {
            Ok(outcome) => {
                tracing::debug!(%ingest_id, ?outcome, elapsed_ms = started.elapsed().as_millis() as u64, "ingest processed");
                Ok(())
            }
            Err(ProcessError::Permanent(reason)) => {
                tracing::warn!(%ingest_id, reason = %reason, "ingest failed permanently");
                self.domain.storage.fail_job(job.id, ingest_id, &reason, None, now).await
            }
            Err(ProcessError::Transient(reason)) if job.attempts >= job.max_attempts => {
                tracing::warn!(%ingest_id, reason = %reason, attempts = job.attempts, "ingest failed its last attempt");
                self.domain.storage.fail_job(job.id, ingest_id, &reason, None, now).await
            }
            Err(ProcessError::Transient(reason)) => {
                let delay =
                    retry_delay(job.attempts, self.settings.retry_base, self.settings.retry_max);
                let retry_at = now
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
                tracing::info!(%ingest_id, reason = %reason, attempts = job.attempts, retry_in_ms = delay.as_millis() as u64, "ingest will be retried");
                self.domain.storage.fail_job(job.id, ingest_id, &reason, Some(retry_at), now).await
            }
        };
        if let Err(error) = recorded {
            // The lease expires and another worker takes the job again.
            tracing::error!(%ingest_id, error = %error, "recording a job result failed");
        }
    }
}
