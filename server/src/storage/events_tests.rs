//! The outbox over a real database (in-memory SQLite; PostgreSQL when
//! EARSHOT_TEST_POSTGRES_URL is set): events written in the commit that stores their calls,
//! only for enabled endpoints that subscribe and whose filter passes; due deliveries taken once
//! until their lease ends; attempts recorded with what follows them.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::ingest_tests::new_ingest;
use super::{AttemptOutcome, DueDelivery, NextStep, SealedEndpoint};
use crate::model::commit::IngestWrite;
use crate::model::events::{AttemptFilter, EventFilter, Replay};

fn endpoint(organization: Uuid, event_types: &[&str], filter: EventFilter) -> SealedEndpoint {
    super::testing::event_endpoint(organization, event_types, filter)
}

/// An attempt on `delivery` at `at`, answered `status`, followed by `next`.
fn answered(
    delivery: &DueDelivery,
    at: DateTime<Utc>,
    status: u16,
    next: NextStep,
) -> AttemptOutcome {
    AttemptOutcome {
        delivery: delivery.clone(),
        attempted_at: at,
        http_status: Some(status),
        latency_ms: 5,
        response_excerpt: String::new(),
        error: String::new(),
        next,
    }
}

#[tokio::test]
async fn events_are_written_with_their_calls_and_delivered_once_per_lease() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let all = endpoint(organization, &[], EventFilter::default());
    let vip = endpoint(
        organization,
        &["call.processed"],
        EventFilter { tags: vec!["vip".into()], ..EventFilter::default() },
    );
    let failures_only = endpoint(organization, &["call.failed"], EventFilter::default());
    let stranger = endpoint(Uuid::now_v7(), &[], EventFilter::default());
    for sealed in [&all, &vip, &failures_only, &stranger] {
        storage.insert_event_endpoint(sealed).await.unwrap();
    }
    let mut tagged = new_ingest(organization, project, "tagged");
    tagged.conversation.tags = vec!["vip".into()];
    let write = IngestWrite {
        ingests: vec![new_ingest(organization, project, "plain"), tagged],
        ..IngestWrite::default()
    };
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&[&write], at_intake, now).await.unwrap();

    let lease = now + Duration::seconds(60);
    let due = storage.take_due_event_deliveries(now, lease, 100).await.unwrap();
    let mut got: Vec<(Uuid, String)> = due
        .iter()
        .map(|delivery| {
            let event: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
            (delivery.endpoint_id, event["data"]["call_id"].as_str().unwrap().to_owned())
        })
        .collect();
    got.sort();
    let mut wanted = vec![
        (all.endpoint.id, "plain".to_owned()),
        (all.endpoint.id, "tagged".to_owned()),
        (vip.endpoint.id, "tagged".to_owned()),
    ];
    wanted.sort();
    assert_eq!(got, wanted);
    assert!(
        due.iter()
            .all(|delivery| delivery.event_type == "call.processed" && delivery.attempts == 0)
    );
    // Taken: not due again until the lease ends.
    assert!(storage.take_due_event_deliveries(now, lease, 100).await.unwrap().is_empty());
    assert_eq!(storage.take_due_event_deliveries(lease, lease, 100).await.unwrap().len(), 3);

    // One delivered, one to retry later, one whose endpoint is gone: the other endpoints of the
    // organization get endpoint.disabled.
    let outcome =
        |index: usize, status: u16, next: NextStep| answered(&due[index], lease, status, next);
    let vip_index =
        due.iter().position(|delivery| delivery.endpoint_id == vip.endpoint.id).unwrap();
    let others: Vec<usize> = (0..3).filter(|index| *index != vip_index).collect();
    let retry_at = lease + Duration::seconds(5);
    storage
        .record_event_attempts(
            &[
                outcome(others[0], 200, NextStep::Delivered),
                outcome(others[1], 500, NextStep::RetryAt(retry_at)),
                outcome(vip_index, 410, NextStep::Disable("gone")),
            ],
            &[],
            lease,
        )
        .await
        .unwrap();
    let gone = storage.event_endpoint(organization, vip.endpoint.id).await.unwrap().unwrap();
    assert!(!gone.endpoint.enabled);
    assert_eq!(gone.endpoint.disabled_reason, "gone");
    let counted = storage.event_endpoint(organization, all.endpoint.id).await.unwrap().unwrap();
    assert_eq!((counted.endpoint.sent, counted.endpoint.failed), (1, 1));
    assert_eq!(counted.endpoint.failing_since, Some(lease));
    // The retry is due at its time, with endpoint.disabled for the endpoints still enabled.
    let again = storage
        .take_due_event_deliveries(retry_at, retry_at + Duration::seconds(60), 100)
        .await
        .unwrap();
    let mut kinds: Vec<(Uuid, &str, u32)> = again
        .iter()
        .map(|delivery| (delivery.endpoint_id, delivery.event_type.as_str(), delivery.attempts))
        .collect();
    kinds.sort();
    // `failures_only` subscribes to call.failed only: no endpoint.disabled for it.
    assert_eq!(
        kinds,
        [(all.endpoint.id, "call.processed", 1), (all.endpoint.id, "endpoint.disabled", 0)]
    );
    let attempts = storage
        .event_attempts(organization, all.endpoint.id, &AttemptFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2);
    // Another organization sees none of them.
    assert!(
        storage
            .event_attempts(Uuid::now_v7(), all.endpoint.id, &AttemptFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Past their retention, events no delivery waits on leave with their attempts: of the
    // three events, the one whose deliveries are all done (the other call's has a retry due,
    // endpoint.disabled has never been sent).
    let (events, attempts) =
        storage.prune_events(retry_at + Duration::days(30), 100).await.unwrap();
    assert_eq!((events, attempts), (1, 3));
    assert_eq!(
        storage
            .take_due_event_deliveries(
                retry_at + Duration::days(30),
                retry_at + Duration::days(31),
                100
            )
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        storage
            .event_attempts(organization, all.endpoint.id, &AttemptFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A test event goes to its endpoint alone; replays queue again one event (not while it is
/// pending) or the failed deliveries of a window, with a fresh schedule and the same event;
/// attempts filter by event and outcome; disabling an endpoint fails what it had pending.
/// A delivery its endpoint's rate limit held back is due again at its slot, unattempted; an
/// endpoint's counters follow its batch's attempts in order: a success ends a failing streak,
/// a failure after it starts one.
#[tokio::test]
async fn deferred_deliveries_wait_unattempted_and_counters_follow_the_order_of_attempts() {
    let storage = &super::testing::storage().await;
    let organization = Uuid::now_v7();
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let sealed = endpoint(organization, &[], EventFilter::default());
    storage.insert_event_endpoint(&sealed).await.unwrap();
    for _ in 0..3 {
        storage.insert_test_event(&sealed.endpoint, now).await.unwrap();
    }
    let lease = now + Duration::seconds(60);
    let due = storage.take_due_event_deliveries(now, lease, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    let outcome = |index: usize, seconds: i64, next: NextStep| {
        let status = if next == NextStep::Delivered { 200 } else { 500 };
        answered(&due[index], now + Duration::seconds(seconds), status, next)
    };
    // Failed, then delivered: no failing streak; the third held back for two seconds.
    let slot = now + Duration::seconds(2);
    storage
        .record_event_attempts(
            &[
                outcome(1, 1, NextStep::Delivered),
                outcome(0, 0, NextStep::RetryAt(now + Duration::seconds(5))),
            ],
            &[(due[2].clone(), slot)],
            now,
        )
        .await
        .unwrap();
    let read = storage.event_endpoint(organization, sealed.endpoint.id).await.unwrap().unwrap();
    assert_eq!((read.endpoint.sent, read.endpoint.failed), (1, 1));
    assert_eq!(read.endpoint.last_success_at, Some(now + Duration::seconds(1)));
    assert_eq!(read.endpoint.last_failure_at, Some(now));
    assert_eq!(read.endpoint.failing_since, None);
    let in_a_second = now + Duration::seconds(1);
    assert!(storage.take_due_event_deliveries(in_a_second, lease, 10).await.unwrap().is_empty());
    let again = storage.take_due_event_deliveries(slot, lease, 10).await.unwrap();
    let again: Vec<(&str, u32)> =
        again.iter().map(|delivery| (delivery.event_id.as_str(), delivery.attempts)).collect();
    assert_eq!(again, [(due[2].event_id.as_str(), 0)]);
    let logged = storage
        .event_attempts(organization, sealed.endpoint.id, &AttemptFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(logged.len(), 2);
    // Delivered, then failed: failing since that failure.
    storage
        .record_event_attempts(
            &[outcome(2, 3, NextStep::Delivered), outcome(0, 4, NextStep::GiveUp)],
            &[],
            now,
        )
        .await
        .unwrap();
    let read = storage.event_endpoint(organization, sealed.endpoint.id).await.unwrap().unwrap();
    assert_eq!((read.endpoint.sent, read.endpoint.failed), (2, 2));
    assert_eq!(read.endpoint.failing_since, Some(now + Duration::seconds(4)));
}

#[tokio::test]
async fn test_events_replays_and_disabling() {
    let storage = &super::testing::storage().await;
    let organization = Uuid::now_v7();
    let at = |minute: u32| Utc.with_ymd_and_hms(2026, 11, 1, 12, minute, 0).unwrap();
    let one = endpoint(organization, &["call.processed"], EventFilter::default());
    let other = endpoint(organization, &[], EventFilter::default());
    for sealed in [&one, &other] {
        storage.insert_event_endpoint(sealed).await.unwrap();
    }
    // Three test events a minute apart, each to `one` alone though it subscribes elsewhere.
    let mut ids = Vec::new();
    for minute in [0, 1, 2] {
        ids.push(storage.insert_test_event(&one.endpoint, at(minute)).await.unwrap());
    }
    let due = storage.take_due_event_deliveries(at(3), at(4), 100).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(due.iter().all(|delivery| delivery.endpoint_id == one.endpoint.id
        && delivery.event_type == "endpoint.test"));
    // Pending: a replay changes nothing.
    assert_eq!(
        storage
            .replay_event_deliveries(
                organization,
                one.endpoint.id,
                &Replay::Event(ids[0].clone()),
                at(3)
            )
            .await
            .unwrap(),
        0
    );
    // The first delivered, the other two failed for good.
    // Attempted a second apart, so newest first is one order.
    let outcome = |delivery: &DueDelivery, status: u16, next: NextStep| {
        let at = at(3) + Duration::seconds(if status == 503 { 2 } else { 1 });
        answered(delivery, at, status, next)
    };
    let by_id = |id: &str| due.iter().find(|delivery| delivery.event_id == id).unwrap();
    storage
        .record_event_attempts(
            &[
                outcome(by_id(&ids[0]), 204, NextStep::Delivered),
                outcome(by_id(&ids[1]), 500, NextStep::GiveUp),
                outcome(by_id(&ids[2]), 503, NextStep::GiveUp),
            ],
            &[],
            at(3),
        )
        .await
        .unwrap();
    let listed = |filter: AttemptFilter| async move {
        let attempts =
            storage.event_attempts(organization, one.endpoint.id, &filter, None, 10).await.unwrap();
        attempts.into_iter().map(|attempt| attempt.event_id).collect::<Vec<_>>()
    };
    assert_eq!(
        listed(AttemptFilter { succeeded: Some(true), ..AttemptFilter::default() }).await,
        [ids[0].clone()]
    );
    assert_eq!(
        listed(AttemptFilter { succeeded: Some(false), ..AttemptFilter::default() }).await,
        [ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        listed(AttemptFilter { event_id: Some(ids[1].clone()), succeeded: None }).await,
        [ids[1].clone()]
    );

    // The failed ones of minute 1 only: one replayed, due now, its schedule fresh.
    let window = Replay::FailedBetween(at(1), at(2));
    assert_eq!(
        storage
            .replay_event_deliveries(organization, one.endpoint.id, &window, at(5))
            .await
            .unwrap(),
        1
    );
    // Another organization replays nothing of it.
    assert_eq!(
        storage
            .replay_event_deliveries(
                Uuid::now_v7(),
                one.endpoint.id,
                &Replay::FailedBetween(at(0), at(9)),
                at(5)
            )
            .await
            .unwrap(),
        0
    );
    // A delivered event replayed by its id.
    assert_eq!(
        storage
            .replay_event_deliveries(
                organization,
                one.endpoint.id,
                &Replay::Event(ids[0].clone()),
                at(5)
            )
            .await
            .unwrap(),
        1
    );
    let again = storage.take_due_event_deliveries(at(5), at(6), 100).await.unwrap();
    let mut got: Vec<(&str, u32)> =
        again.iter().map(|delivery| (delivery.event_id.as_str(), delivery.attempts)).collect();
    got.sort();
    assert_eq!(got, [(ids[0].as_str(), 0), (ids[1].as_str(), 0)]);

    // Disabled by an update: what it had pending fails (the two just taken, leased).
    let mut disabled =
        storage.event_endpoint(organization, one.endpoint.id).await.unwrap().unwrap();
    disabled.endpoint.enabled = false;
    disabled.endpoint.disabled_reason = "disabled".into();
    disabled.endpoint.description = "paused for maintenance".into();
    assert!(storage.update_event_endpoint(&disabled, true, at(6)).await.unwrap());
    let read = storage.event_endpoint(organization, one.endpoint.id).await.unwrap().unwrap();
    assert_eq!(
        (
            read.endpoint.enabled,
            read.endpoint.disabled_reason.as_str(),
            read.endpoint.description.as_str()
        ),
        (false, "disabled", "paused for maintenance")
    );
    assert!(storage.take_due_event_deliveries(at(9), at(10), 100).await.unwrap().is_empty());
    // An update that does not set `enabled` leaves it as stored.
    let mut stale = disabled.clone();
    stale.endpoint.enabled = true;
    stale.endpoint.description = "renamed".into();
    assert!(storage.update_event_endpoint(&stale, false, at(7)).await.unwrap());
    let read = storage.event_endpoint(organization, one.endpoint.id).await.unwrap().unwrap();
    assert_eq!((read.endpoint.enabled, read.endpoint.description.as_str()), (false, "renamed"));
    // Another organization's update finds nothing.
    let mut foreign = disabled.clone();
    foreign.endpoint.organization_id = Uuid::now_v7();
    assert!(!storage.update_event_endpoint(&foreign, true, at(7)).await.unwrap());
}

/// An endpoint's failed attempts are read by their partial index, newest first, with no sort.
#[tokio::test]
async fn failed_attempts_are_read_by_their_index() {
    use sea_orm::QueryTrait;
    let storage = super::testing::storage().await;
    if storage.db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    let failed = AttemptFilter { succeeded: Some(false), ..AttemptFilter::default() };
    let statement = super::events::attempts_query(
        Uuid::now_v7(),
        Uuid::now_v7(),
        &failed,
        Some(Uuid::now_v7()),
        51,
    )
    .build(sea_orm::DbBackend::Sqlite);
    let plan = super::ingest_tests::sqlite_plan(&storage, statement).await.join("; ");
    assert!(plan.contains("event_attempts_failed_by_endpoint"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

/// A call whose processing gives up sends `call.failed` in the transaction that makes its
/// ingest dead, to the endpoints that subscribe and whose filter its tags pass; a failure
/// retried later sends nothing.
#[tokio::test]
async fn a_dead_ingest_sends_call_failed() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let failures = endpoint(organization, &["call.failed"], EventFilter::default());
    let vip = endpoint(
        organization,
        &["call.failed"],
        EventFilter { tags: vec!["vip".into()], ..EventFilter::default() },
    );
    let processed = endpoint(organization, &["call.processed"], EventFilter::default());
    for sealed in [&failures, &vip, &processed] {
        storage.insert_event_endpoint(sealed).await.unwrap();
    }
    let mut ingest = new_ingest(organization, project, "CA-dead");
    ingest.conversation.metadata.insert("queue".into(), serde_json::json!("billing"));
    let write = IngestWrite { ingests: vec![ingest], ..IngestWrite::default() };
    let to_workers = super::IntakeSettings { max_attempts: 2, transcripts_at_intake: false };
    storage.commit_ingest_writes(&[&write], to_workers, now).await.unwrap();
    let lease = Duration::seconds(60);
    let claimed =
        storage.queue().claim("w", now, std::time::Duration::from_secs(60), 5).await.unwrap();
    let job = &claimed[0];
    let ingest_id = job.payload.ingest_id().unwrap();

    let retry_at = now + Duration::seconds(5);
    storage
        .fail_job(
            job.id,
            ingest_id,
            job.input.as_deref(),
            1,
            "fetching audio: 503",
            Some(retry_at),
            now,
        )
        .await
        .unwrap();
    assert!(storage.take_due_event_deliveries(now, now, 100).await.unwrap().is_empty());
    storage
        .fail_job(job.id, ingest_id, job.input.as_deref(), 2, "fetching audio: 503", None, now)
        .await
        .unwrap();
    let due = storage.take_due_event_deliveries(now, now + lease, 100).await.unwrap();
    assert_eq!(due.len(), 1, "only the unfiltered call.failed endpoint");
    assert_eq!(
        (due[0].endpoint_id, due[0].event_type.as_str()),
        (failures.endpoint.id, "call.failed")
    );
    let event: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
    let data = &event["data"];
    assert_eq!(data["call_id"], "CA-dead");
    assert_eq!(data["ingest_id"], ingest_id.to_string());
    assert_eq!(data["stage"], "fetch");
    assert_eq!(data["reason"], "fetching audio: 503");
    assert_eq!(data["attempts"], 2);
    assert_eq!(data["metadata"]["queue"], "billing");
}

/// `check.failed` to an endpoint with a cooldown goes once per monitor per cooldown (the first
/// of a burst, then the first after it ends), while an endpoint without one gets every one;
/// each monitor has its own cooldown.
#[tokio::test]
async fn a_cooldown_holds_back_a_monitors_failures_until_it_ends() {
    use crate::model::datapoints::Datapoint;
    use crate::model::events::EndpointKind;
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let mut slack = endpoint(organization, &["check.failed"], EventFilter::default());
    slack.endpoint.kind = EndpointKind::Slack;
    slack.endpoint.alert_cooldown_seconds = 3600;
    let every = endpoint(organization, &["check.failed"], EventFilter::default());
    for sealed in [&slack, &every] {
        storage.insert_event_endpoint(sealed).await.unwrap();
    }
    let (monitor, other_monitor) = (Uuid::now_v7(), Uuid::now_v7());
    // Writes, at `minute`, a check.failed of `monitor` on a fresh call, as a commit would.
    let fail = |minute: i64, monitor_id: Uuid| async move {
        let at = start + Duration::minutes(minute);
        let conversation =
            new_ingest(organization, project, &format!("call-{minute}")).conversation;
        let datapoint =
            Datapoint::merge(None, &conversation, None, organization, project, Uuid::now_v7(), at);
        let failure = super::monitors::CheckFailure {
            datapoint_id: datapoint.id,
            monitor_id,
            data: serde_json::json!({"monitor": {"id": monitor_id.to_string()}}),
        };
        let context = "test";
        let transaction = storage.begin_write().await.unwrap();
        let mut batch =
            super::Batch::new(sea_orm::ConnectionTrait::get_database_backend(&transaction));
        super::events::events_into(
            &transaction,
            &[&datapoint],
            &[failure],
            &mut batch,
            at,
            context,
        )
        .await
        .unwrap();
        batch.execute(&transaction, context).await.unwrap();
        transaction.commit().await.unwrap();
    };
    for minute in [0, 10, 59] {
        fail(minute, monitor).await;
    }
    fail(20, other_monitor).await;
    fail(61, monitor).await;
    let end = start + Duration::hours(2);
    let due = storage.take_due_event_deliveries(end, end, 100).await.unwrap();
    let count = |endpoint_id: Uuid| {
        due.iter().filter(|delivery| delivery.endpoint_id == endpoint_id).count()
    };
    assert_eq!(count(every.endpoint.id), 5, "no cooldown: every failure");
    // Minutes 0 and 61 of the first monitor, minute 20 of the other.
    assert_eq!(count(slack.endpoint.id), 3);
}
