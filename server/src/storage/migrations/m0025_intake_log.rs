//! The intake log (issue 15): while the intake is saturated, a group commit on SQLite stores its
//! requests' writes as one row here instead of their ingest, delivery and datapoint rows, and
//! answers them once that row is durable; the process then stores each row's writes as usual,
//! in large batches, and deletes the row in the same transaction (`storage/intake_log.rs`).
//! Rows are read in id order only (the primary key); the table is empty at rest.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0025_intake_log"
    }
}

const UP_SQLITE: &str = "
CREATE TABLE intake_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    logged_at_ms INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    writes BLOB NOT NULL
);
";

const UP_POSTGRES: &str = "
CREATE TABLE intake_log (
    id BIGSERIAL PRIMARY KEY,
    logged_at_ms BIGINT NOT NULL,
    requests INTEGER NOT NULL,
    writes BYTEA NOT NULL
);
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let sql = match connection.get_database_backend() {
            DbBackend::Postgres => UP_POSTGRES,
            _ => UP_SQLITE,
        };
        connection.execute_unprepared(sql).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE intake_log;").await.map(|_| ())
    }
}
