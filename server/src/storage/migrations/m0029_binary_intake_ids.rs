//! Ids in 16 bytes instead of 36 characters (issue 15, bytes per stored call), starting with
//! the rows every call's intake writes: an ingest's and a webhook delivery's ids, and the ids
//! they hold of their organization, project, integration and ingest. One call's ids appeared
//! 13 times in these rows and their indexes, 36 characters each. On SQLite each becomes a
//! 16-byte blob (what sqlx binds a `Uuid` as), on PostgreSQL a `uuid`. Both order as the text
//! did: the text is the bytes in lowercase hex. (`unhex` of a NULL is NULL, as the ingest id of
//! a delivery that stored nothing stays.)

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0029_binary_intake_ids"
    }
}

/// Each table's columns that hold ids; on PostgreSQL every one but `id` was `text`.
const ID_COLUMNS: [(&str, &[&str]); 2] = [
    ("ingests", &["id", "organization_id", "project_id"]),
    ("webhook_deliveries", &["id", "organization_id", "project_id", "integration_id", "ingest_id"]),
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

fn sql(backend: DbBackend, up: bool) -> String {
    let update = |table: &str, changes: String| format!("UPDATE {table} SET {changes};\n");
    let alter = |table: &str, changes: String| format!("ALTER TABLE {table} {changes};\n");
    match (backend, up) {
        (DbBackend::Postgres, true) => each_table(alter, |column| {
            format!("ALTER COLUMN {column} TYPE uuid USING {column}::uuid")
        }),
        (DbBackend::Postgres, false) => each_table(alter, |column| {
            let text = if column == "id" { "varchar(36)" } else { "text" };
            format!("ALTER COLUMN {column} TYPE {text} USING {column}::text")
        }),
        (_, true) => {
            each_table(update, |column| format!("{column} = unhex(replace({column}, '-', ''))"))
        }
        // The 32 hex digits, hyphenated 8-4-4-4-12.
        (_, false) => each_table(update, |column| {
            let part = |from: usize, length: usize| {
                format!("substr(lower(hex({column})), {from}, {length})")
            };
            let parts = [part(1, 8), part(9, 4), part(13, 4), part(17, 4), part(21, 12)];
            format!("{column} = {}", parts.join(" || '-' || "))
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
        assert_eq!(
            sql(DbBackend::Sqlite, true),
            "UPDATE ingests SET id = unhex(replace(id, '-', '')), \
             organization_id = unhex(replace(organization_id, '-', '')), \
             project_id = unhex(replace(project_id, '-', ''));\n\
             UPDATE webhook_deliveries SET id = unhex(replace(id, '-', '')), \
             organization_id = unhex(replace(organization_id, '-', '')), \
             project_id = unhex(replace(project_id, '-', '')), \
             integration_id = unhex(replace(integration_id, '-', '')), \
             ingest_id = unhex(replace(ingest_id, '-', ''));\n"
        );
        assert!(sql(DbBackend::Postgres, false).starts_with(
            "ALTER TABLE ingests ALTER COLUMN id TYPE varchar(36) USING id::text, \
             ALTER COLUMN organization_id TYPE text USING organization_id::text"
        ));
    }
}
