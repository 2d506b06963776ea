//! On SQLite, a project's ingests and an integration's webhook deliveries are listed in the
//! order they were stored (issue 15, bytes per stored call). `ingests_by_project` was
//! `(project_id, id)` and `deliveries_by_integration` `(integration_id, id)`: newest first by
//! their v7 ids. Every entry of an index on a rowid table already ends with its row's rowid,
//! so `(project_id)` and `(integration_id)` give the order of the rowids with no sort and no
//! 16-byte id in the entry, as the datapoints' ordering indexes do (m0035). A listing now goes
//! newest stored first, and a page after a cursor finds its row's rowid by id
//! (`storage::rowid_before`). PostgreSQL, whose rows have no stable number, keeps both indexes
//! and lists by id: up and down do nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0042_listings_by_rowid"
    }
}

/// (index, table, the column it lists by) of each listing index.
const LISTINGS: [(&str, &str, &str); 2] = [
    ("ingests_by_project", "ingests", "project_id"),
    ("deliveries_by_integration", "webhook_deliveries", "integration_id"),
];

/// Each listing index made again, ending with `id` or not.
fn rebuilt(with_id: bool) -> String {
    let id = if with_id { ", id" } else { "" };
    LISTINGS
        .iter()
        .map(|(index, table, column)| {
            format!("DROP INDEX {index};\nCREATE INDEX {index} ON {table} ({column}{id});\n")
        })
        .collect()
}

async fn rebuild(manager: &SchemaManager<'_>, up: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Postgres {
        return Ok(());
    }
    manager.get_connection().execute_unprepared(&rebuilt(!up)).await.map(|_| ())
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
