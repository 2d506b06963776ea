//! Deletion, retention and the recordings they leave without a call (m0012).
//!
//! A deletion runs in batches, each one write transaction: the batch's datapoints go (their tag
//! and metadata rows with them, their full-text rows by trigger on SQLite, by the row itself on
//! PostgreSQL), then every ingest of those calls with its queued job, then the request and body
//! of their webhook deliveries, then each recording no remaining datapoint names (its audio
//! object, the blob queued in `orphan_blobs`), and the batch's counts are added to the audit
//! record. Every statement finds its rows through an index (m0010, m0012), so a batch costs what
//! it deletes, not what is stored.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef, OnConflict, Query, ReturningClause};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::{audio_object, datapoint, ingest};
use super::{Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::datapoints::DatapointQuery;
use crate::model::lifecycle::{CallRef, Deletion, DeletionReason, Removed};

/// A recording queued for removal from the audio store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanBlob {
    pub blob_key: String,
    /// Another audio object (stored again since, or in another project) names the same bytes:
    /// the blob stays, and only the queue entry goes.
    pub still_used: bool,
}

impl Storage {
    /// Up to `limit` of the organization's stored calls matching `query`, newest first (the
    /// searches' statement, reading only the columns a deletion needs).
    pub async fn matching_calls(
        &self,
        organization_id: Uuid,
        query: &DatapointQuery,
        limit: usize,
    ) -> Result<Vec<CallRef>, Error> {
        let mut query = query.clone();
        query.page_size = limit;
        query.before = None;
        query.offset = 0;
        let text = self.narrowing(organization_id, &query).await?;
        let backend = self.db.get_database_backend();
        let select =
            super::datapoints::search_statement(organization_id, &query, text.as_ref(), backend);
        self.read_calls(select, "finding the calls to delete").await
    }

    /// The organization's stored calls among `ids` (unknown ids are left out).
    pub async fn calls_by_ids(
        &self,
        organization_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<CallRef>, Error> {
        let select = datapoint::Entity::find()
            .filter(datapoint::Column::OrganizationId.eq(organization_id))
            .filter(datapoint::Column::Id.is_in(ids.iter().copied()));
        self.read_calls(select, "finding the calls to delete").await
    }

    /// Up to `limit` of a project's calls that took place before `before`, oldest first
    /// (`datapoints_by_project_occurrence`).
    pub async fn calls_before(
        &self,
        project_id: Uuid,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<CallRef>, Error> {
        let select = expired_calls(project_id, before, limit, false);
        self.read_calls(select, "finding expired calls").await
    }

    /// Up to `limit` of a project's calls before `before` that still have a recording, oldest
    /// first (`datapoints_with_audio_by_time`).
    pub async fn recordings_before(
        &self,
        project_id: Uuid,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<CallRef>, Error> {
        let select = expired_calls(project_id, before, limit, true);
        self.read_calls(select, "finding expired recordings").await
    }

    /// The calls `select` finds, reading only what a deletion needs of each.
    async fn read_calls(
        &self,
        select: sea_orm::Select<datapoint::Entity>,
        context: &'static str,
    ) -> Result<Vec<CallRef>, Error> {
        let rows: Vec<(Uuid, Uuid, String, String, Option<String>)> = select
            .select_only()
            .column(datapoint::Column::Id)
            .column(datapoint::Column::ProjectId)
            .column(datapoint::Column::Provider)
            .column(datapoint::Column::CallId)
            .column(datapoint::Column::AudioId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        rows.into_iter().map(call_ref).collect()
    }

    /// Deletes `calls` (one batch) in one transaction and adds what went to the audit record
    /// `deletion` (created by the first batch). Recordings left without a call are queued for
    /// the audio store's sweep, due at `blobs_due`.
    pub async fn delete_calls(
        &self,
        calls: &[CallRef],
        deletion: &Deletion,
        blobs_due: DateTime<Utc>,
    ) -> Result<Removed, Error> {
        let context = "deleting calls";
        let backend = self.db.get_database_backend();
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let ids: Vec<Uuid> = calls.iter().map(|call| call.datapoint_id).collect();
        // What is still there (a concurrent deletion may have taken some), as it was stored:
        // SQLite finds a call's tag and metadata rows from its tags (it has no index of them by
        // call, m0027).
        // And the rowid by which its tag and metadata rows name it (m0038).
        let returning = match backend {
            DbBackend::Postgres => {
                ReturningClause::Columns(vec![datapoint::Column::Id.into_column_ref()])
            }
            _ => ReturningClause::Exprs(vec![Expr::cust("*"), Expr::cust("rowid")]),
        };
        let rows = transaction
            .query_all_raw(
                backend.build(
                    Query::delete()
                        .from_table(datapoint::Entity)
                        .and_where(datapoint::Column::Id.is_in(ids.clone()))
                        .returning(returning),
                ),
            )
            .await
            .map_err(db_error(context))?;
        let mut deleted = HashSet::with_capacity(rows.len());
        let mut rowids = std::collections::HashMap::new();
        for row in &rows {
            let id = row.try_get::<Uuid>("", "id").map_err(db_error(context))?;
            deleted.insert(id);
            if backend != DbBackend::Postgres {
                rowids.insert(id, row.try_get::<i64>("", "rowid").map_err(db_error(context))?);
            }
        }
        let stored = match backend {
            DbBackend::Postgres => Vec::new(),
            _ => {
                let models = rows
                    .iter()
                    .map(|row| {
                        <datapoint::Model as sea_orm::FromQueryResult>::from_query_result(row, "")
                            .map_err(db_error(context))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                super::datapoints::datapoints_from_models(&transaction, models, context).await?
            }
        };
        let calls: Vec<&CallRef> =
            calls.iter().filter(|call| deleted.contains(&call.datapoint_id)).collect();
        let mut removed = Removed { datapoints: deleted.len() as u64, ..Removed::default() };
        if !calls.is_empty() {
            let ids: Vec<Uuid> = calls.iter().map(|call| call.datapoint_id).collect();
            let mut batch = super::Batch::new(backend);
            let stored: Vec<&crate::model::datapoints::Datapoint> = stored.iter().collect();
            super::datapoints::forget_search_rows(&mut batch, &ids, &stored, rowids);
            // What monitors found on the calls leaves their summaries with them.
            let mut rollups = super::rollups::RollupChanges::default();
            let earlier =
                super::rollups::take_out(&transaction, &ids, &mut rollups, context).await?;
            super::monitors::forget_results(&mut batch, &ids, &earlier.matches)?;
            rollups.write_into(&mut batch);
            batch.execute(&transaction, context).await?;
            let ingest_ids =
                call_ingests(&transaction, deletion.organization_id, &calls, context).await?;
            removed.ingests = ingest_ids.len() as u64;
            removed.delivery_bodies = forget_ingests(&transaction, &ingest_ids, context).await?;
            removed.recordings =
                drop_unused_recordings(&transaction, &calls, blobs_due, backend, context).await?;
        }
        record_deletion(&transaction, deletion, removed, backend, context).await?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(removed)
    }

    /// Takes the recording off `calls` (audio retention: the datapoints stay) in one
    /// transaction, drops the recordings no datapoint names any more as `delete_calls` does, and
    /// adds the counts to `deletion`.
    pub async fn drop_recordings(
        &self,
        calls: &[CallRef],
        deletion: &Deletion,
        blobs_due: DateTime<Utc>,
    ) -> Result<Removed, Error> {
        let context = "dropping recordings";
        let backend = self.db.get_database_backend();
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let ids: Vec<Uuid> = calls.iter().map(|call| call.datapoint_id).collect();
        transaction
            .execute_raw(
                backend.build(
                    Query::update()
                        .table(datapoint::Entity)
                        .value(datapoint::Column::AudioId, Option::<String>::None)
                        .and_where(datapoint::Column::Id.is_in(ids)),
                ),
            )
            .await
            .map_err(db_error(context))?;
        let calls: Vec<&CallRef> = calls.iter().collect();
        let removed = Removed {
            recordings: drop_unused_recordings(&transaction, &calls, blobs_due, backend, context)
                .await?,
            ..Removed::default()
        };
        record_deletion(&transaction, deletion, removed, backend, context).await?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(removed)
    }

    /// Adds `removed` to the audit record `deletion` (creating it), and sets its finish time.
    pub async fn record_deletion(
        &self,
        deletion: &Deletion,
        removed: Removed,
    ) -> Result<(), Error> {
        let context = "recording a deletion";
        let backend = self.db.get_database_backend();
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        record_deletion(&transaction, deletion, removed, backend, context).await?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// The organization's deletions, newest first, before the one with id `before`.
    pub async fn list_deletions(
        &self,
        organization_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Deletion>, Error> {
        let context = "listing deletions";
        let mut select = Query::select();
        select
            .columns(DELETION_COLUMNS.map(sea_orm::sea_query::Alias::new))
            .from(sea_orm::sea_query::Alias::new("deletions"))
            .and_where(Expr::col("organization_id").eq(organization_id.to_string()))
            .order_by("id", sea_orm::sea_query::Order::Desc)
            .limit(limit as u64);
        if let Some(before) = before {
            select.and_where(Expr::col("id").lt(before.to_string()));
        }
        let rows = self
            .db
            .query_all_raw(self.db.get_database_backend().build(&select))
            .await
            .map_err(db_error(context))?;
        rows.iter().map(|row| deletion_from_row(row, context)).collect()
    }

    /// Up to `limit` recordings whose removal is due at `now`, each saying whether an audio
    /// object names its bytes again.
    pub async fn due_orphan_blobs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrphanBlob>, Error> {
        let context = "finding recordings to remove";
        let backend = self.db.get_database_backend();
        let select = due_blobs(now, limit);
        let rows =
            self.db.query_all_raw(backend.build(&select)).await.map_err(db_error(context))?;
        rows.iter()
            .map(|row| {
                Ok(OrphanBlob {
                    blob_key: row.try_get("", "blob_key").map_err(db_error(context))?,
                    still_used: row
                        .try_get::<bool>("", "still_used")
                        .or_else(|_| row.try_get::<i64>("", "still_used").map(|flag| flag != 0))
                        .map_err(db_error(context))?,
                })
            })
            .collect()
    }

    /// Takes `blob_keys` off the removal queue (removed from the store, or used again).
    pub async fn forget_orphan_blobs(&self, blob_keys: &[String]) -> Result<(), Error> {
        if blob_keys.is_empty() {
            return Ok(());
        }
        let context = "forgetting removed recordings";
        let backend = self.db.get_database_backend();
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        transaction
            .execute_raw(
                backend.build(
                    Query::delete()
                        .from_table("orphan_blobs")
                        .and_where(Expr::col("blob_key").is_in(blob_keys.iter().cloned())),
                ),
            )
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }
}

/// A project's calls that took place before `before`, oldest first; with `with_audio`, only
/// those that still have a recording (`datapoints_with_audio_by_time`), else all
/// (`datapoints_by_project_occurrence`).
pub(super) fn expired_calls(
    project_id: Uuid,
    before: DateTime<Utc>,
    limit: usize,
    with_audio: bool,
) -> sea_orm::Select<datapoint::Entity> {
    let mut select = datapoint::Entity::find().filter(datapoint::Column::ProjectId.eq(project_id));
    if with_audio {
        select = select.filter(datapoint::Column::AudioId.is_not_null());
    }
    select
        .filter(datapoint::Column::OccurredAtMs.lt(to_millis(before)))
        .order_by_asc(datapoint::Column::OccurredAtMs)
        .limit(limit as u64)
}

fn call_ref(row: (Uuid, Uuid, String, String, Option<String>)) -> Result<CallRef, Error> {
    let context = "reading a call to delete";
    let (datapoint_id, project_id, provider, call_id, audio_id) = row;
    Ok(CallRef {
        datapoint_id,
        project_id,
        provider,
        call_id,
        audio_id: audio_id.as_deref().map(|id| parse_uuid(context, id)).transpose()?,
    })
}

/// Deletes every ingest of `calls` (project, provider and call id alike) with its job, and
/// returns their ids. The ingests are found by call in the dedup keys' index
/// (`ingests_unique_dedup`, m0032).
async fn call_ingests(
    connection: &impl ConnectionTrait,
    organization_id: Uuid,
    calls: &[&CallRef],
    context: &'static str,
) -> Result<Vec<Uuid>, Error> {
    let backend = connection.get_database_backend();
    let mut ids: Vec<Uuid> = Vec::new();
    for chunk in calls.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        let statement = backend.build(&ingests_of_calls(organization_id, chunk));
        for row in connection.query_all_raw(statement).await.map_err(db_error(context))? {
            ids.push(row.try_get::<Uuid>("", "id").map_err(db_error(context))?);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(ids);
    }
    for statement in [
        Query::delete()
            .from_table(ingest::Entity)
            .and_where(ingest::Column::Id.is_in(ids.iter().copied()))
            .to_owned(),
        // A job's id is its ingest's, as text.
        Query::delete()
            .from_table("jobs")
            .and_where(Expr::col("id").is_in(ids.iter().map(Uuid::to_string)))
            .to_owned(),
    ] {
        connection.execute_raw(backend.build(&statement)).await.map_err(db_error(context))?;
    }
    Ok(ids)
}

/// The ids of the organization's ingests of `calls`: the calls a `VALUES` list joined to
/// `ingests_unique_dedup` by project, call id and provider, a seek each.
pub(super) fn ingests_of_calls(
    organization_id: Uuid,
    calls: &[&CallRef],
) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::ValueTuple;
    let mut select = Query::select();
    select
        .column((ingest::Entity, ingest::Column::Id))
        .from(ingest::Entity)
        .and_where(Expr::col((ingest::Entity, ingest::Column::OrganizationId)).eq(organization_id));
    super::join_keys(
        &mut select,
        ingest::Entity,
        &[ingest::Column::ProjectId, ingest::Column::CallId, ingest::Column::Provider],
        calls
            .iter()
            .map(|call| {
                ValueTuple::Three(
                    call.project_id.into(),
                    call.call_id.as_str().into(),
                    call.provider.as_str().into(),
                )
            })
            .collect(),
    );
    select
}

/// Clears the request and body of the webhook deliveries of `ingest_ids` that still keep them
/// (`deliveries_by_ingest`), keeping their hashes (`deliveries::clear_bodies`); returns how
/// many.
async fn forget_ingests(
    connection: &impl ConnectionTrait,
    ingest_ids: &[Uuid],
    context: &'static str,
) -> Result<u64, Error> {
    if ingest_ids.is_empty() {
        return Ok(0);
    }
    super::deliveries::clear_bodies(connection, kept_bodies(ingest_ids), context).await
}

/// The deliveries of `ingest_ids` that keep their bodies, for `forget_ingests`
/// (`deliveries_by_ingest`).
pub(super) fn kept_bodies(ingest_ids: &[Uuid]) -> sea_orm::sea_query::SelectStatement {
    use super::entities::webhook_delivery;
    Query::select()
        .column(webhook_delivery::Column::Id)
        .from(webhook_delivery::Entity)
        .cond_where(super::deliveries::by_ingests(ingest_ids))
        .and_where(webhook_delivery::Column::Body.is_not_null())
        .to_owned()
}

/// The recordings among `audio_ids` some datapoint names (`datapoints_by_audio`).
pub(super) fn named_recordings(audio_ids: &HashSet<String>) -> sea_orm::Select<datapoint::Entity> {
    datapoint::Entity::find()
        .select_only()
        .column(datapoint::Column::AudioId)
        .distinct()
        .filter(datapoint::Column::AudioId.is_in(audio_ids.iter().cloned()))
}

/// The statement of `Storage::due_orphan_blobs` (`orphan_blobs_by_due`, then
/// `audio_objects_by_sha256` for each).
pub(super) fn due_blobs(now: DateTime<Utc>, limit: usize) -> sea_orm::sea_query::SelectStatement {
    let used = Query::select()
        .expr(Expr::val(1))
        .from(audio_object::Entity)
        .and_where(
            Expr::col((audio_object::Entity, audio_object::Column::Sha256))
                .equals(("orphan_blobs", "sha256")),
        )
        .to_owned();
    Query::select()
        .column(("orphan_blobs", "blob_key"))
        .expr_as(Expr::exists(used), "still_used")
        .from("orphan_blobs")
        .and_where(Expr::col(("orphan_blobs", "due_at_ms")).lte(to_millis(now)))
        .order_by(("orphan_blobs", "due_at_ms"), sea_orm::sea_query::Order::Asc)
        .limit(limit as u64)
        .to_owned()
}

/// Of the recordings `calls` named, deletes the audio objects no datapoint names any more and
/// queues their blobs for removal at `due`; returns how many.
async fn drop_unused_recordings(
    connection: &impl ConnectionTrait,
    calls: &[&CallRef],
    due: DateTime<Utc>,
    backend: DbBackend,
    context: &'static str,
) -> Result<u64, Error> {
    let audio_ids: HashSet<String> =
        calls.iter().filter_map(|call| call.audio_id).map(|id| id.to_string()).collect();
    if audio_ids.is_empty() {
        return Ok(0);
    }
    // Still named by another call (`datapoints_by_audio`).
    let used: HashSet<String> = named_recordings(&audio_ids)
        .into_tuple::<Option<String>>()
        .all(connection)
        .await
        .map_err(db_error(context))?
        .into_iter()
        .flatten()
        .collect();
    let unused: Vec<String> = audio_ids.difference(&used).cloned().collect();
    if unused.is_empty() {
        return Ok(0);
    }
    let gone = connection
        .query_all_raw(
            backend.build(
                Query::delete()
                    .from_table(audio_object::Entity)
                    .and_where(audio_object::Column::Id.is_in(unused))
                    .returning(ReturningClause::Columns(vec![
                        audio_object::Column::BlobKey.into_column_ref(),
                        audio_object::Column::Sha256.into_column_ref(),
                    ])),
            ),
        )
        .await
        .map_err(db_error(context))?;
    let mut queue = Query::insert();
    queue
        .into_table("orphan_blobs")
        .columns(["blob_key", "sha256", "due_at_ms"])
        .on_conflict(OnConflict::column("blob_key").update_column("due_at_ms").to_owned());
    for row in &gone {
        let blob_key: String = row.try_get("", "blob_key").map_err(db_error(context))?;
        let sha256: String = row.try_get("", "sha256").map_err(db_error(context))?;
        queue.values_panic([blob_key.into(), sha256.into(), to_millis(due).into()]);
    }
    if !gone.is_empty() {
        connection.execute_raw(backend.build(&queue)).await.map_err(db_error(context))?;
    }
    Ok(gone.len() as u64)
}

const DELETION_COLUMNS: [&str; 12] = [
    "id",
    "organization_id",
    "project_id",
    "actor",
    "reason",
    "filter_json",
    "requested_at_ms",
    "finished_at_ms",
    "datapoints",
    "ingests",
    "delivery_bodies",
    "recordings",
];

/// Inserts the audit record, or adds `removed` to it and sets its finish time.
async fn record_deletion(
    connection: &impl ConnectionTrait,
    deletion: &Deletion,
    removed: Removed,
    backend: DbBackend,
    context: &'static str,
) -> Result<(), Error> {
    let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let mut on_conflict = OnConflict::column("id");
    for column in ["datapoints", "ingests", "delivery_bodies", "recordings"] {
        on_conflict.value(
            column,
            Expr::cust(format!(r#""deletions"."{column}" + "excluded"."{column}""#)),
        );
    }
    on_conflict.update_column("finished_at_ms");
    let statement = Query::insert()
        .into_table("deletions")
        .columns(DELETION_COLUMNS)
        .values_panic([
            deletion.id.to_string().into(),
            deletion.organization_id.to_string().into(),
            deletion.project_id.map(|id| id.to_string()).into(),
            deletion.actor.clone().into(),
            deletion.reason.as_str().into(),
            deletion.filter.to_string().into(),
            to_millis(deletion.requested_at).into(),
            deletion.finished_at.map(to_millis).into(),
            count(removed.datapoints).into(),
            count(removed.ingests).into(),
            count(removed.delivery_bodies).into(),
            count(removed.recordings).into(),
        ])
        .on_conflict(on_conflict)
        .to_owned();
    connection.execute_raw(backend.build(&statement)).await.map_err(db_error(context))?;
    Ok(())
}

fn deletion_from_row(row: &sea_orm::QueryResult, context: &'static str) -> Result<Deletion, Error> {
    let text = |column: &str| row.try_get::<String>("", column).map_err(db_error(context));
    let number = |column: &str| row.try_get::<i64>("", column).map_err(db_error(context));
    let count = |column: &str| number(column).map(|value| u64::try_from(value).unwrap_or(0));
    Ok(Deletion {
        id: parse_uuid(context, &text("id")?)?,
        organization_id: parse_uuid(context, &text("organization_id")?)?,
        project_id: row
            .try_get::<Option<String>>("", "project_id")
            .map_err(db_error(context))?
            .as_deref()
            .map(|id| parse_uuid(context, id))
            .transpose()?,
        actor: text("actor")?,
        reason: DeletionReason::parse(&text("reason")?)
            .ok_or_else(|| Error::internal(context, "unknown deletion reason"))?,
        filter: serde_json::from_str(&text("filter_json")?)
            .map_err(|error| Error::internal(context, error))?,
        requested_at: from_millis(number("requested_at_ms")?),
        finished_at: row
            .try_get::<Option<i64>>("", "finished_at_ms")
            .map_err(db_error(context))?
            .map(from_millis),
        removed: Removed {
            datapoints: count("datapoints")?,
            ingests: count("ingests")?,
            delivery_bodies: count("delivery_bodies")?,
            recordings: count("recordings")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{TimeZone, Utc};
    use sea_orm::QueryTrait;
    use uuid::Uuid;

    use crate::storage::ingest_tests::sqlite_plan;

    /// Every statement of a deletion, of retention and of the audio store's sweep reads its
    /// rows through an index (SQLite's plan), so each costs what it touches, not what is
    /// stored.
    #[tokio::test]
    async fn lifecycle_statements_are_read_through_indexes() {
        let storage = crate::storage::testing::storage().await;
        let backend = sea_orm::DbBackend::Sqlite;
        if storage.db.get_database_backend() != backend {
            return;
        }
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        let call = |call_id: &str| crate::model::lifecycle::CallRef {
            datapoint_id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            provider: "retell".to_owned(),
            call_id: call_id.to_owned(),
            audio_id: None,
        };
        let calls = [call("call-1"), call("call-2")];
        let audio: HashSet<String> =
            [Uuid::now_v7(), Uuid::now_v7()].map(|id| id.to_string()).into();
        let cases = [
            (
                "expired calls",
                super::expired_calls(Uuid::now_v7(), now, 500, false).build(backend),
                "datapoints_by_project_occurrence",
            ),
            (
                "expired recordings",
                super::expired_calls(Uuid::now_v7(), now, 500, true).build(backend),
                "datapoints_with_audio_by_time",
            ),
            (
                "ingests of calls",
                backend.build(&super::ingests_of_calls(Uuid::now_v7(), &[&calls[0], &calls[1]])),
                "ingests_unique_dedup",
            ),
            (
                "delivery bodies",
                backend.build(&super::kept_bodies(&[Uuid::now_v7(), Uuid::now_v7()])),
                "deliveries_by_ingest",
            ),
            (
                "named recordings",
                super::named_recordings(&audio).build(backend),
                "datapoints_by_audio",
            ),
            ("due recordings", backend.build(&super::due_blobs(now, 500)), "orphan_blobs_by_due"),
        ];
        for (name, statement, index) in cases {
            let plan = sqlite_plan(&storage, statement).await;
            // A `VALUES` list of keys is read whole, each key a seek.
            let mut steps = plan.iter().filter(|step| !step.ends_with("-ROW VALUES CLAUSE"));
            assert!(steps.all(|step| !step.starts_with("SCAN ")), "{name}: a scan: {plan:?}");
            assert!(
                plan.iter().any(|step| step.contains(&format!("INDEX {index} "))),
                "{name}: {index} unused: {plan:?}"
            );
        }
        // Each due recording is looked up among the audio objects by its bytes.
        let plan = sqlite_plan(&storage, backend.build(&super::due_blobs(now, 500))).await;
        assert!(
            plan.iter().any(|step| step.contains("INDEX audio_objects_by_sha256 ")),
            "{plan:?}"
        );
    }
}
