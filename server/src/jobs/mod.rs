//! The durable job queue, in one place: its records (here), its SQL (`queue`: enqueue in the
//! caller's transaction, claim with a lease, renew, finish, requeue) and its worker loop
//! (`worker`), which runs each claimed job through a `JobRunner` the caller supplies (the
//! pipeline). Jobs are written in the same transaction as what they process, claimed again
//! after a crash once their lease expires, retried with exponential backoff and jitter, and dead
//! after their last attempt. The queue knows nothing of what a job does: it sits below the
//! pipeline and the domain, beside storage, which enqueues and finishes jobs inside its own
//! transactions through `queue`'s functions.

mod entity;
pub mod intake_load;
pub mod queue;
pub mod worker;

pub use intake_load::{IntakeLoad, IntakeLogging};
pub use queue::Queue;
pub use worker::{BatchOutcome, JobError, JobRunner, WorkerContext, spawn_workers};

#[derive(Clone, Debug)]
pub struct JobSettings {
    pub workers: usize,
    pub max_attempts: i32,
    pub lease: std::time::Duration,
    pub retry_base: std::time::Duration,
    pub retry_max: std::time::Duration,
    pub poll_interval: std::time::Duration,
}

/// Exponential backoff with full jitter: a random delay up to `base * 2^(attempt-1)`, capped,
/// and at least a tenth of it so retries never stampede at once.
pub fn retry_delay(
    attempt: i32,
    base: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(20);
    let ceiling = base.saturating_mul(1u32 << exponent).min(max);
    let random = u64::from_le_bytes(crate::crypto::random_bytes::<8>());
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let fraction = 0.1 + 0.9 * (random as f64 / u64::MAX as f64);
    ceiling.mul_f64(fraction)
}

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a job does. A shipped variant is never renamed or changed; new shapes get new variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobPayload {
    IngestV1 {
        ingest_id: Uuid,
    },
    /// A monitor evaluated over stored calls (`monitor_backfills`; the job shares its id).
    MonitorBackfillV1 {
        backfill_id: Uuid,
    },
}

impl JobPayload {
    pub fn kind(&self) -> &'static str {
        match self {
            JobPayload::IngestV1 { .. } => "ingest",
            JobPayload::MonitorBackfillV1 { .. } => "monitor_backfill",
        }
    }

    /// The ingest the job processes, if it processes one.
    pub fn ingest_id(&self) -> Option<Uuid> {
        match self {
            JobPayload::IngestV1 { ingest_id } => Some(*ingest_id),
            JobPayload::MonitorBackfillV1 { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    /// Waiting for a capability that is not there yet (transcription); not retried.
    Parked,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Parked,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Parked => "parked",
            JobStatus::Dead => "dead",
        }
    }
}

/// A job a worker holds the lease of.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub payload: JobPayload,
    /// The job's input, when it carries one (see the `input_json` column).
    pub input: Option<String>,
    /// Including this one.
    pub attempts: i32,
    pub max_attempts: i32,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retry_delays_grow_stay_capped_and_jitter() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for attempt in 1..12 {
            let delay = retry_delay(attempt, base, max);
            let ceiling = (base * 2u32.pow(u32::try_from(attempt - 1).unwrap())).min(max);
            assert!(delay <= ceiling && delay >= ceiling / 10, "attempt {attempt}: {delay:?}");
        }
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| retry_delay(5, base, max)).collect();
        assert!(samples.len() > 1, "delays are jittered");
    }

    #[test]
    fn payloads_are_tagged_json() {
        let id = Uuid::nil();
        let json = serde_json::to_string(&JobPayload::IngestV1 { ingest_id: id }).unwrap();
        assert_eq!(json, format!("{{\"type\":\"IngestV1\",\"ingest_id\":\"{id}\"}}"));
        assert_eq!(
            serde_json::from_str::<JobPayload>(&json).unwrap(),
            JobPayload::IngestV1 { ingest_id: id }
        );
    }
}
