//! Fewer index writes per evaluated call (issue 18): a monitor's match and an open issue are
//! written once per call and monitor or check, so each B-tree they touch costs every stored
//! call. `monitor_datapoints` is keyed by (datapoint, monitor), which serves the lookups by call
//! (taking a call's part out of the summaries, deleting it) that had an index of their own, and
//! the `monitor_id` search probe; on SQLite it and `check_issues` become `WITHOUT ROWID` tables,
//! stored in their primary key's B-tree instead of a rowid table beside a key index. At five
//! monitors this takes a call from 20 B-tree inserts for its matches to 10.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0017_smaller_result_rows"
    }
}

/// The tables rebuilt in the shape `key` gives them (`{rowid}` is `WITHOUT ROWID` on SQLite).
fn rebuild(monitor_key: &str, issue_key: &str, by_datapoint: bool, rowid: &str) -> String {
    let by_datapoint = if by_datapoint {
        "CREATE INDEX monitor_datapoints_by_datapoint ON monitor_datapoints (datapoint_id);"
    } else {
        ""
    };
    format!(
        "
CREATE TABLE monitor_datapoints_rebuilt (
    monitor_id TEXT NOT NULL,
    datapoint_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    is_issue BOOLEAN NOT NULL,
    monitor_version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ({monitor_key})
){rowid};
INSERT INTO monitor_datapoints_rebuilt
    (monitor_id, datapoint_id, organization_id, occurred_at_ms, is_issue, monitor_version)
    SELECT monitor_id, datapoint_id, organization_id, occurred_at_ms, is_issue, monitor_version
    FROM monitor_datapoints;
DROP TABLE monitor_datapoints;
ALTER TABLE monitor_datapoints_rebuilt RENAME TO monitor_datapoints;
CREATE INDEX monitor_datapoints_by_time
    ON monitor_datapoints (monitor_id, occurred_at_ms, datapoint_id);
{by_datapoint}
CREATE TABLE check_issues_rebuilt (
    datapoint_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    name TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    PRIMARY KEY ({issue_key})
){rowid};
INSERT INTO check_issues_rebuilt (datapoint_id, check_id, organization_id, name, occurred_at_ms)
    SELECT datapoint_id, check_id, organization_id, name, occurred_at_ms FROM check_issues;
DROP TABLE check_issues;
ALTER TABLE check_issues_rebuilt RENAME TO check_issues;
CREATE INDEX check_issues_by_name
    ON check_issues (organization_id, name, occurred_at_ms, datapoint_id);
"
    )
}

fn without_rowid(manager: &SchemaManager) -> &'static str {
    if manager.get_database_backend() == DbBackend::Sqlite { " WITHOUT ROWID" } else { "" }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = rebuild(
            "datapoint_id, monitor_id",
            "datapoint_id, check_id",
            false,
            without_rowid(manager),
        );
        manager.get_connection().execute_unprepared(&sql).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = rebuild("monitor_id, datapoint_id", "datapoint_id, check_id", true, "");
        manager.get_connection().execute_unprepared(&sql).await.map(|_| ())
    }
}
