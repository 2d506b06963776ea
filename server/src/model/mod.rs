//! The records earshot keeps and the rules that need no I/O: the canonical conversation and its
//! validation, integrations, ingests, deliveries, datapoints and their metrics and checks, projects and
//! keys. Storage reads and writes these; the domain's use cases build and check them. Nothing
//! here touches the database, the network or the clock.

pub mod auth;
pub mod checks;
pub mod commit;
pub mod conversation;
pub mod conversation_json;
pub mod datapoints;
pub mod deliveries;
pub mod events;
pub mod ingest;
pub mod integrations;
pub mod lifecycle;
pub mod metrics;
pub mod monitors;
pub mod projects;
