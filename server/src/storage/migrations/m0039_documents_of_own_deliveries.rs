//! A datapoint's document written against the kept body of the delivery of its own id leaves
//! that id out (issue 15, bytes per stored call): `DOCUMENT_V4` in `storage/documents.rs`, 16
//! bytes a webhook call less. Nothing changes at up; down writes each such document back as
//! `DOCUMENT_V3`, the id after the version byte, the form the builds before read.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0039_documents_of_own_deliveries"
    }
}

const SQLITE_DOWN: &str = "
UPDATE datapoints SET document = CAST(x'03' || id || substr(document, 2) AS BLOB)
    WHERE substr(document, 1, 1) = x'04';
";

const POSTGRES_DOWN: &str = r"
UPDATE datapoints
    SET document = '\x03'::bytea || decode(replace(id::text, '-', ''), 'hex')
        || substring(document from 2)
    WHERE get_byte(document, 0) = 4;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let sql = match connection.get_database_backend() {
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        connection.execute_unprepared(sql).await.map(|_| ())
    }
}
