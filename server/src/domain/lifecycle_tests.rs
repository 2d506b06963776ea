//! Deletion and retention over a real database (in-memory SQLite; PostgreSQL when
//! EARSHOT_TEST_POSTGRES_URL is set) and a real audio store, with a clock the tests move.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::{DeleteRequest, Domain};
use crate::clock::{Clock, ManualClock};
use crate::model::auth::{Principal, Scope};
use crate::model::commit::IngestWrite;
use crate::model::conversation::AudioSource;
use crate::model::datapoints::{Datapoint, DatapointQuery, DatapointView};
use crate::model::deliveries::{DeliveryVerdict, NewDelivery, StoredRequest, WebhookDelivery};
use crate::model::ingest::{IngestOutcome, NewIngest, dedup_key};
use crate::model::lifecycle::{DeletionReason, Removed};
use crate::model::projects::Retention;
use crate::storage::FinishedIngest;
use crate::storage::ingest_tests::conversation;

struct Fixture {
    domain: Domain,
    clock: Arc<ManualClock>,
    admin: Principal,
    project: Uuid,
    _audio: tempfile::TempDir,
}

async fn fixture(batch_size: usize, audio_grace: chrono::Duration) -> Fixture {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()));
    let (mut domain, audio) = super::super::test_support::domain(clock.clone()).await;
    let mut settings = super::super::test_support::settings();
    settings.lifecycle = super::super::LifecycleSettings { batch_size, audio_grace };
    domain.settings = Arc::new(settings);
    let bootstrap = domain.bootstrap(false).await.unwrap().unwrap();
    let admin = super::super::test_support::admin_of(&bootstrap);
    Fixture { domain, clock, admin, project: bootstrap.project.id, _audio: audio }
}

impl Fixture {
    /// Stores call `call_id` as the workers would: its ingest (from a webhook delivery whose
    /// body is kept) queued as a job, claimed, and finished into a datapoint with `recording`
    /// stored as its audio. Returns its datapoint.
    async fn store_call(
        &self,
        call_id: &str,
        started_at: DateTime<Utc>,
        recording: Option<&[u8]>,
    ) -> Datapoint {
        let storage = &self.domain.storage;
        let organization = self.admin.organization_id;
        let audio_id = match recording {
            Some(bytes) => {
                let object =
                    self.domain.new_audio_object(organization, self.project, bytes, "audio/wav");
                self.domain
                    .blobs
                    .put_if_absent(&object.blob_key, bytes::Bytes::copy_from_slice(bytes))
                    .await
                    .unwrap();
                storage.insert_audio_object(&object).await.unwrap();
                Some(object.id)
            }
            None => None,
        };
        let mut conversation = conversation(call_id);
        conversation.started_at = Some(started_at);
        // Tagged by the call id's first part: `call-3` is tagged `call`.
        conversation.tags = vec![call_id.split('-').next().unwrap_or_default().to_owned()];
        conversation.audio = audio_id.map(|audio_id| AudioSource::Stored { audio_id });
        let ingest = NewIngest {
            id: Uuid::now_v7(),
            organization_id: organization,
            project_id: self.project,
            dedup_key: dedup_key(&conversation),
            conversation,
        };
        let write = IngestWrite {
            ingests: vec![ingest],
            delivery: Some(delivery(organization, self.project, call_id, self.clock.now())),
            ..IngestWrite::default()
        };
        storage
            .commit_ingest_writes(
                &[&write],
                crate::storage::testing::jobs_only(3),
                self.clock.now(),
            )
            .await
            .unwrap();
        self.finish_jobs().await;
        let organization = self.admin.organization_id;
        crate::storage::testing::stored_call(storage, organization, self.project, "custom", call_id)
            .await
            .unwrap()
    }

    /// Runs every queued job as a worker would, each into its call's datapoint.
    async fn finish_jobs(&self) -> usize {
        let storage = &self.domain.storage;
        let now = self.clock.now();
        let claimed =
            storage.queue().claim("test", now, Duration::from_secs(60), 100).await.unwrap();
        let mut datapoints = Vec::new();
        let mut ids = Vec::new();
        for job in &claimed {
            let (record, conversation) = storage.load_ingest(job).await.unwrap().unwrap();
            let audio_id = match conversation.audio {
                Some(AudioSource::Stored { audio_id }) => Some(audio_id),
                _ => None,
            };
            let existing = crate::storage::testing::stored_call(
                storage,
                record.organization_id,
                record.project_id,
                &conversation.provider,
                &conversation.call_id,
            )
            .await;
            let new = existing.is_none();
            datapoints.push((
                Datapoint::merge(
                    existing,
                    &conversation,
                    audio_id,
                    record.organization_id,
                    record.project_id,
                    Uuid::now_v7(),
                    now,
                ),
                new,
            ));
            ids.push((job.id, record.id, job.attempts));
        }
        let finished: Vec<FinishedIngest<'_>> = ids
            .iter()
            .zip(&datapoints)
            .map(|((job_id, ingest_id, attempts), (datapoint, new))| FinishedIngest {
                job_id: *job_id,
                ingest_id: *ingest_id,
                attempts: *attempts,
                datapoint,
                new: *new,
            })
            .collect();
        storage.finish_ingests(&finished, now).await.unwrap();
        finished.len()
    }

    async fn search(&self, query: DatapointQuery) -> Vec<DatapointView> {
        let query = DatapointQuery { page_size: 100, ..query };
        self.domain.search_datapoints(&self.admin, query).await.unwrap().datapoints
    }

    async fn call_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .search(DatapointQuery::default())
            .await
            .into_iter()
            .map(|view| view.datapoint.call_id)
            .collect();
        ids.sort();
        ids
    }

    async fn blobs(&self) -> Vec<String> {
        self.domain.blobs.keys().await
    }

    async fn delete(&self, request: DeleteRequest) -> Removed {
        self.domain.delete_datapoints(&self.admin, request).await.unwrap().removed
    }

    fn by_call_id(&self, call_id: &str) -> DeleteRequest {
        DeleteRequest {
            filter: DatapointQuery { call_id: Some(call_id.to_owned()), ..Default::default() },
            ..DeleteRequest::default()
        }
    }
}

fn delivery(organization: Uuid, project: Uuid, call_id: &str, now: DateTime<Utc>) -> NewDelivery {
    NewDelivery {
        organization_id: organization,
        project_id: project,
        record: WebhookDelivery {
            id: Uuid::now_v7(),
            integration_id: Uuid::nil(),
            received_at: now,
            verdict: DeliveryVerdict::Accepted,
            http_status: 202,
            event_type: "call_ended".to_owned(),
            call_id: call_id.to_owned(),
            body_sha256: crate::crypto::sha256_hex(body(call_id).as_bytes()),
            error: String::new(),
            error_message: String::new(),
            ingest_id: None,
            authenticated: true,
            replayable: true,
        },
        request: Some(StoredRequest { url: "https://h/x".to_owned(), headers: Vec::new() }),
        body: Some(bytes::Bytes::from(body(call_id))),
    }
}

fn body(call_id: &str) -> String {
    format!(r#"{{"call_id": "{call_id}"}}"#)
}

fn days_ago(clock: &ManualClock, days: i64) -> DateTime<Utc> {
    clock.now() - chrono::Duration::days(days)
}

/// A call deleted by call id, by datapoint id or by a filter takes everything stored of it:
/// its datapoint (no search finds it, its transcript words included), its ingest (the same
/// content delivered again is stored as new), its delivery's body, and its recording unless
/// another call names the same bytes. Each deletion is audited without the deleted content.
#[tokio::test]
async fn a_deleted_call_leaves_nothing_behind_but_its_audit_record() {
    let f = fixture(500, chrono::Duration::zero()).await;
    let now = f.clock.now();
    let shared: &[u8] = b"RIFF shared recording";
    let own: &[u8] = b"RIFF own recording";
    let a = f.store_call("a", now, Some(shared)).await;
    let b = f.store_call("b", now, Some(shared)).await;
    let c = f.store_call("c", now, Some(own)).await;
    f.store_call("d", now, None).await;
    assert_eq!(f.blobs().await.len(), 2);
    assert_eq!(f.call_ids().await, ["a", "b", "c", "d"]);

    // By call id: the recording stays, b still names it.
    let removed = f.delete(f.by_call_id("a")).await;
    assert_eq!(removed, Removed { datapoints: 1, ingests: 1, delivery_bodies: 1, recordings: 0 });
    assert_eq!(f.call_ids().await, ["b", "c", "d"]);
    // Its delivery stays, without its body but with the body's hash.
    let deliveries = f.domain.storage.list_webhook_deliveries(Uuid::nil(), None, None, 10).await;
    let deliveries = deliveries.unwrap();
    let delivery = deliveries.iter().find(|delivery| delivery.call_id == "a").unwrap();
    assert!(!delivery.replayable);
    assert_eq!(delivery.body_sha256, crate::crypto::sha256_hex(body("a").as_bytes()));
    assert_eq!(f.blobs().await.len(), 2);
    let kept = f.domain.get_datapoint(&f.admin, b.id).await.unwrap();
    assert_eq!(kept.audio.map(|audio| audio.id), a.audio_id);
    assert!(f.domain.get_datapoint(&f.admin, a.id).await.is_err());

    // By datapoint id: the last call naming its recording takes it out of the store.
    let removed = f.delete(DeleteRequest { datapoint_ids: vec![c.id], ..Default::default() }).await;
    assert_eq!(removed.recordings, 1);
    assert_eq!(
        f.blobs().await,
        [crate::blob::BlobStore::key_for(&crate::crypto::sha256_hex(shared))]
    );

    // By a filter of transcript words: the full-text rows go with the datapoints.
    let words = DatapointQuery { text_contains: Some("hello there".into()), ..Default::default() };
    assert_eq!(f.search(words.clone()).await.len(), 2);
    let removed = f.delete(DeleteRequest { filter: words.clone(), ..Default::default() }).await;
    assert_eq!((removed.datapoints, removed.recordings), (2, 1));
    assert!(f.search(words).await.is_empty());
    assert!(f.call_ids().await.is_empty());
    assert!(f.blobs().await.is_empty());

    // Delivered again, a deleted call is stored again, as new.
    let again = f.store_call("a", now, None).await;
    assert_ne!(again.id, a.id);
    assert_eq!(f.call_ids().await, ["a"]);

    // The audit log: newest first, who and what filter, the counts, nothing of the calls.
    let (deletions, _) = f.domain.list_deletions(&f.admin, 10, "").await.unwrap();
    assert_eq!(deletions.len(), 3);
    assert!(deletions.iter().all(|deletion| deletion.reason == DeletionReason::Request
        && deletion.actor == format!("api_key:{}", f.admin.api_key_id)
        && deletion.finished_at.is_some()));
    assert_eq!(deletions[2].filter, serde_json::json!({"call_id": "a"}));
    assert_eq!(deletions[1].filter, serde_json::json!({"datapoint_ids": [c.id]}));
    assert_eq!(deletions[0].removed.datapoints, 2);
    let log =
        serde_json::to_string(&deletions.iter().map(|d| &d.filter).collect::<Vec<_>>()).unwrap();
    assert!(!log.contains("100%"), "no transcript in the log: {log}");
}

/// Deleting asks for the admin scope and for something to delete; a filter that names nothing
/// (which would be every call) is refused, naming the field.
#[tokio::test]
async fn a_deletion_must_name_its_calls() {
    let f = fixture(500, chrono::Duration::zero()).await;
    f.store_call("a", f.clock.now(), None).await;
    let refused = |request: DeleteRequest, principal: Principal| {
        let domain = f.domain.clone();
        async move { domain.delete_datapoints(&principal, request).await.unwrap_err() }
    };
    let error = refused(DeleteRequest::default(), f.admin.clone()).await;
    assert_eq!(error.field_violations()[0].field, "filter");
    let both = DeleteRequest { datapoint_ids: vec![Uuid::now_v7()], ..f.by_call_id("a") };
    assert_eq!(refused(both, f.admin.clone()).await.field_violations()[0].field, "datapoint_ids");
    let reader = Principal { scopes: vec![Scope::Read, Scope::Ingest], ..f.admin.clone() };
    assert!(matches!(
        refused(f.by_call_id("a"), reader).await,
        crate::error::Error::PermissionDenied(_)
    ));
    assert_eq!(f.call_ids().await, ["a"]);
}

/// A deletion of many calls runs in bounded batches and takes every matching call, however
/// many batches it needs; calls outside the filter stay.
#[tokio::test]
async fn a_large_deletion_runs_in_batches_and_takes_every_match() {
    let f = fixture(3, chrono::Duration::zero()).await;
    let now = f.clock.now();
    for index in 0..10 {
        let call = f.store_call(&format!("call-{index}"), now, None).await;
        assert_eq!(call.tags, ["call"]);
    }
    f.store_call("other", now, None).await;
    let filter = DatapointQuery { tags_all: vec!["call".into()], ..Default::default() };
    let removed = f.delete(DeleteRequest { filter, ..Default::default() }).await;
    assert_eq!((removed.datapoints, removed.ingests, removed.delivery_bodies), (10, 10, 10));
    assert_eq!(f.call_ids().await, ["other"]);
    let (deletions, _) = f.domain.list_deletions(&f.admin, 10, "").await.unwrap();
    assert_eq!(deletions.len(), 1, "one audit record for all the batches");
    assert_eq!(deletions[0].removed, removed);
}

/// A job whose call is deleted while it runs does not bring the call back when it finishes.
#[tokio::test]
async fn a_call_deleted_while_its_job_runs_stays_deleted() {
    let f = fixture(500, chrono::Duration::zero()).await;
    let storage = &f.domain.storage;
    let now = f.clock.now();
    f.store_call("e", now, None).await;
    // A later event of the same call, queued and claimed.
    let mut later = conversation("e");
    later.tags = vec!["later".into()];
    let ingest = NewIngest {
        id: Uuid::now_v7(),
        organization_id: f.admin.organization_id,
        project_id: f.project,
        dedup_key: dedup_key(&later),
        conversation: later,
    };
    let write = IngestWrite { ingests: vec![ingest], ..IngestWrite::default() };
    let outcome = storage
        .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), now)
        .await
        .unwrap();
    assert!(matches!(outcome[0][0], IngestOutcome::Created(_)));
    let claimed = storage.queue().claim("slow", now, Duration::from_secs(60), 10).await.unwrap();
    let (record, conversation) = storage.load_ingest(&claimed[0]).await.unwrap().unwrap();
    let removed = f.delete(f.by_call_id("e")).await;
    assert_eq!((removed.datapoints, removed.ingests), (1, 2));
    let datapoint = Datapoint::merge(
        None,
        &conversation,
        None,
        f.admin.organization_id,
        f.project,
        Uuid::now_v7(),
        now,
    );
    let finished = FinishedIngest {
        job_id: claimed[0].id,
        ingest_id: record.id,
        attempts: claimed[0].attempts,
        datapoint: &datapoint,
        new: true,
    };
    storage.finish_ingests(&[finished], now).await.unwrap();
    assert!(f.call_ids().await.is_empty());
}

/// Retention, per project, counted from when each call took place: calls past the datapoint
/// retention go with everything stored of them, recordings past the audio retention go while
/// their datapoints stay; later sweeps take what expires later. Each sweep that removed
/// something is audited.
#[tokio::test]
async fn retention_removes_what_expired_and_keeps_the_rest() {
    let f = fixture(2, chrono::Duration::zero()).await;
    let clock = &f.clock;
    f.store_call("old-1", days_ago(clock, 40), Some(b"RIFF old 1")).await;
    f.store_call("old-2", days_ago(clock, 35), None).await;
    f.store_call("old-3", days_ago(clock, 31), None).await;
    f.store_call("mid", days_ago(clock, 10), Some(b"RIFF mid")).await;
    f.store_call("new", days_ago(clock, 1), Some(b"RIFF new")).await;
    assert_eq!(f.blobs().await.len(), 3);

    // Nothing happens before a retention is set: the default keeps everything.
    assert!(f.domain.sweep_retention().await.unwrap().is_empty());
    let retention =
        Retention { datapoint_days: Some(30), audio_days: Some(7), ..Retention::default() };
    let project = f.domain.set_project_retention(&f.admin, f.project, retention).await.unwrap();
    assert_eq!(project.retention, retention);

    let removed = f.domain.sweep_retention().await.unwrap();
    assert_eq!((removed.datapoints, removed.recordings), (3, 2));
    assert_eq!(f.call_ids().await, ["mid", "new"]);
    let views = f.search(DatapointQuery::default()).await;
    let audio = |call: &str| {
        views.iter().find(|view| view.datapoint.call_id == call).unwrap().audio.is_some()
    };
    assert!(!audio("mid"), "past the audio retention, the datapoint stays without its audio");
    assert!(audio("new"));
    assert_eq!(
        f.blobs().await,
        [crate::blob::BlobStore::key_for(&crate::crypto::sha256_hex(b"RIFF new"))]
    );

    // A week on, the newest recording has expired too; the calls have not.
    clock.advance(chrono::Duration::days(7));
    let removed = f.domain.sweep_retention().await.unwrap();
    assert_eq!((removed.datapoints, removed.recordings), (0, 1));
    assert!(f.blobs().await.is_empty());
    assert_eq!(f.call_ids().await, ["mid", "new"]);

    let (deletions, _) = f.domain.list_deletions(&f.admin, 10, "").await.unwrap();
    let reasons: Vec<(DeletionReason, u64, u64)> = deletions
        .iter()
        .map(|deletion| (deletion.reason, deletion.removed.datapoints, deletion.removed.recordings))
        .collect();
    assert_eq!(
        reasons,
        [
            (DeletionReason::AudioRetention, 0, 1),
            (DeletionReason::AudioRetention, 0, 1),
            (DeletionReason::Retention, 3, 1),
        ]
    );
    assert!(deletions.iter().all(|deletion| deletion.actor == "retention"));

    // Out of range is refused, naming the field.
    let wrong = Retention { datapoint_days: Some(0), ..Retention::default() };
    let error = f.domain.set_project_retention(&f.admin, f.project, wrong).await.unwrap_err();
    assert_eq!(error.field_violations()[0].field, "retention.datapoint_days");
}

/// With a grace period, a recording left without a call stays in the audio store until the
/// grace is over, and stays for good if the same bytes are stored again meanwhile.
#[tokio::test]
async fn recordings_leave_the_store_after_their_grace_unless_stored_again() {
    let f = fixture(500, chrono::Duration::minutes(10)).await;
    let now = f.clock.now();
    f.store_call("x", now, Some(b"RIFF x")).await;
    f.store_call("y", now, Some(b"RIFF y")).await;
    assert_eq!(f.delete(f.by_call_id("x")).await.recordings, 1);
    assert_eq!(f.delete(f.by_call_id("y")).await.recordings, 1);
    assert_eq!(f.blobs().await.len(), 2, "within the grace, both blobs stay");
    assert_eq!(f.domain.remove_orphan_blobs().await.unwrap(), 0);

    // y's bytes are stored again (an upload, or a new call) before the grace ends.
    f.store_call("y-again", now, Some(b"RIFF y")).await;
    f.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(f.domain.remove_orphan_blobs().await.unwrap(), 1);
    assert_eq!(
        f.blobs().await,
        [crate::blob::BlobStore::key_for(&crate::crypto::sha256_hex(b"RIFF y"))]
    );
    let again = f.search(DatapointQuery::default()).await;
    assert!(again[0].audio.is_some());
    // Nothing is left queued.
    assert_eq!(f.domain.remove_orphan_blobs().await.unwrap(), 0);
}
