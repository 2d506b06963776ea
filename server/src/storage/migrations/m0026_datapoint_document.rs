//! A datapoint's turns, analysis, metrics, tags and metadata in one compressed column (issue
//! 15, bytes per stored call): `document`, a version byte and the deflated JSON of the five
//! (`storage/datapoints.rs`, `Document`). Rows written from now on keep their JSON columns
//! empty; rows written before keep them, with `document` NULL, and are read as they are.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0026_datapoint_document"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let sql = match connection.get_database_backend() {
            DbBackend::Postgres => "ALTER TABLE datapoints ADD COLUMN document BYTEA NULL;",
            _ => "ALTER TABLE datapoints ADD COLUMN document BLOB NULL;",
        };
        connection.execute_unprepared(sql).await.map(|_| ())
    }

    /// Writes each document back into the JSON columns first: nothing is lost.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm_migration::sea_orm::Statement;
        let connection = manager.get_connection();
        let backend = connection.get_database_backend();
        let rows = connection
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, document FROM datapoints WHERE document IS NOT NULL",
            ))
            .await?;
        for row in rows {
            let id: String = row.try_get("", "id")?;
            let stored: Vec<u8> = row.try_get("", "document")?;
            let document =
                // Written on their own by now (m0039's and m0033's downs): no base to find, so
                // no datapoint id is needed.
                crate::storage::documents::Document::decode(
                    uuid::Uuid::nil(),
                    &stored,
                    &Default::default(),
                )
                    .map_err(|error| DbErr::Migration(format!("datapoint {id}: {error}")))?;
            let json = |value: serde_json::Result<String>| {
                value.map_err(|error| DbErr::Migration(format!("datapoint {id}: {error}")))
            };
            let update = Query::update()
                .table(Alias::new("datapoints"))
                .value(Alias::new("turns_json"), json(serde_json::to_string(&document.turns))?)
                .value(
                    Alias::new("analysis_json"),
                    json(serde_json::to_string(&document.analysis))?,
                )
                .value(Alias::new("tags_json"), json(serde_json::to_string(&document.tags))?)
                .value(
                    Alias::new("metadata_json"),
                    json(serde_json::to_string(&document.metadata))?,
                )
                .value(
                    Alias::new("metrics_json"),
                    json(serde_json::to_string(&document.metrics()))?,
                )
                .and_where(Expr::col(Alias::new("id")).eq(id.clone()))
                .to_owned();
            connection.execute(&update).await?;
        }
        connection
            .execute_unprepared("ALTER TABLE datapoints DROP COLUMN document;")
            .await
            .map(|_| ())
    }
}
