//! On SQLite, the datapoints' ordering indexes end with the time (issue 15, bytes per stored
//! call). Each was `(…, occurred_at_ms, id)`: the searches' order, newest call first, then the
//! id. Every entry of an index on a rowid table already ends with its row's rowid, so
//! `(…, occurred_at_ms)` gives the order `occurred_at_ms, rowid` with no sort and no id in the
//! entry: 17 bytes less in each of a call's five to nine entries. SQLite searches that walk
//! one of these indexes now break ties of a millisecond by rowid (`datapoints::search_part`; a
//! page after a cursor finds its call's rowid by id and is read in two seeks, `search_page`).
//! PostgreSQL, whose rows have no stable number, keeps its indexes and orders by id: up and
//! down do nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0035_ordered_by_rowid"
    }
}

/// (name, columns before the time, the partial index's condition) of each ordering index.
const ORDERING: [(&str, &str, &str); 9] = [
    ("datapoints_by_occurrence", "organization_id", ""),
    ("datapoints_by_project_occurrence", "project_id", ""),
    ("datapoints_by_provider", "organization_id, provider", ""),
    ("datapoints_by_source", "organization_id, source", ""),
    ("datapoints_by_integration", "organization_id, integration_id", "integration_id IS NOT NULL"),
    ("datapoints_with_issues", "organization_id", "open_issues > 0"),
    (
        "datapoints_by_verdict_successful",
        "organization_id, verdict_successful",
        "verdict_successful IS NOT NULL",
    ),
    (
        "datapoints_by_verdict_sentiment",
        "organization_id, verdict_sentiment",
        "verdict_sentiment IS NOT NULL",
    ),
    (
        "datapoints_by_verdict_outcome",
        "organization_id, verdict_outcome",
        "verdict_outcome IS NOT NULL",
    ),
];

/// Made again after the ordering indexes, as it was made after them before (m0012): a
/// project's calls with a recording, oldest first (`lifecycle::expired_calls`), which
/// `datapoints_by_project_occurrence` now serves at the same cost in SQLite's guesses, and of
/// two such indexes the planner takes the one made last.
const RECORDINGS: &str = "
DROP INDEX datapoints_with_audio_by_time;
CREATE INDEX datapoints_with_audio_by_time ON datapoints (project_id, occurred_at_ms)
    WHERE audio_id IS NOT NULL;
";

/// Each ordering index made again, ending with `last` after the time.
fn rebuilt(last: &str) -> String {
    let mut sql: String = ORDERING
        .iter()
        .map(|(name, leading, condition)| {
            let condition =
                if condition.is_empty() { String::new() } else { format!(" WHERE {condition}") };
            format!(
                "DROP INDEX {name};\nCREATE INDEX {name} ON datapoints \
                 ({leading}, occurred_at_ms{last}){condition};\n"
            )
        })
        .collect();
    sql.push_str(RECORDINGS);
    sql
}

async fn rebuild(manager: &SchemaManager<'_>, last: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Postgres {
        return Ok(());
    }
    manager.get_connection().execute_unprepared(&rebuilt(last)).await.map(|_| ())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, "").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, ", id").await
    }
}
