//! Per-project retention of the webhook delivery log: how long a project keeps delivery bodies
//! (for replay) and the deliveries themselves; NULL takes the server's settings
//! (`integrations.delivery_body_retention_days`, `integrations.delivery_retention_days`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0014_delivery_retention"
    }
}

const UP: &str = "
ALTER TABLE projects ADD COLUMN delivery_body_retention_days INTEGER NULL;
ALTER TABLE projects ADD COLUMN delivery_retention_days INTEGER NULL;
";

const DOWN: &str = "
ALTER TABLE projects DROP COLUMN delivery_retention_days;
ALTER TABLE projects DROP COLUMN delivery_body_retention_days;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await.map(|_| ())
    }
}
