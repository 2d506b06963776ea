//! sea-orm entities. Ids are UUID text and times are milliseconds since the Unix epoch, which
//! read the same on SQLite and Postgres.

pub mod alert_cooldown;
pub mod api_key;
pub mod audio_object;
pub mod check;
pub mod check_issue;
pub mod check_version;
pub mod console_session;
pub mod datapoint;
pub mod datapoint_check;
pub mod datapoint_metadata;
pub mod datapoint_tag;
pub mod event;
pub mod event_attempt;
pub mod event_delivery;
pub mod event_endpoint;
pub mod ingest;
pub mod integration;
pub mod integration_secret;
pub mod monitor;
pub mod monitor_backfill;
pub mod monitor_datapoint;
pub mod monitor_rollup;
pub mod monitor_version;
pub mod organization;
pub mod project;
pub mod webhook_delivery;
