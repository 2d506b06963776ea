//! earshot: ingests completed voice-AI calls for monitoring.
//!
//! Layers, top to bottom (nothing points up): `cli` and `app` build everything; `transport`
//! adapts gRPC and REST to `domain`; `domain` holds the rules; `storage` is the only module that
//! touches the database; `crypto` seals secrets and hashes keys.

#![forbid(unsafe_code)]

pub mod app;
pub mod asr;
pub mod blob;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod logging;
pub mod models;
pub mod pipeline;
pub mod providers;
pub mod ssrf;
pub mod storage;
#[doc(hidden)]
#[allow(clippy::unwrap_used)]
pub mod testing;
pub mod transport;

pub use error::{Error, ErrorCode, FieldViolation};
