//! The outbox over a real database (in-memory SQLite; PostgreSQL when
//! EARSHOT_TEST_POSTGRES_URL is set): events written in the commit that stores their calls,
//! only for enabled endpoints that subscribe and whose filter passes; due deliveries taken once
//! until their lease ends; attempts recorded with what follows them.

use chrono::{Duration, TimeZone, Utc};
use uuid::Uuid;

use super::ingest_tests::new_ingest;
use super::{AttemptOutcome, NextStep, SealedEndpoint, StoredHeaders, StoredSecret};
use crate::model::commit::IngestWrite;
use crate::model::events::{Endpoint, EventFilter};

fn endpoint(organization: Uuid, event_types: &[&str], filter: EventFilter) -> SealedEndpoint {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    SealedEndpoint {
        endpoint: Endpoint {
            event_types: event_types.iter().map(|kind| (*kind).to_owned()).collect(),
            filter,
            ..Endpoint::new(
                Uuid::now_v7(),
                organization,
                "https://receiver.example/hook".into(),
                now,
            )
        },
        secrets: vec![StoredSecret {
            key_id: "k".into(),
            sealed: "AAAA".into(),
            expires_at_ms: None,
        }],
        headers: StoredHeaders::default(),
    }
}

#[tokio::test]
async fn events_are_written_with_their_calls_and_delivered_once_per_lease() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (Uuid::now_v7(), Uuid::now_v7());
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
    let outcome = |index: usize, status: u16, next: NextStep| AttemptOutcome {
        delivery: due[index].clone(),
        attempted_at: lease,
        http_status: Some(status),
        latency_ms: 12,
        response_excerpt: "ok".into(),
        error: String::new(),
        next,
    };
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
    let attempts = storage.event_attempts(organization, all.endpoint.id, None, 10).await.unwrap();
    assert_eq!(attempts.len(), 2);
    // Another organization sees none of them.
    assert!(
        storage.event_attempts(Uuid::now_v7(), all.endpoint.id, None, 10).await.unwrap().is_empty()
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
        storage.event_attempts(organization, all.endpoint.id, None, 10).await.unwrap().is_empty()
    );
}
