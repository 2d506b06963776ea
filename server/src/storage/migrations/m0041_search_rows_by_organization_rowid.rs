//! On SQLite, a call's tag and metadata rows name its organization by the organization's rowid
//! (issue 15, bytes per stored call): `organization_rowid` instead of `organization_id`, one
//! byte instead of 16 in each row for the first 127 organizations, as they name their call by
//! its datapoint's rowid (m0038). The rows keep the searches' order, (organization, tag or
//! pair, time, call); a search reads its organization's rowid once per statement, by id
//! (`storage/datapoints.rs`, `of_organization`). Organizations are never deleted, so a rowid
//! is never given to another, and `VACUUM` keeps the rowids of a table with indexes.
//!
//! PostgreSQL keeps `organization_id`: up and down do nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0041_search_rows_by_organization_rowid"
    }
}

/// (table, the columns between the organization and the time) of each kind of search row.
const TABLES: [(&str, &[&str]); 2] =
    [("datapoint_tags", &["tag"]), ("datapoint_metadata", &["key", "value"])];

/// Each table made again with `organization` (its organization's column: `column type`) first,
/// its rows copied over with `copied` (the organization's value, from `o`, the organization of
/// `joined`), in the order of the new key.
fn rebuilt(organization: &str, copied: &str, joined: &str) -> String {
    let name = organization.split_whitespace().next().unwrap_or_default();
    TABLES
        .iter()
        .map(|(table, columns)| {
            let labels = columns.join(", ");
            let declared: String =
                columns.iter().map(|label| format!("    {label} text NOT NULL,\n")).collect();
            let from_rows: String = columns.iter().map(|label| format!("r.{label}, ")).collect();
            let order: Vec<String> =
                (1..=columns.len() + 3).map(|column| column.to_string()).collect();
            let order = order.join(", ");
            format!(
                "CREATE TABLE {table}_m0041 (
    {organization} NOT NULL,
{declared}    occurred_at_ms integer NOT NULL,
    datapoint_rowid integer NOT NULL,
    PRIMARY KEY ({name}, {labels}, occurred_at_ms, datapoint_rowid)
) WITHOUT ROWID;
INSERT INTO {table}_m0041 ({name}, {labels}, occurred_at_ms, datapoint_rowid)
    SELECT {copied}, {from_rows}r.occurred_at_ms, r.datapoint_rowid
    FROM {table} r JOIN organizations o ON {joined}
    ORDER BY {order};
DROP TABLE {table};
ALTER TABLE {table}_m0041 RENAME TO {table};
"
            )
        })
        .collect()
}

/// An organization's id as the search rows held it: its 16 bytes (m0029), where `organizations`
/// holds its text.
const BINARY: &str = "unhex(replace(o.id, '-', ''))";

async fn rebuild(manager: &SchemaManager<'_>, up: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Postgres {
        return Ok(());
    }
    let sql = if up {
        rebuilt("organization_rowid integer", "o.rowid", &format!("{BINARY} = r.organization_id"))
    } else {
        rebuilt("organization_id text", BINARY, "o.rowid = r.organization_rowid")
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
