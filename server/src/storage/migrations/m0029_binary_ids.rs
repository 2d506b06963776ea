//! Ids in 16 bytes instead of 36 characters (issue 15, bytes per stored call). One call's ids
//! appeared about fifty times in its rows and their indexes, 36 characters each: the ids of its
//! ingest, its webhook delivery and its datapoint, and the ids these rows hold of their
//! organization, project, integration, ingest and datapoint, in the rows of the call's tags,
//! metadata, check results, open issues and monitor matches too. On SQLite each becomes a
//! 16-byte blob (what sqlx binds a `Uuid` as), on PostgreSQL a `uuid`. Both order as the text
//! did: the text is the bytes in lowercase hex. Columns compared with one another change
//! together (a tag row's datapoint and organization with the datapoint's). The ids of monitors,
//! checks and the smaller tables stay text. A NULL stays NULL both ways, and an empty id (no id,
//! written as '') becomes NULL; any other text that is not an id fails the migration, on SQLite
//! (`unhex` gives NULL, which a NOT NULL column refuses) as on PostgreSQL (the cast).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0029_binary_ids"
    }
}

/// Each table's columns that hold ids; on PostgreSQL each but `id` was `text`, `id` `varchar(36)`.
const ID_COLUMNS: [(&str, &[&str]); 8] = [
    ("ingests", &["id", "organization_id", "project_id", "datapoint_id"]),
    ("webhook_deliveries", &["id", "organization_id", "project_id", "integration_id", "ingest_id"]),
    ("datapoints", &["id", "organization_id", "project_id", "integration_id"]),
    ("datapoint_tags", &["organization_id", "datapoint_id"]),
    ("datapoint_metadata", &["organization_id", "datapoint_id"]),
    ("datapoint_checks", &["datapoint_id", "organization_id"]),
    ("check_issues", &["datapoint_id", "organization_id"]),
    ("monitor_datapoints", &["datapoint_id"]),
];

/// One statement per table: `statement(table, changes)`, where `changes` joins each id column's
/// `change(column)`.
fn each_table(statement: fn(&str, String) -> String, change: impl Fn(&str) -> String) -> String {
    let changes =
        |columns: &[&str]| columns.iter().map(|column| change(column)).collect::<Vec<_>>();
    ID_COLUMNS
        .iter()
        .map(|(table, columns)| statement(table, changes(columns).join(", ")))
        .collect()
}

/// On PostgreSQL, id columns with a default of '' (added to tables with rows, m0010): a text
/// default cannot become a `uuid` one, so it goes, and comes back on the way down.
const TEXT_DEFAULTS: [(&str, &str); 2] =
    [("datapoint_tags", "organization_id"), ("datapoint_metadata", "organization_id")];

fn sql(backend: DbBackend, up: bool) -> String {
    let update = |table: &str, changes: String| format!("UPDATE {table} SET {changes};\n");
    let alter = |table: &str, changes: String| format!("ALTER TABLE {table} {changes};\n");
    match (backend, up) {
        (DbBackend::Postgres, true) => {
            let defaults = TEXT_DEFAULTS.map(|(table, column)| {
                format!("ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT;\n")
            });
            defaults.concat()
                + &each_table(alter, |column| {
                    format!("ALTER COLUMN {column} TYPE uuid USING NULLIF({column}, '')::uuid")
                })
        }
        (DbBackend::Postgres, false) => {
            let defaults = TEXT_DEFAULTS.map(|(table, column)| {
                format!("ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT '';\n")
            });
            each_table(alter, |column| {
                let text = if column == "id" { "varchar(36)" } else { "text" };
                format!("ALTER COLUMN {column} TYPE {text} USING {column}::text")
            }) + &defaults.concat()
        }
        (_, true) => each_table(update, |column| {
            format!("{column} = unhex(replace(NULLIF({column}, ''), '-', ''))")
        }),
        // The 32 hex digits, hyphenated 8-4-4-4-12 (`hex` of a NULL is '', hence the CASE).
        (_, false) => each_table(update, |column| {
            let part = |from: usize, length: usize| {
                format!("substr(lower(hex({column})), {from}, {length})")
            };
            let parts = [part(1, 8), part(9, 4), part(13, 4), part(17, 4), part(21, 12)];
            format!(
                "{column} = CASE WHEN {column} IS NOT NULL THEN {} END",
                parts.join(" || '-' || ")
            )
        }),
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = sql(manager.get_database_backend(), true);
        manager.get_connection().execute_unprepared(&sql).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = sql(manager.get_database_backend(), false);
        manager.get_connection().execute_unprepared(&sql).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let up = sql(DbBackend::Sqlite, true);
        assert!(up.starts_with(
            "UPDATE ingests SET id = unhex(replace(NULLIF(id, ''), '-', '')), \
             organization_id = unhex(replace(NULLIF(organization_id, ''), '-', '')), \
             project_id = unhex(replace(NULLIF(project_id, ''), '-', '')), \
             datapoint_id = unhex(replace(NULLIF(datapoint_id, ''), '-', ''));\n"
        ));
        assert!(up.ends_with(
            "UPDATE monitor_datapoints \
             SET datapoint_id = unhex(replace(NULLIF(datapoint_id, ''), '-', ''));\n"
        ));
        assert_eq!(up.lines().count(), 8);
        let down = sql(DbBackend::Sqlite, false);
        assert!(down.starts_with(
            "UPDATE ingests SET id = CASE WHEN id IS NOT NULL THEN \
             substr(lower(hex(id)), 1, 8) || '-' || substr(lower(hex(id)), 9, 4) || '-' || \
             substr(lower(hex(id)), 13, 4) || '-' || substr(lower(hex(id)), 17, 4) || '-' || \
             substr(lower(hex(id)), 21, 12) END, "
        ));
        assert!(sql(DbBackend::Postgres, true).starts_with(
            "ALTER TABLE datapoint_tags ALTER COLUMN organization_id DROP DEFAULT;\n\
             ALTER TABLE datapoint_metadata ALTER COLUMN organization_id DROP DEFAULT;\n\
             ALTER TABLE ingests ALTER COLUMN id TYPE uuid USING NULLIF(id, '')::uuid, \
             ALTER COLUMN organization_id TYPE uuid USING NULLIF(organization_id, '')::uuid"
        ));
        assert!(sql(DbBackend::Postgres, false).starts_with(
            "ALTER TABLE ingests ALTER COLUMN id TYPE varchar(36) USING id::text, \
             ALTER COLUMN organization_id TYPE text USING organization_id::text"
        ));
    }
}
