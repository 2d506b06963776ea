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
//! - tag and metadata rows carry their datapoint's organization and time (new columns, filled
//!   from the datapoints), so that `datapoint_tags (organization_id, tag, occurred_at_ms,
//!   datapoint_id)` and `datapoint_metadata (organization_id, key, value, occurred_at_ms,
//!   datapoint_id)` give a tag's (a pair's) calls in the searches' order, with or without a
//!   project; they replace m0002's `(project_id, tag)` and `(project_id, key, value)`.

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
    (
        "datapoint_tags_by_organization_tag",
        "datapoint_tags",
        &["organization_id", "tag", "occurred_at_ms", "datapoint_id"],
        false,
    ),
    (
        "datapoint_metadata_by_organization_pair",
        "datapoint_metadata",
        &["organization_id", "key", "value", "occurred_at_ms", "datapoint_id"],
        false,
    ),
];

/// The tables whose rows take their datapoint's organization and time.
const SEARCH_ROWS: [&str; 2] = ["datapoint_tags", "datapoint_metadata"];

/// The columns the rows of `SEARCH_ROWS` take from their datapoint.
const COPIED: [(&str, &str); 2] = [("organization_id", "''"), ("occurred_at_ms", "0")];

/// Fills a search row table's new columns from the datapoints (one statement, portable).
fn fill(table: &str) -> String {
    format!(
        "UPDATE {table} SET \
         organization_id = (SELECT d.organization_id FROM datapoints d \
         WHERE d.id = {table}.datapoint_id), \
         occurred_at_ms = (SELECT d.occurred_at_ms FROM datapoints d \
         WHERE d.id = {table}.datapoint_id)"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in SEARCH_ROWS {
            for (column, default) in COPIED {
                let definition = if default == "0" {
                    ColumnDef::new(Alias::new(column)).big_integer().not_null().default(0).take()
                } else {
                    ColumnDef::new(Alias::new(column)).text().not_null().default("").take()
                };
                manager
                    .alter_table(
                        Table::alter().table(Alias::new(table)).add_column(definition).to_owned(),
                    )
                    .await?;
            }
            manager.get_connection().execute_unprepared(&fill(table)).await?;
        }
        for (name, table, columns, unique) in CREATED {
            manager.create_index(index(name, table, columns, unique)).await?;
        }
        manager.drop_index(drop("datapoints_by_organization_context_token", "datapoints")).await?;
        manager.drop_index(drop("datapoints_by_project", "datapoints")).await?;
        manager.drop_index(drop("datapoint_tags_by_tag", "datapoint_tags")).await?;
        manager.drop_index(drop("datapoint_metadata_by_pair", "datapoint_metadata")).await
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
        manager
            .create_index(index(
                "datapoint_tags_by_tag",
                "datapoint_tags",
                &["project_id", "tag"],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "datapoint_metadata_by_pair",
                "datapoint_metadata",
                &["project_id", "key", "value"],
                false,
            ))
            .await?;
        for (name, table, _, _) in CREATED {
            manager.drop_index(drop(name, table)).await?;
        }
        for table in SEARCH_ROWS {
            for (column, _) in COPIED {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .drop_column(Alias::new(column))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
