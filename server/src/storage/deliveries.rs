//! The webhook delivery log.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entities::webhook_delivery;
use super::{Storage, db_error};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::deliveries::{
    DeliveryVerdict, NewDelivery, StoredDelivery, StoredRequest, WebhookDelivery,
};
use crate::model::ingest::IngestOutcome;

/// When the same write stored a call, its `outcome` decides the delivery's verdict, status and
/// ingest id.
pub(super) fn set_outcome(model: &mut webhook_delivery::ActiveModel, outcome: IngestOutcome) {
    let (verdict, http_status, ingest_id) = match outcome {
        IngestOutcome::Created(id) => (DeliveryVerdict::Accepted, 202, id),
        IngestOutcome::Duplicate(id) => (DeliveryVerdict::Duplicate, 200, id),
    };
    model.verdict = Set(verdict.as_str().to_owned());
    model.http_status = Set(http_status);
    model.ingest_id = Set(stored_ingest_id(model.id.try_as_ref().copied(), Some(ingest_id)));
}

/// The `ingest_id` a delivery's row stores: none when it is the delivery's own id, as it is for
/// the call a delivery stored (`admit_webhook_call` gives the ingest the delivery's id), which
/// saves the column's 16 bytes and an entry of `deliveries_by_ingest` (issue 15). A row with
/// none and the verdict `accepted` brought the ingest of its own id (`ListedRow::ingest_id`);
/// a lookup by ingest id looks for either (`by_ingests`).
fn stored_ingest_id(delivery_id: Option<Uuid>, ingest_id: Option<Uuid>) -> Option<Uuid> {
    ingest_id.filter(|ingest_id| Some(*ingest_id) != delivery_id)
}

/// The deliveries that brought `ingest_ids`: those that name one, each a seek of
/// `deliveries_by_ingest`, and those whose own id it is, each a seek of the primary key.
pub(super) fn by_ingests(ingest_ids: &[Uuid]) -> sea_orm::Condition {
    use sea_orm::Condition;
    use webhook_delivery::Column;
    Condition::any().add(Column::IngestId.is_in(ingest_ids.iter().copied())).add(
        Condition::all()
            .add(Column::Id.is_in(ingest_ids.iter().copied()))
            .add(Column::IngestId.is_null())
            .add(Column::Verdict.eq(DeliveryVerdict::Accepted.as_str())),
    )
}

/// The row of `delivery`, its body as `keep_body` keeps it, and the body's SHA-256
/// (`record.body_sha256`, the hash of `body`) only when the body is not kept.
pub(super) fn delivery_model(
    delivery: &NewDelivery,
) -> Result<webhook_delivery::ActiveModel, Error> {
    let context = "recording a webhook delivery";
    let record = &delivery.record;
    let request_json = delivery
        .request
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|error| Error::internal(context, error))?;
    let (request_json, kept) = match delivery.body.as_deref() {
        Some(body) => match keep_with_request(request_json.as_deref(), body) {
            Some(kept) => (None, Some(kept)),
            None => (request_json, Some(keep_body(body))),
        },
        None => (request_json, None),
    };
    Ok(webhook_delivery::ActiveModel {
        id: Set(record.id),
        integration_id: Set(record.integration_id),
        received_at_ms: Set(to_millis(record.received_at)),
        verdict: Set(record.verdict.as_str().to_owned()),
        http_status: Set(i32::from(record.http_status)),
        event_type: Set(record.event_type.clone()),
        call_id: Set(record.call_id.clone()),
        // A kept body's hash is read from the body itself (`stored_hash`): 64 bytes a row less,
        // which lets five rows share a page instead of four.
        body_sha256: Set(if kept.is_some() { String::new() } else { record.body_sha256.clone() }),
        error: Set(record.error.clone()),
        error_message: Set(record.error_message.clone()),
        ingest_id: Set(stored_ingest_id(Some(record.id), record.ingest_id)),
        authenticated: Set(record.authenticated),
        request_json: Set(request_json),
        body_encoding: Set(kept.as_ref().map_or("", |kept| kept.0).to_owned()),
        body: Set(kept.map(|kept| kept.1)),
    })
}

/// How a kept body is stored: compressed with deflate and the bodies' preset when that makes
/// it smaller (JSON bodies shrink to about half), else as it arrived. The encoding's name goes
/// in `body_encoding`.
fn keep_body(body: &[u8]) -> (&'static str, Vec<u8>) {
    // Room for the body itself: what does not fit is no smaller, and is kept as it came.
    let mut compressed = Vec::with_capacity(body.len());
    if super::deflate_within(body, super::presets::BODY_1, &mut compressed)
        && compressed.len() < body.len()
    {
        (P1, compressed)
    } else {
        (AS_RECEIVED, body.to_vec())
    }
}

/// The request's JSON and the body compressed together (`P1_WITH_REQUEST`), when there is
/// a request and that is smaller than both as they are: the request's URL and headers shrink
/// with the body instead of taking ~330 bytes of their own in `request_json`.
fn keep_with_request(request_json: Option<&str>, body: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    let request = request_json?.as_bytes();
    let mut framed = Vec::with_capacity(4 + request.len() + body.len());
    framed.extend_from_slice(&u32::try_from(request.len()).ok()?.to_le_bytes());
    framed.extend_from_slice(request);
    framed.extend_from_slice(body);
    let mut compressed = Vec::with_capacity(request.len() + body.len());
    (super::deflate_within(&framed, super::presets::BODY_1, &mut compressed)
        && compressed.len() < framed.len())
    .then_some((P1_WITH_REQUEST, compressed))
}

/// A kept request (from `request_json`, or from the stored body with an encoding that keeps it
/// there, `with_request`) and body as they arrived.
fn kept_request_and_body(
    encoding: &str,
    stored: Option<Vec<u8>>,
    request_json: Option<&str>,
) -> Result<(Option<StoredRequest>, Option<Vec<u8>>), String> {
    let parse = |json: &[u8]| {
        serde_json::from_slice::<StoredRequest>(json)
            .map_err(|error| format!("a kept request does not read: {error}"))
    };
    match (encoding, stored) {
        (encoding, Some(stored)) if with_request(encoding) => {
            let framed = kept_framed(encoding, stored)?;
            let (request, body) = split_framed(&framed)?;
            Ok((Some(parse(request)?), Some(body.to_vec())))
        }
        (encoding, stored) => Ok((
            request_json.map(|json| parse(json.as_bytes())).transpose()?,
            stored.map(|stored| kept_body(encoding, stored)).transpose()?,
        )),
    }
}

/// A kept body as it arrived, without reading the request kept with it.
fn kept_body_alone(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, String> {
    if !with_request(encoding) {
        return kept_body(encoding, stored);
    }
    let mut framed = kept_framed(encoding, stored)?;
    let request = split_framed(&framed)?.0.len();
    framed.drain(..4 + request);
    Ok(framed)
}

/// A request and body kept together (`with_request`), inflated: the request's JSON length (4
/// bytes, little-endian), its JSON, the body.
fn kept_framed(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, String> {
    kept_body(if encoding == DEFLATE_WITH_REQUEST { DEFLATE } else { P1 }, stored)
}

/// Whether `encoding` keeps the request inside the compressed body.
fn with_request(encoding: &str) -> bool {
    matches!(encoding, DEFLATE_WITH_REQUEST | DEFLATE_P1_WITH_REQUEST | P1_WITH_REQUEST)
}

/// The request's JSON and the body of `framed` (`kept_framed`).
fn split_framed(framed: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (length, rest) = framed
        .split_first_chunk::<4>()
        .ok_or("a kept request and body end before the request's length")?;
    let length = usize::try_from(u32::from_le_bytes(*length)).map_err(|error| error.to_string())?;
    if rest.len() < length {
        return Err("a kept request and body end inside the request".to_owned());
    }
    Ok(rest.split_at(length))
}

/// A kept body as it arrived.
fn kept_body(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, String> {
    match encoding {
        AS_RECEIVED => Ok(stored),
        DEFLATE | DEFLATE_P1 | P1 => {
            let preset = if encoding == DEFLATE { &[][..] } else { super::presets::BODY_1 };
            super::inflate(&stored, preset)
                .map_err(|error| format!("a kept body does not inflate: {error}"))
        }
        other => Err(format!("unknown body encoding {other:?}")),
    }
}

const AS_RECEIVED: &str = "";
/// Deflated alone (written before run 22, read still).
const DEFLATE: &str = "deflate";
/// Deflated together: the request's JSON length (4 bytes, little-endian), its JSON, the body
/// (written before run 22, read still).
const DEFLATE_WITH_REQUEST: &str = "deflate-with-request";
/// As `DEFLATE` and `DEFLATE_WITH_REQUEST`, with `presets::BODY_1` (written from run 22 to
/// run 26, read still).
const DEFLATE_P1: &str = "deflate-p1";
const DEFLATE_P1_WITH_REQUEST: &str = "deflate-p1-with-request";
/// `DEFLATE_P1` and `DEFLATE_P1_WITH_REQUEST` under shorter names, what is written now: the name
/// is in every row, and 21 bytes a delivery less (issue 15).
const P1: &str = "p1";
const P1_WITH_REQUEST: &str = "p1r";

/// The columns a listing reads: all but the request and body (`listed`).
const LISTED: [webhook_delivery::Column; 13] = [
    webhook_delivery::Column::Id,
    webhook_delivery::Column::IntegrationId,
    webhook_delivery::Column::ReceivedAtMs,
    webhook_delivery::Column::Verdict,
    webhook_delivery::Column::HttpStatus,
    webhook_delivery::Column::EventType,
    webhook_delivery::Column::CallId,
    webhook_delivery::Column::BodySha256,
    webhook_delivery::Column::Error,
    webhook_delivery::Column::ErrorMessage,
    webhook_delivery::Column::IngestId,
    webhook_delivery::Column::Authenticated,
    webhook_delivery::Column::BodyEncoding,
];

/// A listing's select: the `LISTED` columns, whether the body is kept, and the body only where
/// its hash is to be read from it (`ListedRow::hashed_body`).
fn listed() -> sea_orm::Select<webhook_delivery::Entity> {
    use webhook_delivery::Column;
    webhook_delivery::Entity::find()
        .select_only()
        .columns(LISTED)
        .expr_as(Expr::col(Column::Body).is_not_null(), "replayable")
        .expr_as(
            Expr::case(Expr::col(Column::BodySha256).eq(""), Expr::col(Column::Body))
                .finally(Expr::val(Option::<Vec<u8>>::None)),
            "hashed_body",
        )
}

impl Storage {
    /// Deliveries of an integration, newest first, after the delivery `before`
    /// (`deliveries_listing`).
    pub async fn list_webhook_deliveries(
        &self,
        integration_id: Uuid,
        verdict: Option<DeliveryVerdict>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        let context = "listing webhook deliveries";
        let backend = self.db.get_database_backend();
        let rows = deliveries_listing(integration_id, verdict, before, backend)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .into_model::<ListedRow>()
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        rows.into_iter().map(|row| row.into_delivery(context)).collect()
    }

    /// The deliveries that brought `ingest_ids`, newest first, at most `limit`
    /// (`deliveries_by_ingest`).
    pub async fn ingest_deliveries(
        &self,
        ingest_ids: &[Uuid],
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        let context = "listing a call's webhook deliveries";
        if ingest_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = deliveries_of_ingests(ingest_ids, limit)
            .into_model::<ListedRow>()
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        rows.into_iter().map(|row| row.into_delivery(context)).collect()
    }

    pub async fn get_webhook_delivery(
        &self,
        integration_id: Uuid,
        id: Uuid,
    ) -> Result<Option<StoredDelivery>, Error> {
        let context = "reading a webhook delivery";
        let Some(model) = webhook_delivery::Entity::find_by_id(id)
            .filter(webhook_delivery::Column::IntegrationId.eq(integration_id))
            .one(&self.db)
            .await
            .map_err(db_error(context))?
        else {
            return Ok(None);
        };
        let (request, body) =
            kept_request_and_body(&model.body_encoding, model.body, model.request_json.as_deref())
                .map_err(|error| Error::internal(context, error))?;
        let body_sha256 = hash_or(model.body_sha256, body.as_deref());
        let row = ListedRow {
            id: model.id,
            integration_id: model.integration_id,
            received_at_ms: model.received_at_ms,
            verdict: model.verdict,
            http_status: model.http_status,
            event_type: model.event_type,
            call_id: model.call_id,
            body_sha256,
            error: model.error,
            error_message: model.error_message,
            ingest_id: model.ingest_id,
            authenticated: model.authenticated,
            replayable: body.is_some(),
            hashed_body: None,
            body_encoding: String::new(),
        };
        Ok(Some(StoredDelivery { delivery: row.into_delivery(context)?, request, body }))
    }

    /// One batch of the delivery log's retention, among the deliveries of `integrations`: clears
    /// the request and body of up to `limit` received before `bodies_before`, and deletes up to
    /// `limit` received before `deliveries_before`, each in a write transaction of its own.
    /// Returns (bodies cleared, deliveries deleted); fewer than `limit` of both means done.
    pub async fn prune_webhook_deliveries(
        &self,
        integrations: &DeliveryIntegrations,
        bodies_before: DateTime<Utc>,
        deliveries_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<(u64, u64), Error> {
        let context = "pruning webhook deliveries";
        let backend = self.db.get_database_backend();
        if matches!(integrations, DeliveryIntegrations::Only(ids) if ids.is_empty()) {
            // A project with no integration has no deliveries.
            return Ok((0, 0));
        }
        let batch = |before: DateTime<Utc>, with_body: bool| {
            let mut select = Query::select();
            select
                .column(webhook_delivery::Column::Id)
                .from(webhook_delivery::Entity)
                .and_where(webhook_delivery::Column::ReceivedAtMs.lt(to_millis(before)))
                .limit(limit as u64);
            if with_body {
                // Those about to be deleted are left to the deletion.
                select.and_where(webhook_delivery::Column::Body.is_not_null()).and_where(
                    webhook_delivery::Column::ReceivedAtMs.gte(to_millis(deliveries_before)),
                );
            }
            match integrations {
                DeliveryIntegrations::Only(ids) => {
                    select.and_where(
                        webhook_delivery::Column::IntegrationId.is_in(ids.iter().copied()),
                    );
                }
                DeliveryIntegrations::AllBut(ids) if !ids.is_empty() => {
                    select.and_where(
                        webhook_delivery::Column::IntegrationId.is_not_in(ids.iter().copied()),
                    );
                }
                DeliveryIntegrations::AllBut(_) => {}
            }
            select
        };
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let leaving = transaction
            .query_all_raw(backend.build(&batch(deliveries_before, false)))
            .await
            .map_err(db_error(context))?
            .iter()
            .map(|row| row.try_get::<Uuid>("", "id").map_err(db_error(context)))
            .collect::<Result<Vec<Uuid>, Error>>()?;
        // The documents written against their bodies first, in the same commit.
        super::documents::detach_documents(&transaction, &leaving, context).await?;
        let mut deleted = 0;
        for chunk in leaving.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
            let delete = Query::delete()
                .from_table(webhook_delivery::Entity)
                .and_where(webhook_delivery::Column::Id.is_in(chunk.iter().copied()))
                .to_owned();
            deleted += transaction
                .execute_raw(backend.build(&delete))
                .await
                .map_err(db_error(context))?
                .rows_affected();
        }
        transaction.commit().await.map_err(db_error(context))?;
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let cleared = clear_bodies(&transaction, batch(bodies_before, true), context).await?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok((cleared, deleted))
    }
}

/// The query of [`Storage::list_webhook_deliveries`], read in its order from
/// `deliveries_by_integration`: on SQLite newest stored first (by rowid, m0042), on PostgreSQL
/// by id.
pub(super) fn deliveries_listing(
    integration_id: Uuid,
    verdict: Option<DeliveryVerdict>,
    before: Option<Uuid>,
    backend: sea_orm::DbBackend,
) -> sea_orm::Select<webhook_delivery::Entity> {
    let mut query = listed().filter(webhook_delivery::Column::IntegrationId.eq(integration_id));
    if let Some(verdict) = verdict {
        query = query.filter(webhook_delivery::Column::Verdict.eq(verdict.as_str()));
    }
    let by_rowid = backend == sea_orm::DbBackend::Sqlite;
    let table = sea_orm::EntityName::table_name(&webhook_delivery::Entity);
    let (order, after) =
        super::listing_order(table, webhook_delivery::Column::Id, by_rowid, before);
    if let Some(after) = after {
        query = query.filter(after);
    }
    query.order_by_desc(order)
}

/// Whose deliveries a pruning batch reads, by integration: a delivery's project is its
/// integration's (m0036), so the deliveries of a deleted integration are in no project's, and
/// under the server's retention.
#[derive(Clone, Debug)]
pub enum DeliveryIntegrations {
    /// The integrations of one project with a retention of its own.
    Only(Vec<Uuid>),
    /// Every integration but these (those of the projects with their own), under the server's
    /// settings.
    AllBut(Vec<Uuid>),
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct ListedRow {
    id: Uuid,
    integration_id: Uuid,
    received_at_ms: i64,
    verdict: String,
    http_status: i32,
    event_type: String,
    call_id: String,
    body_sha256: String,
    error: String,
    error_message: String,
    ingest_id: Option<Uuid>,
    authenticated: bool,
    replayable: bool,
    /// The kept body, where `body_sha256` is empty: it holds the hash.
    hashed_body: Option<Vec<u8>>,
    body_encoding: String,
}

impl ListedRow {
    fn into_delivery(self, context: &'static str) -> Result<WebhookDelivery, Error> {
        let body_sha256 = stored_hash(self.body_sha256, self.hashed_body, &self.body_encoding);
        let verdict = DeliveryVerdict::parse(&self.verdict).ok_or_else(|| {
            Error::internal(context, format!("unknown verdict {:?}", self.verdict))
        })?;
        // An accepted delivery that names no ingest brought the one of its own id
        // (`stored_ingest_id`).
        let ingest_id =
            self.ingest_id.or((verdict == DeliveryVerdict::Accepted).then_some(self.id));
        Ok(WebhookDelivery {
            id: self.id,
            integration_id: self.integration_id,
            received_at: from_millis(self.received_at_ms),
            verdict,
            http_status: u16::try_from(self.http_status).unwrap_or_default(),
            event_type: self.event_type,
            call_id: self.call_id,
            body_sha256,
            error: self.error,
            error_message: self.error_message,
            ingest_id,
            authenticated: self.authenticated,
            replayable: self.replayable,
        })
    }
}

/// A delivery's body hash: `stored` (`body_sha256`), or, where that is empty and the body is
/// kept (`delivery_model`), the SHA-256 of the body read back; empty when that body does not
/// read, so that one damaged body neither hides a listing nor holds back its own clearing
/// (reading the delivery itself says what is wrong).
fn stored_hash(stored: String, body: Option<Vec<u8>>, encoding: &str) -> String {
    match body {
        Some(body) if stored.is_empty() => {
            let body =
                kept_request_and_body(encoding, Some(body), None).ok().and_then(|kept| kept.1);
            hash_or(stored, body.as_deref())
        }
        _ => stored,
    }
}

/// `stored` (`body_sha256`), or where that is empty the SHA-256 of `body` as it arrived (empty
/// without one).
fn hash_or(stored: String, body: Option<&[u8]>) -> String {
    match body {
        Some(body) if stored.is_empty() => crate::crypto::sha256_hex(body),
        _ => stored,
    }
}

/// Clears the request and body of the deliveries whose ids `ids` selects, writing down first
/// the hash of each body that held it (`stored_hash`), so that a delivery keeps its hash
/// without its body. Returns how many were cleared.
pub(super) async fn clear_bodies(
    connection: &impl ConnectionTrait,
    ids: sea_orm::sea_query::SelectStatement,
    context: &'static str,
) -> Result<u64, Error> {
    use webhook_delivery::Column;
    let backend = connection.get_database_backend();
    let select = Query::select()
        .columns([Column::Id, Column::BodySha256, Column::BodyEncoding])
        .expr_as(
            Expr::case(Expr::col(Column::BodySha256).eq(""), Expr::col(Column::Body))
                .finally(Expr::val(Option::<Vec<u8>>::None)),
            "hashed_body",
        )
        .from(webhook_delivery::Entity)
        .and_where(Expr::col(Column::Id).in_subquery(ids))
        .to_owned();
    let mut cleared = Vec::new();
    for row in connection.query_all_raw(backend.build(&select)).await.map_err(db_error(context))? {
        let id: Uuid = row.try_get("", "id").map_err(db_error(context))?;
        let stored: String = row.try_get("", "body_sha256").map_err(db_error(context))?;
        let encoding: String = row.try_get("", "body_encoding").map_err(db_error(context))?;
        let body: Option<Vec<u8>> = row.try_get("", "hashed_body").map_err(db_error(context))?;
        let hashed = body.is_some();
        cleared.push((id, hashed.then(|| stored_hash(stored, body, &encoding))));
    }
    let ids: Vec<Uuid> = cleared.iter().map(|(id, _)| *id).collect();
    super::documents::detach_documents(connection, &ids, context).await?;
    let mut count = 0;
    for chunk in cleared.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        let mut update = Query::update();
        update
            .table(webhook_delivery::Entity)
            .value(Column::Body, Option::<Vec<u8>>::None)
            .value(Column::BodyEncoding, AS_RECEIVED)
            .value(Column::RequestJson, Option::<String>::None)
            .and_where(Column::Id.is_in(chunk.iter().map(|(id, _)| *id)));
        let hashes = chunk.iter().filter_map(|(id, hash)| Some((*id, hash.clone()?)));
        if let Some(hashes) = super::value_by_id(Column::Id, Column::BodySha256, hashes) {
            update.value(Column::BodySha256, hashes);
        }
        count += connection
            .execute_raw(backend.build(&update))
            .await
            .map_err(db_error(context))?
            .rows_affected();
    }
    Ok(count)
}

/// The kept bodies of `ids`, as they arrived, by delivery; a delivery without one is left out.
pub(super) async fn bodies_of(
    connection: &impl ConnectionTrait,
    ids: &[Uuid],
    context: &'static str,
) -> Result<std::collections::HashMap<Uuid, Vec<u8>>, Error> {
    let backend = connection.get_database_backend();
    let mut bodies = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
        let select = kept_bodies_of(chunk);
        for row in
            connection.query_all_raw(backend.build(&select)).await.map_err(db_error(context))?
        {
            let id: Uuid = row.try_get("", "id").map_err(db_error(context))?;
            let encoding: String = row.try_get("", "body_encoding").map_err(db_error(context))?;
            let stored: Option<Vec<u8>> = row.try_get("", "body").map_err(db_error(context))?;
            if let Some(stored) = stored {
                let body = kept_body_alone(&encoding, stored)
                    .map_err(|error| Error::internal(context, error))?;
                bodies.insert(id, body);
            }
        }
    }
    Ok(bodies)
}

/// The id, encoding and kept body of each of `ids` that keeps one (`bodies_of`).
pub(super) fn kept_bodies_of(ids: &[Uuid]) -> sea_orm::sea_query::SelectStatement {
    use webhook_delivery::Column;
    Query::select()
        .columns([Column::Id, Column::BodyEncoding, Column::Body])
        .from(webhook_delivery::Entity)
        .and_where(Column::Id.is_in(ids.iter().copied()))
        .and_where(Column::Body.is_not_null())
        .to_owned()
}

/// The query of [`Storage::ingest_deliveries`].
pub(super) fn deliveries_of_ingests(
    ingest_ids: &[Uuid],
    limit: usize,
) -> sea_orm::Select<webhook_delivery::Entity> {
    listed()
        .filter(by_ingests(ingest_ids))
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::{AS_RECEIVED, DEFLATE, DEFLATE_P1, P1, keep_body, kept_body};
    use crate::storage::presets::{BODY_1, deflated_elsewhere};

    /// A JSON body is kept compressed and reads back byte for byte; a body that does not shrink
    /// (already compressed, random) is kept as it arrived; a stored body that cannot be read
    /// back is an error, not a wrong body.
    #[test]
    fn kept_bodies_shrink_and_read_back_as_sent() {
        let json = serde_json::json!({
            "call_id": "c-1",
            "transcript": (0..12).map(|turn| serde_json::json!({
                "role": if turn % 2 == 0 { "assistant" } else { "user" },
                "content": format!("line {turn} of a call about a refund for a double charge"),
            })).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes();
        let (encoding, stored) = keep_body(&json);
        assert_eq!(encoding, P1);
        assert!(stored.len() * 2 < json.len(), "{} of {} bytes", stored.len(), json.len());
        assert_eq!(kept_body(encoding, stored.clone()).unwrap(), json);
        // Without the preset it was written with, the body does not read.
        assert!(kept_body(DEFLATE, stored).is_err());
        // Bodies written by any encoder read back: with the preset, and deflated alone (as
        // before run 22).
        for name in [P1, DEFLATE_P1] {
            assert_eq!(kept_body(name, deflated_elsewhere(&json, BODY_1)).unwrap(), json);
        }
        assert_eq!(kept_body(DEFLATE, deflated_elsewhere(&json, &[])).unwrap(), json);

        let random = crate::crypto::random_bytes::<512>().to_vec();
        let (encoding, stored) = keep_body(&random);
        assert_eq!((encoding, stored.as_slice()), (AS_RECEIVED, random.as_slice()));
        assert_eq!(kept_body(encoding, stored).unwrap(), random);

        assert!(kept_body(DEFLATE, b"not deflate at all".to_vec()).is_err());
        assert!(kept_body("brotli", json.clone()).is_err());
    }

    /// A request kept with its body is compressed with it and reads back as it came, from
    /// stored forms pinned here (length, JSON, body, deflated alone or with the preset); without
    /// a request it stays in `request_json`; a stored form cut short is an error.
    #[test]
    fn a_request_is_kept_inside_its_compressed_body() {
        use std::io::Write;

        use super::{
            DEFLATE_P1_WITH_REQUEST, DEFLATE_WITH_REQUEST, P1_WITH_REQUEST, keep_with_request,
            kept_body_alone, kept_request_and_body,
        };
        use crate::model::deliveries::StoredRequest;
        let request = StoredRequest {
            url: "https://earshot.example/v0/voice/webhook/monitor/pub_1".to_owned(),
            headers: vec![
                ("webhook-id".to_owned(), "msg_1".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
            ],
        };
        let request_json = serde_json::to_string(&request).unwrap();
        let body =
            br#"{"call_id":"c-1","transcript":[{"role":"user","content":"a refund, a refund"}]}"#;
        let (encoding, stored) = keep_with_request(Some(&request_json), body).unwrap();
        assert_eq!(encoding, P1_WITH_REQUEST);
        assert!(stored.len() < request_json.len() + body.len());
        let read = kept_request_and_body(encoding, Some(stored), None).unwrap();
        assert_eq!(read, (Some(request.clone()), Some(body.to_vec())));

        let mut framed = (request_json.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(request_json.as_bytes());
        framed.extend_from_slice(body);
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&framed).unwrap();
        let pinned = encoder.finish().unwrap();
        let read = kept_request_and_body(DEFLATE_WITH_REQUEST, Some(pinned), None).unwrap();
        assert_eq!(read, (Some(request.clone()), Some(body.to_vec())));
        let pinned = deflated_elsewhere(&framed, BODY_1);
        for name in [P1_WITH_REQUEST, DEFLATE_P1_WITH_REQUEST] {
            let read = kept_request_and_body(name, Some(pinned.clone()), None).unwrap();
            assert_eq!(read, (Some(request.clone()), Some(body.to_vec())));
            assert_eq!(kept_body_alone(name, pinned.clone()).unwrap(), body);
        }

        assert_eq!(keep_with_request(None, body), None);
        // A body that does not shrink: the request alone saves bytes with the preset, so the
        // two are still kept together, and read back as they came.
        let random = crate::crypto::random_bytes::<512>().to_vec();
        let (encoding, stored) = keep_with_request(Some(&request_json), &random).unwrap();
        assert!(stored.len() < framed.len() - body.len() + random.len());
        let read = kept_request_and_body(encoding, Some(stored), None).unwrap();
        assert_eq!(read, (Some(request.clone()), Some(random.clone())));
        // Kept apart, the request from `request_json`.
        let read = kept_request_and_body(AS_RECEIVED, Some(random.clone()), Some(&request_json));
        assert_eq!(read.unwrap(), (Some(request), Some(random)));

        for cut in [&framed[..3], &framed[..10]] {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(cut).unwrap();
            let stored = encoder.finish().unwrap();
            assert!(kept_request_and_body(DEFLATE_WITH_REQUEST, Some(stored), None).is_err());
            let stored = deflated_elsewhere(cut, BODY_1);
            assert!(kept_request_and_body(P1_WITH_REQUEST, Some(stored), None).is_err());
        }
    }
}
