//! Fewer B-tree writes and bytes per evaluated call (issue 18).
//!
//! - A call's results row (`datapoint_checks`) also names the monitors that matched it, with
//!   their versions and verdicts and the call's time (`matches_json`): what taking a call's part
//!   out of the summaries, and deleting its matches by their keys, needs. Every call a monitor
//!   matched has a results row (`[]` when its monitors have no checks).
//!
//! On SQLite:
//! - `monitor_datapoints` becomes one `WITHOUT ROWID` table keyed in the order the searches by
//!   monitor read it (monitor, time, datapoint), and nothing else: each match was stored twice
//!   (the table keyed by call, and `monitor_datapoints_by_time`), now once. Its unused
//!   `organization_id` goes.
//!
//! `datapoint_checks` stays a rowid table: a `WITHOUT ROWID` row lives in an index B-tree, whose
//! cells spill to overflow pages above about 1 KB, and five monitors' results take 1.5 KB (in a
//! trial it drained slower).
//!
//! On PostgreSQL `monitor_datapoints` keeps its primary key by call (its deletions use it) and
//! loses the unused `organization_id`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0028_matches_by_monitor"
    }
}

const SQLITE_UP: &str = "
ALTER TABLE datapoint_checks ADD COLUMN matches_json TEXT NOT NULL DEFAULT '';
INSERT INTO datapoint_checks (datapoint_id, organization_id, results_json, updated_at_ms)
    SELECT DISTINCT m.datapoint_id, d.organization_id, '[]', 0
    FROM monitor_datapoints m JOIN datapoints d ON d.id = m.datapoint_id
    WHERE NOT EXISTS (SELECT 1 FROM datapoint_checks c WHERE c.datapoint_id = m.datapoint_id);
UPDATE datapoint_checks SET matches_json = (
    SELECT json_object('t', max(m.occurred_at_ms), 'm', json_group_array(json_array(
        m.monitor_id, m.monitor_version, json(CASE WHEN m.is_issue THEN 'true' ELSE 'false' END))))
    FROM monitor_datapoints m WHERE m.datapoint_id = datapoint_checks.datapoint_id)
    WHERE EXISTS (
        SELECT 1 FROM monitor_datapoints m WHERE m.datapoint_id = datapoint_checks.datapoint_id);

CREATE TABLE monitor_datapoints_by_monitor (
    monitor_id TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    datapoint_id TEXT NOT NULL,
    is_issue BOOLEAN NOT NULL,
    monitor_version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (monitor_id, occurred_at_ms, datapoint_id)
) WITHOUT ROWID;
INSERT INTO monitor_datapoints_by_monitor
    (monitor_id, occurred_at_ms, datapoint_id, is_issue, monitor_version)
    SELECT monitor_id, occurred_at_ms, datapoint_id, is_issue, monitor_version
    FROM monitor_datapoints;
DROP TABLE monitor_datapoints;
ALTER TABLE monitor_datapoints_by_monitor RENAME TO monitor_datapoints;
";

/// The tables as m0017 and m0015 left them, `organization_id` filled again from the datapoints.
const SQLITE_DOWN: &str = "
CREATE TABLE monitor_datapoints_by_call (
    monitor_id TEXT NOT NULL,
    datapoint_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    is_issue BOOLEAN NOT NULL,
    monitor_version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (datapoint_id, monitor_id)
) WITHOUT ROWID;
INSERT INTO monitor_datapoints_by_call
    (monitor_id, datapoint_id, organization_id, occurred_at_ms, is_issue, monitor_version)
    SELECT m.monitor_id, m.datapoint_id, COALESCE(d.organization_id, ''), m.occurred_at_ms,
        m.is_issue, m.monitor_version
    FROM monitor_datapoints m LEFT JOIN datapoints d ON d.id = m.datapoint_id;
DROP TABLE monitor_datapoints;
ALTER TABLE monitor_datapoints_by_call RENAME TO monitor_datapoints;
CREATE INDEX monitor_datapoints_by_time
    ON monitor_datapoints (monitor_id, occurred_at_ms, datapoint_id);

ALTER TABLE datapoint_checks DROP COLUMN matches_json;
";

const POSTGRES_UP: &str = "
ALTER TABLE datapoint_checks ADD COLUMN matches_json TEXT NOT NULL DEFAULT '';
INSERT INTO datapoint_checks (datapoint_id, organization_id, results_json, updated_at_ms)
    SELECT DISTINCT m.datapoint_id, m.organization_id, '[]', 0 FROM monitor_datapoints m
    WHERE NOT EXISTS (SELECT 1 FROM datapoint_checks c WHERE c.datapoint_id = m.datapoint_id);
UPDATE datapoint_checks c SET matches_json = matched.matches
    FROM (
        SELECT datapoint_id, json_build_object('t', max(occurred_at_ms), 'm',
            json_agg(json_build_array(monitor_id, monitor_version, is_issue)))::text AS matches
        FROM monitor_datapoints GROUP BY datapoint_id
    ) matched
    WHERE matched.datapoint_id = c.datapoint_id;
ALTER TABLE monitor_datapoints DROP COLUMN organization_id;
";

const POSTGRES_DOWN: &str = "
ALTER TABLE monitor_datapoints ADD COLUMN organization_id TEXT NOT NULL DEFAULT '';
UPDATE monitor_datapoints m SET organization_id = d.organization_id
    FROM datapoints d WHERE d.id = m.datapoint_id;
ALTER TABLE datapoint_checks DROP COLUMN matches_json;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        manager.get_connection().execute_unprepared(sql).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        manager.get_connection().execute_unprepared(sql).await.map(|_| ())
    }
}
