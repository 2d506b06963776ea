//! Two of the datapoints' indexes without the organization (issue 15, bytes per stored call):
//! a call's project, and an integration, name their organization for good, and the
//! organization's 16 bytes in each entry repeated what the next column says.
//!
//! - `datapoints_unique_call` is `(call_id, project_id, provider)`: unique as before (a project
//!   is one organization's), and a search by call id seeks the call id and checks the
//!   organization on the few calls of that id (`datapoints::search_part`, the context token's
//!   second form, `find_datapoints`, which names all four).
//! - `datapoints_by_integration` is `(integration_id, occurred_at_ms)` on SQLite (ending with
//!   the rowid, m0035) and `(integration_id, occurred_at_ms, id)` on PostgreSQL: an
//!   integration's calls newest first, the organization checked on each.
//!
//! Both are made again on each backend; on SQLite the ordering index made last is the one the
//! planner takes of two it rates alike, and neither new index serves a search the others serve.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0037_calls_by_their_own_keys"
    }
}

/// The two indexes, `leading` the columns before the call id's and the integration's; `last` what
/// follows the time in the integration's (the id on PostgreSQL, m0035).
fn indexes(call: &str, integration: &str, last: &str) -> String {
    format!(
        "DROP INDEX datapoints_unique_call;
CREATE UNIQUE INDEX datapoints_unique_call ON datapoints ({call});
DROP INDEX datapoints_by_integration;
CREATE INDEX datapoints_by_integration ON datapoints ({integration}, occurred_at_ms{last})
    WHERE integration_id IS NOT NULL;
"
    )
}

fn sql(backend: DbBackend, up: bool) -> String {
    let last = if backend == DbBackend::Postgres { ", id" } else { "" };
    if up {
        indexes("call_id, project_id, provider", "integration_id", last)
    } else {
        indexes(
            "organization_id, call_id, project_id, provider",
            "organization_id, integration_id",
            last,
        )
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let sql = sql(connection.get_database_backend(), true);
        connection.execute_unprepared(&sql).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let sql = sql(connection.get_database_backend(), false);
        connection.execute_unprepared(&sql).await.map(|_| ())
    }
}
