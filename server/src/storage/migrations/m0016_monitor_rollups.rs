//! Monitor summaries and backfills (issue 18).
//!
//! - `monitors.version` and `monitor_versions`: a monitor's list of checks at each version, so
//!   what an evaluation added to a summary can be taken out again exactly when the call is
//!   evaluated again or deleted, whatever the monitor's checks are by then.
//!   `monitor_datapoints.monitor_version` says which version evaluated the call; 0 for calls
//!   evaluated before this migration, whose checks' figures the summary does not hold (it
//!   counts only the calls and their issues, so taking them out takes out only those).
//! - `monitor_rollups`: per monitor and hour (the start of the hour the call took place in, in
//!   milliseconds), the calls it matched and those with an issue (`check_id` empty), and per
//!   check the calls it evaluated, its issues and the count and sum of its numeric values (a
//!   boolean counts as 1 or 0). Maintained by the commits that write `monitor_datapoints`, by
//!   adding what changed, so a summary reads a few rows per hour whatever the number of calls.
//!   Rows for the calls evaluated before this migration are filled from `monitor_datapoints`
//!   (their check means need a backfill).
//! - `monitor_backfills`: a monitor's evaluation over stored calls, newest first, resumable from
//!   its cursor (the last call done), which each batch's commit moves with the batch's results.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0016_monitor_rollups"
    }
}

const UP: &str = "
ALTER TABLE monitors ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE TABLE monitor_versions (
    monitor_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    check_ids_json TEXT NOT NULL,
    PRIMARY KEY (monitor_id, version)
);
INSERT INTO monitor_versions (monitor_id, version, check_ids_json)
    SELECT id, 1, check_ids_json FROM monitors;
ALTER TABLE monitor_datapoints ADD COLUMN monitor_version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE monitor_rollups (
    monitor_id TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    check_id TEXT NOT NULL,
    datapoints BIGINT NOT NULL,
    issues BIGINT NOT NULL,
    value_count BIGINT NOT NULL,
    value_sum DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (monitor_id, bucket_ms, check_id)
);
INSERT INTO monitor_rollups
    (monitor_id, bucket_ms, check_id, datapoints, issues, value_count, value_sum)
    SELECT monitor_id, occurred_at_ms - (occurred_at_ms % 3600000), '', COUNT(*),
        SUM(CASE WHEN is_issue THEN 1 ELSE 0 END), 0, 0
    FROM monitor_datapoints
    GROUP BY monitor_id, occurred_at_ms - (occurred_at_ms % 3600000);
CREATE TABLE monitor_backfills (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    monitor_id TEXT NOT NULL,
    state TEXT NOT NULL,
    from_ms BIGINT,
    to_ms BIGINT,
    cursor_occurred_at_ms BIGINT,
    cursor_id TEXT,
    total BIGINT NOT NULL,
    processed BIGINT NOT NULL,
    matched BIGINT NOT NULL,
    issues BIGINT NOT NULL,
    error TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX monitor_backfills_by_monitor ON monitor_backfills (monitor_id, created_at_ms);
";

const DOWN: &str = "
DROP TABLE monitor_backfills;
DROP TABLE monitor_rollups;
ALTER TABLE monitor_datapoints DROP COLUMN monitor_version;
DROP TABLE monitor_versions;
ALTER TABLE monitors DROP COLUMN version;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await.map(|_| ())
    }
}
