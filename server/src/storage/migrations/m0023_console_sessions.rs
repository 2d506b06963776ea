//! The console's sign-in sessions (issue 20): a row per session, keyed by the SHA-256 of the
//! cookie's random token (the token itself is never stored), naming the API key it was opened
//! with (whose scopes and revocation apply on every request) and when it ends. Ended sessions
//! are found by their expiry for pruning.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0023_console_sessions"
    }
}

const UP: &str = "
CREATE TABLE console_sessions (
    token_hash TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at_ms);
";

const DOWN: &str = "DROP TABLE console_sessions;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await.map(|_| ())
    }
}
