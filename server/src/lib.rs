//! earshot: ingests completed voice-AI calls for monitoring.
//!
//! Layers, top to bottom (each imports only those below it; `scripts/check-layers` checks):
//! `cli` and `app` build everything; `transport` adapts gRPC and REST to `domain`; the
//! `pipeline` runs jobs through `asr` and `domain`; `domain` holds the use cases (webhook
//! admission among them) and calls `providers` to verify and normalize, `storage` to persist;
//! `storage` and `jobs` (the durable queue) are the only modules that touch the database;
//! `model` holds the records and their pure rules; `audio`, `crypto`, `ssrf`, `blob`, `clock`
//! and `error` are leaves. docs/ARCHITECTURE.md draws the graph.

#![forbid(unsafe_code)]

pub mod app;
pub mod asr;
pub mod audio;
pub mod blob;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod providers;
pub mod speech_models;
pub mod ssrf;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
pub mod testing;
pub mod transport;

pub use error::{Error, ErrorCode, FieldViolation};
