//! The processes serving one database (`instances`), each with its last heartbeat: how many
//! serve the API is what divides an integration's rate limit among them.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_instances"
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Instances {
    Table,
    Id,
    Role,
    StartedAtMs,
    HeartbeatAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Instances::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Instances::Role).text().not_null())
                    .col(ColumnDef::new(Instances::StartedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(Instances::HeartbeatAtMs).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Instances::Table).to_owned()).await
    }
}
