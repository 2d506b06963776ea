//! A call's context token stored only when it is its own (issue 15, bytes per stored call). A
//! context token is the call's id unless the sender gives another (`model::conversation`), so
//! most calls spelled their id twice in their datapoint and ingest rows, and took an entry in
//! `datapoints_by_context_token_occurrence` that only repeated `datapoints_by_call_id`'s. The
//! column is now empty when the token is the call id (`storage::stored_context_token`), and
//! the index, `datapoints_by_own_context_token`, holds only the calls with a token of their
//! own. A search by context token finds the others by call id (`Storage::narrowing`). Both
//! ways on both databases: down writes each call id back where the column is empty.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0030_own_context_tokens"
    }
}

const UP: &str = "
DROP INDEX datapoints_by_context_token_occurrence;
UPDATE datapoints SET context_token = '' WHERE context_token = call_id;
UPDATE ingests SET context_token = '' WHERE context_token = call_id;
CREATE INDEX datapoints_by_own_context_token
    ON datapoints (organization_id, context_token, occurred_at_ms, id)
    WHERE context_token <> '';
";

const DOWN: &str = "
DROP INDEX datapoints_by_own_context_token;
UPDATE datapoints SET context_token = call_id WHERE context_token = '';
UPDATE ingests SET context_token = call_id WHERE context_token = '';
CREATE INDEX datapoints_by_context_token_occurrence
    ON datapoints (organization_id, context_token, occurred_at_ms, id);
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
