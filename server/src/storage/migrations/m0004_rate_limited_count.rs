//! Webhook requests refused by a rate limit are counted on their integration instead of each
//! writing a delivery row.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_rate_limited_count"
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Integrations {
    Table,
    RateLimitedCount,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Integrations::Table)
                    .add_column(
                        ColumnDef::new(Integrations::RateLimitedCount)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Integrations::Table)
                    .drop_column(Integrations::RateLimitedCount)
                    .to_owned(),
            )
            .await
    }
}
