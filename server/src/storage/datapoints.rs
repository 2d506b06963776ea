//! Datapoints and their search.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden, IntoTableRef, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::documents::{Base, Bases, Document, DocumentRef};
use super::entities::{
    check_issue, datapoint, datapoint_metadata, datapoint_tag, monitor_datapoint,
};
use super::monitors::{EarlyEvaluation, SearchTexts};
use super::{Batch, Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::jobs::queue;
use crate::model::conversation::{Conversation, Source};
use crate::model::datapoints::{
    Datapoint, DatapointQuery, DatapointView, TextQuery, TranscriptSource, metadata_filter_text,
    verdict_text,
};
use crate::model::ingest::IngestState;

impl Storage {
    /// The datapoint of one call, if stored.
    pub async fn find_datapoint(&self, key: CallKey<'_>) -> Result<Option<Datapoint>, Error> {
        Ok(self.find_datapoints(&[key]).await?.pop())
    }

    /// The datapoints of several calls at once: one query per chunk, the keys a `VALUES` list
    /// joined on the columns of `datapoints_unique_call` alone: a seek per key on SQLite, and on
    /// PostgreSQL once a table scan costs more (`keyed_lookups_seek_each_key`,
    /// `keyed_lookups_seek_each_key_on_postgres`); the keys' organizations are checked on the
    /// rows found. An OR of one term per key, the first form, was planned by PostgreSQL as a
    /// scan testing every term on every row it read; `call_id IN (…)` kept the list out of the
    /// index condition until the table had been analyzed.
    pub async fn find_datapoints(&self, keys: &[CallKey<'_>]) -> Result<Vec<Datapoint>, Error> {
        find_datapoints_in(&self.db, keys, false, "reading datapoints").await
    }

    /// The results of finished ingest jobs, in one transaction: each datapoint (inserted or
    /// updated) with its tag and metadata rows, each ingest marked done with its job's
    /// `attempts` and its datapoint, each job taken out of the queue. A statement per table and
    /// chunk, not per job, so a batch costs one commit and a few statements whatever its size.
    /// When two results carry the same datapoint (two ingests of one call), the later is the one
    /// stored.
    pub async fn finish_ingests(
        &self,
        finished: &[FinishedIngest<'_>],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "storing datapoints";
        if finished.is_empty() {
            return Ok(());
        }
        // The rows are built before the write turn: the single writer only runs statements.
        let (mut models, mut search_rows) = datapoint_rows(finished)?;
        // Calls not stored before are evaluated before the turn too; the turn confirms the
        // monitors they were evaluated by.
        let early = if finished.iter().all(|result| result.new) {
            let datapoints: Vec<&Datapoint> =
                finished.iter().map(|result| result.datapoint).collect();
            let texts = search_rows.texts();
            Some(EarlyEvaluation::of(&self.db, &datapoints, &texts, now, context).await?)
        } else {
            None
        };
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        // A call deleted while its job ran has lost its ingests: its datapoint is not stored
        // again (on PostgreSQL the rows are locked until this commit, so a deletion waits).
        let present = present_ingests(&transaction, finished, context).await?;
        let kept: Vec<FinishedIngest<'_>>;
        let (finished, early) = if present.len() == finished.len() {
            (finished, early)
        } else {
            kept = finished
                .iter()
                .filter(|result| present.contains(&result.ingest_id))
                .copied()
                .collect();
            (models, search_rows) = datapoint_rows(&kept)?;
            (&kept[..], None)
        };
        let backend = transaction.get_database_backend();
        if backend != DbBackend::Postgres {
            // SQLite finds a call's earlier tag and metadata rows from its stored tags.
            let keys: Vec<CallKey<'_>> = finished
                .iter()
                .filter(|result| !result.new)
                .map(|result| CallKey::of(result.datapoint))
                .collect();
            if !keys.is_empty() {
                let stored = find_datapoints_in(&transaction, &keys, false, context).await?;
                search_rows.forget(&stored.iter().collect::<Vec<_>>());
            }
        }
        let mut batch = Batch::new(backend);
        write_datapoints(&mut batch, models, search_rows);
        let datapoints: Vec<&Datapoint> = finished.iter().map(|result| result.datapoint).collect();
        let stored_before: std::collections::HashSet<Uuid> = finished
            .iter()
            .filter(|result| !result.new)
            .map(|result| result.datapoint.id)
            .collect();
        let confirmed = match early {
            Some(early) => early.confirm(&transaction, context).await?,
            None => None,
        };
        let evaluated = match confirmed {
            Some((statements, evaluated)) => {
                batch.append(statements);
                evaluated
            }
            None => {
                let texts = SearchTexts::default();
                let prepared =
                    super::monitors::Prepared::read(&transaction, &datapoints, &texts, context)
                        .await?;
                super::monitors::evaluate_into(
                    &transaction,
                    prepared,
                    &stored_before,
                    &mut batch,
                    now,
                    context,
                )
                .await?
            }
        };
        let failures = &evaluated.failures;
        super::events::events_into(&transaction, &datapoints, failures, &mut batch, now, context)
            .await?;
        for chunk in finished.chunks(LOOKUP_CHUNK_KEYS) {
            batch.push(&ingests_done(chunk, now));
        }
        batch.execute(&transaction, context).await?;
        let job_ids: Vec<Uuid> = finished.iter().map(|result| result.job_id).collect();
        queue::succeed(&transaction, &job_ids).await.map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    pub async fn get_datapoint(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<DatapointView>, Error> {
        let model = datapoint::Entity::find_by_id(id)
            .filter(datapoint::Column::OrganizationId.eq(organization_id))
            .one(&self.db)
            .await
            .map_err(db_error("reading a datapoint"))?;
        Ok(self.with_audio(model.into_iter().collect()).await?.pop())
    }

    /// Datapoints matching every given filter, newest first.
    ///
    /// A transcript search first asks the full-text index alone for up to `RARE_TEXT_MATCHES`
    /// of the organization's calls that match: fewer, and the search reads just those calls
    /// (by id) and sorts them; as many, and the words are common, so the search walks its
    /// ordering index and checks each call until a page is full. Either way a page costs about
    /// a page, or the few matches, however many calls are stored.
    pub async fn search_datapoints(
        &self,
        organization_id: Uuid,
        query: &DatapointQuery,
    ) -> Result<Vec<DatapointView>, Error> {
        let text = self.narrowing(organization_id, query).await?;
        let models =
            search_page(&self.db, organization_id, query, text.as_ref(), "searching datapoints")
                .await?;
        self.with_audio(models).await
    }

    /// Datapoints matching every filter, most relevant first, each with its score (higher is
    /// better): the `RANKED_MATCHES` newest matching calls (every match, when fewer) are read
    /// with their words, scored (`TextQuery::bm25_scores`) and sorted by score, then id; the
    /// page is the ones after `query.after_relevance`. A scoring function of the full-text index
    /// (FTS5's `bm25()`) would recount every match of each word for each call probed.
    pub async fn search_by_relevance(
        &self,
        organization_id: Uuid,
        query: &DatapointQuery,
    ) -> Result<Vec<(DatapointView, f64)>, Error> {
        use crate::model::datapoints::{RANKED_MATCHES, SearchOrder};
        let context = "ranking a transcript search";
        let Some(text) = query.text_contains.as_deref().map(TextQuery::parse) else {
            return Ok(Vec::new());
        };
        let backend = self.db.get_database_backend();
        let candidates = DatapointQuery {
            page_size: RANKED_MATCHES,
            before: None,
            offset: 0,
            order: SearchOrder::NewestFirst,
            after_relevance: None,
            ..query.clone()
        };
        let filter = self.narrowing(organization_id, &candidates).await?;
        let mut rows: Vec<(Uuid, String, Option<Vec<u8>>, String)> =
            search_statement(organization_id, &candidates, filter.as_ref(), backend)
                .select_only()
                .column(datapoint::Column::Id)
                .column(datapoint::Column::TranscriptSearch)
                .column(datapoint::Column::Document)
                .column(datapoint::Column::TurnsJson)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_error(context))?;
        // Only where the words are not in the row (on SQLite) are they read from the document.
        let mut documents: Vec<(Uuid, &mut Option<Vec<u8>>)> = rows
            .iter_mut()
            .filter(|(_, words, ..)| words.is_empty())
            .map(|(id, _, document, _)| (*id, document))
            .collect();
        let bases = super::documents::current_bases(&self.db, &mut documents, context).await?;
        let texts = rows
            .iter()
            .map(|(id, words, document, turns)| {
                stored_search_text(*id, words, document.as_deref(), &bases, turns)
            })
            .collect::<Result<Vec<String>, Error>>()?;
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut scored = rows
            .iter()
            .zip(text.bm25_scores(&texts))
            .map(|((id, ..), score)| (*id, score))
            .collect::<Vec<_>>();
        scored.sort_by(|(a_id, a), (b_id, b)| b.total_cmp(a).then(b_id.cmp(a_id)));
        if let Some(cursor) = query.after_relevance {
            scored.retain(|(id, score)| cursor.precedes(*score, *id));
        }
        scored.truncate(query.page_size);
        let models = datapoint::Entity::find()
            .filter(datapoint::Column::Id.is_in(scored.iter().map(|(id, _)| *id)))
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        let mut views: std::collections::HashMap<Uuid, DatapointView> = self
            .with_audio(models)
            .await?
            .into_iter()
            .map(|view| (view.datapoint.id, view))
            .collect();
        Ok(scored.into_iter().filter_map(|(id, score)| Some((views.remove(&id)?, score))).collect())
    }

    /// How `search_statement` narrows the calls beyond its index: by the query's transcript
    /// words, or else by several rare tags of which any will do; then by the calls its context
    /// token names, when fewer than `RARE_TEXT_MATCHES`; `None` for none of these.
    pub(super) async fn narrowing(
        &self,
        organization_id: Uuid,
        query: &DatapointQuery,
    ) -> Result<Option<TextFilter>, Error> {
        let by_words = match query.text_contains.as_deref().filter(|text| !text.is_empty()) {
            None => self.rare_tags_filter(organization_id, query).await?,
            Some(text) => {
                let text = TextQuery::parse(text);
                let matches = self.text_matches(organization_id, &text).await?;
                Some(if matches.len() < RARE_TEXT_MATCHES {
                    TextFilter::Among(matches)
                } else {
                    TextFilter::Check(text)
                })
            }
        };
        let Some(token) = &query.context_token else {
            return Ok(by_words);
        };
        let named = self.context_token_matches(organization_id, token).await?;
        if named.len() >= RARE_TEXT_MATCHES {
            return Ok(by_words);
        }
        Ok(Some(match by_words {
            None => TextFilter::Among(named),
            Some(TextFilter::Among(matches)) => {
                let matches: std::collections::HashSet<Uuid> = matches.into_iter().collect();
                TextFilter::Among(named.into_iter().filter(|id| matches.contains(id)).collect())
            }
            Some(TextFilter::Check(text) | TextFilter::AmongChecked(_, text)) => {
                TextFilter::AmongChecked(named, text)
            }
        }))
    }

    /// Ids of up to `RARE_TEXT_MATCHES` of the organization's calls with each form of a
    /// context token (`context_token_statements`).
    async fn context_token_matches(
        &self,
        organization_id: Uuid,
        token: &str,
    ) -> Result<Vec<Uuid>, Error> {
        let context = "searching by context token";
        let backend = self.db.get_database_backend();
        let mut ids = Vec::new();
        for statement in context_token_statements(organization_id, token, backend) {
            for row in
                self.db.query_all_raw(backend.build(&statement)).await.map_err(db_error(context))?
            {
                ids.push(row.try_get::<Uuid>("", "id").map_err(db_error(context))?);
            }
        }
        Ok(ids)
    }

    /// Several tags of which any will do, when nothing else drives the search: if their rows
    /// name fewer than `RARE_TEXT_MATCHES` calls, those calls are read by id (as rare transcript
    /// words are); else the tags are common and the ordering index is walked, each call's tags
    /// probed, which fills a page at once. Without this, rare tags walked the ordering index
    /// until a page was found: 85 ms at a million calls for tags on 0.1 % of them.
    async fn rare_tags_filter(
        &self,
        organization_id: Uuid,
        query: &DatapointQuery,
    ) -> Result<Option<TextFilter>, Error> {
        let narrower = query.context_token.is_some() || query.call_id.is_some();
        if query.tags_any.len() < 2 || narrower || Drive::of(query).is_some() {
            return Ok(None);
        }
        let context = "searching tags";
        let backend = self.db.get_database_backend();
        let mut select = Query::select();
        select
            .distinct()
            .from(datapoint_tag::Entity)
            .and_where(of_organization(datapoint_tag::Entity, organization_id, backend))
            .and_where(
                Expr::col((datapoint_tag::Entity, datapoint_tag::Column::Tag))
                    .is_in(query.tags_any.iter().cloned()),
            )
            .limit(RARE_TEXT_MATCHES as u64);
        match backend {
            DbBackend::Postgres => select.expr_as(
                Expr::col((datapoint_tag::Entity, datapoint_tag::Column::DatapointId)),
                sea_orm::sea_query::Alias::new("id"),
            ),
            // The rows name their calls by rowid (m0038): the ids are the datapoints'.
            _ => select
                .column((datapoint::Entity, datapoint::Column::Id))
                .inner_join(datapoint::Entity, names_the_call(datapoint_tag::Entity, backend)),
        };
        let ids = self
            .db
            .query_all_raw(backend.build(&select))
            .await
            .map_err(db_error(context))?
            .iter()
            .map(|row| row.try_get::<Uuid>("", "id").map_err(db_error(context)))
            .collect::<Result<Vec<Uuid>, Error>>()?;
        Ok((ids.len() < RARE_TEXT_MATCHES).then_some(TextFilter::Among(ids)))
    }

    /// Ids of up to `RARE_TEXT_MATCHES` of the organization's datapoints whose transcript
    /// matches `text`, read from the full-text index alone.
    async fn text_matches(
        &self,
        organization_id: Uuid,
        text: &TextQuery,
    ) -> Result<Vec<Uuid>, Error> {
        let context = "searching transcripts";
        let statement =
            text_matches_statement(self.db.get_database_backend(), organization_id, text);
        self.db
            .query_all_raw(statement)
            .await
            .map_err(db_error(context))?
            .iter()
            .map(|row| row.try_get::<Uuid>("", "id").map_err(db_error(context)))
            .collect()
    }

    async fn with_audio(
        &self,
        mut models: Vec<datapoint::Model>,
    ) -> Result<Vec<DatapointView>, Error> {
        let audio_ids: Vec<String> =
            models.iter().filter_map(|model| model.audio_id.clone()).collect();
        let audio = self.get_audio_objects(audio_ids).await?;
        let ids: Vec<Uuid> = models.iter().map(|model| model.id).collect();
        let mut results = self.check_results_of(&ids).await?;
        let bases = models_bases(&self.db, &mut models, "reading datapoints").await?;
        models
            .into_iter()
            .map(|model| {
                let datapoint = datapoint_from_model(model, &bases)?;
                let audio = datapoint
                    .audio_id
                    .and_then(|id| audio.iter().find(|object| object.id == id).cloned());
                let check_results = results.remove(&datapoint.id).unwrap_or_default();
                Ok(DatapointView { datapoint, audio, check_results })
            })
            .collect()
    }
}

/// The rows `finish_ingests` writes: each datapoint once (the latest result of a call), and
/// its search rows.
fn datapoint_rows(
    finished: &[FinishedIngest<'_>],
) -> Result<(Vec<datapoint::ActiveModel>, SearchRows), Error> {
    let mut seen = std::collections::HashSet::with_capacity(finished.len());
    let mut latest: Vec<&Datapoint> = finished
        .iter()
        .rev()
        .map(|result| result.datapoint)
        .filter(|datapoint| seen.insert(datapoint.id))
        .collect();
    latest.reverse();
    let models = latest
        .iter()
        .map(|datapoint| datapoint_active_model(datapoint, None))
        .collect::<Result<Vec<_>, _>>()?;
    let stored_before: std::collections::HashSet<Uuid> =
        finished.iter().filter(|result| !result.new).map(|result| result.datapoint.id).collect();
    Ok((models, SearchRows::of(&latest, &stored_before)))
}

/// The ingests of `finished` that still exist; on PostgreSQL locked until the transaction ends.
async fn present_ingests(
    connection: &impl ConnectionTrait,
    finished: &[FinishedIngest<'_>],
    context: &'static str,
) -> Result<std::collections::HashSet<Uuid>, Error> {
    use super::entities::ingest;
    let mut present = std::collections::HashSet::with_capacity(finished.len());
    for chunk in finished.chunks(LOOKUP_CHUNK_KEYS) {
        let mut select = ingest::Entity::find()
            .select_only()
            .column(ingest::Column::Id)
            .filter(ingest::Column::Id.is_in(chunk.iter().map(|result| result.ingest_id)));
        if connection.get_database_backend() == DbBackend::Postgres {
            select = select.lock_exclusive();
        }
        present
            .extend(select.into_tuple::<Uuid>().all(connection).await.map_err(db_error(context))?);
    }
    Ok(present)
}

/// One call, as its datapoint is keyed: a call id is unique by project and provider, and
/// `datapoints_unique_call` (m0031) holds the organization and the call id first, so that the
/// search by call id reads the same index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallKey<'a> {
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub provider: &'a str,
    pub call_id: &'a str,
}

impl<'a> CallKey<'a> {
    pub fn of(datapoint: &'a Datapoint) -> Self {
        Self {
            organization_id: datapoint.organization_id,
            project_id: datapoint.project_id,
            provider: &datapoint.provider,
            call_id: &datapoint.call_id,
        }
    }
}

/// The statement of `Storage::find_datapoints` for one chunk of keys: joined on the columns of
/// the call's unique index (`datapoints_unique_call`) and no others, so that no index of an
/// organization's calls can look like it serves the join. With the organization in the join
/// too, PostgreSQL, most likely planning before it had statistics of a table filling from
/// empty (a new install's first burst), served each key through `datapoints_by_provider`
/// (organization, provider, …) and read every call of the project for it: 20-30 ms a
/// statement of 49 keys at 2,000-3,000 calls, growing with them, and acks on PostgreSQL a
/// fifth of what they are without (docs/BENCHMARKS.md, run 30). A project belongs to one
/// organization; `find_datapoints_in` keeps the rows of the keys' organizations only.
pub(super) fn find_datapoints_statement(
    keys: &[CallKey<'_>],
) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Asterisk, ValueTuple};
    let mut select = Query::select();
    select.column((datapoint::Entity, Asterisk)).from(datapoint::Entity);
    super::join_keys(
        &mut select,
        datapoint::Entity,
        &[datapoint::Column::CallId, datapoint::Column::ProjectId, datapoint::Column::Provider],
        keys.iter()
            .map(|key| {
                ValueTuple::Many(vec![
                    key.call_id.into(),
                    key.project_id.into(),
                    key.provider.into(),
                ])
            })
            .collect(),
    );
    select
}

/// The statement of `Storage::search_datapoints`: every filter a condition, newest call first
/// (`occurred_at_ms`, then `id`; on SQLite, when the datapoints' own indexes give the order,
/// `rowid`, m0035), one page. Each filter has an index that gives that order (m0010): a filter
/// of the datapoints' own columns walks its index on `datapoints`; a tag or metadata pair, when
/// nothing narrower is asked (a context token or call id), drives the search from its own rows
/// (`datapoint_tags`, `datapoint_metadata`, which carry the call's time), joined to their
/// datapoints; every other tag or pair is a probe of the datapoint's rows by their primary key.
pub(super) fn search_statement(
    organization_id: Uuid,
    query: &DatapointQuery,
    text: Option<&TextFilter>,
    backend: DbBackend,
) -> sea_orm::Select<datapoint::Entity> {
    search_part(organization_id, query, text, backend, Part::Whole)
}

/// A page of `search_statement`, read as `search_part` splits it.
pub(super) async fn search_page(
    connection: &impl ConnectionTrait,
    organization_id: Uuid,
    query: &DatapointQuery,
    text: Option<&TextFilter>,
    context: &'static str,
) -> Result<Vec<datapoint::Model>, Error> {
    let backend = connection.get_database_backend();
    let mut models = Vec::new();
    for part in Part::of(query, text, backend) {
        let rest = DatapointQuery { page_size: query.page_size - models.len(), ..query.clone() };
        models.extend(
            search_part(organization_id, &rest, text, backend, *part)
                .all(connection)
                .await
                .map_err(db_error(context))?,
        );
        if models.len() == query.page_size {
            break;
        }
    }
    Ok(models)
}

/// Which calls after a page's cursor a statement reads. SQLite seeks an index by a row value
/// `(occurred_at_ms, id) < (…)` of its columns, but not by `(occurred_at_ms, rowid)`: it reads
/// from the cursor's millisecond down and filters, past every call of that millisecond the
/// pages before returned. So a page after a cursor, in the rowid order, is read in two parts,
/// each a seek (`search_page`): the rest of the cursor's millisecond, then older calls.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Every call after the cursor, in one statement.
    Whole,
    /// The cursor's millisecond, below its rowid.
    Ties,
    /// Before the cursor's millisecond.
    Older,
}

impl Part {
    /// The parts `search_page` reads, in order.
    pub(super) fn of(
        query: &DatapointQuery,
        text: Option<&TextFilter>,
        backend: DbBackend,
    ) -> &'static [Self] {
        let walked = !sorted(query, text) && by_rowid(query, text, backend);
        if query.before.is_some() && query.offset == 0 && walked {
            &[Self::Ties, Self::Older]
        } else {
            &[Self::Whole]
        }
    }
}

/// Whether `search_part` breaks a millisecond's ties by rowid: on SQLite, when the search walks
/// (or reads by id) the datapoints themselves, not tag, metadata, issue or match rows.
fn by_rowid(query: &DatapointQuery, text: Option<&TextFilter>, backend: DbBackend) -> bool {
    backend == DbBackend::Sqlite && drive_of(query, text).is_none()
}

/// The rows `search_part` is driven from: none when it reads a few calls by id.
fn drive_of<'a>(query: &'a DatapointQuery, text: Option<&TextFilter>) -> Option<Drive<'a>> {
    if by_ids(text) { None } else { Drive::of(query) }
}

/// Whether a transcript search (or a context token) names the few calls to read, by id.
fn by_ids(text: Option<&TextFilter>) -> bool {
    matches!(text, Some(TextFilter::Among(_) | TextFilter::AmongChecked(..)))
}

/// Whether the few calls a search finds are sorted, not read in an index's order: those read
/// by id, and a call id's.
fn sorted(query: &DatapointQuery, text: Option<&TextFilter>) -> bool {
    by_ids(text) || query.call_id.is_some()
}

/// `search_statement`, with its cursor read as `part` says.
pub(super) fn search_part(
    organization_id: Uuid,
    query: &DatapointQuery,
    text: Option<&TextFilter>,
    backend: DbBackend,
    part: Part,
) -> sea_orm::Select<datapoint::Entity> {
    use sea_orm::sea_query::{Alias, JoinType, Order};

    use datapoint::Column;
    use sea_orm::IdenStatic;

    // The few calls of a rare transcript search are read by id. SQLite, which keeps no
    // statistics here, would rather walk an index that one of the other filters can use (it
    // guesses any equality matches about ten rows), so on SQLite those filters are written
    // `+column`, which no index serves; PostgreSQL knows better.
    let by_ids = by_ids(text);
    let column = |column: Column| {
        if by_ids && backend == DbBackend::Sqlite {
            Expr::cust(format!(r#"+"datapoints"."{}""#, column.as_str()))
        } else {
            Expr::col((datapoint::Entity, column))
        }
    };
    // A call id's calls and an integration's are found by indexes that do not hold the
    // organization (m0037): on SQLite, the organization is written `+column` there too, or the
    // organization's ordering index, rated alike, may be walked instead.
    let organization = if (query.call_id.is_some() || query.integration_id.is_some())
        && backend == DbBackend::Sqlite
    {
        Expr::cust(r#"+"datapoints"."organization_id""#)
    } else {
        column(Column::OrganizationId)
    };
    let mut condition = Condition::all().add(organization.eq(organization_id));
    if let Some(project_id) = query.project_id {
        // A filter with an ordering index of its own is walked, by organization, and the
        // project checked on each call: without statistics, SQLite rates that index and the
        // project's alike, and chose one or the other as a cursor's range changed its guesses.
        let own_index = query.provider.is_some()
            || query.source.is_some()
            || query.integration_id.is_some()
            || query.successful.is_some()
            || query.sentiment.is_some()
            || query.outcome.is_some();
        let project = if own_index && backend == DbBackend::Sqlite {
            Expr::cust(r#"+"datapoints"."project_id""#)
        } else {
            column(Column::ProjectId)
        };
        condition = condition.add(project.eq(project_id));
    }
    if let Some(token) = &query.context_token {
        // Either the call's own token, or its id when it has none (m0030, `narrowing`).
        let own = Condition::all()
            .add(column(Column::ContextToken).eq(token.clone()))
            .add(column(Column::ContextToken).ne(""));
        let the_call_id = Condition::all()
            .add(column(Column::ContextToken).eq(""))
            .add(column(Column::CallId).eq(token.clone()));
        condition = condition.add(Condition::any().add(own).add(the_call_id));
    }
    if let Some(call_id) = &query.call_id {
        condition = condition.add(column(Column::CallId).eq(call_id.clone()));
    }
    if let Some(source) = query.source {
        condition = condition.add(column(Column::Source).eq(source.as_str()));
    }
    if let Some(provider) = &query.provider {
        condition = condition.add(column(Column::Provider).eq(provider.clone()));
    }
    if let Some(integration_id) = query.integration_id {
        condition = condition.add(column(Column::IntegrationId).eq(integration_id));
    }
    // Each verdict has a partial index by organization, value and time (m0018).
    if let Some(successful) = query.successful {
        // PostgreSQL reads `= false` as `NOT column`, which it does not prove implies the
        // partial index's `IS NOT NULL`: said outright, the index serves both values.
        condition = condition
            .add(column(Column::VerdictSuccessful).is_not_null())
            .add(column(Column::VerdictSuccessful).eq(successful));
    }
    if let Some(sentiment) = &query.sentiment {
        condition = condition.add(column(Column::VerdictSentiment).eq(verdict_text(sentiment)));
    }
    if let Some(outcome) = &query.outcome {
        condition = condition.add(column(Column::VerdictOutcome).eq(verdict_text(outcome)));
    }
    let drive = drive_of(query, text);
    let tags_all = match drive {
        Some(Drive::Tag(_)) if !query.tags_all.is_empty() => &query.tags_all[1..],
        _ => &query.tags_all[..],
    };
    for tag in tags_all {
        condition = condition.add(has_tags(std::slice::from_ref(tag), organization_id, backend));
    }
    // The only tag of `tags_any` drives the search when no tag must be there.
    let any_drives = matches!(drive, Some(Drive::Tag(_))) && query.tags_all.is_empty();
    if !query.tags_any.is_empty() && !any_drives {
        condition = condition.add(has_tags(&query.tags_any, organization_id, backend));
    }
    let pairs = match drive {
        Some(Drive::Pair(..)) => &query.metadata_equals[1..],
        _ => &query.metadata_equals[..],
    };
    for (key, value) in pairs {
        // A seek by the searches' whole key, as `has_tags`.
        let matching = Query::select()
            .expr(Expr::val(1))
            .from(datapoint_metadata::Entity)
            .and_where(of_organization(datapoint_metadata::Entity, organization_id, backend))
            .and_where(datapoint_metadata::Column::Key.eq(key.clone()))
            .and_where(datapoint_metadata::Column::Value.eq(value.clone()))
            .and_where(
                Expr::col((datapoint_metadata::Entity, datapoint_metadata::Column::OccurredAtMs))
                    .equals((datapoint::Entity, datapoint::Column::OccurredAtMs)),
            )
            .and_where(names_the_call(datapoint_metadata::Entity, backend))
            .to_owned();
        condition = condition.add(Expr::exists(matching));
    }
    if query.issues_only {
        // Written as the partial index `datapoints_with_issues` is, so SQLite can use it.
        condition = condition.add(Expr::cust(r#""datapoints"."open_issues" > 0"#));
    }
    // Each is probed per call unless it drives the search.
    if let Some(name) = &query.failed_check
        && !matches!(drive, Some(Drive::FailedCheck(_)))
    {
        condition = condition.add(super::monitors::failed_check_condition(name));
    }
    if let Some(monitor_id) = query.monitor_id
        && !matches!(drive, Some(Drive::Monitor))
    {
        condition = condition.add(super::monitors::matched_by_condition(monitor_id));
    }
    if let Some(from) = query.from {
        condition = condition.add(column(Column::OccurredAtMs).gte(to_millis(from)));
    }
    if let Some(to) = query.to {
        condition = condition.add(column(Column::OccurredAtMs).lte(to_millis(to)));
    }
    if let Some(TextFilter::Among(ids) | TextFilter::AmongChecked(ids, _)) = text {
        // The few calls whose words match, or that the context token names, by id.
        condition = condition.add(datapoint::Column::Id.is_in(ids.iter().cloned()));
    }
    match text {
        // Common words: each call the walk meets is checked against the full-text index of
        // m0011 (FTS5 seeking the call's row on SQLite, its `tsvector` on PostgreSQL).
        Some(TextFilter::Check(text) | TextFilter::AmongChecked(_, text)) => {
            condition = condition.add(match backend {
                DbBackend::Postgres => Expr::cust_with_values(
                    r#""datapoints"."transcript_words" @@ to_tsquery('simple', $1)"#,
                    [text.tsquery()],
                ),
                _ => Expr::cust_with_values(
                    r#"EXISTS (SELECT 1 FROM "datapoint_text" WHERE "datapoint_text" MATCH ? AND "datapoint_text"."rowid" = "datapoints"."rowid")"#,
                    [text.fts5_match()],
                ),
            });
        }
        Some(TextFilter::Among(_)) | None => {}
    }

    // The order, and the cursor, on the columns of the rows that drive the search.
    let monitor = query.monitor_id.map(|id| id.to_string()).unwrap_or_default();
    let mut select = datapoint::Entity::find();
    // On SQLite, a walk of the datapoints' own ordering indexes breaks a millisecond's ties by
    // rowid, which ends each of their entries (m0035), and so does a walk of tag or metadata
    // rows, which name their call by rowid (m0038); PostgreSQL's end with the id.
    let by_rowid = backend == DbBackend::Sqlite
        && matches!(drive, None | Some(Drive::Tag(_) | Drive::Pair(..)));
    let (time, id) = match drive {
        None => (
            Expr::col((datapoint::Entity, datapoint::Column::OccurredAtMs)),
            if by_rowid {
                Expr::cust(r#""datapoints"."rowid""#)
            } else {
                Expr::col((datapoint::Entity, datapoint::Column::Id))
            },
        ),
        Some(drive) => {
            let alias = Alias::new("drive");
            // The table, its datapoint id (the join, and the order's last key), its time, and
            // the columns that must match besides the organization of tag and metadata rows.
            let (table, id, time, matches): (_, _, _, Vec<(_, sea_orm::Value)>) = match drive {
                Drive::Tag(tag) => (
                    datapoint_tag::Entity.into_table_ref(),
                    datapoint_tag::Column::DatapointId.into_iden(),
                    datapoint_tag::Column::OccurredAtMs.into_iden(),
                    vec![(datapoint_tag::Column::Tag.into_iden(), tag.into())],
                ),
                Drive::Pair(key, value) => (
                    datapoint_metadata::Entity.into_table_ref(),
                    datapoint_metadata::Column::DatapointId.into_iden(),
                    datapoint_metadata::Column::OccurredAtMs.into_iden(),
                    vec![
                        (datapoint_metadata::Column::Key.into_iden(), key.into()),
                        (datapoint_metadata::Column::Value.into_iden(), value.into()),
                    ],
                ),
                Drive::FailedCheck(name) => (
                    check_issue::Entity.into_table_ref(),
                    check_issue::Column::DatapointId.into_iden(),
                    check_issue::Column::OccurredAtMs.into_iden(),
                    vec![
                        (check_issue::Column::OrganizationId.into_iden(), organization_id.into()),
                        (check_issue::Column::Name.into_iden(), name.into()),
                    ],
                ),
                // The monitor is the organization's (the datapoints' own condition says so).
                Drive::Monitor => (
                    monitor_datapoint::Entity.into_table_ref(),
                    monitor_datapoint::Column::DatapointId.into_iden(),
                    monitor_datapoint::Column::OccurredAtMs.into_iden(),
                    vec![(monitor_datapoint::Column::MonitorId.into_iden(), monitor.into())],
                ),
            };
            // Tag and metadata rows name their call by rowid on SQLite (m0038).
            let (id, datapoint_key) = if by_rowid {
                (Alias::new(CALL_ROWID).into_iden(), Alias::new("rowid").into_iden())
            } else {
                (id, datapoint::Column::Id.into_iden())
            };
            let mut on_rows = Condition::all().add(
                Expr::col((alias.clone(), id.clone())).equals((datapoint::Entity, datapoint_key)),
            );
            if matches!(drive, Drive::Tag(_) | Drive::Pair(..)) {
                on_rows = on_rows.add(of_organization(alias.clone(), organization_id, backend));
            }
            for (column, value) in matches {
                on_rows = on_rows.add(Expr::col((alias.clone(), column)).eq(value));
            }
            QueryTrait::query(&mut select).join_as(
                JoinType::InnerJoin,
                table,
                alias.clone(),
                on_rows,
            );
            (Expr::col((alias.clone(), time)), Expr::col((alias, id)))
        }
    };
    // The few calls of a rare transcript search are read by id and sorted: `+ 0` keeps the
    // ordering index from giving the order, or the cursor a range of it, which would have the
    // planner walk it instead. So are the few calls of a call id (one a project and provider),
    // found by their unique key (`datapoints_unique_call`, m0031).
    let time = if sorted(query, text) { time.add(0) } else { time };
    if let Some(cursor) = query.before {
        // By rowid, the cursor's call's rowid is found by its id; a call deleted since gives the
        // largest rowid, so the calls of its millisecond come again rather than be skipped.
        let after = if by_rowid {
            Expr::cust_with_values(
                r#"COALESCE((SELECT "rowid" FROM "datapoints" WHERE "id" = ?), 9223372036854775807)"#,
                [cursor.id],
            )
        } else {
            Expr::val(cursor.id)
        };
        let at = Expr::val(cursor.occurred_at_ms);
        condition = condition.add(match part {
            // (time, id) < (cursor's): a row-value comparison, which both databases read as a
            // range of the ordering index (SQLite, by rowid, as a range of the time alone).
            Part::Whole => Expr::tuple([time.clone(), id.clone()]).lt(Expr::tuple([at, after])),
            Part::Ties => time.clone().eq(at).and(id.clone().lt(after)),
            Part::Older => time.clone().lt(at),
        });
    }
    select
        .filter(condition)
        .order_by(time, Order::Desc)
        .order_by(id, Order::Desc)
        .offset(u64::try_from(query.offset).unwrap_or(0))
        .limit(u64::try_from(query.page_size).unwrap_or(u64::MAX))
}

/// The statement of `Storage::text_matches`.
pub(super) fn text_matches_statement(
    backend: DbBackend,
    organization_id: Uuid,
    text: &TextQuery,
) -> sea_orm::Statement {
    match backend {
        // The query inline (its words hold only letters and digits): planned for its own
        // words, not as a generic plan blind to how common they are.
        DbBackend::Postgres => sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT id FROM datapoints WHERE organization_id = $1 AND transcript_words \
                 @@ to_tsquery('simple', '{}') LIMIT {RARE_TEXT_MATCHES}",
                text.tsquery().replace('\'', "''")
            ),
            [organization_id.into()],
        ),
        backend => sea_orm::Statement::from_sql_and_values(
            backend,
            // CROSS JOIN keeps the full-text index the outer loop (SQLite's join-order
            // rule): the other order would walk the organization's datapoints, probing
            // the index for each.
            format!(
                "SELECT d.id FROM datapoint_text CROSS JOIN datapoints d ON d.rowid = \
                 datapoint_text.rowid WHERE datapoint_text MATCH ? AND d.organization_id = ? \
                 LIMIT {RARE_TEXT_MATCHES}"
            ),
            [text.fts5_match().into(), organization_id.into()],
        ),
    }
}

/// The statements of `Storage::context_token_matches`, one per form of a context token
/// (m0030): the calls that carry `token` as their own (`datapoints_by_own_context_token`, its
/// condition written out so that SQLite uses it), and those whose call id it is, with no token
/// of their own (`datapoints_unique_call`). A search by context token is no longer one walk of
/// one index in its order: most calls have no entry in the first, and an OR of the two forms
/// is planned as a walk of the organization's calls.
pub(super) fn context_token_statements(
    organization_id: Uuid,
    token: &str,
    backend: DbBackend,
) -> [sea_orm::sea_query::SelectStatement; 2] {
    use datapoint::Column;
    let own = Condition::all()
        .add(Column::ContextToken.eq(token))
        .add(Expr::cust(r#""datapoints"."context_token" <> ''"#))
        .add(Column::OrganizationId.eq(organization_id));
    // `datapoints_unique_call` does not hold the organization (m0037): on SQLite it is written
    // `+column`, or an ordering index of the organization's, rated alike, may be walked instead.
    let organization = match backend {
        DbBackend::Sqlite => Expr::cust(r#"+"datapoints"."organization_id""#),
        _ => Expr::col((datapoint::Entity, Column::OrganizationId)),
    };
    let the_call_id = Condition::all()
        .add(Column::CallId.eq(token))
        .add(Column::ContextToken.eq(""))
        .add(organization.eq(organization_id));
    [own, the_call_id].map(|form| {
        Query::select()
            .column((datapoint::Entity, Column::Id))
            .from(datapoint::Entity)
            .cond_where(form)
            .limit(RARE_TEXT_MATCHES as u64)
            .to_owned()
    })
}

/// Below this many calls matching a transcript search, the search reads those calls by id;
/// from this many, it checks each call of its walk (`Storage::search_datapoints`).
pub(super) const RARE_TEXT_MATCHES: usize = 2_000;

/// How a transcript search narrows the calls (`Storage::search_datapoints`).
#[derive(Clone, Debug)]
pub(super) enum TextFilter {
    /// The ids of every call that matches, fewer than `RARE_TEXT_MATCHES`.
    Among(Vec<Uuid>),
    /// Words too common to list: each call is checked.
    Check(TextQuery),
    /// The calls a context token names, fewer than `RARE_TEXT_MATCHES`, each checked for
    /// words too common to list.
    AmongChecked(Vec<Uuid>, TextQuery),
}

/// The rows a search is driven from, when not the datapoints themselves.
#[derive(Clone, Copy, Debug)]
enum Drive<'a> {
    Tag(&'a String),
    Pair(&'a String, &'a String),
    /// The open issues of a check, by name (`check_issues_by_name`).
    FailedCheck(&'a String),
    /// The calls the query's monitor matched (`monitor_datapoints_by_time`).
    Monitor,
}

impl<'a> Drive<'a> {
    /// A failed check (open issues are few), else a tag every match has (the first of
    /// `tags_all`, or the only one of `tags_any`), else a metadata pair, else a monitor; none
    /// when a context token or a call id is asked (their own indexes find a handful of calls)
    /// or when only several tags of which any will do are asked (the datapoints' ordering index
    /// is walked and each call's tags probed). Probing each call the ordering index meets for a
    /// failed check found 100 of a million calls' 1,000 issues in 147 ms (docs/BENCHMARKS.md).
    fn of(query: &'a DatapointQuery) -> Option<Self> {
        if query.context_token.is_some() || query.call_id.is_some() {
            return None;
        }
        if let Some(name) = &query.failed_check {
            return Some(Self::FailedCheck(name));
        }
        if let Some(tag) = query.tags_all.first() {
            return Some(Self::Tag(tag));
        }
        if let [tag] = query.tags_any.as_slice() {
            return Some(Self::Tag(tag));
        }
        if let Some((key, value)) = query.metadata_equals.first() {
            return Some(Self::Pair(key, value));
        }
        query.monitor_id.map(|_| Self::Monitor)
    }
}

/// The datapoint has one of `tags`: a seek of each tag's row by the whole key of the searches'
/// index (organization, tag, the call's time, the call), which SQLite keeps as the table's own
/// key (m0027) and PostgreSQL as `datapoint_tags_by_organization_tag`.
fn has_tags(
    tags: &[String],
    organization_id: Uuid,
    backend: DbBackend,
) -> sea_orm::sea_query::SimpleExpr {
    let tagged = Query::select()
        .expr(Expr::val(1))
        .from(datapoint_tag::Entity)
        .and_where(of_organization(datapoint_tag::Entity, organization_id, backend))
        .and_where(datapoint_tag::Column::Tag.is_in(tags.iter().cloned()))
        .and_where(
            Expr::col((datapoint_tag::Entity, datapoint_tag::Column::OccurredAtMs))
                .equals((datapoint::Entity, datapoint::Column::OccurredAtMs)),
        )
        .and_where(names_the_call(datapoint_tag::Entity, backend))
        .to_owned();
    Expr::exists(tagged)
}

/// A tag or metadata row (of `table`) names the datapoint of the search: by its rowid on SQLite
/// (m0038), by its id on PostgreSQL.
fn names_the_call(
    table: impl IntoIden + Copy,
    backend: DbBackend,
) -> sea_orm::sea_query::SimpleExpr {
    match backend {
        DbBackend::Postgres => Expr::col((table, sea_orm::sea_query::Alias::new("datapoint_id")))
            .equals((datapoint::Entity, datapoint::Column::Id)),
        _ => Expr::col((table, sea_orm::sea_query::Alias::new(CALL_ROWID)))
            .equals((datapoint::Entity, sea_orm::sea_query::Alias::new("rowid"))),
    }
}

/// Tag or metadata rows (of `table`, or the alias it is read under) of the organization: by its
/// rowid on SQLite (m0041), read by its id once per statement, by its id on PostgreSQL.
fn of_organization(
    table: impl IntoIden,
    organization_id: Uuid,
    backend: DbBackend,
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::Alias;
    match backend {
        DbBackend::Postgres => {
            Expr::col((table, Alias::new("organization_id"))).eq(organization_id)
        }
        _ => Expr::col((table, Alias::new(ORGANIZATION_ROWID)))
            .eq(Expr::cust_with_values(organization_rowid("?"), [organization_id.to_string()])),
    }
}

/// A finished ingest job and the datapoint it produced, for `Storage::finish_ingests`.
#[derive(Clone, Copy, Debug)]
pub struct FinishedIngest<'a> {
    pub job_id: Uuid,
    pub ingest_id: Uuid,
    /// The job's count of attempts, this one included.
    pub attempts: i32,
    pub datapoint: &'a Datapoint,
    /// The datapoint was not stored before this batch, so it has no tag or metadata rows to
    /// replace: the batch inserts them without a delete first (on PostgreSQL, before a table's
    /// statistics exist, such deletes were planned as scans of the whole table).
    pub new: bool,
}

/// Writes datapoints and their search rows. Their words go in the full-text index on SQLite
/// (`SearchRows::replace`); on PostgreSQL in their `transcript_search`, from which their
/// `tsvector` is generated.
fn write_datapoints(
    batch: &mut Batch,
    mut models: Vec<datapoint::ActiveModel>,
    mut rows: SearchRows,
) {
    if batch.backend() == DbBackend::Postgres {
        let mut words: std::collections::HashMap<Uuid, String> =
            std::mem::take(&mut rows.words).into_iter().collect();
        for model in &mut models {
            if let Some(text) = words.remove(model.id.as_ref()) {
                model.transcript_search = Set(text);
            }
        }
    }
    upsert_datapoints(batch, models);
    rows.replace(batch);
}

/// Inserts new datapoints and overwrites existing ones (by id) with multi-row
/// `INSERT … ON CONFLICT (id) DO UPDATE`; each id appears once in `datapoints`.
fn upsert_datapoints(batch: &mut Batch, models: Vec<datapoint::ActiveModel>) {
    use sea_orm::{IdenStatic, Iterable};
    // What a datapoint's identity is never changes; everything else is its latest state,
    // but for its count of issues, which its results' statements keep.
    let fixed = [
        datapoint::Column::Id,
        datapoint::Column::OrganizationId,
        datapoint::Column::ProjectId,
        datapoint::Column::CreatedAtMs,
        datapoint::Column::OpenIssues,
    ];
    let changing = datapoint::Column::iter()
        .filter(|column| !fixed.iter().any(|fixed| fixed.as_str() == column.as_str()));
    let on_conflict = OnConflict::column(datapoint::Column::Id).update_columns(changing).to_owned();
    batch.insert_rows(models, Some(&on_conflict));
}

/// Marks each ingest done with its job's attempts and its datapoint: one `UPDATE … FROM
/// (VALUES (id, attempts, datapoint id), …)` joined on the id, each row found by a seek. (A
/// `CASE id WHEN …` per column, the first form, compares every row with every term: quadratic
/// in the batch, and most of PostgreSQL's time under load.)
pub(super) fn ingests_done(
    finished: &[FinishedIngest<'_>],
    now: DateTime<Utc>,
) -> sea_orm::sea_query::UpdateStatement {
    use sea_orm::sea_query::{Alias, IntoIden, TableRef, ValueTuple};

    use super::entities::ingest;
    // VALUES columns are named column1, column2, … on both databases.
    let done = || Alias::new("done");
    let values = TableRef::ValuesList(
        finished
            .iter()
            .map(|result| {
                ValueTuple::Three(
                    result.ingest_id.into(),
                    result.attempts.into(),
                    super::ingest::stored_datapoint_id(result.ingest_id, result.datapoint.id)
                        .into(),
                )
            })
            .collect(),
        done().into_iden(),
    );
    Query::update()
        .table(ingest::Entity)
        .value(ingest::Column::State, IngestState::Done.as_str())
        // Its content now lives in the datapoint (and the request's body, for a while, in the
        // delivery log): a done ingest keeps its record, not a second copy of the call.
        .value(ingest::Column::PayloadJson, "")
        .value(ingest::Column::Attempts, Expr::col((done(), Alias::new("column2"))))
        .value(ingest::Column::DatapointId, Expr::col((done(), Alias::new("column3"))))
        .value(ingest::Column::LastError, "")
        .value(ingest::Column::NextAttemptAtMs, Option::<i64>::None)
        .value(ingest::Column::UpdatedAtMs, to_millis(now))
        .from(values)
        .and_where(
            Expr::col((ingest::Entity, ingest::Column::Id)).equals((done(), Alias::new("column1"))),
        )
        .to_owned()
}

/// The datapoints of `keys` (`Storage::find_datapoints`) read through `connection`; with
/// `lock_rows`, on PostgreSQL, taken `FOR UPDATE` until the caller's transaction ends.
async fn find_datapoints_in(
    connection: &impl ConnectionTrait,
    keys: &[CallKey<'_>],
    lock_rows: bool,
    context: &'static str,
) -> Result<Vec<Datapoint>, Error> {
    let backend = connection.get_database_backend();
    let mut found = Vec::new();
    for chunk in keys.chunks(LOOKUP_CHUNK_KEYS) {
        let mut select = find_datapoints_statement(chunk);
        if lock_rows && backend == sea_orm::DbBackend::Postgres {
            select.lock_with_tables(sea_orm::sea_query::LockType::Update, [datapoint::Entity]);
        }
        let mut models = datapoint::Entity::find()
            .from_raw_sql(backend.build(&select))
            .all(connection)
            .await
            .map_err(db_error(context))?;
        let tenants: std::collections::HashSet<(Uuid, Uuid)> =
            chunk.iter().map(|key| (key.organization_id, key.project_id)).collect();
        models.retain(|model| tenants.contains(&(model.organization_id, model.project_id)));
        found.extend(datapoints_from_models(connection, models, context).await?);
    }
    Ok(found)
}

/// A transcript-only conversation to merge into its call's datapoint in the intake's commit
/// (`ingest.transcripts_at_intake`), with the datapoint it makes when the call has none yet
/// built beforehand, like the rest of the intake's rows.
#[derive(Debug)]
pub(super) struct IntakeCall {
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub conversation: Conversation,
    pub now: DateTime<Utc>,
    /// The delivery that brought the call and its body as it arrived, stored in the same
    /// commit, where the body is kept: what the datapoint's document is written against.
    base: Option<(Uuid, bytes::Bytes)>,
    fresh: Datapoint,
    fresh_model: datapoint::ActiveModel,
    fresh_rows: SearchRows,
}

impl IntakeCall {
    /// The call `conversation` of the ingest `ingest_id`, whose id a datapoint it makes takes.
    pub fn new(
        ingest_id: Uuid,
        organization_id: Uuid,
        project_id: Uuid,
        conversation: Conversation,
        base: Option<(Uuid, bytes::Bytes)>,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let fresh = Datapoint::merge(
            None,
            &conversation,
            None,
            organization_id,
            project_id,
            ingest_id,
            now,
        );
        let fresh_model = datapoint_active_model(&fresh, base.as_ref().map(Base::of))?;
        Ok(Self {
            fresh_model,
            base,
            fresh_rows: SearchRows::of(&[&fresh], &std::collections::HashSet::new()),
            fresh,
            organization_id,
            project_id,
            conversation,
            now,
        })
    }

    /// The id of the datapoint this call makes when its call has none yet.
    pub fn fresh_id(&self) -> Uuid {
        self.fresh.id
    }

    fn base(&self) -> Option<Base<'_>> {
        self.base.as_ref().map(Base::of)
    }

    fn key(&self) -> CallKey<'_> {
        CallKey {
            organization_id: self.organization_id,
            project_id: self.project_id,
            provider: &self.conversation.provider,
            call_id: &self.conversation.call_id,
        }
    }
}

/// A call's datapoint as an intake commit leaves it: the one built beforehand, or a merge,
/// with the call merged last (whose delivery's body its document is written against).
enum Merged<'a> {
    Fresh(&'a IntakeCall),
    Merged(Box<Datapoint>, &'a IntakeCall),
}

impl Merged<'_> {
    fn datapoint(&self) -> &Datapoint {
        match self {
            Merged::Fresh(call) => &call.fresh,
            Merged::Merged(datapoint, _) => datapoint,
        }
    }
}

/// Merges `calls` into their calls' datapoints in the caller's transaction, in order (two
/// conversations of one call merge one after the other), and writes them with their tag and
/// metadata rows: the datapoint's id for each call. The datapoints already stored are read in
/// the transaction, on PostgreSQL with `FOR UPDATE`, so a concurrent merge into one of them
/// waits for this commit and then reads what it wrote; two transactions that both create one
/// call's datapoint meet at `datapoints_unique_call`, and the group commit's retry of each
/// request alone then merges into the one stored first.
pub(super) async fn store_at_intake(
    connection: &impl ConnectionTrait,
    calls: &[&IntakeCall],
    batch: &mut Batch,
    context: &'static str,
) -> Result<Vec<Uuid>, Error> {
    use std::collections::{HashMap, HashSet};
    let keys: Vec<CallKey<'_>> = calls.iter().map(|call| call.key()).collect();
    // Each call's datapoint as merged so far, in the order calls first appear.
    let mut merged: Vec<Merged<'_>> = Vec::with_capacity(calls.len());
    let mut position: HashMap<CallKey<'_>, usize> = HashMap::with_capacity(calls.len());
    let stored = find_datapoints_in(connection, &keys, true, context).await?;
    let stored_before: HashSet<Uuid> = stored.iter().map(|datapoint| datapoint.id).collect();
    let mut rows = SearchRows::default();
    if connection.get_database_backend() != DbBackend::Postgres {
        rows.forget(&stored.iter().collect::<Vec<_>>());
    }
    let mut stored: HashMap<(Uuid, String, String), Datapoint> = stored
        .into_iter()
        .map(|datapoint| {
            (
                (datapoint.project_id, datapoint.provider.clone(), datapoint.call_id.clone()),
                datapoint,
            )
        })
        .collect();
    let mut ids = Vec::with_capacity(calls.len());
    for call in calls {
        let key = call.key();
        let earlier = position.get(&key).copied();
        let before = match earlier {
            Some(index) => Some(match &merged[index] {
                Merged::Fresh(earlier) => earlier.fresh.clone(),
                Merged::Merged(datapoint, _) => (**datapoint).clone(),
            }),
            None => {
                stored.remove(&(key.project_id, key.provider.to_owned(), key.call_id.to_owned()))
            }
        };
        let now = match before {
            None => Merged::Fresh(call),
            before => Merged::Merged(
                Box::new(Datapoint::merge(
                    before,
                    &call.conversation,
                    None,
                    call.organization_id,
                    call.project_id,
                    call.fresh_id(),
                    call.now,
                )),
                call,
            ),
        };
        ids.push(now.datapoint().id);
        match earlier {
            Some(index) => merged[index] = now,
            None => {
                position.insert(key, merged.len());
                merged.push(now);
            }
        }
    }
    let mut models = Vec::with_capacity(merged.len());
    for merged in &merged {
        match merged {
            Merged::Fresh(call) => {
                models.push(call.fresh_model.clone());
                rows.extend(call.fresh_rows.clone());
            }
            Merged::Merged(datapoint, call) => {
                models.push(datapoint_active_model(datapoint, call.base())?);
                rows.extend(SearchRows::of(&[&**datapoint], &stored_before));
            }
        }
    }
    let datapoints: Vec<&Datapoint> = merged.iter().map(Merged::datapoint).collect();
    // The monitors read and the calls evaluated while the texts written for the index are at
    // hand; what they found is written after the datapoints.
    let prepared = match calls.first() {
        Some(first) => Some((
            first,
            super::monitors::Prepared::read(connection, &datapoints, &rows.texts(), context)
                .await?,
        )),
        None => None,
    };
    write_datapoints(batch, models, rows);
    if let Some((first, prepared)) = prepared {
        let evaluated = super::monitors::evaluate_into(
            connection,
            prepared,
            &stored_before,
            batch,
            first.now,
            context,
        )
        .await?;
        let failures = &evaluated.failures;
        super::events::events_into(connection, &datapoints, failures, batch, first.now, context)
            .await?;
    }
    Ok(ids)
}

/// The search rows of some datapoints, built before the write turn: their tag and metadata
/// rows and their transcripts' words.
#[derive(Clone, Debug, Default)]
struct SearchRows {
    /// Datapoints whose earlier rows go first: on PostgreSQL by datapoint (the tables' primary
    /// key); on SQLite, which keeps them only in the searches' order (m0027), each by its whole
    /// key, from `forgotten`.
    replaced: Vec<Uuid>,
    /// The earlier tag and metadata rows of `replaced`, as stored (`forget`): SQLite's deletes.
    forgotten: Vec<LabelRow>,
    /// The rowids of `replaced` datapoints deleted before their rows are (`forget_search_rows`);
    /// the others' are read by id in the deletes.
    rowids: std::collections::HashMap<Uuid, i64>,
    labels: Vec<LabelRow>,
    /// Each datapoint's id and `transcript_search_text`.
    words: Vec<(Uuid, String)>,
}

impl SearchRows {
    fn of(datapoints: &[&Datapoint], stored_before: &std::collections::HashSet<Uuid>) -> Self {
        let replaced = datapoints
            .iter()
            .filter(|datapoint| stored_before.contains(&datapoint.id))
            .map(|datapoint| datapoint.id)
            .collect();
        let words = datapoints
            .iter()
            .map(|datapoint| (datapoint.id, datapoint.transcript_search_text()))
            .collect();
        Self { replaced, labels: label_rows(datapoints), words, ..Self::default() }
    }

    /// Each datapoint's `transcript_search_text`, by id (the monitors' checks read them).
    fn texts(&self) -> SearchTexts<'_> {
        self.words.iter().map(|(id, text)| (*id, text.as_str())).collect()
    }

    /// Deletes, before the new rows, the tag and metadata rows that `stored` (datapoints as
    /// stored before this write) have.
    fn forget(&mut self, stored: &[&Datapoint]) {
        self.forgotten.extend(label_rows(stored));
    }

    fn extend(&mut self, other: SearchRows) {
        self.replaced.extend(other.replaced);
        self.forgotten.extend(other.forgotten);
        self.rowids.extend(other.rowids);
        self.labels.extend(other.labels);
        self.words.extend(other.words);
    }

    /// Deletes the earlier rows: on PostgreSQL a delete per table and chunk of `replaced`, on
    /// SQLite a delete per forgotten row, by its whole key.
    fn delete_earlier(&mut self, batch: &mut Batch) {
        if batch.backend() == DbBackend::Postgres {
            delete_rows_by_datapoint(batch, &self.replaced);
            return;
        }
        for row in std::mem::take(&mut self.forgotten) {
            let rowid = self.rowids.get(&row.datapoint_id).copied();
            batch.push_statement(row.delete_by_rowid(rowid));
        }
    }

    /// Replaces the datapoints' rows (`delete_earlier`, then multi-row inserts).
    fn replace(mut self, batch: &mut Batch) {
        self.delete_earlier(batch);
        if batch.backend() == DbBackend::Postgres {
            let (tags, pairs): (Vec<_>, Vec<_>) =
                self.labels.into_iter().partition(|row| matches!(row.label, Label::Tag(_)));
            batch.insert_rows(tags.into_iter().filter_map(LabelRow::tag_model).collect(), None);
            batch.insert_rows(pairs.into_iter().filter_map(LabelRow::pair_model).collect(), None);
            return;
        }
        for table in [Label::TAGS, Label::PAIRS] {
            let rows: Vec<&LabelRow> =
                self.labels.iter().filter(|row| row.label.table() == table).collect();
            for statement in rows.chunks(INSERT_LABEL_ROWS).filter_map(insert_by_rowid) {
                batch.push_statement(statement);
            }
        }
        for chunk in self.words.chunks(INSERT_WORDS_ROWS) {
            batch.push_statement(index_words(batch.backend(), chunk));
        }
    }
}

/// A tag or metadata row of a call: what searches filter by (`Label`), with the call's
/// organization and time before and the call itself after, the tables' key in that order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LabelRow {
    organization_id: Uuid,
    label: Label,
    occurred_at_ms: i64,
    datapoint_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Label {
    Tag(String),
    /// A metadata key and its value as text (`metadata_filter_text`).
    Pair(String, String),
}

impl Label {
    const TAGS: &'static str = "datapoint_tags";
    const PAIRS: &'static str = "datapoint_metadata";

    fn table(&self) -> &'static str {
        match self {
            Label::Tag(_) => Self::TAGS,
            Label::Pair(..) => Self::PAIRS,
        }
    }

    /// Its columns in the table's key, after the organization, and their values.
    fn columns(&self) -> (&'static [&'static str], Vec<sea_orm::Value>) {
        match self {
            Label::Tag(tag) => (&["tag"], vec![tag.as_str().into()]),
            Label::Pair(key, value) => {
                (&["key", "value"], vec![key.as_str().into(), value.as_str().into()])
            }
        }
    }
}

/// On SQLite, the column by which tag and metadata rows name their call: its datapoint's rowid
/// (m0038). PostgreSQL's name its id (`datapoint_id`).
const CALL_ROWID: &str = "datapoint_rowid";

/// On SQLite, the column by which tag and metadata rows name their organization: its rowid
/// (m0041). PostgreSQL's name its id (`organization_id`).
const ORGANIZATION_ROWID: &str = "organization_rowid";

/// On SQLite, the rowid of the organization whose id (as `organizations` holds it, its text)
/// is `id`, an SQL expression: a seek of its primary key.
fn organization_rowid(id: &str) -> String {
    format!("(SELECT rowid FROM organizations WHERE id = {id})")
}

/// Tag or metadata rows one statement of `insert_by_rowid` inserts.
const INSERT_LABEL_ROWS: usize = 100;

impl LabelRow {
    fn tag_model(self) -> Option<datapoint_tag::ActiveModel> {
        let Label::Tag(tag) = self.label else { return None };
        Some(datapoint_tag::ActiveModel {
            datapoint_id: Set(self.datapoint_id),
            tag: Set(tag),
            organization_id: Set(self.organization_id),
            occurred_at_ms: Set(self.occurred_at_ms),
        })
    }

    fn pair_model(self) -> Option<datapoint_metadata::ActiveModel> {
        let Label::Pair(key, value) = self.label else { return None };
        Some(datapoint_metadata::ActiveModel {
            datapoint_id: Set(self.datapoint_id),
            key: Set(key),
            value: Set(value),
            organization_id: Set(self.organization_id),
            occurred_at_ms: Set(self.occurred_at_ms),
        })
    }

    /// On SQLite, the values of the table's key before the call: the organization's id as
    /// `organizations` holds it (its text), the label, the time.
    fn key_before_call(&self) -> Vec<sea_orm::Value> {
        let mut values = vec![self.organization_id.to_string().into()];
        values.extend(self.label.columns().1);
        values.push(self.occurred_at_ms.into());
        values
    }

    /// On SQLite, the delete of this row by the table's whole key (a seek): its organization's
    /// rowid read by id, its call's rowid given, or read by the call's id while its datapoint is
    /// still there.
    fn delete_by_rowid(&self, rowid: Option<i64>) -> sea_orm::Statement {
        let (columns, _) = self.label.columns();
        let matches: String = columns.iter().map(|column| format!(" AND {column} = ?")).collect();
        let mut values = self.key_before_call();
        let call = match rowid {
            Some(rowid) => {
                values.push(rowid.into());
                "?"
            }
            None => {
                values.push(self.datapoint_id.into());
                "(SELECT rowid FROM datapoints WHERE id = ?)"
            }
        };
        sea_orm::Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!(
                "DELETE FROM {} WHERE {ORGANIZATION_ROWID} = {}{matches} \
                 AND occurred_at_ms = ? AND {CALL_ROWID} = {call}",
                self.label.table(),
                organization_rowid("?"),
            ),
            values,
        )
    }
}

/// On SQLite, the insert of `rows` (of one table; none when there are none), each naming its
/// organization and its call by their rowids, read by id in the same statement (m0041, m0038),
/// as `index_words` does for the words.
fn insert_by_rowid(rows: &[&LabelRow]) -> Option<sea_orm::Statement> {
    let first = rows.first()?;
    let (columns, _) = first.label.columns();
    // The key before the call, then the call's id.
    let count = columns.len() + 3;
    let placeholders = format!("({})", vec!["?"; count].join(", "));
    let mut values = Vec::with_capacity(rows.len() * count);
    for row in rows {
        values.extend(row.key_before_call());
        values.push(row.datapoint_id.into());
    }
    let selected: Vec<String> = (2..count).map(|column| format!("labels.column{column}")).collect();
    Some(sea_orm::Statement::from_sql_and_values(
        DbBackend::Sqlite,
        format!(
            "INSERT INTO {} ({ORGANIZATION_ROWID}, {}, occurred_at_ms, {CALL_ROWID}) \
             SELECT {}, {}, d.rowid \
             FROM (VALUES {}) AS labels JOIN datapoints d ON d.id = labels.column{count}",
            first.label.table(),
            columns.join(", "),
            organization_rowid("labels.column1"),
            selected.join(", "),
            vec![placeholders.as_str(); rows.len()].join(", "),
        ),
        values,
    ))
}

/// A tag row per tag, and a metadata row per filterable entry (`metadata_filter_text`), of
/// each of `datapoints`.
fn label_rows(datapoints: &[&Datapoint]) -> Vec<LabelRow> {
    datapoints
        .iter()
        .flat_map(|datapoint| {
            let row = |label| LabelRow {
                organization_id: datapoint.organization_id,
                label,
                occurred_at_ms: to_millis(datapoint.occurred_at()),
                datapoint_id: datapoint.id,
            };
            let tags = datapoint.tags.iter().map(move |tag| row(Label::Tag(tag.clone())));
            let pairs = datapoint.metadata.iter().filter_map(move |(key, value)| {
                Some(row(Label::Pair(key.clone(), metadata_filter_text(value)?)))
            });
            tags.chain(pairs).collect::<Vec<_>>()
        })
        .collect()
}

/// Deletes, in `batch`, the tag and metadata rows of datapoints just deleted: on PostgreSQL by
/// their `ids`, on SQLite each row by its whole key, from the datapoints as they were `stored`
/// and their `rowids` (m0027, m0038).
pub(super) fn forget_search_rows(
    batch: &mut Batch,
    ids: &[Uuid],
    stored: &[&Datapoint],
    rowids: std::collections::HashMap<Uuid, i64>,
) {
    let mut rows = SearchRows { replaced: ids.to_vec(), rowids, ..SearchRows::default() };
    if batch.backend() != DbBackend::Postgres {
        rows.forget(stored);
    }
    rows.delete_earlier(batch);
}

/// On PostgreSQL, the tag and metadata rows of datapoints `ids`, by their primary key's first
/// column.
fn delete_rows_by_datapoint(batch: &mut Batch, ids: &[Uuid]) {
    for chunk in ids.chunks(LOOKUP_CHUNK_KEYS) {
        let chunk = chunk.iter().copied();
        batch.push(
            &Query::delete()
                .from_table(datapoint_tag::Entity)
                .and_where(datapoint_tag::Column::DatapointId.is_in(chunk.clone()))
                .to_owned(),
        );
        batch.push(
            &Query::delete()
                .from_table(datapoint_metadata::Entity)
                .and_where(datapoint_metadata::Column::DatapointId.is_in(chunk))
                .to_owned(),
        );
    }
}

/// Datapoints whose words one statement of `index_words` indexes.
const INSERT_WORDS_ROWS: usize = 200;

/// On SQLite, (re)places the words of `datapoints` (id, words) in the contentless full-text
/// index (m0027) under each datapoint's rowid, read by its id; a datapoint's earlier words, if
/// any, are replaced.
fn index_words(backend: DbBackend, datapoints: &[(Uuid, String)]) -> sea_orm::Statement {
    let mut sql = String::from(
        "INSERT OR REPLACE INTO datapoint_text (rowid, transcript_search) \
         SELECT d.rowid, words.column2 FROM (VALUES ",
    );
    let mut values = Vec::with_capacity(datapoints.len() * 2);
    for (index, (id, words)) in datapoints.iter().enumerate() {
        sql.push_str(if index == 0 { "(?, ?)" } else { ", (?, ?)" });
        values.push((*id).into());
        values.push(words.clone().into());
    }
    sql.push_str(") AS words JOIN datapoints d ON d.id = words.column1");
    sea_orm::Statement::from_sql_and_values(backend, sql, values)
}

/// Keys of one lookup or `IN (…)` list: a few hundred parameters per statement.
pub(super) const LOOKUP_CHUNK_KEYS: usize = 100;

/// The row of `datapoint`, its document written against `base` where it has one.
fn datapoint_active_model(
    datapoint: &Datapoint,
    base: Option<Base<'_>>,
) -> Result<datapoint::ActiveModel, Error> {
    Ok(datapoint::ActiveModel {
        id: Set(datapoint.id),
        organization_id: Set(datapoint.organization_id),
        project_id: Set(datapoint.project_id),
        provider: Set(datapoint.provider.clone()),
        call_id: Set(datapoint.call_id.clone()),
        context_token: Set(super::stored_context_token(
            &datapoint.context_token,
            &datapoint.call_id,
        )),
        source: Set(datapoint.source.as_str().to_owned()),
        transcript_source: Set(datapoint.transcript_source.as_str().to_owned()),
        speaker_labels_estimated: Set(datapoint.speaker_labels_estimated),
        turns_json: Set(String::new()),
        // Its words go with its search rows (`write_datapoints`).
        transcript_search: Set(String::new()),
        audio_id: Set(datapoint.audio_id.map(|id| id.to_string())),
        integration_id: Set(datapoint.integration_id),
        started_at_ms: Set(datapoint.started_at.map(to_millis)),
        ended_at_ms: Set(datapoint.ended_at.map(to_millis)),
        duration_ms: Set(datapoint.duration_ms),
        occurred_at_ms: Set(to_millis(datapoint.occurred_at())),
        from_number: Set(datapoint.from_number.clone()),
        to_number: Set(datapoint.to_number.clone()),
        direction: Set(datapoint.direction.clone()),
        analysis_json: Set(String::new()),
        cost_usd: Set(datapoint.analysis.cost_usd),
        tags_json: Set(String::new()),
        metadata_json: Set(String::new()),
        metrics_json: Set(String::new()),
        created_at_ms: Set(to_millis(datapoint.created_at)),
        updated_at_ms: Set(super::stored_updated_at(
            to_millis(datapoint.created_at),
            to_millis(datapoint.updated_at),
        )),
        // Counted from its check results by the statements that write them (`monitors`).
        open_issues: sea_orm::ActiveValue::NotSet,
        verdict_successful: Set(datapoint.analysis.successful),
        verdict_sentiment: Set(datapoint.analysis.sentiment.as_deref().map(verdict_text)),
        verdict_outcome: Set(datapoint.analysis.outcome.as_deref().map(verdict_text)),
        document: Set(Some(DocumentRef::of(datapoint).encode(base)?)),
    })
}

/// A datapoint's words as its full-text index reads them
/// (`Datapoint::transcript_search_text`), from its stored row: its `transcript_search` where
/// that still holds them (on PostgreSQL), else made again from its turns, in its `document` or,
/// written before m0026, its `turns_json`.
pub(crate) fn stored_search_text(
    id: Uuid,
    transcript_search: &str,
    document: Option<&[u8]>,
    bases: &Bases,
    turns_json: &str,
) -> Result<String, Error> {
    #[derive(serde::Deserialize)]
    struct Turns {
        turns: Vec<crate::model::conversation::Turn>,
    }
    if !transcript_search.is_empty() {
        return Ok(transcript_search.to_owned());
    }
    let turns = match document {
        Some(stored) => super::documents::decode::<Turns>(id, stored, bases)?.turns,
        None if turns_json.is_empty() => Vec::new(),
        None => from_json(turns_json)?,
    };
    Ok(crate::model::datapoints::search_text(&turns))
}

/// `models` read into datapoints, with the kept bodies their documents need read through
/// `connection` (`Bases`).
pub(super) async fn datapoints_from_models(
    connection: &impl ConnectionTrait,
    mut models: Vec<datapoint::Model>,
    context: &'static str,
) -> Result<Vec<Datapoint>, Error> {
    let bases = models_bases(connection, &mut models, context).await?;
    models.into_iter().map(|model| datapoint_from_model(model, &bases)).collect()
}

/// The kept bodies `models`' documents need, each document brought up to date where its body
/// has left since (`documents::current_bases`).
async fn models_bases(
    connection: &impl ConnectionTrait,
    models: &mut [datapoint::Model],
    context: &'static str,
) -> Result<Bases, Error> {
    let mut documents: Vec<(Uuid, &mut Option<Vec<u8>>)> =
        models.iter_mut().map(|model| (model.id, &mut model.document)).collect();
    super::documents::current_bases(connection, &mut documents, context).await
}

/// A stored datapoint, with the kept bodies its document may need (`models_bases`).
pub(super) fn datapoint_from_model(
    model: datapoint::Model,
    bases: &Bases,
) -> Result<Datapoint, Error> {
    let context = "reading a datapoint";
    let document = match &model.document {
        Some(stored) => Document::decode(model.id, stored, bases)?,
        // Written before m0026.
        None => Document::of_columns(
            from_json(&model.turns_json)?,
            from_json(&model.analysis_json)?,
            from_json(&model.tags_json)?,
            from_json(&model.metadata_json)?,
            from_json(&model.metrics_json)?,
        ),
    };
    let metrics = document.metrics();
    Ok(Datapoint {
        id: model.id,
        organization_id: model.organization_id,
        project_id: model.project_id,
        provider: model.provider,
        context_token: super::read_context_token(model.context_token, &model.call_id),
        call_id: model.call_id,
        source: Source::parse(&model.source)
            .ok_or_else(|| Error::internal(context, "unknown source"))?,
        transcript_source: TranscriptSource::parse(&model.transcript_source)
            .ok_or_else(|| Error::internal(context, "unknown transcript source"))?,
        speaker_labels_estimated: model.speaker_labels_estimated,
        turns: document.turns,
        audio_id: model.audio_id.as_deref().map(|id| parse_uuid(context, id)).transpose()?,
        integration_id: model.integration_id,
        started_at: model.started_at_ms.map(from_millis),
        ended_at: model.ended_at_ms.map(from_millis),
        duration_ms: model.duration_ms,
        from_number: model.from_number,
        to_number: model.to_number,
        direction: model.direction,
        analysis: document.analysis,
        tags: document.tags,
        metadata: document.metadata,
        metrics,
        created_at: from_millis(model.created_at_ms),
        updated_at: super::read_updated_at(model.created_at_ms, model.updated_at_ms),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|error| Error::internal("reading a datapoint", error))
}
