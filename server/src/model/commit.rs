//! The unit of the intake's group commit: what one request writes in the shared transaction.

use super::deliveries::NewDelivery;
use super::ingest::{AudioObject, NewIngest};

/// Everything one request writes: audio rows first, then ingests with their jobs.
#[derive(Clone, Debug, Default)]
pub struct IngestWrite {
    pub audio_objects: Vec<AudioObject>,
    pub ingests: Vec<NewIngest>,
    /// The webhook request that carried these ingests, or a request that stored nothing.
    pub delivery: Option<NewDelivery>,
}
