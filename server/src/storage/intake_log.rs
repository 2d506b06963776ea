//! The intake log (m0025). While the intake is saturated, a request's write is not turned into
//! its rows (ingests, delivery, datapoint, tags, monitors' results) in the group commit that
//! acknowledges it: the group's logged writes go into one `intake_log` row, a single insert
//! however many requests share the commit, and are answered once that row is durable. The
//! process then stores each row's writes as usual (`Storage::store_intake_log`), in large
//! batches, deleting the row in the same transaction, so every logged write is stored exactly
//! once, also after a crash (the log is expanded again at start).
//!
//! Repeats are answered as they would be otherwise: the group commit reads stored keys as
//! always, and also the keys of logged writes not stored yet, which this process keeps in
//! memory (`PendingKeys`): one process owns an SQLite file, and the log is expanded at start
//! before any request is taken. Until its row is expanded, a logged call is not found by
//! searches or ingest lookups; the `earshot_intake_log_requests` gauge counts those requests.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::commit::IngestWrite;
use crate::model::conversation::Conversation;
use crate::model::deliveries::{DeliveryVerdict, NewDelivery, StoredRequest, WebhookDelivery};
use crate::model::ingest::{AudioObject, NewIngest};

/// The first byte of a log row's `writes`: the version of the encoding below. A shipped version
/// is never changed (`stored_formats_tests.rs` pins it); a change gets a new version.
const VERSION_1: u8 = 1;

/// A body length that says there is no body.
const NO_BODY: u32 = u32::MAX;

/// One request's write, ready for the log: its encoding, and the keys the group commit checks
/// for repeats. Built by the request, before the writer's turn.
#[derive(Debug)]
pub struct LoggedWrite {
    pub(super) encoded: Vec<u8>,
    acknowledged_at_ms: i64,
    /// Each ingest's key, in order.
    pub(super) keys: Vec<LoggedKey>,
}

/// A logged ingest's dedup key (its project and content key), the call the stored keys' index
/// holds it under (m0032), and its id.
#[derive(Debug)]
pub(super) struct LoggedKey {
    pub(super) project_id: Uuid,
    pub(super) dedup_key: String,
    pub(super) call_id: String,
    pub(super) provider: String,
    pub(super) id: Uuid,
}

impl LoggedWrite {
    pub fn new(write: &IngestWrite, acknowledged_at: DateTime<Utc>) -> Result<Self, Error> {
        let context = "logging an ingest";
        let acknowledged_at_ms = to_millis(acknowledged_at);
        let logged = WriteV1 {
            acknowledged_at_ms,
            audio_objects: write.audio_objects.iter().map(AudioObjectV1::from).collect(),
            ingests: write.ingests.iter().map(IngestV1::from).collect(),
            delivery: write.delivery.as_ref().map(DeliveryV1::from),
        };
        let json = serde_json::to_vec(&logged).map_err(|error| Error::internal(context, error))?;
        let body = write.delivery.as_ref().and_then(|delivery| delivery.body.as_deref());
        let mut encoded = Vec::with_capacity(8 + json.len() + body.map_or(0, <[u8]>::len));
        push_part(&mut encoded, Some(&json), context)?;
        push_part(&mut encoded, body, context)?;
        Ok(Self {
            encoded,
            acknowledged_at_ms,
            keys: write
                .ingests
                .iter()
                .map(|ingest| LoggedKey {
                    project_id: ingest.project_id,
                    dedup_key: ingest.dedup_key.clone(),
                    call_id: ingest.conversation.call_id.clone(),
                    provider: ingest.conversation.provider.clone(),
                    id: ingest.id,
                })
                .collect(),
        })
    }

    pub fn ingest_count(&self) -> usize {
        self.keys.len()
    }
}

/// The `writes` column of a log row holding `writes`.
pub(super) fn log_row(writes: &[&LoggedWrite]) -> Vec<u8> {
    let mut row =
        Vec::with_capacity(1 + writes.iter().map(|write| write.encoded.len()).sum::<usize>());
    row.push(VERSION_1);
    for write in writes {
        row.extend_from_slice(&write.encoded);
    }
    row
}

/// The `logged_at_ms` of a log row holding `writes`: when the first was acknowledged.
pub(super) fn logged_at_ms(writes: &[&LoggedWrite]) -> i64 {
    writes.iter().map(|write| write.acknowledged_at_ms).min().unwrap_or_default()
}

/// The writes of a log row, each with the time it was acknowledged.
pub(super) fn decode_row(row: &[u8]) -> Result<Vec<(IngestWrite, DateTime<Utc>)>, Error> {
    let context = "reading the intake log";
    let invalid = |reason: &str| Error::internal(context, reason.to_owned());
    let (&version, mut rest) = row.split_first().ok_or_else(|| invalid("an empty row"))?;
    if version != VERSION_1 {
        return Err(invalid(&format!("unknown version {version}")));
    }
    let mut writes = Vec::new();
    while !rest.is_empty() {
        let json = take_part(&mut rest)?.ok_or_else(|| invalid("a write without its record"))?;
        let body = take_part(&mut rest)?;
        let logged: WriteV1 =
            serde_json::from_slice(json).map_err(|error| Error::internal(context, error))?;
        writes.push(logged.into_write(body)?);
    }
    Ok(writes)
}

fn push_part(into: &mut Vec<u8>, part: Option<&[u8]>, context: &'static str) -> Result<(), Error> {
    match part {
        Some(part) => {
            let length = u32::try_from(part.len())
                .ok()
                .filter(|&length| length != NO_BODY)
                .ok_or_else(|| Error::internal(context, "a part over 4 GiB"))?;
            into.extend_from_slice(&length.to_le_bytes());
            into.extend_from_slice(part);
        }
        None => into.extend_from_slice(&NO_BODY.to_le_bytes()),
    }
    Ok(())
}

fn take_part<'a>(rest: &mut &'a [u8]) -> Result<Option<&'a [u8]>, Error> {
    let truncated = || Error::internal("reading the intake log", "a truncated row");
    let (length, after) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    let length = u32::from_le_bytes(*length);
    if length == NO_BODY {
        *rest = after;
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(|_| truncated())?;
    let (part, after) = after.split_at_checked(length).ok_or_else(truncated)?;
    *rest = after;
    Ok(Some(part))
}

/// Keys of logged writes whose rows are not expanded yet, with their ingest ids: what the group
/// commit treats as stored besides the `ingests` table.
#[derive(Debug, Default)]
pub(super) struct PendingKeys {
    state: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    keys: HashMap<(Uuid, String), Uuid>,
    /// Requests in log rows not expanded yet.
    requests: usize,
}

impl PendingKeys {
    /// Adds the ingest ids logged under `keys` that `known` does not have yet.
    pub(super) fn fill(&self, keys: &[(Uuid, &str)], known: &mut HashMap<(Uuid, String), Uuid>) {
        let state = self.lock();
        if state.keys.is_empty() {
            return;
        }
        for &(project_id, dedup_key) in keys {
            let key = (project_id, dedup_key.to_owned());
            if let Some(id) = state.keys.get(&key) {
                known.entry(key).or_insert(*id);
            }
        }
    }

    /// Records a committed log row: `created` are the keys its writes stored first.
    pub(super) fn logged(&self, requests: usize, created: Vec<((Uuid, String), Uuid)>) {
        let mut state = self.lock();
        state.requests += requests;
        state.keys.extend(created);
    }

    /// Forgets log rows of `requests` that were stored (or whose commit failed): `keys`, each
    /// with the ingest id it had.
    pub(super) fn forget(&self, requests: usize, keys: &[((Uuid, String), Uuid)]) {
        let mut state = self.lock();
        state.requests = state.requests.saturating_sub(requests);
        for (key, id) in keys {
            if state.keys.get(key) == Some(id) {
                state.keys.remove(key);
            }
        }
    }

    /// Requests logged and not expanded yet.
    pub(super) fn requests(&self) -> usize {
        self.lock().requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A logged write. Written from borrowed parts (`LoggedWrite::new` copies no conversation),
/// read back as owned ones.
#[derive(Serialize, Deserialize)]
struct WriteV1<'a> {
    acknowledged_at_ms: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    audio_objects: Vec<AudioObjectV1>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ingests: Vec<IngestV1<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivery: Option<DeliveryV1<'a>>,
}

impl WriteV1<'_> {
    fn into_write(self, body: Option<&[u8]>) -> Result<(IngestWrite, DateTime<Utc>), Error> {
        let write = IngestWrite {
            audio_objects: self.audio_objects.into_iter().map(AudioObject::from).collect(),
            ingests: self.ingests.into_iter().map(NewIngest::from).collect(),
            delivery: self.delivery.map(|delivery| delivery.into_delivery(body)).transpose()?,
        };
        Ok((write, from_millis(self.acknowledged_at_ms)))
    }
}

#[derive(Serialize, Deserialize)]
struct AudioObjectV1 {
    id: Uuid,
    organization_id: Uuid,
    project_id: Uuid,
    sha256: String,
    content_type: String,
    size_bytes: i64,
    blob_key: String,
    duration_ms: Option<i64>,
    channels: Option<u32>,
    sample_rate_hz: Option<u32>,
    created_at_ms: i64,
}

impl From<&AudioObject> for AudioObjectV1 {
    fn from(object: &AudioObject) -> Self {
        let AudioObject {
            id,
            organization_id,
            project_id,
            sha256,
            content_type,
            size_bytes,
            blob_key,
            duration_ms,
            channels,
            sample_rate_hz,
            created_at,
        } = object.clone();
        Self {
            id,
            organization_id,
            project_id,
            sha256,
            content_type,
            size_bytes,
            blob_key,
            duration_ms,
            channels,
            sample_rate_hz,
            created_at_ms: to_millis(created_at),
        }
    }
}

impl From<AudioObjectV1> for AudioObject {
    fn from(object: AudioObjectV1) -> Self {
        Self {
            id: object.id,
            organization_id: object.organization_id,
            project_id: object.project_id,
            sha256: object.sha256,
            content_type: object.content_type,
            size_bytes: object.size_bytes,
            blob_key: object.blob_key,
            duration_ms: object.duration_ms,
            channels: object.channels,
            sample_rate_hz: object.sample_rate_hz,
            created_at: from_millis(object.created_at_ms),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct IngestV1<'a> {
    id: Uuid,
    organization_id: Uuid,
    project_id: Uuid,
    dedup_key: Cow<'a, str>,
    conversation: Cow<'a, Conversation>,
}

impl<'a> From<&'a NewIngest> for IngestV1<'a> {
    fn from(ingest: &'a NewIngest) -> Self {
        let NewIngest { id, organization_id, project_id, dedup_key, conversation } = ingest;
        Self {
            id: *id,
            organization_id: *organization_id,
            project_id: *project_id,
            dedup_key: Cow::Borrowed(dedup_key),
            conversation: Cow::Borrowed(conversation),
        }
    }
}

impl From<IngestV1<'_>> for NewIngest {
    fn from(ingest: IngestV1<'_>) -> Self {
        Self {
            id: ingest.id,
            organization_id: ingest.organization_id,
            project_id: ingest.project_id,
            dedup_key: ingest.dedup_key.into_owned(),
            conversation: ingest.conversation.into_owned(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct DeliveryV1<'a> {
    organization_id: Uuid,
    project_id: Uuid,
    id: Uuid,
    integration_id: Uuid,
    received_at_ms: i64,
    verdict: Cow<'a, str>,
    http_status: u16,
    event_type: Cow<'a, str>,
    call_id: Cow<'a, str>,
    body_sha256: Cow<'a, str>,
    error: Cow<'a, str>,
    error_message: Cow<'a, str>,
    ingest_id: Option<Uuid>,
    authenticated: bool,
    replayable: bool,
    request: Option<Cow<'a, StoredRequest>>,
}

impl<'a> From<&'a NewDelivery> for DeliveryV1<'a> {
    fn from(delivery: &'a NewDelivery) -> Self {
        let WebhookDelivery {
            id,
            integration_id,
            received_at,
            verdict,
            http_status,
            event_type,
            call_id,
            body_sha256,
            error,
            error_message,
            ingest_id,
            authenticated,
            replayable,
        } = &delivery.record;
        Self {
            organization_id: delivery.organization_id,
            project_id: delivery.project_id,
            id: *id,
            integration_id: *integration_id,
            received_at_ms: to_millis(*received_at),
            verdict: Cow::Borrowed(verdict.as_str()),
            http_status: *http_status,
            event_type: Cow::Borrowed(event_type),
            call_id: Cow::Borrowed(call_id),
            body_sha256: Cow::Borrowed(body_sha256),
            error: Cow::Borrowed(error),
            error_message: Cow::Borrowed(error_message),
            ingest_id: *ingest_id,
            authenticated: *authenticated,
            replayable: *replayable,
            request: delivery.request.as_ref().map(Cow::Borrowed),
        }
    }
}

impl DeliveryV1<'_> {
    fn into_delivery(self, body: Option<&[u8]>) -> Result<NewDelivery, Error> {
        let verdict = DeliveryVerdict::parse(&self.verdict).ok_or_else(|| {
            Error::internal("reading the intake log", format!("verdict {:?}", self.verdict))
        })?;
        Ok(NewDelivery {
            organization_id: self.organization_id,
            project_id: self.project_id,
            record: WebhookDelivery {
                id: self.id,
                integration_id: self.integration_id,
                received_at: from_millis(self.received_at_ms),
                verdict,
                http_status: self.http_status,
                event_type: self.event_type.into_owned(),
                call_id: self.call_id.into_owned(),
                body_sha256: self.body_sha256.into_owned(),
                error: self.error.into_owned(),
                error_message: self.error_message.into_owned(),
                ingest_id: self.ingest_id,
                authenticated: self.authenticated,
                replayable: self.replayable,
            },
            request: self.request.map(Cow::into_owned),
            body: body.map(bytes::Bytes::copy_from_slice),
        })
    }
}
