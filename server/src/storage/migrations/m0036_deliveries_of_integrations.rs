//! A webhook delivery's organization and project are its integration's (issue 15, bytes per
//! stored call). Each delivery row held both ids (32 bytes) beside its integration's, which
//! names them for good: an integration never changes project. The columns go; the one query
//! that read them, the delivery log's retention by project, filters by the projects'
//! integrations instead (`Storage::prune_webhook_deliveries`). No index held either column.
//!
//! Down puts them back from the integrations. A delivery whose integration was deleted since
//! gets the nil id in both (it was listed by no one already: listings go through the
//! integration).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0036_deliveries_of_integrations"
    }
}

const UP: &str = "
ALTER TABLE webhook_deliveries DROP COLUMN organization_id;
ALTER TABLE webhook_deliveries DROP COLUMN project_id;
";

/// The integrations' ids are text on both backends; the deliveries' are 16-byte blobs on SQLite
/// and `uuid` on PostgreSQL (m0029).
fn down(backend: DbBackend) -> String {
    let (id, nil, add) = match backend {
        DbBackend::Postgres => {
            ("i.{column}::uuid", "'00000000-0000-0000-0000-000000000000'::uuid", "uuid NULL")
        }
        _ => ("unhex(replace(i.{column}, '-', ''))", "zeroblob(16)", "blob NULL"),
    };
    let own = id.replace("{column}", "id");
    let mut sql = String::new();
    for column in ["organization_id", "project_id"] {
        let id = id.replace("{column}", column);
        sql += &format!(
            "ALTER TABLE webhook_deliveries ADD COLUMN {column} {add};
UPDATE webhook_deliveries SET {column} = COALESCE((SELECT {id} FROM integrations i
    WHERE {own} = webhook_deliveries.integration_id), {nil});
"
        );
        if backend == DbBackend::Postgres {
            sql += &format!("ALTER TABLE webhook_deliveries ALTER COLUMN {column} SET NOT NULL;\n");
        }
    }
    sql
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let sql = down(connection.get_database_backend());
        connection.execute_unprepared(&sql).await.map(|_| ())
    }
}
