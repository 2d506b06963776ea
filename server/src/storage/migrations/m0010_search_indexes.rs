//! Every search filter of the datapoints' own columns read through an index, with or without a
//! project in the request, in the order searches return (newest call first: `occurred_at_ms`,
//! then `id`), so a page reads about a page of index entries whatever the table holds:
//! - `(organization_id, occurred_at_ms, id)`: no filter, or a time range;
//! - `(project_id, occurred_at_ms, id)`: a project (replaces m0002's `(project_id, id)`);
//! - `(organization_id, provider, occurred_at_ms, id)` and `(organization_id, source, …)`;
//! - `(organization_id, call_id, occurred_at_ms, id)` and `(organization_id, context_token,
//!   occurred_at_ms, id)`: a call id or a context token (the latter replaces m0006's
//!   `(organization_id, context_token, id)`). Ending with the order matters on SQLite: with a
//!   `LIMIT`, its planner prefers an index that gives the order to one that seeks the value
//!   and sorts what it finds, and would walk every datapoint of the organization;
//! - `datapoint_tags (tag, datapoint_id)` and `datapoint_metadata (key, value, datapoint_id)`:
//!   the datapoints with a tag, or a metadata pair, when no project narrows the search (m0002's
//!   indexes start with the project).

use sea_orm_migration::prelude::*;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_search_indexes"
    }
}

fn index(
    name: &str,
    table: &'static str,
    columns: &[&'static str],
    unique: bool,
) -> IndexCreateStatement {
    let mut statement = Index::create();
    statement.name(name).table(Alias::new(table));
    for column in columns {
        statement.col(Alias::new(*column));
    }
    if unique {
        statement.unique();
    }
    statement.take()
}

fn drop(name: &str, table: &'static str) -> IndexDropStatement {
    Index::drop().name(name).table(Alias::new(table)).to_owned()
}

/// (name, table, columns, unique) of the indexes this migration creates.
const CREATED: [(&str, &str, &[&str], bool); 8] = [
    ("datapoints_by_occurrence", "datapoints", &["organization_id", "occurred_at_ms", "id"], false),
    (
        "datapoints_by_project_occurrence",
        "datapoints",
        &["project_id", "occurred_at_ms", "id"],
        false,
    ),
    (
        "datapoints_by_provider",
        "datapoints",
        &["organization_id", "provider", "occurred_at_ms", "id"],
        false,
    ),
    (
        "datapoints_by_source",
        "datapoints",
        &["organization_id", "source", "occurred_at_ms", "id"],
        false,
    ),
    (
        "datapoints_by_call_id",
        "datapoints",
        &["organization_id", "call_id", "occurred_at_ms", "id"],
        false,
    ),
    (
        "datapoints_by_context_token_occurrence",
        "datapoints",
        &["organization_id", "context_token", "occurred_at_ms", "id"],
        false,
    ),
    ("datapoint_tags_by_tag_alone", "datapoint_tags", &["tag", "datapoint_id"], false),
    (
        "datapoint_metadata_by_pair_alone",
        "datapoint_metadata",
        &["key", "value", "datapoint_id"],
        false,
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns, unique) in CREATED {
            manager.create_index(index(name, table, columns, unique)).await?;
        }
        manager.drop_index(drop("datapoints_by_organization_context_token", "datapoints")).await?;
        manager.drop_index(drop("datapoints_by_project", "datapoints")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                "datapoints_by_organization_context_token",
                "datapoints",
                &["organization_id", "context_token", "id"],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "datapoints_by_project",
                "datapoints",
                &["project_id", "id"],
                false,
            ))
            .await?;
        for (name, table, _, _) in CREATED {
            manager.drop_index(drop(name, table)).await?;
        }
        Ok(())
    }
}
