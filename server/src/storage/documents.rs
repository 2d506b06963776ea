//! A datapoint's `document` (m0026): its parts that no search reads in SQL (turns, analysis,
//! tags, metadata, metrics) as one JSON object, deflated behind a version byte.
//!
//! A call stored at intake from a webhook delivery that keeps its body has its document
//! deflated against that body (`DOCUMENT_V3`, m0033): the words both hold are stored once, the
//! document referring back to the body's. Such a document reads only with that body, so before a
//! body is cleared or its delivery deleted (`deliveries::clear_bodies`, the delivery log's
//! retention) the documents written against it are written again on their own
//! (`detach_documents`), and m0033's down does the same for every one.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::datapoints::LOOKUP_CHUNK_KEYS;
use super::db_error;
use super::entities::{datapoint, ingest, webhook_delivery};
use super::presets::DOCUMENT_1;
use crate::error::Error;
use crate::model::datapoints::Datapoint;

/// The JSON deflated alone (m0026).
const DOCUMENT_V1: u8 = 1;
/// The JSON deflated with `presets::DOCUMENT_1`.
const DOCUMENT_V2: u8 = 2;
/// The id of a webhook delivery (16 bytes), then the JSON deflated with `presets::DOCUMENT_1`
/// followed by that delivery's body as it arrived (`base_preset`).
const DOCUMENT_V3: u8 = 3;
/// As `DOCUMENT_V3`, against the body of the delivery of the datapoint's own id, which is not
/// written (m0039): a webhook call's first write gives its delivery, ingest and datapoint one
/// id (run 26), and its document 16 bytes less.
const DOCUMENT_V4: u8 = 4;
/// Versions 5, 6 and 7 are 2, 3 and 4 (this much more) whose JSON leaves out the call's metrics,
/// which are its turns' (`metrics::compute`, as every call's are but for the speech coverage of
/// a transcript made from a recording): made again when read (m0040).
const METRICS_LEFT_OUT: u8 = 3;

/// What a datapoint keeps in `document`. A shipped version is never changed (new fields are
/// optional); `stored_formats_tests` pins each.
#[derive(serde::Deserialize)]
pub(super) struct Document {
    pub(super) turns: Vec<crate::model::conversation::Turn>,
    pub(super) analysis: crate::model::conversation::ProviderExtras,
    pub(super) tags: Vec<String>,
    pub(super) metadata: serde_json::Map<String, serde_json::Value>,
    /// None in versions 5 to 7: the turns' (`Document::metrics`).
    #[serde(default)]
    metrics: Option<crate::model::metrics::CallMetrics>,
}

impl Document {
    /// The call's metrics: as stored, or, where they were left out, its turns'.
    pub(super) fn metrics(&self) -> crate::model::metrics::CallMetrics {
        self.metrics.clone().unwrap_or_else(|| crate::model::metrics::compute(&self.turns))
    }

    /// A document written before m0026, from its columns.
    pub(super) fn of_columns(
        turns: Vec<crate::model::conversation::Turn>,
        analysis: crate::model::conversation::ProviderExtras,
        tags: Vec<String>,
        metadata: serde_json::Map<String, serde_json::Value>,
        metrics: crate::model::metrics::CallMetrics,
    ) -> Self {
        Self { turns, analysis, tags, metadata, metrics: Some(metrics) }
    }
}

/// A datapoint's `Document`, borrowed, to encode.
#[derive(serde::Serialize)]
pub(super) struct DocumentRef<'a> {
    /// The datapoint's id: not in the JSON, but what `DOCUMENT_V4` leaves out.
    #[serde(skip)]
    pub(super) id: Uuid,
    pub(super) turns: &'a [crate::model::conversation::Turn],
    pub(super) analysis: &'a crate::model::conversation::ProviderExtras,
    pub(super) tags: &'a [String],
    pub(super) metadata: &'a serde_json::Map<String, serde_json::Value>,
    /// None where they are the turns' (`METRICS_LEFT_OUT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) metrics: Option<&'a crate::model::metrics::CallMetrics>,
}

/// The kept body of the webhook delivery that brought a call, stored in the same commit as the
/// call's datapoint: what its document is deflated against.
#[derive(Clone, Copy, Debug)]
pub(super) struct Base<'a> {
    pub(super) delivery_id: Uuid,
    /// As it arrived.
    pub(super) body: &'a [u8],
}

impl<'a> Base<'a> {
    pub(super) fn of((delivery_id, body): &'a (Uuid, bytes::Bytes)) -> Self {
        Self { delivery_id: *delivery_id, body }
    }
}

impl<'a> DocumentRef<'a> {
    pub(super) fn of(datapoint: &'a Datapoint) -> Self {
        Self {
            id: datapoint.id,
            turns: &datapoint.turns,
            analysis: &datapoint.analysis,
            tags: &datapoint.tags,
            metadata: &datapoint.metadata,
            metrics: (datapoint.metrics != crate::model::metrics::compute(&datapoint.turns))
                .then_some(&datapoint.metrics),
        }
    }

    /// The version byte, then the JSON deflated (`deflate_within`): against `base` when there
    /// is one (`DOCUMENT_V4` when it is the delivery of the datapoint's own id, else
    /// `DOCUMENT_V3`), else with the document's preset alone (`DOCUMENT_V2`); each
    /// `METRICS_LEFT_OUT` further where the JSON leaves them out.
    pub(super) fn encode(&self, base: Option<Base<'_>>) -> Result<Vec<u8>, Error> {
        let json = serde_json::to_vec(self)
            .map_err(|error| Error::internal("encoding a datapoint", error))?;
        encode_json(self.id, &json, base, self.metrics.is_none())
    }
}

/// The document of datapoint `id` holding `json` (without its metrics where `left_out`), as
/// `DocumentRef::encode` writes it.
fn encode_json(
    id: Uuid,
    json: &[u8],
    base: Option<Base<'_>>,
    left_out: bool,
) -> Result<Vec<u8>, Error> {
    let further = if left_out { METRICS_LEFT_OUT } else { 0 };
    // Deflate adds at most 5 bytes per 16 KB block it cannot shrink, and its end.
    let mut document = Vec::with_capacity(17 + json.len() + json.len() / 1024 + 64);
    let deflated = match base {
        Some(base) if base.delivery_id == id => {
            document.push(DOCUMENT_V4 + further);
            super::deflate_within(json, &base_preset(base.body), &mut document)
        }
        Some(base) => {
            document.push(DOCUMENT_V3 + further);
            document.extend_from_slice(base.delivery_id.as_bytes());
            super::deflate_within(json, &base_preset(base.body), &mut document)
        }
        None => {
            document.push(DOCUMENT_V2 + further);
            super::deflate_within(json, DOCUMENT_1, &mut document)
        }
    };
    if deflated {
        Ok(document)
    } else {
        Err(Error::internal("encoding a datapoint", "the document did not deflate"))
    }
}

/// The preset of a document written against `body` (`DOCUMENT_V3`): `presets::DOCUMENT_1`, then
/// the body, cut to their last 32 KB (as far back as deflate refers; zlib would keep the same).
fn base_preset(body: &[u8]) -> Vec<u8> {
    const WINDOW: usize = 32 * 1024;
    let body = &body[body.len().saturating_sub(WINDOW)..];
    let preset = &DOCUMENT_1[DOCUMENT_1.len().saturating_sub(WINDOW - body.len())..];
    [preset, body].concat()
}

/// The delivery whose body the stored document of datapoint `id` was written against
/// (`DOCUMENT_V3`, `DOCUMENT_V4`).
fn base_of(id: Uuid, stored: &[u8]) -> Option<Uuid> {
    match stored.split_first().map(|(version, rest)| (layout(*version), rest)) {
        Some((DOCUMENT_V3, rest)) => Some(Uuid::from_bytes(*rest.first_chunk::<16>()?)),
        Some((DOCUMENT_V4, _)) => Some(id),
        _ => None,
    }
}

/// The version whose layout `version` has: itself, or for versions 5 to 7 the one whose JSON
/// kept the metrics (`METRICS_LEFT_OUT`).
fn layout(version: u8) -> u8 {
    match version {
        5..=7 => version - METRICS_LEFT_OUT,
        _ => version,
    }
}

/// Whether a stored document's JSON leaves out the call's metrics.
fn metrics_left_out(stored: &[u8]) -> bool {
    stored.first().is_some_and(|&version| layout(version) != version)
}

/// The kept bodies that stored documents were written against, by delivery.
#[derive(Debug, Default)]
pub(super) struct Bases(pub(super) HashMap<Uuid, Vec<u8>>);

impl Bases {
    /// The bodies `documents` (each datapoint's id, and its document stored, or NULL) were
    /// written against, read through `connection` (the caller's transaction, where it has one)
    /// by primary key. Callers outside this module use `current_bases`, which also meets bodies
    /// that left meanwhile.
    async fn read<'a>(
        connection: &impl ConnectionTrait,
        documents: impl IntoIterator<Item = (Uuid, Option<&'a [u8]>)>,
        context: &'static str,
    ) -> Result<Self, Error> {
        let ids: HashSet<Uuid> =
            documents.into_iter().filter_map(|(id, stored)| base_of(id, stored?)).collect();
        if ids.is_empty() {
            return Ok(Self::default());
        }
        let ids: Vec<Uuid> = ids.into_iter().collect();
        super::deliveries::bodies_of(connection, &ids, context).await.map(Self)
    }
}

/// The bodies the stored documents of `documents` (datapoint id, document) were written
/// against, with each document the caller holds brought up to date where its body left after
/// its row was read: the commit that clears a body writes its documents again on their own
/// (`detach_documents`), so such a document is read again, and replaced in `documents`. Reads
/// outside one snapshot (a page of results and its bodies are two statements) meet this when
/// the delivery log's retention commits between them.
pub(super) async fn current_bases(
    connection: &impl ConnectionTrait,
    documents: &mut [(Uuid, &mut Option<Vec<u8>>)],
    context: &'static str,
) -> Result<Bases, Error> {
    let mut bases = Bases::read(
        connection,
        documents.iter().map(|(id, stored)| (*id, stored.as_deref())),
        context,
    )
    .await?;
    let stale: Vec<Uuid> = documents
        .iter()
        .filter(|(id, stored)| {
            stored
                .as_deref()
                .and_then(|stored| base_of(*id, stored))
                .is_some_and(|base| !bases.0.contains_key(&base))
        })
        .map(|(id, _)| *id)
        .collect();
    if stale.is_empty() {
        return Ok(bases);
    }
    let mut fresh = HashMap::with_capacity(stale.len());
    for chunk in stale.chunks(LOOKUP_CHUNK_KEYS) {
        let rows: Vec<(Uuid, Option<Vec<u8>>)> = datapoint::Entity::find()
            .select_only()
            .columns([datapoint::Column::Id, datapoint::Column::Document])
            .filter(datapoint::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(connection)
            .await
            .map_err(db_error(context))?;
        fresh.extend(rows);
    }
    let more =
        Bases::read(connection, fresh.iter().map(|(id, stored)| (*id, stored.as_deref())), context)
            .await?;
    bases.0.extend(more.0);
    for (id, stored) in documents.iter_mut() {
        if let Some(document) = fresh.remove(id) {
            **stored = document;
        }
    }
    Ok(bases)
}

/// The JSON of the stored document of datapoint `id`.
fn inflated(id: Uuid, stored: &[u8], bases: &Bases) -> Result<Vec<u8>, Error> {
    let context = "reading a datapoint";
    let inflate = |deflated: &[u8], preset: &[u8]| {
        super::inflate(deflated, preset).map_err(|error| Error::internal(context, error))
    };
    match stored.split_first().map(|(version, rest)| (layout(*version), rest)) {
        Some((DOCUMENT_V1, deflated)) => inflate(deflated, &[]),
        Some((DOCUMENT_V2, deflated)) => inflate(deflated, DOCUMENT_1),
        Some((version @ (DOCUMENT_V3 | DOCUMENT_V4), rest)) => {
            let (id, deflated) = if version == DOCUMENT_V4 {
                (id, rest)
            } else {
                let (base, deflated) = rest.split_first_chunk::<16>().ok_or_else(|| {
                    Error::internal(context, "a document ends inside its base's id")
                })?;
                (Uuid::from_bytes(*base), deflated)
            };
            let body = bases.0.get(&id).ok_or_else(|| {
                Error::internal(
                    context,
                    format!(
                        "the kept body of delivery {id}, which its document needs, was not read"
                    ),
                )
            })?;
            inflate(deflated, &base_preset(body))
        }
        _ => Err(Error::internal(context, "unknown datapoint document version")),
    }
}

/// The stored document of datapoint `id` read into `T`, which may take only some of its
/// fields.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    id: Uuid,
    stored: &[u8],
    bases: &Bases,
) -> Result<T, Error> {
    serde_json::from_slice(&inflated(id, stored, bases)?)
        .map_err(|error| Error::internal("reading a datapoint", error))
}

impl Document {
    pub(super) fn decode(id: Uuid, stored: &[u8], bases: &Bases) -> Result<Self, Error> {
        decode(id, stored, bases)
    }
}

/// Writes again on their own (`DOCUMENT_V2`) the documents written against the bodies of
/// `deliveries`, before those bodies are cleared or deleted, in the caller's transaction. A
/// delivery's body can only have gone into the datapoint of its own ingest's call
/// (`store_at_intake`), found by primary keys (`ingests.datapoint_id`). On PostgreSQL the
/// datapoints are read `FOR UPDATE`, as the intake reads those it merges into: a merge
/// committed meanwhile is read, not overwritten. Returns how many.
pub(super) async fn detach_documents(
    connection: &impl ConnectionTrait,
    deliveries: &[Uuid],
    context: &'static str,
) -> Result<u64, Error> {
    let backend = connection.get_database_backend();
    let mut detached = 0;
    for chunk in deliveries.chunks(LOOKUP_CHUNK_KEYS) {
        let mut select = detaching(chunk);
        if backend == sea_orm::DbBackend::Postgres {
            select.lock_with_tables(sea_orm::sea_query::LockType::Update, [datapoint::Entity]);
        }
        let leaving: HashSet<Uuid> = chunk.iter().copied().collect();
        let mut written = HashMap::new();
        for row in
            connection.query_all_raw(backend.build(&select)).await.map_err(db_error(context))?
        {
            let id: Uuid = row.try_get("", "id").map_err(db_error(context))?;
            let document: Option<Vec<u8>> =
                row.try_get("", "document").map_err(db_error(context))?;
            if let Some(document) = document
                && base_of(id, &document).is_some_and(|base| leaving.contains(&base))
            {
                written.insert(id, document);
            }
        }
        detached += rewrite(connection, written, Rewrite::Alone, context).await?;
    }
    Ok(detached)
}

/// The id and document of the datapoints of the calls `deliveries` brought, by primary keys:
/// each delivery, its ingest, that ingest's datapoint (`detach_documents`).
pub(super) fn detaching(deliveries: &[Uuid]) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column((datapoint::Entity, datapoint::Column::Id))
        .column((datapoint::Entity, datapoint::Column::Document))
        .from(webhook_delivery::Entity)
        // The ingest a delivery names, or the one of its own id (`deliveries::stored_ingest_id`:
        // no other ingest has a delivery's id).
        .inner_join(
            ingest::Entity,
            Expr::col((ingest::Entity, ingest::Column::Id)).eq(Expr::cust(
                r#"COALESCE("webhook_deliveries"."ingest_id", "webhook_deliveries"."id")"#,
            )),
        )
        // The datapoint the ingest names, or the one of its own id (`ingest::stored_datapoint_id`:
        // no other datapoint has an ingest's id).
        .inner_join(
            datapoint::Entity,
            Expr::col((datapoint::Entity, datapoint::Column::Id))
                .eq(Expr::cust(r#"COALESCE("ingests"."datapoint_id", "ingests"."id")"#)),
        )
        .and_where(
            Expr::col((webhook_delivery::Entity, webhook_delivery::Column::Id))
                .is_in(deliveries.iter().copied()),
        )
        .to_owned()
}

/// How `rewrite` writes a document again.
#[derive(Clone, Copy)]
enum Rewrite {
    /// Without its base, on its own.
    Alone,
    /// Against the same base, with its metrics.
    WithMetrics,
}

/// Each of `documents` (datapoint id → stored document) written again as `how` says, in one
/// statement per chunk. Returns how many.
async fn rewrite(
    connection: &impl ConnectionTrait,
    documents: HashMap<Uuid, Vec<u8>>,
    how: Rewrite,
    context: &'static str,
) -> Result<u64, Error> {
    if documents.is_empty() {
        return Ok(0);
    }
    let backend = connection.get_database_backend();
    let bases = Bases::read(
        connection,
        documents.iter().map(|(id, stored)| (*id, Some(&stored[..]))),
        context,
    )
    .await?;
    let mut written = Vec::with_capacity(documents.len());
    for (id, stored) in &documents {
        let json = inflated(*id, stored, &bases)?;
        let document = match how {
            Rewrite::Alone => encode_json(*id, &json, None, metrics_left_out(stored))?,
            Rewrite::WithMetrics => {
                let base = base_of(*id, stored).and_then(|delivery_id| {
                    let body = bases.0.get(&delivery_id)?;
                    Some(Base { delivery_id, body })
                });
                encode_json(*id, &with_its_metrics(*id, &json)?, base, false)?
            }
        };
        written.push((*id, document));
    }
    let mut count = 0;
    for chunk in written.chunks(LOOKUP_CHUNK_KEYS) {
        let documents = chunk.iter().map(|(id, document)| (*id, document.clone()));
        let Some(documents) =
            super::value_by_id(datapoint::Column::Id, datapoint::Column::Document, documents)
        else {
            continue;
        };
        let update = Query::update()
            .table(datapoint::Entity)
            .value(datapoint::Column::Document, documents)
            .and_where(datapoint::Column::Id.is_in(chunk.iter().map(|(id, _)| *id)))
            .to_owned();
        count += connection
            .execute_raw(backend.build(&update))
            .await
            .map_err(db_error(context))?
            .rows_affected();
    }
    Ok(count)
}

/// A document's JSON (of datapoint `id`) that left out its metrics, with them.
fn with_its_metrics(id: Uuid, json: &[u8]) -> Result<Vec<u8>, Error> {
    let context = "writing a document's metrics";
    let document: Document =
        serde_json::from_slice(json).map_err(|error| Error::internal(context, error))?;
    let metrics = document.metrics();
    let with = DocumentRef {
        id,
        turns: &document.turns,
        analysis: &document.analysis,
        tags: &document.tags,
        metadata: &document.metadata,
        metrics: Some(&metrics),
    };
    serde_json::to_vec(&with).map_err(|error| Error::internal(context, error))
}

/// Every document written against a body written again on its own (m0033's down: the builds
/// before it read versions 1 and 2 only), in batches by id. Returns how many.
pub(super) async fn detach_all_documents(connection: &impl ConnectionTrait) -> Result<u64, Error> {
    let context = "writing documents without their bodies";
    rewrite_all(connection, |id, stored| base_of(id, stored).is_some(), Rewrite::Alone, context)
        .await
}

/// Every document that leaves out its call's metrics written again with them, against the same
/// base (m0040's down: the builds before it read versions 1 to 4 only), in batches by id.
/// Returns how many.
pub(super) async fn restore_all_metrics(connection: &impl ConnectionTrait) -> Result<u64, Error> {
    let context = "writing documents with their metrics";
    rewrite_all(connection, |_, stored| metrics_left_out(stored), Rewrite::WithMetrics, context)
        .await
}

/// Every document that `rewritten` (its datapoint's id, the stored document) picks written again
/// as `how` says (`rewrite`), in batches by id. Returns how many.
async fn rewrite_all(
    connection: &impl ConnectionTrait,
    rewritten: impl Fn(Uuid, &[u8]) -> bool,
    how: Rewrite,
    context: &'static str,
) -> Result<u64, Error> {
    let backend = connection.get_database_backend();
    let mut after: Option<Uuid> = None;
    let mut count = 0;
    loop {
        let mut select = Query::select();
        select
            .columns([datapoint::Column::Id, datapoint::Column::Document])
            .from(datapoint::Entity)
            .order_by(datapoint::Column::Id, sea_orm::sea_query::Order::Asc)
            .limit(500);
        if let Some(after) = after {
            select.and_where(datapoint::Column::Id.gt(after));
        }
        let rows =
            connection.query_all_raw(backend.build(&select)).await.map_err(db_error(context))?;
        let mut written = HashMap::new();
        for row in &rows {
            let id: Uuid = row.try_get("", "id").map_err(db_error(context))?;
            let document: Option<Vec<u8>> =
                row.try_get("", "document").map_err(db_error(context))?;
            after = Some(id);
            if let Some(document) = document.filter(|document| rewritten(id, document)) {
                written.insert(id, document);
            }
        }
        count += rewrite(connection, written, how, context).await?;
        if rows.len() < 500 {
            return Ok(count);
        }
    }
}
