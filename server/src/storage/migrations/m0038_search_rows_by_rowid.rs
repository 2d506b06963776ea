//! On SQLite, a call's tag and metadata rows name it by its datapoint's rowid (issue 15, bytes
//! per stored call): `datapoint_rowid` instead of `datapoint_id`, 2-4 bytes instead of 16 in
//! each row, as the full-text index already names a call (m0027). The rows keep the searches'
//! order, (organization, tag or pair, time, call), a millisecond's calls now in rowid order as
//! the datapoints' own ordering indexes have them (m0035); a search they drive joins the
//! datapoint by rowid, a seek of the table itself instead of its id's index first
//! (`storage/datapoints.rs`). A datapoint keeps its rowid: it is updated in place (`ON
//! CONFLICT (id) DO UPDATE`), and `VACUUM` keeps the rowids of a table with indexes.
//!
//! PostgreSQL, whose rows have no stable number, keeps `datapoint_id`: up and down do nothing
//! there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0038_search_rows_by_rowid"
    }
}

/// (table, the columns before the time) of each kind of search row.
const TABLES: [(&str, &[&str]); 2] =
    [("datapoint_tags", &["tag"]), ("datapoint_metadata", &["key", "value"])];

/// Each table made again with `call` (its call's column: `column type`) after the time, its
/// rows copied over with `copied` (the call's value, from `d`, the datapoint of `joined`),
/// in the order of the new key.
fn rebuilt(call: &str, copied: &str, joined: &str) -> String {
    let name = call.split_whitespace().next().unwrap_or_default();
    TABLES
        .iter()
        .map(|(table, columns)| {
            let labels = columns.join(", ");
            let declared: String =
                columns.iter().map(|label| format!("    {label} text NOT NULL,\n")).collect();
            let from_rows: String = columns.iter().map(|label| format!("r.{label}, ")).collect();
            // The new key's columns: the organization, the labels, the time, the call.
            let order: Vec<String> =
                (1..=columns.len() + 3).map(|column| column.to_string()).collect();
            let order = order.join(", ");
            format!(
                "CREATE TABLE {table}_m0038 (
    organization_id text NOT NULL,
{declared}    occurred_at_ms integer NOT NULL,
    {call} NOT NULL,
    PRIMARY KEY (organization_id, {labels}, occurred_at_ms, {name})
) WITHOUT ROWID;
INSERT INTO {table}_m0038 (organization_id, {labels}, occurred_at_ms, {name})
    SELECT r.organization_id, {from_rows}r.occurred_at_ms, {copied}
    FROM {table} r JOIN datapoints d ON {joined}
    ORDER BY {order};
DROP TABLE {table};
ALTER TABLE {table}_m0038 RENAME TO {table};
"
            )
        })
        .collect()
}

async fn rebuild(manager: &SchemaManager<'_>, up: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Postgres {
        return Ok(());
    }
    let sql = if up {
        rebuilt("datapoint_rowid integer", "d.rowid", "d.id = r.datapoint_id")
    } else {
        rebuilt("datapoint_id text", "d.id", "d.rowid = r.datapoint_rowid")
    };
    manager.get_connection().execute_unprepared(&sql).await.map(|_| ())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, false).await
    }
}
