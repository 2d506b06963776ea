//! Worker stages: fetch audio, probe it, decode and transcribe it, and run an ingest job through
//! them into its datapoint.

pub mod fetch;
pub mod process;

use crate::asr::Asr;
use fetch::Fetcher;

/// What a worker needs beside the domain.
#[derive(Clone, Debug)]
pub struct Stages {
    pub fetcher: Fetcher,
    /// None when transcription is turned off here (asr.enabled = false): calls that need it
    /// wait, parked.
    pub asr: Option<Asr>,
}
