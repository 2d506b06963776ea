//! Finding a call by its context token, the documented way after an ingest, reads one index
//! range whether or not the request names a project: (organization_id, context_token, id)
//! holds every search's first filter (the tenant) and ends with the id searches order by. It
//! replaces m0002's (project_id, context_token), which lost on SQLite to (project_id, id), the
//! index that gives the order: every lookup walked all datapoints of the project.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_context_token_lookups"
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Datapoints {
    Table,
    Id,
    OrganizationId,
    ProjectId,
    ContextToken,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("datapoints_by_context_token")
                    .table(Datapoints::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("datapoints_by_organization_context_token")
                    .table(Datapoints::Table)
                    .col(Datapoints::OrganizationId)
                    .col(Datapoints::ContextToken)
                    .col(Datapoints::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("datapoints_by_organization_context_token")
                    .table(Datapoints::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("datapoints_by_context_token")
                    .table(Datapoints::Table)
                    .col(Datapoints::ProjectId)
                    .col(Datapoints::ContextToken)
                    .to_owned(),
            )
            .await
    }
}
