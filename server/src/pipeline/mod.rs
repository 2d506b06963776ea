//! Worker stages: fetch audio, probe it, and run an ingest job through them into its datapoint.

pub mod decode;
pub mod fetch;
pub mod probe;
pub mod process;
