//! Each call's content stored once:
//! - a delivery's kept body may be compressed: `body_encoding` says how (`deflate`), or is
//!   empty for a body kept as it arrived (every body written before this migration);
//! - a job may carry its input (`input_json`: an ingest's conversation), which leaves with the
//!   job when it succeeds, instead of the ingest keeping it for good in `payload_json` (where
//!   ingests written before this migration still have it).

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_stored_once"
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum WebhookDeliveries {
    Table,
    BodyEncoding,
}

#[derive(Clone, Copy, DeriveIden)]
enum Jobs {
    Table,
    InputJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .add_column(
                        ColumnDef::new(WebhookDeliveries::BodyEncoding)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(ColumnDef::new(Jobs::InputJson).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Jobs::Table).drop_column(Jobs::InputJson).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .drop_column(WebhookDeliveries::BodyEncoding)
                    .to_owned(),
            )
            .await
    }
}
