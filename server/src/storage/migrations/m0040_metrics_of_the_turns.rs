//! A datapoint's document leaves out the call's metrics where they are its turns' (issue 15,
//! bytes per stored call): `metrics::compute` of the turns, as every call's are but for the
//! speech coverage of a transcript made from a recording, is made again when the document is
//! read (`documents::METRICS_LEFT_OUT`, versions 5 to 7). About 30 bytes a call.
//!
//! Up changes no row: documents are written so from now on. Down writes every such document
//! again with its metrics, on its own (version 2), a form the builds before read.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0040_metrics_of_the_turns"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::storage::documents::restore_all_metrics(manager.get_connection())
            .await
            .map(|_| ())
            .map_err(|error| DbErr::Migration(error.to_string()))
    }
}
