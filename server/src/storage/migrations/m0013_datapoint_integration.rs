//! Which integration delivered a call: `datapoints.integration_id` (NULL for calls sent through
//! the ingest APIs, and for calls stored before this migration), and the search filter on it,
//! `(organization_id, integration_id, occurred_at_ms, id)` in the searches' order, partial on
//! `integration_id IS NOT NULL` so calls of the APIs do not pay for it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0013_datapoint_integration"
    }
}

const UP: &str = "
ALTER TABLE datapoints ADD COLUMN integration_id TEXT NULL;
CREATE INDEX datapoints_by_integration
    ON datapoints (organization_id, integration_id, occurred_at_ms, id)
    WHERE integration_id IS NOT NULL;
";

const DOWN: &str = "
DROP INDEX datapoints_by_integration;
ALTER TABLE datapoints DROP COLUMN integration_id;
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
