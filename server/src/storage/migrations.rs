//! Versioned schema migrations. A shipped migration is never edited; changes come as new ones.
//! Written with sea-query builders so the same migration runs on SQLite and Postgres.

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_ingest::Migration),
            Box::new(m0003_webhook_deliveries::Migration),
        ]
    }
}

mod m0001_initial {
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
                        .col(
                            ColumnDef::new(ApiKeys::KeyHash).string_len(64).not_null().unique_key(),
                        )
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
}

/// Each migration keeps its own column helpers, though they repeat the first migration's: a
/// shipped migration must never change, so none depends on code a later change could edit.
mod m0002_ingest {
    use sea_orm_migration::prelude::*;

    pub struct Migration;

    /// Stored in the migrations table: never rename.
    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0002_ingest"
        }
    }

    #[derive(DeriveIden)]
    enum AudioObjects {
        Table,
        Id,
        OrganizationId,
        ProjectId,
        Sha256,
        ContentType,
        SizeBytes,
        BlobKey,
        DurationMs,
        Channels,
        SampleRateHz,
        CreatedAtMs,
    }

    #[derive(DeriveIden)]
    enum Ingests {
        Table,
        Id,
        OrganizationId,
        ProjectId,
        CallId,
        ContextToken,
        Provider,
        Source,
        DedupKey,
        State,
        PayloadJson,
        DatapointId,
        Attempts,
        LastError,
        NextAttemptAtMs,
        CreatedAtMs,
        UpdatedAtMs,
    }

    #[derive(DeriveIden)]
    enum Jobs {
        Table,
        Id,
        Kind,
        PayloadJson,
        Status,
        Attempts,
        MaxAttempts,
        RunAfterMs,
        LeaseOwner,
        LeaseExpiresAtMs,
        LastError,
        CreatedAtMs,
        UpdatedAtMs,
    }

    #[derive(DeriveIden)]
    enum Datapoints {
        Table,
        Id,
        OrganizationId,
        ProjectId,
        Provider,
        CallId,
        ContextToken,
        Source,
        TranscriptSource,
        SpeakerLabelsEstimated,
        TurnsJson,
        TranscriptSearch,
        AudioId,
        StartedAtMs,
        EndedAtMs,
        DurationMs,
        OccurredAtMs,
        FromNumber,
        ToNumber,
        Direction,
        AnalysisJson,
        CostUsd,
        TagsJson,
        MetadataJson,
        MetricsJson,
        CreatedAtMs,
        UpdatedAtMs,
    }

    #[derive(DeriveIden)]
    enum DatapointTags {
        Table,
        DatapointId,
        ProjectId,
        Tag,
    }

    #[derive(DeriveIden)]
    enum DatapointMetadata {
        Table,
        DatapointId,
        ProjectId,
        Key,
        Value,
    }

    fn id_column<T: IntoIden>(name: T) -> ColumnDef {
        ColumnDef::new(name).string_len(36).not_null().primary_key().take()
    }

    fn text<T: IntoIden>(name: T) -> ColumnDef {
        ColumnDef::new(name).text().not_null().take()
    }

    fn text_null<T: IntoIden>(name: T) -> ColumnDef {
        ColumnDef::new(name).text().null().take()
    }

    fn big<T: IntoIden>(name: T) -> ColumnDef {
        ColumnDef::new(name).big_integer().not_null().take()
    }

    fn big_null<T: IntoIden>(name: T) -> ColumnDef {
        ColumnDef::new(name).big_integer().null().take()
    }

    fn index(
        name: &str,
        table: impl IntoIden + 'static,
        columns: &[&'static str],
        unique: bool,
    ) -> IndexCreateStatement {
        let mut statement = Index::create();
        statement.name(name).table(table);
        for column in columns {
            statement.col(Alias::new(*column));
        }
        if unique {
            statement.unique();
        }
        statement.take()
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(AudioObjects::Table)
                        .col(id_column(AudioObjects::Id))
                        .col(text(AudioObjects::OrganizationId))
                        .col(text(AudioObjects::ProjectId))
                        .col(text(AudioObjects::Sha256))
                        .col(text(AudioObjects::ContentType))
                        .col(big(AudioObjects::SizeBytes))
                        .col(text(AudioObjects::BlobKey))
                        .col(big_null(AudioObjects::DurationMs))
                        .col(ColumnDef::new(AudioObjects::Channels).integer().null())
                        .col(ColumnDef::new(AudioObjects::SampleRateHz).integer().null())
                        .col(big(AudioObjects::CreatedAtMs))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "audio_objects_unique_content",
                    AudioObjects::Table,
                    &["project_id", "sha256"],
                    true,
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Ingests::Table)
                        .col(id_column(Ingests::Id))
                        .col(text(Ingests::OrganizationId))
                        .col(text(Ingests::ProjectId))
                        .col(text(Ingests::CallId))
                        .col(text(Ingests::ContextToken))
                        .col(text(Ingests::Provider))
                        .col(text(Ingests::Source))
                        .col(text(Ingests::DedupKey))
                        .col(text(Ingests::State))
                        .col(text(Ingests::PayloadJson))
                        .col(text_null(Ingests::DatapointId))
                        .col(ColumnDef::new(Ingests::Attempts).integer().not_null().default(0))
                        .col(text(Ingests::LastError))
                        .col(big_null(Ingests::NextAttemptAtMs))
                        .col(big(Ingests::CreatedAtMs))
                        .col(big(Ingests::UpdatedAtMs))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "ingests_unique_dedup",
                    Ingests::Table,
                    &["project_id", "dedup_key"],
                    true,
                ))
                .await?;
            manager
                .create_index(index(
                    "ingests_by_project_state",
                    Ingests::Table,
                    &["project_id", "state", "id"],
                    false,
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Jobs::Table)
                        .col(id_column(Jobs::Id))
                        .col(text(Jobs::Kind))
                        .col(text(Jobs::PayloadJson))
                        .col(text(Jobs::Status))
                        .col(ColumnDef::new(Jobs::Attempts).integer().not_null().default(0))
                        .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                        .col(big(Jobs::RunAfterMs))
                        .col(text_null(Jobs::LeaseOwner))
                        .col(big_null(Jobs::LeaseExpiresAtMs))
                        .col(text(Jobs::LastError))
                        .col(big(Jobs::CreatedAtMs))
                        .col(big(Jobs::UpdatedAtMs))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "jobs_by_status_due",
                    Jobs::Table,
                    &["status", "run_after_ms"],
                    false,
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Datapoints::Table)
                        .col(id_column(Datapoints::Id))
                        .col(text(Datapoints::OrganizationId))
                        .col(text(Datapoints::ProjectId))
                        .col(text(Datapoints::Provider))
                        .col(text(Datapoints::CallId))
                        .col(text(Datapoints::ContextToken))
                        .col(text(Datapoints::Source))
                        .col(text(Datapoints::TranscriptSource))
                        .col(
                            ColumnDef::new(Datapoints::SpeakerLabelsEstimated)
                                .boolean()
                                .not_null()
                                .default(false),
                        )
                        .col(text(Datapoints::TurnsJson))
                        .col(text(Datapoints::TranscriptSearch))
                        .col(text_null(Datapoints::AudioId))
                        .col(big_null(Datapoints::StartedAtMs))
                        .col(big_null(Datapoints::EndedAtMs))
                        .col(big_null(Datapoints::DurationMs))
                        .col(big(Datapoints::OccurredAtMs))
                        .col(text_null(Datapoints::FromNumber))
                        .col(text_null(Datapoints::ToNumber))
                        .col(text_null(Datapoints::Direction))
                        .col(text(Datapoints::AnalysisJson))
                        .col(ColumnDef::new(Datapoints::CostUsd).double().null())
                        .col(text(Datapoints::TagsJson))
                        .col(text(Datapoints::MetadataJson))
                        .col(text(Datapoints::MetricsJson))
                        .col(big(Datapoints::CreatedAtMs))
                        .col(big(Datapoints::UpdatedAtMs))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "datapoints_unique_call",
                    Datapoints::Table,
                    &["project_id", "provider", "call_id"],
                    true,
                ))
                .await?;
            manager
                .create_index(index(
                    "datapoints_by_context_token",
                    Datapoints::Table,
                    &["project_id", "context_token"],
                    false,
                ))
                .await?;
            manager
                .create_index(index(
                    "datapoints_by_project",
                    Datapoints::Table,
                    &["project_id", "id"],
                    false,
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(DatapointTags::Table)
                        .col(text(DatapointTags::DatapointId))
                        .col(text(DatapointTags::ProjectId))
                        .col(text(DatapointTags::Tag))
                        .primary_key(
                            Index::create().col(DatapointTags::DatapointId).col(DatapointTags::Tag),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "datapoint_tags_by_tag",
                    DatapointTags::Table,
                    &["project_id", "tag"],
                    false,
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(DatapointMetadata::Table)
                        .col(text(DatapointMetadata::DatapointId))
                        .col(text(DatapointMetadata::ProjectId))
                        .col(text(DatapointMetadata::Key))
                        .col(text(DatapointMetadata::Value))
                        .primary_key(
                            Index::create()
                                .col(DatapointMetadata::DatapointId)
                                .col(DatapointMetadata::Key),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "datapoint_metadata_by_pair",
                    DatapointMetadata::Table,
                    &["project_id", "key", "value"],
                    false,
                ))
                .await?;
            Ok(())
        }
    }
}

/// The delivery log as the webhook intake writes it. m0001's table was never written to, so it
/// is replaced whole rather than altered column by column.
mod m0003_webhook_deliveries {
    use sea_orm_migration::prelude::*;

    pub struct Migration;

    /// Stored in the migrations table: never rename.
    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0003_webhook_deliveries"
        }
    }

    #[derive(Clone, Copy, DeriveIden)]
    enum WebhookDeliveries {
        Table,
        Id,
        OrganizationId,
        ProjectId,
        IntegrationId,
        ReceivedAtMs,
        Verdict,
        HttpStatus,
        EventType,
        CallId,
        BodySha256,
        Error,
        ErrorMessage,
        IngestId,
        Authenticated,
        RequestJson,
        Body,
    }

    fn text<T: IntoIden>(name: T) -> ColumnDef {
        ColumnDef::new(name).text().not_null().take()
    }

    fn index(name: &str, columns: &[WebhookDeliveries]) -> IndexCreateStatement {
        let mut statement = Index::create();
        statement.name(name).table(WebhookDeliveries::Table);
        for column in columns {
            statement.col(column.into_iden());
        }
        statement.take()
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_index(
                    Index::drop()
                        .name("webhook_deliveries_by_integration")
                        .table(WebhookDeliveries::Table)
                        .if_exists()
                        .to_owned(),
                )
                .await?;
            manager
                .drop_table(Table::drop().table(WebhookDeliveries::Table).if_exists().to_owned())
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(WebhookDeliveries::Table)
                        .col(
                            ColumnDef::new(WebhookDeliveries::Id)
                                .string_len(36)
                                .not_null()
                                .primary_key(),
                        )
                        .col(text(WebhookDeliveries::OrganizationId))
                        .col(text(WebhookDeliveries::ProjectId))
                        .col(text(WebhookDeliveries::IntegrationId))
                        .col(
                            ColumnDef::new(WebhookDeliveries::ReceivedAtMs)
                                .big_integer()
                                .not_null(),
                        )
                        .col(text(WebhookDeliveries::Verdict))
                        .col(ColumnDef::new(WebhookDeliveries::HttpStatus).integer().not_null())
                        .col(text(WebhookDeliveries::EventType))
                        .col(text(WebhookDeliveries::CallId))
                        .col(text(WebhookDeliveries::BodySha256))
                        .col(text(WebhookDeliveries::Error))
                        .col(text(WebhookDeliveries::ErrorMessage))
                        .col(ColumnDef::new(WebhookDeliveries::IngestId).text().null())
                        .col(ColumnDef::new(WebhookDeliveries::Authenticated).boolean().not_null())
                        .col(ColumnDef::new(WebhookDeliveries::RequestJson).text().null())
                        .col(ColumnDef::new(WebhookDeliveries::Body).blob().null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "deliveries_by_integration",
                    &[WebhookDeliveries::IntegrationId, WebhookDeliveries::Id],
                ))
                .await?;
            manager
                .create_index(index(
                    "deliveries_by_received_at",
                    &[WebhookDeliveries::ReceivedAtMs],
                ))
                .await?;
            Ok(())
        }
    }
}
