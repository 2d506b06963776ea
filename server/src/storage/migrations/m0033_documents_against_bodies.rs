//! A datapoint's document written against its delivery's kept body (issue 15, bytes per stored
//! call). A call stored at intake from a webhook whose body is kept spelled its words twice: in
//! the body and in its document. From this version on its document may be deflated with that
//! body as the preset (`documents::DOCUMENT_V3`), so it refers back to the body's words instead;
//! the body's retention writes such documents again on their own before the body goes.
//!
//! Up changes no table: documents are written in the new version from now on. Down writes every
//! one of them again on its own (version 2), the only form the builds before this one read.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0033_documents_against_bodies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::storage::documents::detach_all_documents(manager.get_connection())
            .await
            .map(|_| ())
            .map_err(|error| DbErr::Migration(error.to_string()))
    }
}
