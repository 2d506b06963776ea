//! The console's call page lists the webhook deliveries behind a call (issue 20): every
//! delivery that produced one of the call's ingests, found by ingest id. The index over
//! deliveries that still keep a body (m0012, for forgetting them) becomes one over every
//! delivery with an ingest, which serves both; deliveries without one (refused) stay out of it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0024_deliveries_by_ingest"
    }
}

const UP: &str = "
DROP INDEX deliveries_with_body_by_ingest;
CREATE INDEX deliveries_by_ingest ON webhook_deliveries (ingest_id) WHERE ingest_id IS NOT NULL;
";

const DOWN: &str = "
DROP INDEX deliveries_by_ingest;
CREATE INDEX deliveries_with_body_by_ingest ON webhook_deliveries (ingest_id)
    WHERE body IS NOT NULL;
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
