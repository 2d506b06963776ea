//! Worker stages: fetch audio, probe it, compute metrics, store the datapoint.

pub mod fetch;
pub mod probe;
pub mod process;
pub mod ssrf;
