//! An ingest found by its call within its dedup key's index (issue 15, bytes per stored call).
//! `ingests_unique_dedup` was `(project_id, dedup_key)`, the key spelling out the provider and
//! call id before the content's digest (run 22), and `ingests_by_call` `(organization_id,
//! call_id)`; each held every ingest. The key is now the digest alone (12 characters,
//! `storage::ingest::stored_dedup_key`), and `ingests_unique_dedup` is `(project_id, call_id,
//! provider, dedup_key)`: unique as before, a seek for a repeat's lookup and for a call's
//! ingests (whose project and provider are known wherever they are asked for). Keys of the run
//! 22 form are cut to their digest; keys written before run 22 (the content key in full) stay
//! as they are, and a repeat's lookup still looks for that form too. Down puts the provider and
//! call id back in front of each 12-character key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0032_dedup_by_call"
    }
}

/// The run 22 form is the provider, the call id and 12 characters, joined by colons.
const UP_SQLITE: &str = "
DROP INDEX ingests_by_call;
DROP INDEX ingests_unique_dedup;
UPDATE ingests SET dedup_key = substr(dedup_key, -12)
    WHERE length(dedup_key) = length(provider) + length(call_id) + 14
    AND dedup_key = provider || ':' || call_id || ':' || substr(dedup_key, -12);
CREATE UNIQUE INDEX ingests_unique_dedup ON ingests (project_id, call_id, provider, dedup_key);
";

const UP_POSTGRES: &str = "
DROP INDEX ingests_by_call;
DROP INDEX ingests_unique_dedup;
UPDATE ingests SET dedup_key = right(dedup_key, 12)
    WHERE char_length(dedup_key) = char_length(provider) + char_length(call_id) + 14
    AND dedup_key = provider || ':' || call_id || ':' || right(dedup_key, 12);
CREATE UNIQUE INDEX ingests_unique_dedup ON ingests (project_id, call_id, provider, dedup_key);
";

/// A key written before run 22 is at least 66 characters: every 12-character key is a digest.
const DOWN_SQLITE: &str = "
DROP INDEX ingests_unique_dedup;
UPDATE ingests SET dedup_key = provider || ':' || call_id || ':' || dedup_key
    WHERE length(dedup_key) = 12;
CREATE UNIQUE INDEX ingests_unique_dedup ON ingests (project_id, dedup_key);
CREATE INDEX ingests_by_call ON ingests (organization_id, call_id);
";

const DOWN_POSTGRES: &str = "
DROP INDEX ingests_unique_dedup;
UPDATE ingests SET dedup_key = provider || ':' || call_id || ':' || dedup_key
    WHERE char_length(dedup_key) = 12;
CREATE UNIQUE INDEX ingests_unique_dedup ON ingests (project_id, dedup_key);
CREATE INDEX ingests_by_call ON ingests (organization_id, call_id);
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => UP_POSTGRES,
            _ => UP_SQLITE,
        };
        manager.get_connection().execute_unprepared(sql).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => DOWN_POSTGRES,
            _ => DOWN_SQLITE,
        };
        manager.get_connection().execute_unprepared(sql).await.map(|_| ())
    }
}
