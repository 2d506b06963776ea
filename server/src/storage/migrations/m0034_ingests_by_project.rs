//! A project's ingests listed newest first from an index (issue 15). `ingests_by_project_state`
//! `(project_id, state, id)` served a listing by state, but a listing of every state (gRPC
//! `ListIngests` without one) sorted all of the project's ingests, nearly all of them done. Now
//! `ingests_by_project` `(project_id, id)` gives every listing its order, and
//! `ingests_waiting` `(project_id, state, id)` holds only the ingests not done, which the queue
//! depth counts and a listing of one such state read (`storage::ingest`, `not_done`). A done
//! ingest takes one index entry of about 45 bytes instead of about 53.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0034_ingests_by_project"
    }
}

const UP: &str = "
DROP INDEX ingests_by_project_state;
CREATE INDEX ingests_by_project ON ingests (project_id, id);
CREATE INDEX ingests_waiting ON ingests (project_id, state, id) WHERE state <> 'done';
";

const DOWN: &str = "
DROP INDEX ingests_waiting;
DROP INDEX ingests_by_project;
CREATE INDEX ingests_by_project_state ON ingests (project_id, state, id);
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
