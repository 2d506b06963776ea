//! Versioned schema migrations. A shipped migration is never edited; changes come as new ones.
//! Written with sea-query builders so the same migration runs on SQLite and Postgres. One file
//! per migration; each keeps its own column helpers, though they repeat the first migration's:
//! a shipped migration must never change, so none depends on code a later change could edit.

mod m0001_initial;
mod m0002_ingest;
mod m0003_webhook_deliveries;
mod m0004_rate_limited_count;
mod m0005_jobs_by_lease;
mod m0006_context_token_lookups;
mod m0007_succeeded_jobs_leave;
mod m0008_stored_once;
mod m0009_instances;
mod m0010_search_indexes;
mod m0011_transcript_words;
mod m0012_lifecycle;
mod m0013_datapoint_integration;
mod m0014_delivery_retention;
mod m0015_monitors;
mod m0016_monitor_rollups;
mod m0017_smaller_result_rows;
mod m0018_verdict_columns;
mod m0019_event_endpoints;
mod m0020_event_attempt_failures;
mod m0021_secret_expiry_notices;
mod m0022_slack_alerts;
mod m0023_console_sessions;
mod m0024_deliveries_by_ingest;
mod m0025_intake_log;
mod m0026_datapoint_document;
mod m0027_compact_search_rows;
mod m0028_matches_by_monitor;
mod m0029_binary_ids;
mod m0030_own_context_tokens;
mod m0031_one_call_index;
mod m0032_dedup_by_call;
mod m0033_documents_against_bodies;
mod m0034_ingests_by_project;
mod m0035_ordered_by_rowid;
mod m0036_deliveries_of_integrations;
mod m0037_calls_by_their_own_keys;
mod m0038_search_rows_by_rowid;
mod m0039_documents_of_own_deliveries;
mod m0040_metrics_of_the_turns;
mod m0041_search_rows_by_organization_rowid;
mod m0042_listings_by_rowid;
mod m0043_unchanged_rows;

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_ingest::Migration),
            Box::new(m0003_webhook_deliveries::Migration),
            Box::new(m0004_rate_limited_count::Migration),
            Box::new(m0005_jobs_by_lease::Migration),
            Box::new(m0006_context_token_lookups::Migration),
            Box::new(m0007_succeeded_jobs_leave::Migration),
            Box::new(m0008_stored_once::Migration),
            Box::new(m0009_instances::Migration),
            Box::new(m0010_search_indexes::Migration),
            Box::new(m0011_transcript_words::Migration),
            Box::new(m0012_lifecycle::Migration),
            Box::new(m0013_datapoint_integration::Migration),
            Box::new(m0014_delivery_retention::Migration),
            Box::new(m0015_monitors::Migration),
            Box::new(m0016_monitor_rollups::Migration),
            Box::new(m0017_smaller_result_rows::Migration),
            Box::new(m0018_verdict_columns::Migration),
            Box::new(m0019_event_endpoints::Migration),
            Box::new(m0020_event_attempt_failures::Migration),
            Box::new(m0021_secret_expiry_notices::Migration),
            Box::new(m0022_slack_alerts::Migration),
            Box::new(m0023_console_sessions::Migration),
            Box::new(m0024_deliveries_by_ingest::Migration),
            Box::new(m0025_intake_log::Migration),
            Box::new(m0026_datapoint_document::Migration),
            Box::new(m0027_compact_search_rows::Migration),
            Box::new(m0028_matches_by_monitor::Migration),
            Box::new(m0029_binary_ids::Migration),
            Box::new(m0030_own_context_tokens::Migration),
            Box::new(m0031_one_call_index::Migration),
            Box::new(m0032_dedup_by_call::Migration),
            Box::new(m0033_documents_against_bodies::Migration),
            Box::new(m0034_ingests_by_project::Migration),
            Box::new(m0035_ordered_by_rowid::Migration),
            Box::new(m0036_deliveries_of_integrations::Migration),
            Box::new(m0037_calls_by_their_own_keys::Migration),
            Box::new(m0038_search_rows_by_rowid::Migration),
            Box::new(m0039_documents_of_own_deliveries::Migration),
            Box::new(m0040_metrics_of_the_turns::Migration),
            Box::new(m0041_search_rows_by_organization_rowid::Migration),
            Box::new(m0042_listings_by_rowid::Migration),
            Box::new(m0043_unchanged_rows::Migration),
        ]
    }
}
