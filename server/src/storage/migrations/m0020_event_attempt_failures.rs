//! The failed attempts of an endpoint, newest first, by a partial index (issue 19's attempt log
//! filtered by outcome): an attempt failed when no 2xx answer came (`http_status` NULL for
//! refused, timed out or unreachable). Queries repeat `FAILED_ATTEMPT` word for word, as a
//! partial index is used only for a condition that matches its own.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0020_event_attempt_failures"
    }
}

const UP: &str = "
CREATE INDEX event_attempts_failed_by_endpoint ON event_attempts (endpoint_id, id)
    WHERE coalesce(http_status, 0) NOT BETWEEN 200 AND 299;
";

const DOWN: &str = "DROP INDEX event_attempts_failed_by_endpoint;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await.map(|_| ())
    }
}
