//! A datapoint or ingest not changed since it was created stores 0 as its `updated_at_ms`
//! (issue 15, bytes per stored call): no row is changed at the epoch, and on SQLite 0 takes no
//! byte of the record where a time takes six (`storage::stored_updated_at`). Reads take 0 as
//! the creation time and any other value as itself, so rows written before keep their times
//! and up changes no row. Down writes the creation time back where 0 stands for it, the form
//! earlier versions read, on both databases.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0043_unchanged_rows"
    }
}

const DOWN: &str = "
UPDATE datapoints SET updated_at_ms = created_at_ms WHERE updated_at_ms = 0;
UPDATE ingests SET updated_at_ms = created_at_ms WHERE updated_at_ms = 0;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await.map(|_| ())
    }
}
