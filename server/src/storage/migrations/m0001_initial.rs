//! Organizations, projects, API keys, integrations with their sealed secrets.

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    OrganizationId,
    Name,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrganizationId,
    ProjectId,
    Name,
    KeyHash,
    KeyPrefix,
    Scopes,
    CreatedAtMs,
    RevokedAtMs,
    LastUsedAtMs,
}

#[derive(DeriveIden)]
enum Integrations {
    Table,
    Id,
    OrganizationId,
    ProjectId,
    Provider,
    DisplayName,
    PublicId,
    AuthType,
    Status,
    OptionsJson,
    RequestCount,
    CreatedAtMs,
    UpdatedAtMs,
    LastUsedAtMs,
    LastValidatedAtMs,
}

#[derive(DeriveIden)]
enum IntegrationSecrets {
    Table,
    Id,
    IntegrationId,
    Generation,
    Name,
    Ciphertext,
    KeyId,
    Last4,
    CreatedAtMs,
    ExpiresAtMs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    OrganizationId,
    IntegrationId,
    ReceivedAtMs,
    Verdict,
    HttpStatus,
    EventType,
    CallId,
    BodySha256,
    Error,
    IngestId,
    Body,
}

fn id_column<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string_len(36).not_null().primary_key().take()
}

fn text<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).text().not_null().take()
}

fn millis<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().take()
}

fn millis_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(id_column(Organizations::Id))
                    .col(text(Organizations::Name))
                    .col(millis(Organizations::CreatedAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(id_column(Projects::Id))
                    .col(text(Projects::OrganizationId))
                    .col(text(Projects::Name))
                    .col(millis(Projects::CreatedAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("projects_by_organization")
                    .table(Projects::Table)
                    .col(Projects::OrganizationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(id_column(ApiKeys::Id))
                    .col(text(ApiKeys::OrganizationId))
                    .col(ColumnDef::new(ApiKeys::ProjectId).text().null())
                    .col(text(ApiKeys::Name))
                    .col(ColumnDef::new(ApiKeys::KeyHash).string_len(64).not_null().unique_key())
                    .col(text(ApiKeys::KeyPrefix))
                    .col(text(ApiKeys::Scopes))
                    .col(millis(ApiKeys::CreatedAtMs))
                    .col(millis_null(ApiKeys::RevokedAtMs))
                    .col(millis_null(ApiKeys::LastUsedAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_by_organization")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OrganizationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Integrations::Table)
                    .col(id_column(Integrations::Id))
                    .col(text(Integrations::OrganizationId))
                    .col(text(Integrations::ProjectId))
                    .col(text(Integrations::Provider))
                    .col(text(Integrations::DisplayName))
                    .col(
                        ColumnDef::new(Integrations::PublicId)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(text(Integrations::AuthType))
                    .col(text(Integrations::Status))
                    .col(text(Integrations::OptionsJson))
                    .col(
                        ColumnDef::new(Integrations::RequestCount)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(millis(Integrations::CreatedAtMs))
                    .col(millis(Integrations::UpdatedAtMs))
                    .col(millis_null(Integrations::LastUsedAtMs))
                    .col(millis_null(Integrations::LastValidatedAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("integrations_by_project")
                    .table(Integrations::Table)
                    .col(Integrations::OrganizationId)
                    .col(Integrations::ProjectId)
                    .col(Integrations::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IntegrationSecrets::Table)
                    .col(id_column(IntegrationSecrets::Id))
                    .col(text(IntegrationSecrets::IntegrationId))
                    .col(ColumnDef::new(IntegrationSecrets::Generation).integer().not_null())
                    .col(text(IntegrationSecrets::Name))
                    .col(ColumnDef::new(IntegrationSecrets::Ciphertext).blob().not_null())
                    .col(text(IntegrationSecrets::KeyId))
                    .col(text(IntegrationSecrets::Last4))
                    .col(millis(IntegrationSecrets::CreatedAtMs))
                    .col(millis_null(IntegrationSecrets::ExpiresAtMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("integration_secrets_unique_generation_name")
                    .table(IntegrationSecrets::Table)
                    .col(IntegrationSecrets::IntegrationId)
                    .col(IntegrationSecrets::Generation)
                    .col(IntegrationSecrets::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(id_column(WebhookDeliveries::Id))
                    .col(text(WebhookDeliveries::OrganizationId))
                    .col(text(WebhookDeliveries::IntegrationId))
                    .col(millis(WebhookDeliveries::ReceivedAtMs))
                    .col(text(WebhookDeliveries::Verdict))
                    .col(ColumnDef::new(WebhookDeliveries::HttpStatus).integer().not_null())
                    .col(text(WebhookDeliveries::EventType))
                    .col(text(WebhookDeliveries::CallId))
                    .col(text(WebhookDeliveries::BodySha256))
                    .col(text(WebhookDeliveries::Error))
                    .col(ColumnDef::new(WebhookDeliveries::IngestId).text().null())
                    .col(ColumnDef::new(WebhookDeliveries::Body).blob().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_by_integration")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::IntegrationId)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
