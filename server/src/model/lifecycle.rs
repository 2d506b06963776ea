//! What a deletion removes and the audit record it leaves; retention is kept on the project
//! (`projects::Retention`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Rows and recordings one deletion (or one retention sweep) removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Datapoints, each with its tag, metadata and full-text rows.
    pub datapoints: u64,
    /// Ingests of those calls (their payloads), with their queued jobs.
    pub ingests: u64,
    /// Webhook deliveries of those calls whose request and body were still kept; the delivery
    /// stays in the log (when, verdict, status), without them.
    pub delivery_bodies: u64,
    /// Recordings no stored call names any more: gone from the API at once, and from the audio
    /// store after `retention.audio_grace_seconds`, unless stored again meanwhile.
    pub recordings: u64,
}

impl Removed {
    pub fn add(&mut self, other: Removed) {
        self.datapoints += other.datapoints;
        self.ingests += other.ingests;
        self.delivery_bodies += other.delivery_bodies;
        self.recordings += other.recordings;
    }

    pub fn is_empty(&self) -> bool {
        *self == Removed::default()
    }
}

/// Why calls were deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionReason {
    /// An API request (by datapoint ids, a call id, a context token or a filter).
    Request,
    /// The project's datapoint retention.
    Retention,
    /// The project's audio retention: recordings only, the datapoints stay.
    AudioRetention,
}

impl DeletionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionReason::Request => "request",
            DeletionReason::Retention => "retention",
            DeletionReason::AudioRetention => "audio_retention",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "request" => Some(DeletionReason::Request),
            "retention" => Some(DeletionReason::Retention),
            "audio_retention" => Some(DeletionReason::AudioRetention),
            _ => None,
        }
    }
}

/// The audit record of a deletion: who asked, when, with what filter, and how much went. It
/// keeps nothing of what was deleted.
#[derive(Clone, Debug, PartialEq)]
pub struct Deletion {
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The project the deletion was limited to, if any.
    pub project_id: Option<Uuid>,
    /// `api_key:<id>` for a request, `retention` for the sweeper.
    pub actor: String,
    pub reason: DeletionReason,
    /// The filter as asked (datapoint ids, call id, context token, search filters), as JSON.
    pub filter: serde_json::Value,
    pub requested_at: DateTime<Utc>,
    /// When the last batch committed; `None` while the deletion runs (or if it stopped).
    pub finished_at: Option<DateTime<Utc>>,
    pub removed: Removed,
}

/// A stored call a deletion names: its datapoint and the key its ingests share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRef {
    pub datapoint_id: Uuid,
    pub project_id: Uuid,
    pub provider: String,
    pub call_id: String,
    pub audio_id: Option<Uuid>,
}
