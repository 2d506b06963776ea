//! A stored call's search rows in less room (issue 15, bytes per stored call).
//!
//! On SQLite:
//! - `datapoint_text` becomes a contentless FTS5 index (`content=''`, `contentless_delete=1`):
//!   the transcript's words are indexed without a copy of their text. The storage code writes
//!   each datapoint's row (`storage/datapoints.rs`, `SearchRows`); a trigger deletes it with
//!   its datapoint. `datapoints.transcript_search` is emptied: ranking reads the words from the
//!   datapoint's turns.
//! - `datapoint_tags` and `datapoint_metadata` become `WITHOUT ROWID` tables whose primary key
//!   is the order searches read them in (organization, tag or pair, time, datapoint), and
//!   nothing else: the rows were stored three times (the table, its primary key's index, the
//!   search index), now once. A call's rows are found from its stored tags and metadata and its
//!   time (`storage/datapoints.rs`, `SearchRows::forget`), a probe of one tag by that whole key.
//!   Their unused `project_id` goes.
//!
//! On PostgreSQL only the unused `project_id` columns go; the transcript's text stays in
//! `transcript_search`, from which its `tsvector` is generated (m0011).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0027_compact_search_rows"
    }
}

const SQLITE_UP: &str = "
DROP TRIGGER datapoint_text_update;
DROP TRIGGER datapoint_text_delete;
DROP TRIGGER datapoint_text_insert;
DROP TABLE datapoint_text;
CREATE VIRTUAL TABLE datapoint_text USING fts5(
    transcript_search, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO datapoint_text (rowid, transcript_search)
    SELECT rowid, transcript_search FROM datapoints;
UPDATE datapoints SET transcript_search = '' WHERE transcript_search <> '';
CREATE TRIGGER datapoint_text_delete AFTER DELETE ON datapoints BEGIN
    DELETE FROM datapoint_text WHERE rowid = old.rowid;
END;

CREATE TABLE datapoint_tags_compact (
    organization_id text NOT NULL,
    tag text NOT NULL,
    occurred_at_ms integer NOT NULL,
    datapoint_id text NOT NULL,
    PRIMARY KEY (organization_id, tag, occurred_at_ms, datapoint_id)
) WITHOUT ROWID;
INSERT INTO datapoint_tags_compact (organization_id, tag, occurred_at_ms, datapoint_id)
    SELECT organization_id, tag, occurred_at_ms, datapoint_id FROM datapoint_tags;
DROP TABLE datapoint_tags;
ALTER TABLE datapoint_tags_compact RENAME TO datapoint_tags;

CREATE TABLE datapoint_metadata_compact (
    organization_id text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    occurred_at_ms integer NOT NULL,
    datapoint_id text NOT NULL,
    PRIMARY KEY (organization_id, key, value, occurred_at_ms, datapoint_id)
) WITHOUT ROWID;
INSERT INTO datapoint_metadata_compact (organization_id, key, value, occurred_at_ms, datapoint_id)
    SELECT organization_id, key, value, occurred_at_ms, datapoint_id FROM datapoint_metadata;
DROP TABLE datapoint_metadata;
ALTER TABLE datapoint_metadata_compact RENAME TO datapoint_metadata;
";

/// The tables as m0010 left them (`project_id` filled again from the datapoints), and the
/// external-content index of m0011; `transcript_search` is written back first (`down`).
const SQLITE_DOWN: &str = r#"
CREATE TABLE datapoint_tags_wide (
    "datapoint_id" text NOT NULL, "project_id" text NOT NULL, "tag" text NOT NULL,
    "organization_id" text NOT NULL DEFAULT '', "occurred_at_ms" integer NOT NULL DEFAULT 0,
    PRIMARY KEY ("datapoint_id", "tag"));
INSERT INTO datapoint_tags_wide (datapoint_id, project_id, tag, organization_id, occurred_at_ms)
    SELECT t.datapoint_id, COALESCE(d.project_id, ''), t.tag, t.organization_id, t.occurred_at_ms
    FROM datapoint_tags t LEFT JOIN datapoints d ON d.id = t.datapoint_id;
DROP TABLE datapoint_tags;
ALTER TABLE datapoint_tags_wide RENAME TO datapoint_tags;
CREATE INDEX "datapoint_tags_by_organization_tag"
    ON "datapoint_tags" ("organization_id", "tag", "occurred_at_ms", "datapoint_id");

CREATE TABLE datapoint_metadata_wide (
    "datapoint_id" text NOT NULL, "project_id" text NOT NULL, "key" text NOT NULL,
    "value" text NOT NULL, "organization_id" text NOT NULL DEFAULT '',
    "occurred_at_ms" integer NOT NULL DEFAULT 0, PRIMARY KEY ("datapoint_id", "key"));
INSERT INTO datapoint_metadata_wide
    (datapoint_id, project_id, key, value, organization_id, occurred_at_ms)
    SELECT m.datapoint_id, COALESCE(d.project_id, ''), m.key, m.value, m.organization_id,
        m.occurred_at_ms
    FROM datapoint_metadata m LEFT JOIN datapoints d ON d.id = m.datapoint_id;
DROP TABLE datapoint_metadata;
ALTER TABLE datapoint_metadata_wide RENAME TO datapoint_metadata;
CREATE INDEX "datapoint_metadata_by_organization_pair"
    ON "datapoint_metadata" ("organization_id", "key", "value", "occurred_at_ms", "datapoint_id");

DROP TRIGGER datapoint_text_delete;
DROP TABLE datapoint_text;
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
"#;

const POSTGRES_UP: &str = "
ALTER TABLE datapoint_tags DROP COLUMN project_id;
ALTER TABLE datapoint_metadata DROP COLUMN project_id;
";

const POSTGRES_DOWN: &str = "
ALTER TABLE datapoint_tags ADD COLUMN project_id text NOT NULL DEFAULT '';
UPDATE datapoint_tags t SET project_id = d.project_id FROM datapoints d
    WHERE d.id = t.datapoint_id;
ALTER TABLE datapoint_tags ALTER COLUMN project_id DROP DEFAULT;
ALTER TABLE datapoint_metadata ADD COLUMN project_id text NOT NULL DEFAULT '';
UPDATE datapoint_metadata m SET project_id = d.project_id FROM datapoints d
    WHERE d.id = m.datapoint_id;
ALTER TABLE datapoint_metadata ALTER COLUMN project_id DROP DEFAULT;
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

    /// On SQLite, writes each datapoint's words back into `transcript_search` from its turns
    /// first, so the external-content index can be rebuilt from them.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let backend = connection.get_database_backend();
        if backend == DbBackend::Postgres {
            return connection.execute_unprepared(POSTGRES_DOWN).await.map(|_| ());
        }
        let rows = connection
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, document, turns_json FROM datapoints WHERE transcript_search = ''",
            ))
            .await?;
        for row in rows {
            let id: String = row.try_get("", "id")?;
            let document: Option<Vec<u8>> = row.try_get("", "document")?;
            let turns_json: String = row.try_get("", "turns_json")?;
            let text = crate::storage::datapoints::stored_search_text(
                // Written on their own by now: no base to find, so no datapoint id is needed.
                uuid::Uuid::nil(),
                "",
                document.as_deref(),
                // m0033's down has written every document on its own by now.
                &Default::default(),
                &turns_json,
            )
            .map_err(|error| DbErr::Migration(format!("datapoint {id}: {error}")))?;
            let update = Query::update()
                .table(Alias::new("datapoints"))
                .value(Alias::new("transcript_search"), text)
                .and_where(Expr::col(Alias::new("id")).eq(id))
                .to_owned();
            connection.execute(&update).await?;
        }
        connection.execute_unprepared(SQLITE_DOWN).await.map(|_| ())
    }
}
