//! Full-text search of transcripts, kept in step with every datapoint write in its transaction:
//! - SQLite: `datapoint_text`, an FTS5 index over `datapoints.transcript_search` (external
//!   content: the text is not stored twice), maintained by triggers on insert, update and delete
//!   of datapoints; the `unicode61` tokenizer with diacritics removed, so rows stored before
//!   their text was folded (`search_words`) are found accent-insensitively too;
//! - PostgreSQL: `datapoints.transcript_words`, a stored `tsvector` generated from the same
//!   column with the `simple` configuration (no stemming, no stop words: the folded words as
//!   they are), under a GIN index.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_transcript_words"
    }
}

const SQLITE_UP: &str = "
CREATE VIRTUAL TABLE datapoint_text USING fts5(
    transcript_search, content = 'datapoints', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER datapoint_text_insert AFTER INSERT ON datapoints BEGIN
    INSERT INTO datapoint_text (rowid, transcript_search)
    VALUES (new.rowid, new.transcript_search);
END;
CREATE TRIGGER datapoint_text_delete AFTER DELETE ON datapoints BEGIN
    INSERT INTO datapoint_text (datapoint_text, rowid, transcript_search)
    VALUES ('delete', old.rowid, old.transcript_search);
END;
CREATE TRIGGER datapoint_text_update AFTER UPDATE OF transcript_search ON datapoints BEGIN
    INSERT INTO datapoint_text (datapoint_text, rowid, transcript_search)
    VALUES ('delete', old.rowid, old.transcript_search);
    INSERT INTO datapoint_text (rowid, transcript_search)
    VALUES (new.rowid, new.transcript_search);
END;
INSERT INTO datapoint_text (datapoint_text) VALUES ('rebuild');
";

const SQLITE_DOWN: &str = "
DROP TRIGGER datapoint_text_update;
DROP TRIGGER datapoint_text_delete;
DROP TRIGGER datapoint_text_insert;
DROP TABLE datapoint_text;
";

const POSTGRES_UP: &str = "
ALTER TABLE datapoints ADD COLUMN transcript_words tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', transcript_search)) STORED;
CREATE INDEX datapoints_by_transcript_words ON datapoints USING GIN (transcript_words);
";

const POSTGRES_DOWN: &str = "
DROP INDEX datapoints_by_transcript_words;
ALTER TABLE datapoints DROP COLUMN transcript_words;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        manager.get_connection().execute_unprepared(sql).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        manager.get_connection().execute_unprepared(sql).await.map(|_| ())
    }
}
