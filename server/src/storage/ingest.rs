//! Ingests, with their jobs (one per ingest, sharing its id, written through `jobs::queue` in
//! the same transactions), and audio objects.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::datapoints::{IntakeCall, store_at_intake};
use super::entities::{audio_object, ingest};
use super::intake_log::LoggedWrite;
use super::{Storage, db_error, parse_uuid};
use crate::audio::AudioProperties;
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::jobs::{ClaimedJob, JobPayload, JobStatus, queue};
use crate::model::commit::IngestWrite;
use crate::model::conversation::{Conversation, Source};
use crate::model::ingest::{AudioObject, IngestOutcome, IngestRecord, IngestState, NewIngest};

/// The stored form of an ingest's conversation. A shipped version is never changed: the JSON of
/// each is pinned by `storage/stored_formats_tests.rs`, and a change to `Conversation` that
/// alters it gets a new version here instead.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub(super) enum StoredConversation {
    #[serde(rename = "1")]
    V1(Conversation),
}

/// `StoredConversation` borrowed, for writing without a copy.
#[derive(Serialize)]
#[serde(tag = "version")]
enum StoredConversationRef<'a> {
    #[serde(rename = "1")]
    V1(&'a Conversation),
}

/// An `IngestWrite` as the rows it inserts, built before the write turn (payloads serialized,
/// bodies compressed, ids spelled out) by the request that submits it, so that the single
/// writer spends its turn in the database only. Whether an ingest is a repeat, and so what its
/// delivery's verdict is, is decided in the turn.
#[derive(Debug)]
pub struct PreparedWrite {
    audio_objects: Vec<audio_object::ActiveModel>,
    ingests: Vec<PreparedIngest>,
    delivery: Option<super::entities::webhook_delivery::ActiveModel>,
}

/// An ingest's row and what stores its call: its job, or its datapoint at intake.
#[derive(Debug)]
struct PreparedIngest {
    id: Uuid,
    project_id: Uuid,
    dedup_key: String,
    /// The call `ingests_unique_dedup` holds the key under (m0032).
    call_id: String,
    provider: String,
    model: ingest::ActiveModel,
    work: Work,
}

/// How an ingest's call becomes its datapoint.
#[derive(Debug)]
enum Work {
    /// A job for the workers. The conversation travels with the job (`input_json`), which
    /// leaves the queue when its datapoint is stored, so a call's content is not kept twice.
    Job(Box<queue::NewJob>),
    /// A transcript-only conversation merged into its datapoint in the commit that stores the
    /// ingest, which is done from the start (`ingest.transcripts_at_intake`).
    AtIntake(Box<IntakeCall>),
}

/// Rows of the intake log read and prepared for storing (`Storage::read_intake_log`).
#[derive(Debug, Default)]
pub struct LogBatch {
    /// The last row read, readable or not (the `after_id` of the next batch).
    pub last_id: i64,
    rows: Vec<LogRow>,
    /// Rows that could not be read, by id, with why. They are kept, not deleted: what they
    /// hold was acknowledged.
    unreadable: Vec<(i64, Error)>,
}

/// One row of the intake log, read and prepared.
#[derive(Debug)]
struct LogRow {
    id: i64,
    /// Requests in the row.
    requests: usize,
    prepared: Vec<PreparedWrite>,
    /// The key and id of each ingest of the row.
    keys: Vec<((Uuid, String), Uuid)>,
}

impl LogRow {
    /// Row `id` of the intake log, `encoded` as stored, decoded and its writes prepared.
    fn read(
        id: i64,
        requests: usize,
        encoded: &[u8],
        settings: IntakeSettings,
    ) -> Result<Self, Error> {
        let mut row = Self { id, requests, prepared: Vec::new(), keys: Vec::new() };
        for (write, acknowledged_at) in super::intake_log::decode_row(encoded)? {
            row.keys.extend(
                write
                    .ingests
                    .iter()
                    .map(|ingest| ((ingest.project_id, ingest.dedup_key.clone()), ingest.id)),
            );
            row.prepared.push(PreparedWrite::new(write, settings, acknowledged_at)?);
        }
        Ok(row)
    }
}

impl LogBatch {
    /// No row was read, readable or not: the log after `after_id` is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.unreadable.is_empty()
    }

    /// Requests in the readable rows.
    pub fn requests(&self) -> usize {
        self.rows.iter().map(|row| row.requests).sum()
    }

    /// The ids of the readable rows.
    pub fn row_ids(&self) -> Vec<i64> {
        self.rows.iter().map(|row| row.id).collect()
    }

    /// Each readable row as a batch of its own, to store the rows a failed batch held apart
    /// from the one that failed it.
    pub fn into_rows(self) -> Vec<LogBatch> {
        self.rows
            .into_iter()
            .map(|row| LogBatch { last_id: row.id, rows: vec![row], unreadable: Vec::new() })
            .collect()
    }
}

/// What a batch of the intake log stored (`Storage::store_intake_log`).
#[derive(Debug, Default)]
pub struct Expanded {
    /// Requests whose writes were stored.
    pub requests: usize,
    /// Datapoints stored with their ingests.
    pub datapoints: usize,
    /// Jobs queued for the workers.
    pub jobs: usize,
}

impl Expanded {
    pub fn add(&mut self, other: &Expanded) {
        self.requests += other.requests;
        self.datapoints += other.datapoints;
        self.jobs += other.jobs;
    }
}

/// What storing intake log rows did (`Storage::store_intake_log`).
#[derive(Debug, Default)]
pub struct StoredLog {
    pub expanded: Expanded,
    /// Rows that could not be read or stored, by id, with why: kept in the log.
    pub failed: Vec<(i64, Error)>,
}

/// What one request's write stored.
#[derive(Debug)]
pub struct Committed {
    /// One per ingest, in order.
    pub outcomes: Vec<IngestOutcome>,
    /// Datapoints stored with their ingests (`transcripts_at_intake`).
    pub datapoints: usize,
    /// Jobs queued for the workers.
    pub jobs: usize,
}

/// Whether transcript-only conversations are stored as datapoints at intake, and the attempts
/// a job gets.
#[derive(Clone, Copy, Debug)]
pub struct IntakeSettings {
    pub max_attempts: i32,
    pub transcripts_at_intake: bool,
}

impl PreparedWrite {
    pub fn new(
        write: IngestWrite,
        settings: IntakeSettings,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let context = "committing ingests";
        // The delivery's kept body, for the first ingest's datapoint: the one its row links
        // (`deliveries::set_outcome`), which is how the body's retention finds that datapoint
        // (`documents::detach_documents`).
        let mut base = write.delivery.as_ref().and_then(|delivery| {
            delivery.body.as_ref().map(|body| (delivery.record.id, body.clone()))
        });
        Ok(Self {
            audio_objects: write.audio_objects.iter().map(audio_object_model).collect(),
            delivery: write.delivery.as_ref().map(super::deliveries::delivery_model).transpose()?,
            ingests: write
                .ingests
                .into_iter()
                .map(|new| {
                    let base = base.take();
                    let mut model = ingest_model(&new, now);
                    let call_id = new.conversation.call_id.clone();
                    let provider = new.conversation.provider.clone();
                    let work = if settings.transcripts_at_intake && new.conversation.audio.is_none()
                    {
                        let call = IntakeCall::new(
                            new.id,
                            new.organization_id,
                            new.project_id,
                            new.conversation,
                            base,
                            now,
                        )?;
                        // Its row names no datapoint: the one it makes has its id
                        // (`stored_datapoint_id`); one it merges into is named below.
                        model.state = Set(IngestState::Done.as_str().to_owned());
                        model.attempts = Set(1);
                        Work::AtIntake(Box::new(call))
                    } else {
                        let conversation =
                            serde_json::to_string(&StoredConversationRef::V1(&new.conversation))
                                .map_err(|error| Error::internal(context, error))?;
                        let payload = JobPayload::IngestV1 { ingest_id: new.id };
                        Work::Job(Box::new(
                            queue::new_job(
                                new.id,
                                &payload,
                                Some(conversation),
                                settings.max_attempts,
                                now,
                            )
                            .map_err(|error| Error::internal(context, error))?,
                        ))
                    };
                    Ok(PreparedIngest {
                        id: new.id,
                        project_id: new.project_id,
                        dedup_key: new.dedup_key,
                        call_id,
                        provider,
                        model,
                        work,
                    })
                })
                .collect::<Result<_, Error>>()?,
        })
    }

    /// What `outcomes` (this write's, from `commit_prepared_writes`) stored: datapoints with
    /// their ingests, and jobs for the workers.
    pub fn committed(&self, outcomes: Vec<IngestOutcome>) -> Committed {
        let created = |wanted: fn(&Work) -> bool| {
            self.ingests
                .iter()
                .zip(&outcomes)
                .filter(|(ingest, outcome)| {
                    wanted(&ingest.work) && matches!(outcome, IngestOutcome::Created(_))
                })
                .count()
        };
        Committed {
            datapoints: created(|work| matches!(work, Work::AtIntake(_))),
            jobs: created(|work| matches!(work, Work::Job(_))),
            outcomes,
        }
    }

    /// Ingests in the write (a write with none only records a delivery).
    pub fn ingest_count(&self) -> usize {
        self.ingests.len()
    }
}

impl Storage {
    /// Commits several requests' writes in one transaction (group commit). For each request,
    /// one outcome per ingest: created, or a duplicate of an earlier ingest with the same key
    /// (stored before, or earlier in this group). A statement per table and chunk, not per
    /// ingest: the single writer spends its time in the database, not waiting on round trips.
    pub async fn commit_ingest_writes(
        &self,
        writes: &[&IngestWrite],
        settings: IntakeSettings,
        now: DateTime<Utc>,
    ) -> Result<Vec<Vec<IngestOutcome>>, Error> {
        let prepared = writes
            .iter()
            .map(|write| PreparedWrite::new((*write).clone(), settings, now))
            .collect::<Result<Vec<_>, _>>()?;
        self.commit_prepared_writes(&prepared.iter().collect::<Vec<_>>()).await
    }

    /// `commit_ingest_writes` of writes prepared beforehand (`PreparedWrite::new`).
    pub async fn commit_prepared_writes(
        &self,
        writes: &[&PreparedWrite],
    ) -> Result<Vec<Vec<IngestOutcome>>, Error> {
        let (outcomes, _, durable) = self.commit_group_unsynced(writes, &[]).await?;
        durable.wait().await.map_err(db_error("committing ingests"))?;
        Ok(outcomes)
    }

    /// Commits a group: `writes` as their rows, and `logged` as one row of the intake log
    /// (`intake_log`). Returns once committed, with what tells when the commit is durable
    /// (`WriteTransaction::commit_unsynced`): nothing may be acknowledged before. The outcomes
    /// of each, in order, are what they would be had every write been stored as rows: a logged
    /// write repeated by a later one, in this group or the next, makes that one a duplicate.
    pub(super) async fn commit_group_unsynced(
        &self,
        writes: &[&PreparedWrite],
        logged: &[&LoggedWrite],
    ) -> Result<(Vec<Vec<IngestOutcome>>, Vec<Vec<IngestOutcome>>, super::Durable), Error> {
        let context = "committing ingests";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let (outcomes, logged_outcomes, created) =
            self.stage_writes(&transaction, writes, logged, true).await?;
        // Before the turn ends, so that the next group sees them.
        let logged_requests = logged.len();
        if logged_requests > 0 {
            self.pending.logged(logged_requests, created.clone());
        }
        match transaction.commit_unsynced().await {
            Ok(durable) => Ok((outcomes, logged_outcomes, durable)),
            Err(error) => {
                if logged_requests > 0 {
                    self.pending.forget(logged_requests, &created);
                }
                Err(db_error(context)(error))
            }
        }
    }

    /// The intake log's rows after `after_id`, up to `most_rows`, with their writes prepared as
    /// rows (`PreparedWrite`) for `store_intake_log`: the work of a batch that needs no turn,
    /// which can run while the previous batch is stored.
    pub async fn read_intake_log(
        &self,
        after_id: i64,
        most_rows: u64,
        skip: &[i64],
        settings: IntakeSettings,
    ) -> Result<LogBatch, Error> {
        use sea_orm::sea_query::{Alias, ExprTrait, Query};
        let context = "reading the intake log";
        let mut select = Query::select()
            .columns([Alias::new("id"), Alias::new("requests"), Alias::new("writes")])
            .from(Alias::new("intake_log"))
            .and_where(Expr::col(Alias::new("id")).gt(after_id))
            .order_by(Alias::new("id"), sea_orm::Order::Asc)
            .limit(most_rows)
            .to_owned();
        if !skip.is_empty() {
            select.and_where(Expr::col(Alias::new("id")).is_not_in(skip.iter().copied()));
        }
        let rows = self
            .db
            .query_all_raw(self.db.get_database_backend().build(&select))
            .await
            .map_err(db_error(context))?;
        let mut batch = LogBatch { last_id: after_id, ..LogBatch::default() };
        for row in &rows {
            let id: i64 = row.try_get("", "id").map_err(db_error(context))?;
            batch.last_id = id;
            let count: i32 = row.try_get("", "requests").map_err(db_error(context))?;
            let encoded: Vec<u8> = row.try_get("", "writes").map_err(db_error(context))?;
            match LogRow::read(id, usize::try_from(count).unwrap_or(0), &encoded, settings) {
                Ok(row) => batch.rows.push(row),
                Err(error) => batch.unreadable.push((id, error)),
            }
        }
        Ok(batch)
    }

    /// Stores a batch of the intake log (`read_intake_log`) and deletes its rows, in one
    /// transaction; returns what it stored. When that fails and the batch has several rows,
    /// each is stored by itself, so that one row that cannot be stored does not hold up the
    /// others. The rows that could not be read, and those that failed alone, are returned
    /// with why, kept in the log.
    pub async fn store_intake_log(&self, mut batch: LogBatch) -> StoredLog {
        let mut stored = StoredLog {
            expanded: Expanded::default(),
            failed: std::mem::take(&mut batch.unreadable),
        };
        if batch.rows.len() > 1 {
            match self.store_log_rows(&batch).await {
                Ok(expanded) => {
                    stored.expanded = expanded;
                    return stored;
                }
                Err(error) => error.log_if_internal(),
            }
        }
        for row in batch.into_rows() {
            match self.store_log_rows(&row).await {
                Ok(expanded) => stored.expanded.add(&expanded),
                Err(error) => stored.failed.push((row.last_id, error)),
            }
        }
        stored
    }

    async fn store_log_rows(&self, batch: &LogBatch) -> Result<Expanded, Error> {
        use sea_orm::sea_query::{Alias, ExprTrait, Query};
        let context = "storing the intake log";
        if batch.rows.is_empty() {
            return Ok(Expanded::default());
        }
        let prepared: Vec<&PreparedWrite> =
            batch.rows.iter().flat_map(|row| &row.prepared).collect();
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let (outcomes, _, _) = self.stage_writes(&transaction, &prepared, &[], false).await?;
        let delete = Query::delete()
            .from_table(Alias::new("intake_log"))
            .and_where(Expr::col(Alias::new("id")).is_in(batch.row_ids()))
            .to_owned();
        transaction.execute(&delete).await.map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))?;
        for row in &batch.rows {
            self.pending.forget(row.requests, &row.keys);
        }
        let mut expanded = Expanded { requests: batch.requests(), ..Expanded::default() };
        for (write, outcomes) in prepared.iter().zip(outcomes) {
            let committed = write.committed(outcomes);
            expanded.datapoints += committed.datapoints;
            expanded.jobs += committed.jobs;
        }
        Ok(expanded)
    }

    /// Stores the whole intake log, its oldest rows first, and deletes what it stored; returns
    /// how many requests' writes it stored, and the rows it could not read or store (kept).
    pub async fn expand_whole_intake_log(
        &self,
        settings: IntakeSettings,
    ) -> Result<StoredLog, Error> {
        let mut whole = StoredLog::default();
        let mut after_id = 0;
        loop {
            let batch = self.read_intake_log(after_id, 64, &[], settings).await?;
            if batch.is_empty() {
                return Ok(whole);
            }
            after_id = batch.last_id;
            let stored = self.store_intake_log(batch).await;
            whole.expanded.add(&stored.expanded);
            whole.failed.extend(stored.failed);
        }
    }

    /// What `/metrics` reports of the work not done yet: the queue as the database has it, and
    /// the requests in the intake log not stored yet.
    pub async fn backlog(&self, now: DateTime<Utc>) -> Result<crate::metrics::QueueState, Error> {
        let mut state = self.queue().state(now).await.map_err(db_error("reading the queue"))?;
        state.intake_log_requests = self.pending.requests() as u64;
        Ok(state)
    }

    /// Stages a group's rows in `transaction`: `writes` as their rows, `logged` as one row of
    /// the intake log. Repeats are found among stored ingests, earlier writes of the group, and,
    /// with `with_pending`, logged writes not stored yet. Returns the outcomes of `writes` and
    /// of `logged`, and the keys the logged writes stored first.
    #[allow(clippy::type_complexity)]
    async fn stage_writes(
        &self,
        transaction: &super::WriteTransaction,
        writes: &[&PreparedWrite],
        logged: &[&LoggedWrite],
        with_pending: bool,
    ) -> Result<
        (Vec<Vec<IngestOutcome>>, Vec<Vec<IngestOutcome>>, Vec<((Uuid, String), Uuid)>),
        Error,
    > {
        let context = "committing ingests";
        let objects: Vec<&audio_object::ActiveModel> =
            writes.iter().flat_map(|write| &write.audio_objects).collect();
        for chunk in objects.chunks(super::INSERT_CHUNK_ROWS) {
            audio_object::Entity::insert_many(chunk.iter().map(|model| (*model).clone()))
                .on_conflict_do_nothing_on([
                    audio_object::Column::ProjectId,
                    audio_object::Column::Sha256,
                ])
                .exec_without_returning(transaction)
                .await
                .map_err(db_error("storing audio objects"))?;
        }
        let probes: Vec<DedupProbe<'_>> = writes
            .iter()
            .flat_map(|write| &write.ingests)
            .map(|new| DedupProbe {
                project_id: new.project_id,
                call_id: &new.call_id,
                provider: &new.provider,
                key: &new.dedup_key,
            })
            .chain(logged.iter().flat_map(|write| &write.keys).map(|logged| DedupProbe {
                project_id: logged.project_id,
                call_id: &logged.call_id,
                provider: &logged.provider,
                key: &logged.dedup_key,
            }))
            .collect();
        let mut known = stored_dedup_keys(transaction, &probes).await?;
        let keys: Vec<(Uuid, &str)> =
            probes.iter().map(|probe| (probe.project_id, probe.key)).collect();
        if with_pending {
            self.pending.fill(&keys, &mut known);
        }
        let mut results = Vec::with_capacity(writes.len());
        let mut ingests = Vec::new();
        let mut jobs = Vec::new();
        // Ingests whose datapoints this commit stores: their index in `ingests`, and the call.
        let mut at_intake = Vec::new();
        let mut deliveries = Vec::new();
        for write in writes {
            let mut outcomes = Vec::with_capacity(write.ingests.len());
            for new in &write.ingests {
                let key = (new.project_id, new.dedup_key.clone());
                if let Some(existing) = known.get(&key) {
                    outcomes.push(IngestOutcome::Duplicate(*existing));
                    continue;
                }
                known.insert(key, new.id);
                match &new.work {
                    Work::Job(job) => jobs.push((**job).clone()),
                    Work::AtIntake(call) => at_intake.push((ingests.len(), &**call)),
                }
                ingests.push(new.model.clone());
                outcomes.push(IngestOutcome::Created(new.id));
            }
            if let Some(delivery) = &write.delivery {
                let mut delivery = delivery.clone();
                if let Some(outcome) = outcomes.first() {
                    super::deliveries::set_outcome(&mut delivery, *outcome);
                }
                deliveries.push(delivery);
            }
            results.push(outcomes);
        }
        let mut logged_results = Vec::with_capacity(logged.len());
        let mut created = Vec::new();
        for write in logged {
            let outcomes = write
                .keys
                .iter()
                .map(|logged| {
                    let key = (logged.project_id, logged.dedup_key.clone());
                    if let Some(existing) = known.get(&key) {
                        return IngestOutcome::Duplicate(*existing);
                    }
                    known.insert(key.clone(), logged.id);
                    created.push((key, logged.id));
                    IngestOutcome::Created(logged.id)
                })
                .collect();
            logged_results.push(outcomes);
        }
        let mut batch = super::Batch::new(transaction.get_database_backend());
        if !at_intake.is_empty() {
            let calls: Vec<&IntakeCall> = at_intake.iter().map(|(_, call)| *call).collect();
            let stored =
                store_at_intake(transaction, &calls, &mut batch, "storing datapoints").await?;
            for ((index, call), datapoint_id) in at_intake.iter().zip(stored) {
                // Merged into a datapoint stored before, or earlier in this group: named. A
                // fresh datapoint has the ingest's id (`call.fresh_id()`), named by none.
                if datapoint_id != call.fresh_id() {
                    ingests[*index].datapoint_id = Set(Some(datapoint_id));
                }
            }
        }
        batch.insert_rows(ingests, None);
        batch.insert_rows(deliveries, None);
        if !logged.is_empty() {
            batch.insert_values(
                "intake_log",
                ["logged_at_ms", "requests", "writes"],
                vec![[
                    super::intake_log::logged_at_ms(logged).into(),
                    i32::try_from(logged.len()).unwrap_or(i32::MAX).into(),
                    super::intake_log::log_row(logged).into(),
                ]],
            );
        }
        batch.execute(transaction, context).await?;
        if !jobs.is_empty() {
            super::changes::announce_jobs(transaction).await.map_err(db_error(context))?;
        }
        queue::enqueue(transaction, jobs).await.map_err(db_error(context))?;
        Ok((results, logged_results, created))
    }

    /// The ingest a claimed job processes, with its conversation (`load_ingests`).
    pub async fn load_ingest(
        &self,
        job: &ClaimedJob,
    ) -> Result<Option<(IngestRecord, Conversation)>, Error> {
        Ok(self.load_ingests(std::slice::from_ref(job)).await?.pop())
    }

    /// The ingests claimed jobs process, in one query, each with its conversation: the input
    /// its job carries, or for an ingest written before jobs carried it, the copy in the
    /// ingest's row. Ingests not found are left out, and so are done ones (a done ingest's
    /// conversation lives in its datapoint).
    pub async fn load_ingests(
        &self,
        jobs: &[ClaimedJob],
    ) -> Result<Vec<(IngestRecord, Conversation)>, Error> {
        let context = "loading ingests";
        let inputs: HashMap<Uuid, Option<&str>> = jobs
            .iter()
            .filter_map(|job| Some((job.payload.ingest_id()?, job.input.as_deref())))
            .collect();
        let ids: Vec<Uuid> = inputs.keys().copied().collect();
        let mut loaded = Vec::with_capacity(jobs.len());
        for chunk in ids.chunks(500) {
            let models = ingest::Entity::find()
                .filter(ingest::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await
                .map_err(db_error(context))?;
            for model in models {
                if model.state == IngestState::Done.as_str() {
                    continue;
                }
                let stored =
                    inputs.get(&model.id).copied().flatten().unwrap_or(&model.payload_json);
                let StoredConversation::V1(conversation) = serde_json::from_str(stored)
                    .map_err(|error| Error::internal(context, error))?;
                loaded.push((ingest_from_model(model)?, conversation));
            }
        }
        Ok(loaded)
    }

    /// `attempts` is the claimed job's count, this attempt included. A commit of its own: the
    /// pipeline marks only jobs with slow stages (a download, transcription), since a job that
    /// ends in milliseconds goes from queued to done in its finishing transaction.
    pub async fn mark_ingest_processing(
        &self,
        id: Uuid,
        attempts: i32,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "marking an ingest processing";
        ingest::Entity::update_many()
            .col_expr(ingest::Column::State, Expr::value(IngestState::Processing.as_str()))
            .col_expr(ingest::Column::Attempts, Expr::value(attempts))
            .col_expr(ingest::Column::UpdatedAtMs, Expr::value(to_millis(now)))
            .filter(ingest::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(db_error(context))?;
        Ok(())
    }

    /// Audio-only conversation waiting for transcription: visible, kept, not retried.
    pub async fn park_ingest(
        &self,
        job_id: Uuid,
        ingest_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "parking an ingest";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        queue::set_status(&transaction, job_id, JobStatus::Parked, None, "", now)
            .await
            .map_err(db_error(context))?;
        let change = IngestChange::to(IngestState::AwaitingTranscription);
        set_ingest_state(&transaction, ingest_id, change, now, context).await?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// Records a failed attempt: queued again at `retry_at`, or dead when None, with a
    /// `call.failed` event for the endpoints that want it in the same transaction. `input` is
    /// the job's copy of the conversation, when it has one (else the ingest's is read).
    #[allow(clippy::too_many_arguments)] // the job, its ingest and the attempt's outcome
    pub async fn fail_job(
        &self,
        job_id: Uuid,
        ingest_id: Uuid,
        input: Option<&str>,
        attempts: i32,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "recording a failed job";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        if retry_at.is_none() {
            let model = ingest::Entity::find_by_id(ingest_id)
                .filter(ingest::Column::State.ne(IngestState::Done.as_str()))
                .one(&transaction)
                .await
                .map_err(db_error(context))?;
            if let Some(model) = model {
                let stored = input.unwrap_or(&model.payload_json);
                let conversation = match serde_json::from_str(stored) {
                    Ok(StoredConversation::V1(conversation)) => Some(conversation),
                    Err(_) => None,
                };
                let (tags, metadata) = conversation
                    .map(|conversation| (conversation.tags, conversation.metadata))
                    .unwrap_or_default();
                let call = crate::model::events::FailedCall {
                    ingest_id,
                    organization_id: model.organization_id,
                    project_id: model.project_id,
                    provider: &model.provider,
                    call_id: &model.call_id,
                    source: &model.source,
                    tags: &tags,
                    metadata: &metadata,
                    reason: error,
                    attempts,
                };
                let mut batch = super::Batch::new(transaction.get_database_backend());
                super::events::call_failed_into(&transaction, &call, &mut batch, now, context)
                    .await?;
                batch.execute(&transaction, context).await?;
            }
        }
        let (job_status, ingest_state) = match retry_at {
            Some(_) => (JobStatus::Queued, IngestState::Failed),
            None => (JobStatus::Dead, IngestState::Dead),
        };
        queue::set_status(&transaction, job_id, job_status, retry_at, error, now)
            .await
            .map_err(db_error(context))?;
        let change = IngestChange {
            state: ingest_state,
            attempts: Some(attempts),
            error,
            next_attempt_at: retry_at,
        };
        set_ingest_state(&transaction, ingest_id, change, now, context).await?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// Queues a failed or dead ingest again with a fresh attempt budget, and returns it as queued
    /// (read in the same transaction: a worker may claim it as soon as it commits); None if it
    /// is gone.
    pub async fn requeue_ingest(
        &self,
        ingest_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<IngestRecord>, Error> {
        let context = "requeueing an ingest";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        queue::requeue(&transaction, ingest_id, now).await.map_err(db_error(context))?;
        let change = IngestChange::to(IngestState::Queued);
        set_ingest_state(&transaction, ingest_id, change, now, context).await?;
        let requeued = ingest::Entity::find_by_id(ingest_id)
            .one(&transaction)
            .await
            .map_err(db_error(context))?
            .map(ingest_from_model)
            .transpose()?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(requeued)
    }

    pub async fn get_ingest(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<IngestRecord>, Error> {
        ingest::Entity::find_by_id(id)
            .filter(ingest::Column::OrganizationId.eq(organization_id))
            .one(&self.db)
            .await
            .map_err(db_error("reading an ingest"))?
            .map(ingest_from_model)
            .transpose()
    }

    /// Ingests of a project, newest first, before `before` (`ingests_listing`).
    pub async fn list_ingests(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        state: Option<IngestState>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<IngestRecord>, Error> {
        let backend = self.db.get_database_backend();
        ingests_listing(organization_id, project_id, state, before, limit, backend)
            .all(&self.db)
            .await
            .map_err(db_error("listing ingests"))?
            .into_iter()
            .map(ingest_from_model)
            .collect()
    }

    /// The ingests of one call (its project, provider and call id), newest first, at most
    /// `limit`: found by call in the dedup keys' index (`ingests_unique_dedup`, m0032).
    pub async fn call_ingests(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        provider: &str,
        call_id: &str,
        limit: usize,
    ) -> Result<Vec<IngestRecord>, Error> {
        ingests_of_call(organization_id, project_id, provider, call_id, limit)
            .all(&self.db)
            .await
            .map_err(db_error("listing a call's ingests"))?
            .into_iter()
            .map(ingest_from_model)
            .collect()
    }

    /// How many of the project's ingests are in `state`, counting no further than `cap` + 1
    /// (`ingests_waiting` for the states of ingests not done, m0034): a backlog's size costs at
    /// most that many index entries.
    pub async fn count_ingests(
        &self,
        project_id: Uuid,
        state: IngestState,
        cap: u64,
    ) -> Result<u64, Error> {
        let count = ingests_counted(project_id, state, cap);
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(backend.build(&count))
            .await
            .map_err(db_error("counting ingests"))?;
        let count = row
            .map(|row| row.try_get_by_index::<i64>(0))
            .transpose()
            .map_err(db_error("counting ingests"))?
            .unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub async fn insert_audio_object(&self, object: &AudioObject) -> Result<(), Error> {
        insert_audio_object(&self.db, object).await
    }

    pub async fn get_audio_object(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<Option<AudioObject>, Error> {
        audio_object::Entity::find_by_id(id.to_string())
            .filter(audio_object::Column::OrganizationId.eq(organization_id.to_string()))
            .filter(audio_object::Column::ProjectId.eq(project_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading an audio object"))?
            .map(audio_object_from_model)
            .transpose()
    }

    pub async fn get_audio_objects(&self, ids: Vec<String>) -> Result<Vec<AudioObject>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        audio_object::Entity::find()
            .filter(audio_object::Column::Id.is_in(ids))
            .all(&self.db)
            .await
            .map_err(db_error("reading audio objects"))?
            .into_iter()
            .map(audio_object_from_model)
            .collect()
    }

    pub async fn update_audio_probe(&self, id: Uuid, probe: &AudioProperties) -> Result<(), Error> {
        audio_object::Entity::update_many()
            .col_expr(audio_object::Column::DurationMs, Expr::value(probe.duration_ms))
            .col_expr(
                audio_object::Column::Channels,
                Expr::value(probe.channels.map(|value| value as i32)),
            )
            .col_expr(
                audio_object::Column::SampleRateHz,
                Expr::value(probe.sample_rate_hz.map(|value| value as i32)),
            )
            .filter(audio_object::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error("recording audio properties"))?;
        Ok(())
    }
}

/// What a job's outcome writes on its ingest.
#[derive(Clone, Copy, Debug)]
pub(super) struct IngestChange<'a> {
    pub state: IngestState,
    /// The job's count of attempts, this one included; None leaves it.
    pub attempts: Option<i32>,
    pub error: &'a str,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl IngestChange<'_> {
    /// `state`, nothing else.
    pub fn to(state: IngestState) -> Self {
        Self { state, attempts: None, error: "", next_attempt_at: None }
    }
}

pub(super) async fn set_ingest_state(
    connection: &impl ConnectionTrait,
    ingest_id: Uuid,
    change: IngestChange<'_>,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), Error> {
    let mut update = ingest::Entity::update_many();
    if let Some(attempts) = change.attempts {
        update = update.col_expr(ingest::Column::Attempts, Expr::value(attempts));
    }
    update
        .col_expr(ingest::Column::State, Expr::value(change.state.as_str()))
        .col_expr(ingest::Column::LastError, Expr::value(change.error))
        .col_expr(
            ingest::Column::NextAttemptAtMs,
            Expr::value(change.next_attempt_at.map(to_millis)),
        )
        .col_expr(ingest::Column::UpdatedAtMs, Expr::value(to_millis(now)))
        .filter(ingest::Column::Id.eq(ingest_id))
        // A done ingest stays done (its conversation is cleared then): a stray job that finds
        // it done fails alone.
        .filter(ingest::Column::State.ne(IngestState::Done.as_str()))
        .exec(connection)
        .await
        .map_err(db_error(context))?;
    Ok(())
}

/// A repeat's lookup: an ingest's project and content key (`model::ingest::dedup_key`), and the
/// call `ingests_unique_dedup` holds it under (m0032).
struct DedupProbe<'a> {
    project_id: Uuid,
    call_id: &'a str,
    provider: &'a str,
    key: &'a str,
}

/// The ingests already stored under `probes`' keys, by (project, content key): one query per
/// chunk, the keys a `VALUES` list joined to `ingests_unique_dedup`, so each is a seek on both
/// databases whatever their statistics (`keyed_lookups_seek_each_key`; an OR of one term per
/// key, the first form, was planned by PostgreSQL as a scan testing every term on every row).
/// Each key is looked for in both forms a row may hold (`stored_dedup_key`), and found under
/// itself.
async fn stored_dedup_keys(
    connection: &impl ConnectionTrait,
    probes: &[DedupProbe<'_>],
) -> Result<HashMap<(Uuid, String), Uuid>, Error> {
    let context = "looking up repeated ingests";
    let mut known = HashMap::with_capacity(probes.len());
    let mut content_keys: HashMap<(Uuid, &str, &str, String), &str> =
        HashMap::with_capacity(probes.len() * 2);
    for probe in probes {
        let call = |stored: String| (probe.project_id, probe.call_id, probe.provider, stored);
        content_keys.insert(call(stored_dedup_key(probe.key)), probe.key);
        // As rows written before run 22 hold it.
        content_keys.insert(call(probe.key.to_owned()), probe.key);
    }
    let lookups: Vec<(Uuid, &str, &str, &str)> = content_keys
        .keys()
        .map(|(project_id, call_id, provider, stored)| {
            (*project_id, *call_id, *provider, stored.as_str())
        })
        .collect();
    for chunk in lookups.chunks(super::INSERT_CHUNK_ROWS) {
        let statement =
            connection.get_database_backend().build(&stored_dedup_keys_statement(chunk));
        for row in connection.query_all_raw(statement).await.map_err(db_error(context))? {
            let column = |name| row.try_get::<String>("", name).map_err(db_error(context));
            let id: Uuid = row.try_get("", "id").map_err(db_error(context))?;
            let project_id: Uuid = row.try_get("", "project_id").map_err(db_error(context))?;
            let (call_id, provider) = (column("call_id")?, column("provider")?);
            let found = (project_id, call_id.as_str(), provider.as_str(), column("dedup_key")?);
            if let Some(key) = content_keys.get(&found) {
                known.insert((project_id, (*key).to_owned()), id);
            }
        }
    }
    Ok(known)
}

/// The `dedup_key` column's form of an ingest's content key (`model::ingest::dedup_key`, ~90
/// characters): the digest's first 72 bits in 12 characters of base64url (72 bits tell a
/// call's versions apart). The provider and call id it starts with are the row's own columns,
/// which `ingests_unique_dedup` holds before it (m0032); from run 22 until then the key kept
/// them in front of the digest. A key of another shape is stored as it is. Rows written before
/// run 22 hold the content key itself, and `stored_dedup_keys` looks for both.
pub(super) fn stored_dedup_key(content_key: &str) -> String {
    let digest = content_key
        .len()
        .checked_sub(64)
        .and_then(|at| Some((content_key.get(..at)?, content_key.get(at..)?)))
        .filter(|(call, _)| call.ends_with(':'))
        .and_then(|(_, hex)| data_encoding::HEXLOWER.decode(hex.as_bytes()).ok());
    match digest {
        Some(digest) => data_encoding::BASE64URL_NOPAD.encode(&digest[..9]),
        None => content_key.to_owned(),
    }
}

/// The statement of `stored_dedup_keys` for one chunk of keys: (project, call id, provider,
/// stored key), as `ingests_unique_dedup` holds them.
pub(super) fn stored_dedup_keys_statement(
    keys: &[(Uuid, &str, &str, &str)],
) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Query, ValueTuple};
    let mut select = Query::select();
    select
        .columns([
            (ingest::Entity, ingest::Column::Id),
            (ingest::Entity, ingest::Column::ProjectId),
            (ingest::Entity, ingest::Column::CallId),
            (ingest::Entity, ingest::Column::Provider),
            (ingest::Entity, ingest::Column::DedupKey),
        ])
        .from(ingest::Entity);
    super::join_keys(
        &mut select,
        ingest::Entity,
        &[
            ingest::Column::ProjectId,
            ingest::Column::CallId,
            ingest::Column::Provider,
            ingest::Column::DedupKey,
        ],
        keys.iter()
            .map(|(project_id, call_id, provider, dedup_key)| {
                ValueTuple::Many(vec![
                    (*project_id).into(),
                    (*call_id).into(),
                    (*provider).into(),
                    (*dedup_key).into(),
                ])
            })
            .collect(),
    );
    select
}

/// The query of [`Storage::count_ingests`]: up to `cap` + 1 index entries counted.
pub(super) fn ingests_counted(
    project_id: Uuid,
    state: IngestState,
    cap: u64,
) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Alias, Query};
    let mut capped = Query::select();
    capped
        .expr(Expr::val(1))
        .from(ingest::Entity)
        .and_where(ingest::Column::ProjectId.eq(project_id))
        .and_where(ingest::Column::State.eq(state.as_str()))
        .limit(cap.saturating_add(1));
    if state != IngestState::Done {
        capped.and_where(not_done());
    }
    Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(capped, Alias::new("capped"))
        .to_owned()
}

/// The query of [`Storage::list_ingests`], read in its order from an index (m0034):
/// `ingests_waiting` for a state of ingests not done, newest first by id; else
/// `ingests_by_project`, where done ingests are nearly all of them, on SQLite newest stored
/// first (by rowid, m0042), on PostgreSQL by id.
pub(super) fn ingests_listing(
    organization_id: Uuid,
    project_id: Uuid,
    state: Option<IngestState>,
    before: Option<Uuid>,
    limit: usize,
    backend: sea_orm::DbBackend,
) -> sea_orm::Select<ingest::Entity> {
    let mut query = ingest::Entity::find()
        .filter(ingest::Column::OrganizationId.eq(organization_id))
        .filter(ingest::Column::ProjectId.eq(project_id));
    let waiting = state.is_some_and(|state| state != IngestState::Done);
    if let Some(state) = state {
        query = query.filter(ingest::Column::State.eq(state.as_str()));
        if waiting {
            query = query.filter(not_done());
        }
    }
    let by_rowid = backend == sea_orm::DbBackend::Sqlite && !waiting;
    let table = sea_orm::EntityName::table_name(&ingest::Entity);
    let (order, after) = super::listing_order(table, ingest::Column::Id, by_rowid, before);
    if let Some(after) = after {
        query = query.filter(after);
    }
    query.order_by_desc(order).limit(u64::try_from(limit).unwrap_or(u64::MAX))
}

/// `state <> 'done'`, as the partial index `ingests_waiting` (m0034) is written: said outright
/// beside a state's equality, so that SQLite, which does not infer it, reads that index.
fn not_done() -> sea_orm::sea_query::SimpleExpr {
    ingest::Column::State.ne(IngestState::Done.as_str())
}

/// The ingest's row. Its conversation goes with its job (`PreparedIngest`); `payload_json`,
/// where earlier versions kept it, stays empty.
fn ingest_model(new: &NewIngest, now: DateTime<Utc>) -> ingest::ActiveModel {
    let conversation = &new.conversation;
    ingest::ActiveModel {
        id: Set(new.id),
        organization_id: Set(new.organization_id),
        project_id: Set(new.project_id),
        call_id: Set(conversation.call_id.clone()),
        context_token: Set(super::stored_context_token(
            &conversation.context_token,
            &conversation.call_id,
        )),
        provider: Set(conversation.provider.clone()),
        source: Set(conversation.source.as_str().to_owned()),
        dedup_key: Set(stored_dedup_key(&new.dedup_key)),
        state: Set(IngestState::Queued.as_str().to_owned()),
        payload_json: Set(String::new()),
        datapoint_id: Set(None),
        attempts: Set(0),
        last_error: Set(String::new()),
        next_attempt_at_ms: Set(None),
        created_at_ms: Set(to_millis(now)),
        updated_at_ms: Set(super::stored_updated_at(to_millis(now), to_millis(now))),
    }
}

async fn insert_audio_object(
    connection: &impl ConnectionTrait,
    object: &AudioObject,
) -> Result<(), Error> {
    audio_object::Entity::insert(audio_object_model(object))
        .on_conflict_do_nothing_on([audio_object::Column::ProjectId, audio_object::Column::Sha256])
        .exec_without_returning(connection)
        .await
        .map_err(db_error("storing an audio object"))?;
    Ok(())
}

fn audio_object_model(object: &AudioObject) -> audio_object::ActiveModel {
    audio_object::ActiveModel {
        id: Set(object.id.to_string()),
        organization_id: Set(object.organization_id.to_string()),
        project_id: Set(object.project_id.to_string()),
        sha256: Set(object.sha256.clone()),
        content_type: Set(object.content_type.clone()),
        size_bytes: Set(object.size_bytes),
        blob_key: Set(object.blob_key.clone()),
        duration_ms: Set(object.duration_ms),
        channels: Set(object.channels.map(|value| value as i32)),
        sample_rate_hz: Set(object.sample_rate_hz.map(|value| value as i32)),
        created_at_ms: Set(to_millis(object.created_at)),
    }
}

/// The `datapoint_id` an ingest's row stores: none when it is the ingest's own id, as it is
/// for the datapoint an ingest makes (`Datapoint::merge`'s `fresh_id`), which saves the
/// column's 16 bytes (issue 15). A done ingest that names none made the datapoint of its own id
/// (`ingest_from_model`); one merged into a call's datapoint names it.
pub(super) fn stored_datapoint_id(ingest_id: Uuid, datapoint_id: Uuid) -> Option<Uuid> {
    (datapoint_id != ingest_id).then_some(datapoint_id)
}

fn ingest_from_model(model: ingest::Model) -> Result<IngestRecord, Error> {
    let context = "reading an ingest";
    let state = IngestState::parse(&model.state)
        .ok_or_else(|| Error::internal(context, "unknown state"))?;
    let datapoint_id = model.datapoint_id.or((state == IngestState::Done).then_some(model.id));
    Ok(IngestRecord {
        id: model.id,
        organization_id: model.organization_id,
        project_id: model.project_id,
        context_token: super::read_context_token(model.context_token, &model.call_id),
        call_id: model.call_id,
        provider: model.provider,
        source: Source::parse(&model.source)
            .ok_or_else(|| Error::internal(context, "unknown source"))?,
        state,
        datapoint_id,
        attempts: model.attempts,
        last_error: model.last_error,
        next_attempt_at: model.next_attempt_at_ms.map(from_millis),
        created_at: from_millis(model.created_at_ms),
        updated_at: super::read_updated_at(model.created_at_ms, model.updated_at_ms),
    })
}

pub(super) fn audio_object_from_model(model: audio_object::Model) -> Result<AudioObject, Error> {
    let context = "reading an audio object";
    Ok(AudioObject {
        id: parse_uuid(context, &model.id)?,
        organization_id: parse_uuid(context, &model.organization_id)?,
        project_id: parse_uuid(context, &model.project_id)?,
        sha256: model.sha256,
        content_type: model.content_type,
        size_bytes: model.size_bytes,
        blob_key: model.blob_key,
        duration_ms: model.duration_ms,
        channels: model.channels.and_then(|value| u32::try_from(value).ok()),
        sample_rate_hz: model.sample_rate_hz.and_then(|value| u32::try_from(value).ok()),
        created_at: from_millis(model.created_at_ms),
    })
}

/// The query of [`Storage::call_ingests`]: the call's few ingests sought in
/// `ingests_unique_dedup` and sorted. Ordered by `created_at_ms + 0` first (the order of their
/// v7 ids), which no index gives, so that SQLite does not walk `ingests_by_project` newest first
/// to spare the sort.
pub(super) fn ingests_of_call(
    organization_id: Uuid,
    project_id: Uuid,
    provider: &str,
    call_id: &str,
    limit: usize,
) -> sea_orm::Select<ingest::Entity> {
    ingest::Entity::find()
        .filter(ingest::Column::OrganizationId.eq(organization_id))
        .filter(ingest::Column::CallId.eq(call_id))
        .filter(ingest::Column::ProjectId.eq(project_id))
        .filter(ingest::Column::Provider.eq(provider))
        .order_by_desc(sea_orm::ExprTrait::add(Expr::col(ingest::Column::CreatedAtMs), 0))
        .order_by_desc(ingest::Column::Id)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX))
}
