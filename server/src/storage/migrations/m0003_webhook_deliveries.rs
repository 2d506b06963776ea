//! The delivery log as the webhook intake writes it. m0001's table was never written to, so it
//! is replaced whole rather than altered column by column.

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
                    .col(ColumnDef::new(WebhookDeliveries::ReceivedAtMs).big_integer().not_null())
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
            .create_index(index("deliveries_by_received_at", &[WebhookDeliveries::ReceivedAtMs]))
            .await?;
        Ok(())
    }
}
