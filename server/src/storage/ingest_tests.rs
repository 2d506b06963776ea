//! The job queue and datapoint storage over a real database (in-memory SQLite; Postgres when
//! EARSHOT_TEST_POSTGRES_URL is set), with a clock the tests move.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use crate::clock::{Clock, ManualClock};
use crate::jobs::JobStatus;
use crate::model::commit::IngestWrite;
use crate::model::conversation::{Conversation, ProviderExtras, Role, Source, Turn};
use crate::model::datapoints::{Datapoint, DatapointQuery};
use crate::model::ingest::{IngestOutcome, IngestState, NewIngest, dedup_key};
use crate::storage::FinishedIngest;

pub(crate) fn conversation(call_id: &str) -> Conversation {
    Conversation {
        call_id: call_id.to_owned(),
        context_token: format!("ctx-{call_id}"),
        source: Source::Sdk,
        provider: "custom".to_owned(),
        started_at: None,
        ended_at: None,
        duration_ms: None,
        from_number: None,
        to_number: None,
        direction: None,
        turns: vec![Turn {
            role: Role::User,
            content: "Hello 100% _there_".into(),
            start_ms: 0,
            end_ms: Some(900),
            channel: None,
            confidence: None,
            unrecognized: false,
        }],
        audio: None,
        diarization: true,
        first_turn: Role::Assistant,
        assistant_channel: None,
        tags: vec!["t1".into()],
        metadata: serde_json::json!({"tier": "gold", "seats": 3})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        extras: ProviderExtras::default(),
        mut_id: None,
        integration_id: None,
    }
}

pub(crate) fn new_ingest(organization_id: Uuid, project_id: Uuid, call_id: &str) -> NewIngest {
    let conversation = conversation(call_id);
    NewIngest {
        id: Uuid::now_v7(),
        organization_id,
        project_id,
        dedup_key: dedup_key(&conversation),
        conversation,
    }
}

/// A deletion of an organization's calls on request, begun at `now`, for `delete_calls`.
pub(crate) fn requested_deletion(
    organization_id: Uuid,
    now: chrono::DateTime<Utc>,
) -> crate::model::lifecycle::Deletion {
    crate::model::lifecycle::Deletion {
        id: Uuid::now_v7(),
        organization_id,
        project_id: None,
        actor: "test".into(),
        reason: crate::model::lifecycle::DeletionReason::Request,
        filter: serde_json::json!({}),
        requested_at: now,
        finished_at: None,
        removed: crate::model::lifecycle::Removed::default(),
    }
}

/// How many datapoints of `project` carry `tag`.
async fn tagged_count(
    storage: &crate::storage::Storage,
    organization: Uuid,
    project: Uuid,
    tag: &str,
) -> usize {
    let query = DatapointQuery {
        page_size: 10,
        project_id: Some(project),
        tags_all: vec![tag.to_owned()],
        ..Default::default()
    };
    storage.search_datapoints(organization, &query).await.unwrap().len()
}

/// Whether `worker` holds `job`: renewing to the same deadline changes nothing else.
async fn one_holds(
    storage: &crate::storage::Storage,
    job: Uuid,
    worker: &str,
    now: chrono::DateTime<Utc>,
) -> bool {
    let until = now + chrono::Duration::seconds(60);
    storage.queue().extend_leases(&[job], worker, until).await.unwrap() == [job]
}

/// The ids an ingest's row and a delivery's hold (theirs, and their organization's, project's,
/// integration's and ingest's) are stored in 16 bytes (m0029): a blob on SQLite, a `uuid` on
/// PostgreSQL. Run down, the migration writes them back as text;
/// run up again, the rows read as before, a repeat finds its ingest, and the delivery is found
/// by its ingest.
#[tokio::test]
async fn ingest_and_delivery_ids_are_stored_in_16_bytes() {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let mut write = crate::storage::intake_log_tests::webhook_write(organization, project, "keyed");
    // An ingest of another id than its delivery's (as those stored before run 26), which the
    // delivery's row then names.
    write.ingests[0].id = Uuid::now_v7();
    let (ingest_id, delivery_id) =
        (write.ingests[0].id, write.delivery.as_ref().unwrap().record.id);
    let settings = crate::storage::testing::jobs_only(2);
    let outcome = storage.commit_ingest_writes(&[&write], settings, now).await.unwrap()[0][0];
    assert_eq!(outcome, IngestOutcome::Created(ingest_id));
    let postgres = storage.db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let binary = |column: &str| match postgres {
        true => format!("pg_typeof({column}) = 'uuid'::regtype"),
        false => format!("typeof({column}) = 'blob' AND length({column}) = 16"),
    };
    let all_binary = |columns: &[&str]| {
        columns.iter().map(|column| binary(column)).collect::<Vec<_>>().join(" AND ")
    };
    let binary_ids = format!(
        "SELECT (SELECT COUNT(*) FROM ingests WHERE {}) \
         + (SELECT COUNT(*) FROM webhook_deliveries WHERE {}) AS n",
        all_binary(&["id", "organization_id", "project_id"]),
        all_binary(&["id", "integration_id", "ingest_id"]),
    );
    assert_eq!(super::testing::count(storage, &binary_ids).await, 2);

    super::testing::migrate_down_through(storage, "m0029_binary_ids").await;
    // No integration of the delivery's is stored here (`webhook_write` names the project's id):
    // its project came back as the nil id (m0036).
    let nil = Uuid::nil();
    let text_ids = format!(
        "SELECT (SELECT COUNT(*) FROM ingests \
            WHERE id = '{ingest_id}' AND organization_id = '{organization}') \
         + (SELECT COUNT(*) FROM webhook_deliveries \
            WHERE id = '{delivery_id}' AND ingest_id = '{ingest_id}' \
            AND project_id = '{nil}' AND integration_id = '{project}') AS n"
    );
    assert_eq!(super::testing::count(storage, &text_ids).await, 2, "written back as text");
    // An id left empty (no datapoint yet, as text) comes back as none.
    let no_datapoint = "SELECT COUNT(*) AS n FROM ingests WHERE datapoint_id IS NULL";
    assert_eq!(super::testing::count(storage, no_datapoint).await, 1);
    super::testing::execute(storage, "UPDATE ingests SET datapoint_id = ''").await;
    super::testing::migrate_up(storage).await;
    assert_eq!(super::testing::count(storage, &binary_ids).await, 2);
    assert_eq!(super::testing::count(storage, no_datapoint).await, 1);

    let ingest = storage.get_ingest(organization, ingest_id).await.unwrap().unwrap();
    assert_eq!((ingest.id, ingest.call_id.as_str()), (ingest_id, "keyed"));
    let delivery = storage.get_webhook_delivery(project, delivery_id).await.unwrap().unwrap();
    assert_eq!((delivery.delivery.id, delivery.delivery.ingest_id), (delivery_id, Some(ingest_id)));
    let by_ingest = storage.ingest_deliveries(&[ingest_id], 10).await.unwrap();
    assert_eq!(by_ingest.iter().map(|found| found.id).collect::<Vec<_>>(), [delivery_id]);
    let again = crate::storage::intake_log_tests::webhook_write(organization, project, "keyed");
    let outcome = storage.commit_ingest_writes(&[&again], settings, now).await.unwrap()[0][0];
    assert_eq!(outcome, IngestOutcome::Duplicate(ingest_id));
}

/// A repeated conversation is found whichever form its key was stored in: the short form
/// written now (`stored_dedup_key`, its digest cut to 72 bits), or the content key itself, as
/// rows written before run 22 hold it; and after m0032 has run over rows of either form, as
/// it leaves them, and back.
#[tokio::test]
async fn repeats_are_found_under_either_stored_key() {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let commit = |call_id: &'static str| async move {
        let write = IngestWrite {
            ingests: vec![new_ingest(organization, project, call_id)],
            ..Default::default()
        };
        let settings = crate::storage::testing::jobs_only(2);
        storage.commit_ingest_writes(&[&write], settings, now).await.unwrap()[0][0]
    };
    let (a, b) = (commit("a").await, commit("b").await);
    assert!(matches!((a, b), (IngestOutcome::Created(_), IngestOutcome::Created(_))));
    let key_of = |call_id| new_ingest(organization, project, call_id).dedup_key;
    let short = super::ingest::stored_dedup_key(&key_of("a"));
    assert!(short.len() < key_of("a").len() - 50, "{short}");
    let rows_keyed = |key: &str| {
        let sql = format!("SELECT COUNT(*) AS n FROM ingests WHERE dedup_key = '{key}'");
        async move { super::testing::count(storage, &sql).await }
    };
    assert_eq!(rows_keyed(&short).await, 1);
    assert_eq!(commit("a").await, IngestOutcome::Duplicate(a.ingest_id()));
    // b's row as written before: its content key in full.
    let id = super::testing::id_literal(storage, b.ingest_id());
    let sql = format!("UPDATE ingests SET dedup_key = '{}' WHERE id = {id}", key_of("b"));
    super::testing::execute(storage, &sql).await;
    assert_eq!(rows_keyed(&key_of("b")).await, 1);
    assert_eq!(commit("b").await, IngestOutcome::Duplicate(b.ingest_id()));
    assert!(matches!(commit("c").await, IngestOutcome::Created(_)));

    // Down through m0032: the short keys get their provider and call id back in front (the
    // run 22 form); the content key in full stays. Up: cut to the digest again.
    super::testing::migrate_down_through(storage, "m0032_dedup_by_call").await;
    assert_eq!(rows_keyed(&format!("custom:a:{short}")).await, 1);
    assert_eq!(rows_keyed(&key_of("b")).await, 1);
    super::testing::migrate_up(storage).await;
    assert_eq!(rows_keyed(&short).await, 1);
    assert_eq!(rows_keyed(&key_of("b")).await, 1);
    for (call_id, first) in [("a", a), ("b", b)] {
        assert_eq!(commit(call_id).await, IngestOutcome::Duplicate(first.ingest_id()));
    }
}

#[tokio::test]
async fn queue_commits_claims_retries_and_finishes() {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());

    // One group of two requests; the second repeats a conversation of the first.
    let first = IngestWrite {
        ingests: vec![
            new_ingest(organization, project, "a"),
            new_ingest(organization, project, "b"),
        ],
        ..Default::default()
    };
    let second =
        IngestWrite { ingests: vec![new_ingest(organization, project, "a")], ..Default::default() };
    let outcomes = storage
        .commit_ingest_writes(
            &[&first, &second],
            crate::storage::testing::jobs_only(2),
            clock.now(),
        )
        .await
        .unwrap();
    let created_a = outcomes[0][0];
    assert!(matches!(created_a, IngestOutcome::Created(_)));
    assert_eq!(outcomes[1][0], IngestOutcome::Duplicate(created_a.ingest_id()));
    assert_eq!(storage.queue().count(JobStatus::Queued).await.unwrap(), 2);

    // Concurrent workers never hold the same job.
    let lease = Duration::from_secs(60);
    let (queue_one, queue_two) = (storage.queue(), storage.queue());
    let (one, two) = tokio::join!(
        queue_one.claim("w1", clock.now(), lease, 5),
        queue_two.claim("w2", clock.now(), lease, 5)
    );
    let mut held: Vec<Uuid> =
        one.unwrap().iter().chain(two.unwrap().iter()).map(|job| job.id).collect();
    held.sort();
    let mut expected = vec![outcomes[0][0].ingest_id(), outcomes[0][1].ingest_id()];
    expected.sort();
    assert_eq!(held, expected);
    assert!(storage.queue().claim("w3", clock.now(), lease, 5).await.unwrap().is_empty());

    // A renewed lease keeps the job; only its holder can renew it.
    let renewed = held[0];
    let holder = if one_holds(storage, renewed, "w1", clock.now()).await { "w1" } else { "w2" };
    clock.advance(chrono::Duration::seconds(50));
    let until = clock.now() + chrono::Duration::seconds(60);
    let other_worker = if holder == "w1" { "w2" } else { "w1" };
    let mut by_holder = storage.queue().extend_leases(&held, holder, until).await.unwrap();
    assert!(by_holder.contains(&renewed));
    // Each job is renewed by the one worker that holds it.
    by_holder.extend(storage.queue().extend_leases(&held, other_worker, until).await.unwrap());
    by_holder.sort();
    assert_eq!(by_holder, held);
    assert!(storage.queue().extend_leases(&[renewed], "w3", until).await.unwrap().is_empty());
    clock.advance(chrono::Duration::seconds(11));
    let claimable: Vec<Uuid> = storage
        .queue()
        .claim("w3", clock.now(), lease, 5)
        .await
        .unwrap()
        .iter()
        .map(|job| job.id)
        .collect();
    assert!(!claimable.contains(&renewed), "a renewed lease is not claimable");

    // A crashed worker's lease expires and the job is claimed again, counting the attempt.
    clock.advance(chrono::Duration::seconds(61));
    let mut reclaimed = storage.queue().claim("w3", clock.now(), lease, 5).await.unwrap();
    reclaimed.retain(|job| job.id == renewed);
    assert_eq!(reclaimed[0].attempts, 2);
    let job = reclaimed[0].id;

    // A failed attempt is retried at its time, not before; the last failure makes it dead.
    let retry_at = clock.now() + chrono::Duration::seconds(30);
    storage.fail_job(job, job, None, 1, "upstream 503", Some(retry_at), clock.now()).await.unwrap();
    let record = storage.get_ingest(organization, job).await.unwrap().unwrap();
    assert_eq!((record.state, record.last_error.as_str()), (IngestState::Failed, "upstream 503"));
    assert_eq!(record.next_attempt_at, Some(retry_at));
    clock.advance(chrono::Duration::seconds(29));
    let due: Vec<Uuid> = storage
        .queue()
        .claim("w4", clock.now(), lease, 5)
        .await
        .unwrap()
        .iter()
        .map(|job| job.id)
        .collect();
    assert!(!due.contains(&job), "not due yet");
    clock.advance(chrono::Duration::seconds(2));
    let due = storage.queue().claim("w4", clock.now(), lease, 5).await.unwrap();
    assert!(due.iter().any(|claimed| claimed.id == job));
    storage.fail_job(job, job, None, 2, "upstream 503", None, clock.now()).await.unwrap();
    assert_eq!(
        storage.get_ingest(organization, job).await.unwrap().unwrap().state,
        IngestState::Dead
    );
    // The retry answers with the ingest as it left it, whatever a worker does next.
    let requeued = storage.requeue_ingest(job, clock.now()).await.unwrap().unwrap();
    assert_eq!((requeued.id, requeued.state), (job, IngestState::Queued));
    assert_eq!(requeued.last_error, "");
    assert_eq!(
        storage.get_ingest(organization, job).await.unwrap().unwrap().state,
        IngestState::Queued
    );
    assert!(storage.requeue_ingest(Uuid::now_v7(), clock.now()).await.unwrap().is_none());

    // Finishing stores the datapoint and makes it searchable.
    let claimed = storage.queue().claim("w5", clock.now(), lease, 5).await.unwrap();
    let claimed = claimed.iter().find(|claimed| claimed.id == job).unwrap();
    let (record, conversation) = storage.load_ingest(claimed).await.unwrap().unwrap();
    let datapoint = Datapoint::merge(
        None,
        &conversation,
        None,
        organization,
        project,
        Uuid::now_v7(),
        clock.now(),
    );
    let finished = FinishedIngest {
        job_id: claimed.id,
        ingest_id: record.id,
        attempts: claimed.attempts,
        datapoint: &datapoint,
        new: true,
    };
    storage.finish_ingests(&[finished], clock.now()).await.unwrap();
    let done = storage.get_ingest(organization, record.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.datapoint_id), (IngestState::Done, Some(datapoint.id)));

    let search = |query: DatapointQuery| async move {
        storage
            .search_datapoints(
                organization,
                &DatapointQuery { page_size: 10, project_id: Some(project), ..query },
            )
            .await
            .unwrap()
            .len()
    };
    assert_eq!(
        search(DatapointQuery { context_token: Some("ctx-a".into()), ..Default::default() }).await,
        1
    );
    assert_eq!(
        search(DatapointQuery { tags_all: vec!["t1".into()], ..Default::default() }).await,
        1
    );
    assert_eq!(
        search(DatapointQuery {
            metadata_equals: vec![("seats".into(), "3".into())],
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        search(DatapointQuery { text_contains: Some("100% _THERE_".into()), ..Default::default() })
            .await,
        1
    );
    assert_eq!(
        search(DatapointQuery { text_contains: Some("1000".into()), ..Default::default() }).await,
        0
    );
    assert_eq!(
        search(DatapointQuery { tags_any: vec!["zz".into()], ..Default::default() }).await,
        0
    );
    assert_eq!(
        storage
            .search_datapoints(
                Uuid::now_v7(),
                &DatapointQuery { page_size: 10, ..Default::default() }
            )
            .await
            .unwrap()
            .len(),
        0
    );
}

/// A write that fails (here: an ingest id already taken) fails alone; the requests it shared a
/// group commit with are stored.
#[tokio::test(flavor = "current_thread")]
async fn one_bad_write_in_a_group_fails_alone() {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let storage = super::testing::storage().await;
    let writer = super::IngestWriter::start(
        storage.clone(),
        crate::storage::testing::jobs_only(3),
        512,
        clock.clone(),
        Arc::default(),
        crate::jobs::IntakeLogging::Never,
        crate::jobs::IntakeLoad::default(),
        Arc::default(),
    );
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let write = |ingest: NewIngest| IngestWrite {
        audio_objects: Vec::new(),
        ingests: vec![ingest],
        delivery: None,
    };
    let first = new_ingest(organization, project, "group-1");
    let mut clash = new_ingest(organization, project, "group-2");
    clash.id = first.id;
    let third = new_ingest(organization, project, "group-3");
    let third_id = third.id;
    // On this one-thread runtime the writer runs only once all three wait: one group.
    let (first, clash, third) = tokio::join!(
        writer.submit(write(first)),
        writer.submit(write(clash)),
        writer.submit(write(third)),
    );
    assert!(matches!(first.unwrap().outcomes[..], [IngestOutcome::Created(_)]));
    assert!(clash.is_err());
    assert_eq!(third.unwrap().outcomes, [IngestOutcome::Created(third_id)]);
    assert_eq!(storage.queue().count(JobStatus::Queued).await.unwrap(), 2);
}

/// A job whose holder stopped renewing its lease (its process died) is claimed by another worker
/// once the short lease has passed, not before; jobs a previous process left running on the
/// embedded database are queued again at once.
#[tokio::test]
async fn abandoned_jobs_come_back_after_the_lease_or_at_once_on_restart() {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let write = |call_id: &str| IngestWrite {
        ingests: vec![new_ingest(organization, project, call_id)],
        ..Default::default()
    };
    let (first, second) = (write("lease-1"), write("lease-2"));
    storage
        .commit_ingest_writes(
            &[&first, &second],
            crate::storage::testing::jobs_only(3),
            clock.now(),
        )
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let queue = storage.queue();
    let held = queue.claim("dead-worker", clock.now(), lease, 1).await.unwrap();
    assert_eq!(held.len(), 1);

    // The holder never renews. Until the lease runs out, the job stays its.
    clock.advance(chrono::Duration::seconds(29));
    let other = queue.claim("w2", clock.now(), lease, 5).await.unwrap();
    assert!(other.iter().all(|job| job.id != held[0].id), "claimed before the lease ran out");
    clock.advance(chrono::Duration::seconds(2));
    let reclaimed = queue.claim("w3", clock.now(), lease, 5).await.unwrap();
    assert_eq!(reclaimed.iter().map(|job| job.id).collect::<Vec<_>>(), [held[0].id]);
    assert_eq!(reclaimed[0].attempts, 2, "the lost attempt counts");

    // A restart of the embedded server: whatever is running is queued again, due now.
    assert_eq!(storage.queue().count(JobStatus::Running).await.unwrap(), 2);
    if queue.is_embedded() {
        assert_eq!(queue.reclaim_abandoned(clock.now()).await.unwrap(), 2);
        let again = queue.claim("restarted", clock.now(), lease, 5).await.unwrap();
        assert_eq!(again.len(), 2);
    }
}

/// Claims read the backlog through an index, in index order: no scan, no sort, whatever its
/// size (SQLite's plan; PostgreSQL uses the same indexes).
#[tokio::test]
async fn claims_use_an_index_and_never_sort_the_backlog() {
    use sea_orm::ConnectionTrait;
    let storage = super::testing::storage().await;
    if storage.db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    for path in crate::jobs::queue::ClaimPath::ALL {
        let sql =
            format!("EXPLAIN QUERY PLAN {}", crate::jobs::queue::candidates_sql(path, false, 1));
        let values: [sea_orm::Value; 3] = ["queued".into(), 1i64.into(), 8i64.into()];
        let rows = storage
            .db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Sqlite,
                sql,
                values,
            ))
            .await
            .unwrap();
        let plan: Vec<String> =
            rows.iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect();
        assert!(plan.iter().any(|step| step.contains("USING INDEX jobs_by_status_")), "{plan:?}");
        assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{plan:?}");
    }
}

/// A `/metrics` scrape reads the queue's depth and its oldest due job from the status indexes
/// alone: no job's row (its input) is read, however long the backlog (SQLite's plan).
#[tokio::test]
async fn queue_state_is_read_from_the_indexes_alone() {
    use sea_orm::QueryTrait;
    let storage = super::testing::storage().await;
    if storage.db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    for query in crate::jobs::queue::state_queries(Utc::now()) {
        let plan = sqlite_plan(&storage, query.build(sea_orm::DbBackend::Sqlite)).await;
        assert!(
            plan.iter().all(|step| step.contains("USING COVERING INDEX jobs_by_status_")),
            "{plan:?}"
        );
        assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{plan:?}");
    }
}

/// A stopping worker gives back the jobs it claimed and did not start: queued again, due, the
/// claim's attempt taken back; a job another worker holds is left alone.
#[tokio::test]
async fn released_jobs_are_queued_again_as_they_were() {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let writes: Vec<IngestWrite> = (0..3)
        .map(|index| IngestWrite {
            ingests: vec![new_ingest(organization, project, &format!("release-{index}"))],
            ..Default::default()
        })
        .collect();
    storage
        .commit_ingest_writes(
            &writes.iter().collect::<Vec<_>>(),
            crate::storage::testing::jobs_only(3),
            clock.now(),
        )
        .await
        .unwrap();
    let queue = storage.queue();
    let lease = Duration::from_secs(30);
    let mine = queue.claim("stopping", clock.now(), lease, 2).await.unwrap();
    let theirs = queue.claim("other", clock.now(), lease, 1).await.unwrap();
    let ids: Vec<Uuid> = mine.iter().chain(&theirs).map(|job| job.id).collect();
    assert_eq!(queue.release(&ids, "stopping").await.unwrap(), 2);
    assert_eq!(queue.count(JobStatus::Running).await.unwrap(), 1);
    let again = queue.claim("next", clock.now(), lease, 5).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|job| job.attempts == 1), "{again:?}");
}

/// Results committed together: two results for one datapoint store the later once, an existing
/// datapoint is overwritten with its search rows replaced, and each ingest records its own job's
/// attempts and datapoint.
#[tokio::test]
async fn a_batch_of_results_commits_together() {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let ingests: Vec<NewIngest> =
        ["x", "y", "z"].iter().map(|call| new_ingest(organization, project, call)).collect();
    let write = IngestWrite { ingests: ingests.clone(), ..Default::default() };
    storage
        .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), clock.now())
        .await
        .unwrap();
    let claimed =
        storage.queue().claim("w", clock.now(), Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(claimed.len(), 3);

    // "z" was stored before with another tag; "x" gets two results, the later with a new tag.
    let merge = |call: &str, existing: Option<Datapoint>, tag: &str| {
        let mut conversation = conversation(call);
        conversation.tags = vec![tag.to_owned()];
        Datapoint::merge(
            existing,
            &conversation,
            None,
            organization,
            project,
            Uuid::now_v7(),
            clock.now(),
        )
    };
    let earlier_z = merge("z", None, "old");
    let job_z = ingests[2].id;
    let alone = FinishedIngest {
        job_id: job_z,
        ingest_id: job_z,
        attempts: 1,
        datapoint: &earlier_z,
        new: true,
    };
    storage.finish_ingests(&[alone], clock.now()).await.unwrap();
    let first_x = merge("x", None, "first");
    let second_x = merge("x", Some(first_x.clone()), "second");
    let y = merge("y", None, "t1");
    let z = merge("z", Some(earlier_z.clone()), "new");
    let finished = [
        FinishedIngest {
            job_id: ingests[0].id,
            ingest_id: ingests[0].id,
            attempts: 2,
            datapoint: &first_x,
            new: true,
        },
        FinishedIngest {
            job_id: ingests[1].id,
            ingest_id: ingests[1].id,
            attempts: 1,
            datapoint: &y,
            new: true,
        },
        FinishedIngest {
            job_id: ingests[0].id,
            ingest_id: ingests[0].id,
            attempts: 2,
            datapoint: &second_x,
            new: true,
        },
        FinishedIngest { job_id: job_z, ingest_id: job_z, attempts: 3, datapoint: &z, new: false },
    ];
    storage.finish_ingests(&finished, clock.now()).await.unwrap();

    let keys = ["x", "y", "z"].map(|call_id| crate::storage::CallKey {
        organization_id: organization,
        project_id: project,
        provider: "custom",
        call_id,
    });
    let found = storage.find_datapoints(&keys).await.unwrap();
    assert_eq!(found.len(), 3);
    // The rows of the keys' organization only: the same calls asked for by another find none.
    let elsewhere =
        keys.map(|key| crate::storage::CallKey { organization_id: Uuid::now_v7(), ..key });
    assert!(storage.find_datapoints(&elsewhere).await.unwrap().is_empty());
    let stored = |call: &str| found.iter().find(|datapoint| datapoint.call_id == call).unwrap();
    assert_eq!(stored("x").tags, ["first", "second"]);
    assert_eq!(stored("z").tags, ["old", "new"]);
    assert_eq!(stored("z").id, earlier_z.id);
    let tagged = |tag: &'static str| tagged_count(storage, organization, project, tag);
    assert_eq!((tagged("second").await, tagged("new").await, tagged("old").await), (1, 1, 1));
    let record =
        |id: Uuid| async move { storage.get_ingest(organization, id).await.unwrap().unwrap() };
    let (x, z_record) = (record(ingests[0].id).await, record(job_z).await);
    assert_eq!((x.state, x.attempts, x.datapoint_id), (IngestState::Done, 2, Some(first_x.id)));
    assert_eq!((z_record.attempts, z_record.datapoint_id), (3, Some(earlier_z.id)));
    assert_eq!(record(ingests[1].id).await.datapoint_id, Some(y.id));
    // Succeeded jobs leave the queue; the ingests record the success.
    for status in JobStatus::ALL {
        assert_eq!(storage.queue().count(status).await.unwrap(), 0, "{status:?}");
    }
}

/// With `transcripts_at_intake`, the commit that stores a transcript-only ingest stores its
/// datapoint: merged in order with others of its call in the group and with the one stored
/// before, tags and metadata searchable, the ingest done, no job. A call with audio still gets
/// its job.
#[tokio::test]
async fn transcripts_are_stored_with_their_ingests() {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let tagged_ingest = |call: &str, tag: &str| {
        let mut ingest = new_ingest(organization, project, call);
        ingest.conversation.tags = vec![tag.to_owned()];
        ingest.dedup_key = format!("{call}-{tag}");
        ingest
    };
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let earlier = IngestWrite { ingests: vec![tagged_ingest("z", "old")], ..Default::default() };
    storage.commit_ingest_writes(&[&earlier], at_intake, clock.now()).await.unwrap();
    let earlier_z =
        super::testing::stored_call(storage, organization, project, "custom", "z").await.unwrap();

    let mut with_audio = tagged_ingest("w", "audio");
    with_audio.conversation.audio =
        Some(crate::model::conversation::AudioSource::Stored { audio_id: Uuid::now_v7() });
    let first = IngestWrite {
        ingests: vec![tagged_ingest("x", "first"), tagged_ingest("z", "new")],
        ..Default::default()
    };
    let second = IngestWrite {
        ingests: vec![tagged_ingest("x", "second"), with_audio.clone()],
        ..Default::default()
    };
    let outcomes =
        storage.commit_ingest_writes(&[&first, &second], at_intake, clock.now()).await.unwrap();
    assert!(outcomes.iter().flatten().all(|outcome| matches!(outcome, IngestOutcome::Created(_))));

    let x =
        super::testing::stored_call(storage, organization, project, "custom", "x").await.unwrap();
    let z =
        super::testing::stored_call(storage, organization, project, "custom", "z").await.unwrap();
    assert_eq!(x.tags, ["first", "second"]);
    assert_eq!((z.id, z.tags), (earlier_z.id, vec!["old".to_owned(), "new".to_owned()]));
    assert_eq!(
        super::testing::stored_call(storage, organization, project, "custom", "w").await,
        None
    );
    let tagged = |tag: &'static str| tagged_count(storage, organization, project, tag);
    let counts = (tagged("first").await, tagged("second").await, tagged("old").await);
    assert_eq!((counts, tagged("new").await), ((1, 1, 1), 1));

    let record =
        |id: Uuid| async move { storage.get_ingest(organization, id).await.unwrap().unwrap() };
    for (ingest, datapoint) in [(&first.ingests[0], x.id), (&second.ingests[0], x.id)]
        .into_iter()
        .chain([(&first.ingests[1], z.id)])
    {
        let stored = record(ingest.id).await;
        assert_eq!((stored.state, stored.datapoint_id), (IngestState::Done, Some(datapoint)));
    }
    assert_eq!(record(with_audio.id).await.state, IngestState::Queued);
    // One job, the audio's: the transcripts never entered the queue.
    assert_eq!(storage.queue().count(JobStatus::Queued).await.unwrap(), 1);
    let claimed =
        storage.queue().claim("w", clock.now(), Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(
        claimed.iter().filter_map(|job| job.payload.ingest_id()).collect::<Vec<_>>(),
        [with_audio.id]
    );
}

/// Marking a batch's ingests done finds each by a seek on its id (SQLite's plan), whatever the
/// batch's size: no scan of the ingests, no comparison of every row with every result.
#[tokio::test]
async fn ingests_marked_done_are_found_by_id() {
    let storage = super::testing::storage().await;
    if storage.db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let datapoint = Datapoint::merge(
        None,
        &conversation("p"),
        None,
        organization,
        project,
        Uuid::now_v7(),
        now,
    );
    let finished: Vec<FinishedIngest<'_>> = (0..3)
        .map(|attempts| FinishedIngest {
            job_id: Uuid::now_v7(),
            ingest_id: Uuid::now_v7(),
            attempts,
            datapoint: &datapoint,
            new: true,
        })
        .collect();
    let statement =
        sea_orm::DbBackend::Sqlite.build(&super::datapoints::ingests_done(&finished, now));
    let plan = sqlite_plan(&storage, statement).await;
    assert!(
        plan.iter().any(|step| step.starts_with("SEARCH ingests USING") && step.contains("(id=?)")),
        "{plan:?}"
    );
    assert!(plan.iter().all(|step| !step.starts_with("SCAN ingests")), "{plan:?}");
}

/// The steps of SQLite's plan for `statement`.
pub(super) async fn sqlite_plan(
    storage: &super::Storage,
    statement: sea_orm::Statement,
) -> Vec<String> {
    explained(storage, sea_orm::DbBackend::Sqlite, "EXPLAIN QUERY PLAN", "detail", statement).await
}

/// The lines of PostgreSQL's plan for `statement` (`EXPLAIN`, without running it).
pub(super) async fn postgres_plan(
    storage: &super::Storage,
    statement: sea_orm::Statement,
) -> Vec<String> {
    explained(storage, sea_orm::DbBackend::Postgres, "EXPLAIN", "QUERY PLAN", statement).await
}

/// `statement` run behind `explain`, and the column of the plan that each row holds.
async fn explained(
    storage: &super::Storage,
    backend: sea_orm::DbBackend,
    explain: &str,
    column: &str,
    statement: sea_orm::Statement,
) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let explain = sea_orm::Statement::from_sql_and_values(
        backend,
        format!("{explain} {}", statement.sql),
        statement.values.map(|values| values.0).unwrap_or_default(),
    );
    storage
        .db
        .query_all_raw(explain)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", column).unwrap())
        .collect()
}

/// Looking up many calls' datapoints, or many dedup keys, seeks each key in its unique index
/// and reads nothing else (SQLite's plan; on PostgreSQL the same `VALUES` join is a nested
/// loop of index scans, docs/ARCHITECTURE.md).
#[tokio::test]
async fn keyed_lookups_seek_each_key() {
    let storage = super::testing::storage().await;
    if storage.db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let call = |project_id, provider, call_id| crate::storage::CallKey {
        organization_id: organization,
        project_id,
        provider,
        call_id,
    };
    let calls = [call(project, "retell", "a"), call(Uuid::now_v7(), "vapi", "b")];
    let statement =
        sea_orm::DbBackend::Sqlite.build(&super::datapoints::find_datapoints_statement(&calls));
    let plan = sqlite_plan(&storage, statement).await;
    let seek = "USING INDEX datapoints_unique_call (call_id=? AND project_id=? AND provider=?)";
    assert!(plan.iter().any(|step| step.contains(seek)), "{plan:?}");
    assert!(plan.iter().all(|step| !step.starts_with("SCAN datapoints")), "{plan:?}");

    let keys = [(project, "a", "retell", "AAAA"), (project, "b", "retell", "BBBB")];
    let statement =
        sea_orm::DbBackend::Sqlite.build(&super::ingest::stored_dedup_keys_statement(&keys));
    let plan = sqlite_plan(&storage, statement).await;
    let seek = "INDEX ingests_unique_dedup \
                (project_id=? AND call_id=? AND provider=? AND dedup_key=?)";
    assert!(plan.iter().any(|step| step.contains(seek)), "{plan:?}");
    assert!(plan.iter().all(|step| !step.starts_with("SCAN ingests")), "{plan:?}");
}

/// A lookup of many calls' datapoints is joined on the columns of the call's unique index
/// alone. With the organization in the join too, PostgreSQL, most likely planning before the
/// statistics of a table filling from empty (a new install's first burst), read
/// `datapoints_by_provider` (organization, provider, …) through for each key: every call of the
/// project, each time.
#[test]
fn call_lookups_join_on_the_unique_index_alone() {
    let calls = [crate::storage::CallKey {
        organization_id: Uuid::now_v7(),
        project_id: Uuid::now_v7(),
        provider: "retell",
        call_id: "a",
    }];
    let statement = super::datapoints::find_datapoints_statement(&calls);
    for backend in [sea_orm::DbBackend::Postgres, sea_orm::DbBackend::Sqlite] {
        let sql = backend.build(&statement).sql;
        let on = &sql[sql.find(" ON ").expect("a join")..];
        assert_eq!(
            on.split(" AND ").map(|condition| condition.trim()).collect::<Vec<_>>(),
            [
                r#"ON "datapoints"."call_id" = "key"."column1""#,
                r#""datapoints"."project_id" = "key"."column2""#,
                r#""datapoints"."provider" = "key"."column3""#,
            ],
            "{sql}"
        );
    }
}

/// On PostgreSQL, with statistics of a project's 100,000 calls, a lookup of many calls seeks
/// each key in the call's unique index.
#[tokio::test]
async fn keyed_lookups_seek_each_key_on_postgres() {
    use sea_orm::ConnectionTrait;
    let storage = super::testing::storage().await;
    let backend = storage.db.get_database_backend();
    if backend != sea_orm::DbBackend::Postgres {
        return;
    }
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    // One organization, project and provider, as a new install's calls are.
    storage
        .db
        .execute_unprepared(&format!(
            "INSERT INTO datapoints (id, organization_id, project_id, provider, call_id, \
             context_token, source, transcript_source, turns_json, transcript_search, \
             occurred_at_ms, analysis_json, tags_json, metadata_json, metrics_json, \
             created_at_ms, updated_at_ms) \
             SELECT gen_random_uuid(), '{organization}', '{project}', 'webhook', 'call-' || n, \
             '', 'webhook', 'provided', '[]', '', n, '{{}}', '[]', '{{}}', '{{}}', n, n \
             FROM generate_series(1, 100000) AS n; ANALYZE datapoints"
        ))
        .await
        .unwrap();
    let call_ids: Vec<String> = (0..49).map(|index| format!("call-{}", index * 2_000)).collect();
    let calls: Vec<crate::storage::CallKey<'_>> = call_ids
        .iter()
        .map(|call_id| crate::storage::CallKey {
            organization_id: organization,
            project_id: project,
            provider: "webhook",
            call_id,
        })
        .collect();
    let statement = backend.build(&super::datapoints::find_datapoints_statement(&calls));
    let plan = postgres_plan(&storage, statement).await.join("\n");
    assert!(plan.contains("Index Scan using datapoints_unique_call on datapoints"), "{plan}");
    assert!(!plan.contains("Seq Scan on datapoints"), "{plan}");
}

/// A call's history (the console's call page) is found by index: its ingests by call id
/// within the organization, their deliveries by ingest id; neither scans a table.
#[tokio::test]
async fn a_calls_history_is_found_by_index() {
    use sea_orm::QueryTrait;
    let storage = super::testing::storage().await;
    let backend = storage.db.get_database_backend();
    if backend != sea_orm::DbBackend::Sqlite {
        return;
    }
    let query = super::ingest::ingests_of_call(Uuid::now_v7(), Uuid::now_v7(), "retell", "a", 50);
    let plan = sqlite_plan(&storage, query.build(backend)).await;
    let seek = "INDEX ingests_unique_dedup (project_id=? AND call_id=? AND provider=?)";
    assert!(plan.iter().any(|step| step.contains(seek)), "{plan:?}");
    assert!(plan.iter().all(|step| !step.starts_with("SCAN")), "{plan:?}");

    let query = super::deliveries::deliveries_of_ingests(&[Uuid::now_v7(), Uuid::now_v7()], 50);
    let plan = sqlite_plan(&storage, query.build(backend)).await;
    let seek = "INDEX deliveries_by_ingest (ingest_id=?)";
    assert!(plan.iter().any(|step| step.contains(seek)), "{plan:?}");
    assert!(plan.iter().all(|step| !step.starts_with("SCAN")), "{plan:?}");
}

/// A project's ingests are listed newest first, and a backlog state counted, from an index in
/// their order (SQLite's plans, m0034): every state, or done, from `ingests_by_project`, by
/// rowid (m0042), a later page a seek of it; a state of ingests not done from
/// `ingests_waiting`, which holds no done one. An integration's deliveries are listed from
/// `deliveries_by_integration` by rowid too. None sorts.
#[tokio::test]
async fn ingest_listings_and_counts_are_read_in_order_from_an_index() {
    use sea_orm::QueryTrait;
    let storage = super::testing::storage().await;
    let backend = storage.db.get_database_backend();
    if backend != sea_orm::DbBackend::Sqlite {
        return;
    }
    let (organization, project) = (Uuid::now_v7(), Uuid::now_v7());
    let listing = |state, before| {
        super::ingest::ingests_listing(organization, project, state, before, 51, backend)
            .build(backend)
    };
    let cases = [
        ("every state", listing(None, None), "ingests_by_project"),
        ("every state, a later page", listing(None, Some(Uuid::now_v7())), "ingests_by_project"),
        ("done", listing(Some(IngestState::Done), None), "ingests_by_project"),
        ("queued", listing(Some(IngestState::Queued), None), "ingests_waiting"),
        (
            "dead, a later page",
            listing(Some(IngestState::Dead), Some(Uuid::now_v7())),
            "ingests_waiting",
        ),
        (
            "failed, counted",
            backend.build(&super::ingest::ingests_counted(project, IngestState::Failed, 1000)),
            "ingests_waiting",
        ),
    ];
    for (name, statement, index) in cases {
        let plan = sqlite_plan(&storage, statement).await;
        assert!(
            plan.iter().any(|step| step.contains(&format!("INDEX {index} (project_id=?"))),
            "{name}: {index} unused: {plan:?}"
        );
        assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{name}: sorts: {plan:?}");
        let seeks = plan.iter().any(|step| step.contains("(project_id=? AND rowid<?)"));
        let later_by_rowid = name == "every state, a later page";
        assert_eq!(seeks, later_by_rowid, "{name}: {plan:?}");
    }
    let deliveries = |before| {
        use sea_orm::QuerySelect;
        super::deliveries::deliveries_listing(project, None, before, backend)
            .limit(51)
            .build(backend)
    };
    for (name, before, seek) in [
        ("first page", None, "(integration_id=?)"),
        ("later", Some(project), "(integration_id=? AND rowid<?)"),
    ] {
        let plan = sqlite_plan(&storage, deliveries(before)).await;
        let index = format!("INDEX deliveries_by_integration {seek}");
        assert!(plan.iter().any(|step| step.contains(&index)), "{name}: {plan:?}");
        assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{name}: sorts: {plan:?}");
    }
}

/// A project's ingests and an integration's deliveries are paged through newest stored first,
/// each once, and a page resumes after a cursor whose row was deleted since: on SQLite by
/// rowid (m0042), on PostgreSQL by id; the same after m0042 down and up.
#[tokio::test]
async fn listings_page_through_each_row_once_past_deleted_cursors() {
    use sea_orm::EntityTrait;

    use super::entities::{ingest, webhook_delivery};
    use crate::storage::intake_log_tests::webhook_write;

    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let mut stored = Vec::new();
    for call in ["a", "b", "c", "d", "e", "f"] {
        let write = webhook_write(organization, project, call);
        storage.commit_ingest_writes(&[&write], at_intake, Utc::now()).await.unwrap();
        stored.push((call, write.ingests[0].id));
    }
    // Ingests and deliveries alike (a delivery's id is its ingest's): the calls of a page.
    let pages = |before: Option<Uuid>| async move {
        let ingests = storage.list_ingests(organization, project, None, before, 2).await.unwrap();
        let deliveries = storage.list_webhook_deliveries(project, None, before, 2).await.unwrap();
        let ingests: Vec<String> = ingests.iter().map(|ingest| ingest.call_id.clone()).collect();
        let calls: Vec<String> =
            deliveries.iter().map(|delivery| delivery.call_id.clone()).collect();
        assert_eq!(ingests, calls, "after {before:?}");
        (calls, deliveries.last().map(|delivery| delivery.id))
    };
    let delete = |id: Uuid| async move {
        ingest::Entity::delete_by_id(id).exec(&storage.db).await.unwrap();
        webhook_delivery::Entity::delete_by_id(id).exec(&storage.db).await.unwrap();
    };
    for round in ["up", "down", "again"] {
        match round {
            "down" => {
                super::testing::migrate_down_through(storage, "m0042_listings_by_rowid").await;
            }
            "again" => super::testing::migrate_up(storage).await,
            _ => {}
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (calls, last) = pages(cursor).await;
            if calls.is_empty() {
                break;
            }
            seen.extend(calls);
            cursor = last;
        }
        let left: Vec<&str> = stored.iter().rev().map(|(call, _)| *call).collect();
        assert_eq!(seen, left, "{round}");
        // A page ends at the newest's neighbour, which is deleted before the next page.
        let (first, last) = pages(None).await;
        let gone = first[1].clone();
        delete(last.unwrap()).await;
        stored.retain(|(call, _)| *call != gone);
        let (next, _) = pages(last).await;
        let expected: Vec<String> =
            stored.iter().rev().skip(1).take(2).map(|(call, _)| (*call).to_owned()).collect();
        assert_eq!(next, expected, "{round}: after {gone}, deleted");
    }
    // The newest and the cursor both deleted: the next page starts again at the newest left.
    let (first, last) = pages(None).await;
    let newest = stored.iter().find(|(call, _)| *call == first[0]).unwrap().1;
    delete(newest).await;
    delete(last.unwrap()).await;
    stored.retain(|(call, _)| !first.contains(&(*call).to_owned()));
    let (next, _) = pages(last).await;
    let expected: Vec<String> =
        stored.iter().rev().take(2).map(|(call, _)| (*call).to_owned()).collect();
    assert_eq!(next, expected);
}

/// Listings by state find what was stored in each, the same before m0034 and after it ran down
/// and up again: a partial index answers for the states it holds, and done ingests are found
/// without it.
#[tokio::test]
async fn ingests_are_listed_by_state_across_m0034() {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let done =
        IngestWrite { ingests: vec![new_ingest(organization, project, "d")], ..Default::default() };
    storage.commit_ingest_writes(&[&done], at_intake, now).await.unwrap();
    let queued =
        IngestWrite { ingests: vec![new_ingest(organization, project, "q")], ..Default::default() };
    let settings = crate::storage::testing::jobs_only(2);
    storage.commit_ingest_writes(&[&queued], settings, now).await.unwrap();
    let listed = |state| async move {
        storage
            .list_ingests(organization, project, state, None, 10)
            .await
            .unwrap()
            .iter()
            .map(|ingest| ingest.call_id.clone())
            .collect::<Vec<_>>()
    };
    for round in 0..2 {
        assert_eq!(listed(None).await, ["q", "d"], "round {round}");
        assert_eq!(listed(Some(IngestState::Done)).await, ["d"], "round {round}");
        assert_eq!(listed(Some(IngestState::Queued)).await, ["q"], "round {round}");
        assert!(listed(Some(IngestState::Failed)).await.is_empty(), "round {round}");
        assert_eq!(storage.count_ingests(project, IngestState::Queued, 10).await.unwrap(), 1);
        assert_eq!(storage.count_ingests(project, IngestState::Done, 10).await.unwrap(), 1);
        super::testing::migrate_down_through(storage, "m0034_ingests_by_project").await;
        assert_eq!(listed(Some(IngestState::Queued)).await, ["q"], "down, round {round}");
        super::testing::migrate_up(storage).await;
    }
}

/// A call's content is kept once: the ingest's row holds its record, the job carries the
/// conversation and leaves the queue with it when the datapoint is stored. An ingest written
/// by an earlier version (the conversation in its row, none on its job) is still processed.
#[tokio::test]
async fn a_call_is_kept_once() {
    use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};

    use super::entities::ingest;
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let (new, old) =
        (new_ingest(organization, project, "new"), new_ingest(organization, project, "old"));
    let write = IngestWrite { ingests: vec![new.clone(), old.clone()], ..Default::default() };
    storage
        .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), clock.now())
        .await
        .unwrap();
    let payload = |id: Uuid| async move {
        ingest::Entity::find_by_id(id).one(&storage.db).await.unwrap().unwrap().payload_json
    };
    assert_eq!(payload(new.id).await, "");

    // "old" as an earlier version wrote it.
    let stored =
        serde_json::to_string(&super::ingest::StoredConversation::V1(old.conversation.clone()))
            .unwrap();
    ingest::Entity::update_many()
        .col_expr(ingest::Column::PayloadJson, Expr::value(stored))
        .filter(sea_orm::ColumnTrait::eq(&ingest::Column::Id, old.id))
        .exec(&storage.db)
        .await
        .unwrap();
    let backend = storage.db.get_database_backend();
    storage
        .db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DbBackend::Postgres => "UPDATE jobs SET input_json = NULL WHERE id = $1",
                _ => "UPDATE jobs SET input_json = NULL WHERE id = ?",
            },
            [old.id.to_string().into()],
        ))
        .await
        .unwrap();

    let claimed =
        storage.queue().claim("w", clock.now(), Duration::from_secs(30), 10).await.unwrap();
    let claimed_new = claimed.iter().find(|job| job.id == new.id).unwrap();
    assert!(claimed_new.input.is_some());
    assert!(claimed.iter().find(|job| job.id == old.id).unwrap().input.is_none());
    let loaded = storage.load_ingests(&claimed).await.unwrap();
    assert_eq!(loaded.len(), 2);
    for (record, conversation) in &loaded {
        let expected = if record.id == new.id { &new } else { &old };
        assert_eq!(conversation, &expected.conversation);
    }

    let datapoints: Vec<Datapoint> = loaded
        .iter()
        .map(|(_, conversation)| {
            Datapoint::merge(
                None,
                conversation,
                None,
                organization,
                project,
                Uuid::now_v7(),
                clock.now(),
            )
        })
        .collect();
    let finished: Vec<FinishedIngest<'_>> = loaded
        .iter()
        .zip(&datapoints)
        .map(|((record, _), datapoint)| FinishedIngest {
            job_id: record.id,
            ingest_id: record.id,
            attempts: 1,
            datapoint,
            new: true,
        })
        .collect();
    storage.finish_ingests(&finished, clock.now()).await.unwrap();
    // The datapoints hold the calls now: no job is left, no ingest keeps a copy, and a stray
    // job for a done ingest finds nothing to process.
    for status in JobStatus::ALL {
        assert_eq!(storage.queue().count(status).await.unwrap(), 0, "{status:?}");
    }
    assert_eq!((payload(new.id).await, payload(old.id).await), (String::new(), String::new()));
    assert!(storage.load_ingests(&claimed).await.unwrap().is_empty());
}

/// On a SQLite file the writer leaves checkpoints to the background task: its own threshold is
/// 64 MiB of log, yet a commit reaches the database file moments after its write turn ends.
#[tokio::test]
async fn commits_reach_the_database_file_beside_the_writer() {
    use sea_orm::ConnectionTrait;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("earshot.db");
    let storage =
        super::Storage::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    storage.migrate().await.unwrap();
    let threshold = storage
        .writer
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA wal_autocheckpoint",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(threshold, 16_384);
    // The migrations wrote to the log, outside any write turn: the file is still (nearly) empty.
    let size = || std::fs::metadata(&path).map_or(0, |file| file.len());
    let before = size();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap());
    let write = IngestWrite {
        ingests: vec![new_ingest(Uuid::now_v7(), Uuid::now_v7(), "file")],
        ..Default::default()
    };
    storage
        .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), clock.now())
        .await
        .unwrap();
    // A condition, polled with a bound: the checkpoint runs on its own task.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while size() <= before {
        assert!(std::time::Instant::now() < deadline, "the log never reached the file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A delivery that stores a call gives the call's ingest its own id, and its row names no
/// ingest (`deliveries::stored_ingest_id`): read back, it names the ingest of its id; a repeat
/// names the ingest it repeats; a refused delivery names none. A call's deliveries are found
/// either way, and deleting the call clears both kept bodies.
#[tokio::test]
async fn a_delivery_names_the_ingest_of_its_own_id_without_storing_it() {
    use crate::model::deliveries::DeliveryVerdict;
    use crate::storage::intake_log_tests::webhook_write;

    let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    // As `admit_webhook_call` writes them: the ingest takes the delivery's id.
    let write = || {
        let mut write = webhook_write(organization, project, "own-id");
        let delivery = write.delivery.as_mut().unwrap();
        delivery.record.ingest_id = None;
        write.ingests[0].id = delivery.record.id;
        write
    };
    let (first, repeat) = (write(), write());
    let mut refused = webhook_write(organization, project, "refused");
    refused.ingests.clear();
    let refused = refused.delivery.map(|mut delivery| {
        delivery.record.verdict = DeliveryVerdict::Rejected;
        delivery.record.http_status = 400;
        delivery.record.ingest_id = None;
        IngestWrite { delivery: Some(delivery), ..Default::default() }
    });
    let refused = refused.unwrap();
    let outcomes = storage.commit_ingest_writes(&[&first, &repeat, &refused], at_intake, now).await;
    let ingest = first.ingests[0].id;
    assert_eq!(
        outcomes.unwrap()[..2],
        [vec![IngestOutcome::Created(ingest)], vec![IngestOutcome::Duplicate(ingest)]]
    );
    let id = |write: &IngestWrite| write.delivery.as_ref().unwrap().record.id;

    let stored = |delivery| async move {
        names_none(storage, "webhook_deliveries", "ingest_id", delivery).await
    };
    assert!(stored(id(&first)).await, "the first delivery's row names no ingest");
    assert!(!stored(id(&repeat)).await, "a repeat's names the ingest it repeats");
    // The call's datapoint takes its ingest's id too, which the ingest's row then leaves out.
    let datapoint = storage.get_datapoint(organization, ingest).await.unwrap().unwrap();
    assert_eq!(datapoint.datapoint.call_id, "own-id");
    assert!(names_none(storage, "ingests", "datapoint_id", ingest).await);
    let record = storage.get_ingest(organization, ingest).await.unwrap().unwrap();
    assert_eq!(record.datapoint_id, Some(ingest));
    let read = |delivery| async move {
        storage.get_webhook_delivery(project, delivery).await.unwrap().unwrap()
    };
    assert_eq!(read(id(&first)).await.delivery.ingest_id, Some(ingest));
    assert_eq!(read(id(&repeat)).await.delivery.ingest_id, Some(ingest));
    assert_eq!(read(id(&refused)).await.delivery.ingest_id, None);
    let brought: Vec<Uuid> = storage
        .ingest_deliveries(&[ingest], 10)
        .await
        .unwrap()
        .iter()
        .map(|delivery| delivery.id)
        .collect();
    assert_eq!(brought, [id(&repeat), id(&first)], "newest first");
    assert!(storage.ingest_deliveries(&[id(&refused)], 10).await.unwrap().is_empty());

    let calls = storage.matching_calls(organization, &Default::default(), 10).await.unwrap();
    assert_eq!(calls.len(), 1);
    let deletion = requested_deletion(organization, now);
    storage.delete_calls(&calls, &deletion, now).await.unwrap();
    for delivery in [id(&first), id(&repeat)] {
        assert!(read(delivery).await.body.is_none(), "the call's kept bodies are cleared");
    }
    assert!(read(id(&refused)).await.body.is_some(), "another's stays");
}

/// Whether the row of `id` in `table` leaves `column` empty.
async fn names_none(storage: &super::Storage, table: &str, column: &str, id: Uuid) -> bool {
    use sea_orm::ConnectionTrait;
    let backend = storage.db.get_database_backend();
    let placeholder = if backend == sea_orm::DbBackend::Postgres { "$1" } else { "?" };
    let statement = sea_orm::Statement::from_sql_and_values(
        backend,
        format!("SELECT {column} IS NULL AS none FROM {table} WHERE id = {placeholder}"),
        [sea_orm::Value::from(id)],
    );
    let row = storage.db.query_one_raw(statement).await.unwrap().unwrap();
    row.try_get::<bool>("", "none").unwrap()
}

/// A worker's datapoint takes its ingest's id, and the ingest's row then names none; an ingest
/// merged into its call's datapoint names that one.
#[tokio::test]
async fn an_ingest_names_only_a_datapoint_of_another_id() {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let first = new_ingest(organization, project, "worked");
    let mut second = new_ingest(organization, project, "worked");
    second.dedup_key = "later".into();
    let writes = [&first, &second]
        .map(|ingest| IngestWrite { ingests: vec![ingest.clone()], ..Default::default() });
    let jobs = crate::storage::testing::jobs_only(3);
    storage.commit_ingest_writes(&writes.iter().collect::<Vec<_>>(), jobs, now).await.unwrap();
    let made =
        Datapoint::merge(None, &first.conversation, None, organization, project, first.id, now);
    let merged = Datapoint::merge(
        Some(made.clone()),
        &second.conversation,
        None,
        organization,
        project,
        second.id,
        now,
    );
    assert_eq!((made.id, merged.id), (first.id, first.id));
    let finished = |ingest: &NewIngest, datapoint, new| FinishedIngest {
        job_id: ingest.id,
        ingest_id: ingest.id,
        attempts: 1,
        datapoint,
        new,
    };
    storage.finish_ingests(&[finished(&first, &made, true)], now).await.unwrap();
    storage.finish_ingests(&[finished(&second, &merged, false)], now).await.unwrap();
    assert!(names_none(storage, "ingests", "datapoint_id", first.id).await);
    assert!(!names_none(storage, "ingests", "datapoint_id", second.id).await);
    for ingest in [&first, &second] {
        let record = storage.get_ingest(organization, ingest.id).await.unwrap().unwrap();
        assert_eq!((record.state, record.datapoint_id), (IngestState::Done, Some(first.id)));
    }
    // Not yet done, an ingest names no datapoint.
    let queued = new_ingest(organization, project, "queued");
    let write = IngestWrite { ingests: vec![queued.clone()], ..Default::default() };
    storage.commit_ingest_writes(&[&write], jobs, now).await.unwrap();
    let record = storage.get_ingest(organization, queued.id).await.unwrap().unwrap();
    assert_eq!((record.state, record.datapoint_id), (IngestState::Queued, None));
}

/// A datapoint and an ingest as they were created store 0 as their `updated_at_ms` (m0043) and
/// read their creation time; a datapoint changed later stores the time of the change. m0043
/// down writes the creation time back, which reads the same, and so does every row after up.
#[tokio::test]
async fn rows_as_created_store_no_update_time() {
    use super::testing::{count, migrate_down_through, migrate_up, stored_call};

    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let created = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
    let later = created + chrono::Duration::minutes(1);
    let first = |call_id| IngestWrite {
        ingests: vec![new_ingest(organization, project, call_id)],
        ..Default::default()
    };
    let (a, b) = (first("a"), first("b"));
    storage.commit_ingest_writes(&[&a, &b], at_intake, created).await.unwrap();
    let mut changed = new_ingest(organization, project, "b");
    changed.conversation.tags = vec!["later".to_owned()];
    changed.dedup_key = dedup_key(&changed.conversation);
    let change = IngestWrite { ingests: vec![changed], ..Default::default() };
    storage.commit_ingest_writes(&[&change], at_intake, later).await.unwrap();

    let stored = |table: &'static str, column: &'static str, value: String| async move {
        let sql = format!("SELECT updated_at_ms AS n FROM {table} WHERE {column} = {value}");
        count(storage, &sql).await
    };
    let ingest_a = a.ingests[0].id;
    let ingest_a_key = match storage.db.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("'{ingest_a}'"),
        _ => format!("X'{}'", ingest_a.simple()),
    };
    let ms = |at: chrono::DateTime<Utc>| at.timestamp_millis();
    assert_eq!(stored("datapoints", "call_id", "'a'".into()).await, 0);
    assert_eq!(stored("datapoints", "call_id", "'b'".into()).await, ms(later));
    assert_eq!(stored("ingests", "id", ingest_a_key.clone()).await, 0);
    for state in ["up", "down", "again"] {
        match state {
            "down" => migrate_down_through(storage, "m0043_unchanged_rows").await,
            "again" => migrate_up(storage).await,
            _ => {}
        }
        let call = |call_id| stored_call(storage, organization, project, "custom", call_id);
        let (a, b) = (call("a").await.unwrap(), call("b").await.unwrap());
        assert_eq!((a.created_at, a.updated_at), (created, created), "{state}");
        assert_eq!((b.created_at, b.updated_at), (created, later), "{state}");
        let ingest = storage.get_ingest(organization, ingest_a).await.unwrap().unwrap();
        assert_eq!((ingest.created_at, ingest.updated_at), (created, created), "{state}");
        let kept = if state == "up" { 0 } else { ms(created) };
        assert_eq!(stored("datapoints", "call_id", "'a'".into()).await, kept, "{state}");
        assert_eq!(stored("ingests", "id", ingest_a_key.clone()).await, kept, "{state}");
    }
}
