//! Claims take expired leases through an index of their own, (status, lease_expires_at_ms),
//! beside m0002's (status, run_after_ms) for due jobs, so neither path scans or sorts the
//! backlog.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_jobs_by_lease"
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Jobs {
    Table,
    Status,
    LeaseExpiresAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("jobs_by_status_lease")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::LeaseExpiresAtMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("jobs_by_status_lease").table(Jobs::Table).to_owned())
            .await
    }
}
