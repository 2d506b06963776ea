//! `integration.secret_expiring` (issue 19): each replaced secret row records when the
//! organization's endpoints were told its grace is ending, so each generation is announced
//! once, by whichever process looks first. The rows still to announce are found by a partial
//! index in order of their deadline.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0021_secret_expiry_notices"
    }
}

const UP: &str = "
ALTER TABLE integration_secrets ADD COLUMN expiry_notified_at_ms BIGINT NULL;
CREATE INDEX integration_secrets_to_announce ON integration_secrets (expires_at_ms)
    WHERE expires_at_ms IS NOT NULL AND expiry_notified_at_ms IS NULL;
";

const DOWN: &str = "
DROP INDEX integration_secrets_to_announce;
ALTER TABLE integration_secrets DROP COLUMN expiry_notified_at_ms;
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
