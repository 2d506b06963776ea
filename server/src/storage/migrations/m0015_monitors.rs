//! Checks, monitors and their results (issue 18).
//!
//! - `checks`: a named rule per organization at its current version; `check_versions` keeps
//!   every version's rule (also after the check is deleted), so a result names, and explains
//!   itself by, the rule that produced it.
//! - `monitors`: a filter (JSON, `model::monitors::MonitorFilter`) and the ids of its checks.
//! - `datapoint_checks`: all results of one call in one row (JSON), so a call evaluated by
//!   many checks costs one row, not one per check.
//! - `check_issues`: a row per open issue only (most results are not issues), by check name in
//!   the searches' order, for `failed_check`.
//! - `monitor_datapoints`: the calls each monitor matched and whether any of its checks is an
//!   issue there, by time (the monitor's calls, its summary buckets), and by datapoint (replaced
//!   when the call changes, removed with it).
//! - `datapoints.open_issues`: the call's unresolved issues; `datapoints_with_issues` (partial,
//!   `open_issues > 0`) serves `issues_only`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0015_monitors"
    }
}

const UP: &str = "
CREATE TABLE checks (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    version INTEGER NOT NULL,
    rule_json TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX checks_unique_name ON checks (organization_id, name);
CREATE TABLE check_versions (
    check_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    rule_json TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (check_id, version)
);
CREATE TABLE monitors (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    filter_json TEXT NOT NULL,
    check_ids_json TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX monitors_unique_name ON monitors (organization_id, name);
CREATE TABLE datapoint_checks (
    datapoint_id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    results_json TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE TABLE check_issues (
    datapoint_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    name TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    PRIMARY KEY (datapoint_id, check_id)
);
CREATE INDEX check_issues_by_name
    ON check_issues (organization_id, name, occurred_at_ms, datapoint_id);
CREATE TABLE monitor_datapoints (
    monitor_id TEXT NOT NULL,
    datapoint_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    is_issue BOOLEAN NOT NULL,
    PRIMARY KEY (monitor_id, datapoint_id)
);
CREATE INDEX monitor_datapoints_by_time
    ON monitor_datapoints (monitor_id, occurred_at_ms, datapoint_id);
CREATE INDEX monitor_datapoints_by_datapoint ON monitor_datapoints (datapoint_id);
ALTER TABLE datapoints ADD COLUMN open_issues INTEGER NOT NULL DEFAULT 0;
CREATE INDEX datapoints_with_issues ON datapoints (organization_id, occurred_at_ms, id)
    WHERE open_issues > 0;
";

const DOWN: &str = "
DROP INDEX datapoints_with_issues;
ALTER TABLE datapoints DROP COLUMN open_issues;
DROP TABLE monitor_datapoints;
DROP TABLE check_issues;
DROP TABLE datapoint_checks;
DROP TABLE monitors;
DROP TABLE check_versions;
DROP TABLE checks;
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
