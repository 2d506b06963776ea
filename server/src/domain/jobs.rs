//! Job records of the durable queue, shared by storage (which keeps them) and the workers (which
//! run them).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a job does. A shipped variant is never renamed or changed; new shapes get new variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobPayload {
    IngestV1 { ingest_id: Uuid },
}

impl JobPayload {
    pub fn kind(&self) -> &'static str {
        match self {
            JobPayload::IngestV1 { .. } => "ingest",
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
    /// Including this one.
    pub attempts: i32,
    pub max_attempts: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

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
