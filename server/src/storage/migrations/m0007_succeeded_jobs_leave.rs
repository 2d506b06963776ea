//! Succeeded jobs leave the `jobs` table when they finish (the ingest records the success), so
//! the table holds only the backlog. This removes the succeeded rows earlier versions kept, one
//! per call ever processed.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_succeeded_jobs_leave"
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Jobs {
    Table,
    Status,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let delete = Query::delete()
            .from_table(Jobs::Table)
            .and_where(Expr::col(Jobs::Status).eq("succeeded"))
            .to_owned();
        manager.exec_stmt(delete).await
    }

    /// Nothing to restore: a removed succeeded job is not needed by anything.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
