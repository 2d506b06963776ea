//! Organizations and their projects.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub retention: Retention,
}

/// How long a project keeps its calls, counted from when each call took place (its start, or
/// when it was first received). `None` keeps them forever, the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Datapoints, with their search rows, ingests and delivery bodies, and their recordings.
    pub datapoint_days: Option<u32>,
    /// Recordings alone: the datapoint stays, without its audio.
    pub audio_days: Option<u32>,
    /// Webhook delivery bodies (what a replay needs); `None` takes the server's
    /// `integrations.delivery_body_retention_days`.
    pub delivery_body_days: Option<u32>,
    /// Webhook deliveries in the log; `None` takes the server's
    /// `integrations.delivery_retention_days`.
    pub delivery_days: Option<u32>,
}

/// The longest retention a project may set, in days (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;
