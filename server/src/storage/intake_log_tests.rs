//! The intake log over a real database (in-memory SQLite; Postgres when
//! EARSHOT_TEST_POSTGRES_URL is set): logged writes answer as stored rows would, are stored
//! exactly once by the expansion, and survive the process that logged them.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::ingest::PreparedWrite;
use super::intake_log::{LoggedWrite, decode_row, log_row};
use crate::clock::ManualClock;
use crate::model::commit::IngestWrite;
use crate::model::deliveries::{DeliveryVerdict, NewDelivery, StoredRequest, WebhookDelivery};
use crate::model::ingest::{IngestOutcome, IngestState};
use crate::storage::ingest_tests::new_ingest;
use crate::storage::{IntakeSettings, Storage};

const AT_INTAKE: IntakeSettings = IntakeSettings { max_attempts: 3, transcripts_at_intake: true };

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()
}

/// A webhook's write: one call and its delivery, with the body as it arrived; the call's
/// ingest has the delivery's id, as `admit_webhook_call` gives it.
pub(crate) fn webhook_write(organization: Uuid, project: Uuid, call_id: &str) -> IngestWrite {
    let mut ingest = new_ingest(organization, project, call_id);
    ingest.id = Uuid::now_v7();
    let delivery = NewDelivery {
        organization_id: organization,
        project_id: project,
        record: WebhookDelivery {
            id: ingest.id,
            integration_id: project,
            received_at: now(),
            verdict: DeliveryVerdict::Accepted,
            http_status: 202,
            event_type: "call.completed".to_owned(),
            call_id: call_id.to_owned(),
            body_sha256: "ab".repeat(32),
            error: String::new(),
            error_message: String::new(),
            ingest_id: Some(ingest.id),
            authenticated: true,
            replayable: true,
        },
        request: Some(StoredRequest {
            url: "https://earshot.example/v0/voice/webhook/monitor/x".to_owned(),
            headers: vec![("webhook-id".to_owned(), format!("msg-{call_id}"))],
        }),
        body: Some(bytes::Bytes::from(format!(r#"{{"call_id":"{call_id}","é":"\u0000"}}"#))),
    };
    IngestWrite { audio_objects: Vec::new(), ingests: vec![ingest], delivery: Some(delivery) }
}

/// Commits one group and waits until it is durable.
async fn commit(
    storage: &Storage,
    rows: &[&IngestWrite],
    logged: &[&IngestWrite],
) -> (Vec<Vec<IngestOutcome>>, Vec<Vec<IngestOutcome>>) {
    let prepared: Vec<PreparedWrite> = rows
        .iter()
        .map(|write| PreparedWrite::new((*write).clone(), AT_INTAKE, now()).unwrap())
        .collect();
    let logged: Vec<LoggedWrite> =
        logged.iter().map(|write| LoggedWrite::new(write, now()).unwrap()).collect();
    let (rows, logged, durable) = storage
        .commit_group_unsynced(
            &prepared.iter().collect::<Vec<_>>(),
            &logged.iter().collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    durable.wait().await.unwrap();
    (rows, logged)
}

#[tokio::test]
async fn logged_writes_are_answered_as_rows_would_be_and_stored_once_later() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let (a, b) =
        (webhook_write(organization, project, "a"), webhook_write(organization, project, "b"));
    let stored_before = webhook_write(organization, project, "c");
    commit(storage, &[&stored_before], &[]).await;
    let c_id = stored_before.ingests[0].id;

    // A group logs a, b and a repeat of c (stored as rows before), and a repeat of a in the
    // same group.
    let mut a_again = webhook_write(organization, project, "a");
    a_again.ingests[0].dedup_key.clone_from(&a.ingests[0].dedup_key);
    let mut c_again = webhook_write(organization, project, "c");
    c_again.ingests[0].dedup_key.clone_from(&stored_before.ingests[0].dedup_key);
    let (_, logged) = commit(storage, &[], &[&a, &b, &c_again, &a_again]).await;
    let (a_id, b_id) = (a.ingests[0].id, b.ingests[0].id);
    assert_eq!(
        logged,
        [
            vec![IngestOutcome::Created(a_id)],
            vec![IngestOutcome::Created(b_id)],
            vec![IngestOutcome::Duplicate(c_id)],
            vec![IngestOutcome::Duplicate(a_id)],
        ]
    );
    assert_eq!(storage.pending.requests(), 4);
    // Acknowledged, not stored as rows yet.
    assert_eq!(
        super::testing::stored_call(storage, organization, project, "custom", "a").await,
        None
    );
    assert_eq!(storage.get_ingest(organization, a_id).await.unwrap(), None);

    // The next group repeats a again, stored as rows and logged: both duplicates of the
    // logged ingest, not stored twice.
    let mut a_as_rows = webhook_write(organization, project, "a");
    a_as_rows.ingests[0].dedup_key.clone_from(&a.ingests[0].dedup_key);
    let mut a_logged = webhook_write(organization, project, "a");
    a_logged.ingests[0].dedup_key.clone_from(&a.ingests[0].dedup_key);
    let (rows, logged) = commit(storage, &[&a_as_rows], &[&a_logged]).await;
    assert_eq!(rows, [vec![IngestOutcome::Duplicate(a_id)]]);
    assert_eq!(logged, [vec![IngestOutcome::Duplicate(a_id)]]);

    let expanded = storage.expand_whole_intake_log(AT_INTAKE).await.unwrap();
    assert_eq!((expanded.expanded.requests, storage.pending.requests()), (5, 0));
    assert!(expanded.failed.is_empty());
    let datapoint =
        super::testing::stored_call(storage, organization, project, "custom", "a").await.unwrap();
    let ingest = storage.get_ingest(organization, a_id).await.unwrap().unwrap();
    assert_eq!((ingest.state, ingest.datapoint_id), (IngestState::Done, Some(datapoint.id)));
    assert!(
        super::testing::stored_call(storage, organization, project, "custom", "b").await.is_some()
    );
    // Every request's delivery is recorded, with the verdict its answer had, and its body.
    let deliveries = storage.ingest_deliveries(&[a_id, c_id], 10).await.unwrap();
    let verdicts = |ingest: Uuid| {
        let mut verdicts: Vec<_> = deliveries
            .iter()
            .filter(|delivery| delivery.ingest_id == Some(ingest))
            .map(|delivery| delivery.verdict)
            .collect();
        verdicts.sort_by_key(|verdict| verdict.as_str());
        verdicts
    };
    use DeliveryVerdict::{Accepted, Duplicate};
    assert_eq!(verdicts(a_id), [Accepted, Duplicate, Duplicate, Duplicate]);
    assert_eq!(verdicts(c_id), [Accepted, Duplicate]);
    let record = &a.delivery.as_ref().unwrap().record;
    let kept = storage.get_webhook_delivery(record.integration_id, record.id).await.unwrap();
    let kept = kept.expect("the logged delivery is stored");
    assert_eq!(kept.body.as_deref(), a.delivery.as_ref().unwrap().body.as_deref());
    assert_eq!(kept.request, a.delivery.as_ref().unwrap().request);
    // Nothing is stored twice.
    assert_eq!(storage.expand_whole_intake_log(AT_INTAKE).await.unwrap().expanded.requests, 0);
    assert_eq!(storage.ingest_deliveries(&[a_id, b_id, c_id], 20).await.unwrap().len(), 7);
}

/// What one process logged and did not store is stored by the next, which finds its repeats
/// among the stored ingests.
#[tokio::test]
async fn a_log_left_by_a_stopped_process_is_stored_by_the_next() {
    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let logged: Vec<IngestWrite> =
        (0..40).map(|index| webhook_write(organization, project, &format!("l{index}"))).collect();
    for group in logged.chunks(8) {
        commit(&storage, &[], &group.iter().collect::<Vec<_>>()).await;
    }
    // The next process: the same database, nothing in memory.
    let next = Storage { pending: Arc::default(), ..storage.clone() };
    assert_eq!(next.pending.requests(), 0);
    assert_eq!(next.expand_whole_intake_log(AT_INTAKE).await.unwrap().expanded.requests, 40);
    for write in &logged {
        let id = write.ingests[0].id;
        let ingest = next.get_ingest(organization, id).await.unwrap().unwrap();
        assert_eq!(ingest.state, IngestState::Done);
    }
    let mut repeat = webhook_write(organization, project, "l7");
    repeat.ingests[0].dedup_key.clone_from(&logged[7].ingests[0].dedup_key);
    let (rows, _) = commit(&next, &[&repeat], &[]).await;
    assert_eq!(rows, [vec![IngestOutcome::Duplicate(logged[7].ingests[0].id)]]);
}

/// A row that cannot be read, and one that cannot be stored, are kept in the log with why,
/// and do not hold up the rows after them.
#[tokio::test]
async fn rows_that_cannot_be_stored_are_kept_and_the_rest_stored() {
    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let first = webhook_write(organization, project, "first");
    commit(&storage, &[], &[&first]).await;
    // A row this build cannot read (a later version's, say).
    let mut unknown_version = log_row(&[&LoggedWrite::new(&first, now()).unwrap()]);
    unknown_version[0] = 99;
    insert_log_row(&storage, &unknown_version).await;
    // A row whose ingest cannot be stored: the id of `first`'s ingest again, under another
    // key, so the insert breaks the ingests' primary key.
    let mut clash = webhook_write(organization, project, "clash");
    clash.ingests[0].id = first.ingests[0].id;
    commit(&storage, &[], &[&clash]).await;
    let last = webhook_write(organization, project, "last");
    commit(&storage, &[], &[&last]).await;

    let stored = storage.expand_whole_intake_log(AT_INTAKE).await.unwrap();
    assert_eq!(stored.expanded.requests, 2, "first and last stored");
    assert_eq!(stored.failed.len(), 2, "{:?}", stored.failed);
    for write in [&first, &last] {
        let id = write.ingests[0].id;
        let ingest = storage.get_ingest(organization, id).await.unwrap().unwrap();
        assert_eq!(ingest.state, IngestState::Done);
    }
    assert!(
        super::testing::stored_call(&storage, organization, project, "custom", "clash")
            .await
            .is_none()
    );
    // Both kept, as they were; the clash's request still counts as not stored.
    assert_eq!(log_rows(&storage).await, 2);
    assert_eq!(storage.pending.requests(), 1);
    let again = storage.expand_whole_intake_log(AT_INTAKE).await.unwrap();
    assert_eq!((again.expanded.requests, again.failed.len()), (0, 2));
    assert_eq!(log_rows(&storage).await, 2);
}

/// The log's task stores what is logged after a row it cannot read.
#[tokio::test]
async fn a_logging_writer_stores_its_log_past_a_row_it_cannot_read() {
    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let mut unknown_version =
        log_row(&[&LoggedWrite::new(&webhook_write(organization, project, "u"), now()).unwrap()]);
    unknown_version[0] = 99;
    insert_log_row(&storage, &unknown_version).await;
    let writer = super::IngestWriter::start(
        storage.clone(),
        AT_INTAKE,
        512,
        Arc::new(ManualClock::new(now())),
        Arc::default(),
        crate::jobs::IntakeLogging::Always,
        crate::jobs::IntakeLoad::default(),
        Arc::default(),
    );
    let write = webhook_write(organization, project, "w");
    let id = write.ingests[0].id;
    writer.submit(write).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while storage.get_ingest(organization, id).await.unwrap().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("stored from the log within 10 s");
    assert_eq!(log_rows(&storage).await, 1, "the unreadable row is kept");
}

async fn insert_log_row(storage: &Storage, writes: &[u8]) {
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Alias, Query};
    let insert = Query::insert()
        .into_table(Alias::new("intake_log"))
        .columns([Alias::new("requests"), Alias::new("writes"), Alias::new("logged_at_ms")])
        .values_panic([1.into(), writes.to_vec().into(), 0i64.into()])
        .to_owned();
    storage.db.execute(&insert).await.unwrap();
}

async fn log_rows(storage: &Storage) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = storage
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            storage.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM intake_log",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// A writer that logs every write answers with the ingests' ids, and its own expansion stores
/// them moments later.
#[tokio::test]
async fn a_logging_writer_stores_its_log_by_itself() {
    let storage = super::testing::storage().await;
    let clock = Arc::new(ManualClock::new(now()));
    let writer = super::IngestWriter::start(
        storage.clone(),
        AT_INTAKE,
        512,
        clock,
        Arc::default(),
        crate::jobs::IntakeLogging::Always,
        crate::jobs::IntakeLoad::default(),
        Arc::default(),
    );
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let write = webhook_write(organization, project, "w");
    let id = write.ingests[0].id;
    let committed = writer.submit(write).await.unwrap();
    assert_eq!(committed.outcomes, [IngestOutcome::Created(id)]);
    // Stored, and then no longer counted as waiting (the count falls just after the commit).
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while storage.get_ingest(organization, id).await.unwrap().is_none()
            || storage.pending.requests() > 0
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("stored from the log within 10 s");
    assert!(
        super::testing::stored_call(&storage, organization, project, "custom", "w").await.is_some()
    );
}

/// A log row reads back as the writes that went in, body bytes and all.
#[test]
fn a_log_row_reads_back_as_its_writes() {
    let (organization, project) = (Uuid::now_v7(), Uuid::now_v7());
    let mut without_delivery = webhook_write(organization, project, "x");
    without_delivery.delivery = None;
    let mut without_body = webhook_write(organization, project, "y");
    without_body.delivery.as_mut().unwrap().body = None;
    let writes = [webhook_write(organization, project, "w"), without_delivery, without_body];
    let logged: Vec<LoggedWrite> =
        writes.iter().map(|write| LoggedWrite::new(write, now()).unwrap()).collect();
    let row = log_row(&logged.iter().collect::<Vec<_>>());
    let read = decode_row(&row).unwrap();
    assert_eq!(read.len(), 3);
    for ((write, acknowledged_at), original) in read.iter().zip(&writes) {
        assert_eq!(*acknowledged_at, now());
        assert_eq!(format!("{write:?}"), format!("{original:?}"));
    }
    // A truncated or foreign row is refused, not misread.
    assert!(decode_row(&row[..row.len() - 1]).is_err());
    assert!(decode_row(&[2]).is_err());
    assert!(decode_row(&[]).is_err());
}
