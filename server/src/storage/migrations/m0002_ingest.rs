//! Audio objects, ingests, their jobs, and datapoints with their tag and metadata index tables.

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
