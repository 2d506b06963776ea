//! Monitors evaluated where datapoints are stored, over a real database (in-memory SQLite;
//! Postgres when EARSHOT_TEST_POSTGRES_URL is set).

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::ingest_tests::new_ingest;
use crate::model::checks::{Check, CheckRecord, Comparator, Measure, Rule, Value};
use crate::model::commit::IngestWrite;
use crate::model::conversation::{Role, Turn};
use crate::model::datapoints::DatapointQuery;
use crate::model::monitors::{Monitor, MonitorFilter};

fn check(organization: Uuid, name: &str, rule: Rule) -> CheckRecord {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    CheckRecord {
        check: Check { id: Uuid::now_v7(), name: name.into(), version: 1, rule },
        organization_id: organization,
        description: String::new(),
        created_at: now,
        updated_at: now,
    }
}

/// "slow responses": the assistant's p95 response latency over 1.5 s.
fn slow_check(organization: Uuid) -> CheckRecord {
    check(
        organization,
        "slow responses",
        Rule {
            measure: Measure::P95ResponseLatencyMs,
            comparator: Comparator::GreaterThan,
            threshold: Some(Value::Number(1_500.0)),
            phrase: None,
        },
    )
}

/// A monitor of `organization` at version 1 running `checks` on every call (no filter).
fn monitor_of(organization: Uuid, name: &str, checks: Vec<Check>) -> Monitor {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    Monitor {
        id: Uuid::now_v7(),
        organization_id: organization,
        name: name.into(),
        description: String::new(),
        filter: MonitorFilter::default(),
        checks,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// `slow_check` and a monitor `name` of `organization` running it on every call, both stored.
async fn slow_monitor(
    storage: &super::Storage,
    organization: Uuid,
    name: &str,
) -> (CheckRecord, Monitor) {
    let slow = slow_check(organization);
    storage.insert_check(&slow).await.unwrap();
    let monitor = monitor_of(organization, name, vec![slow.check.clone()]);
    storage.insert_monitor(&monitor).await.unwrap();
    (slow, monitor)
}

/// The datapoint a worker makes of `ingest`, a call not stored before.
fn fresh_datapoint(
    ingest: &crate::model::ingest::NewIngest,
    now: chrono::DateTime<Utc>,
) -> crate::model::datapoints::Datapoint {
    crate::model::datapoints::Datapoint::merge(
        None,
        &ingest.conversation,
        None,
        ingest.organization_id,
        ingest.project_id,
        Uuid::now_v7(),
        now,
    )
}

/// A call of `provider` whose assistant answers `latency_ms` after the user, and whose
/// provider says it `successful`.
fn call(
    organization: Uuid,
    project: Uuid,
    provider: &str,
    call_id: &str,
    latency_ms: i64,
    successful: bool,
) -> crate::model::ingest::NewIngest {
    let mut ingest = new_ingest(organization, project, call_id);
    ingest.conversation.provider = provider.into();
    ingest.conversation.turns = vec![
        Turn::said(Role::User, "Can you help me?", 0, Some(1_000)),
        Turn::said(Role::Assistant, "Of course.", 1_000 + latency_ms, Some(2_000 + latency_ms)),
    ];
    ingest.conversation.extras.successful = Some(successful);
    ingest.dedup_key = format!("{call_id}-{latency_ms}-{successful}");
    ingest
}

async fn found(
    storage: &super::Storage,
    organization: Uuid,
    query: DatapointQuery,
) -> BTreeSet<String> {
    let query = DatapointQuery { page_size: 100, ..query };
    storage
        .search_datapoints(organization, &query)
        .await
        .unwrap()
        .into_iter()
        .map(|view| view.datapoint.call_id)
        .collect()
}

fn set(calls: &[&str]) -> BTreeSet<String> {
    calls.iter().map(|call| (*call).to_owned()).collect()
}

/// Each stored call is evaluated by the monitors that match it in the commit that stores it;
/// its results are on the datapoint and searchable (issues only, by failed check, by monitor);
/// a later event of the call evaluates it again, replacing its results; a monitor of another
/// organization sees nothing.
#[tokio::test]
async fn calls_are_evaluated_in_the_commit_that_stores_them() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let slow = slow_check(organization);
    let failed = check(
        organization,
        "provider says failed",
        Rule {
            measure: Measure::ProviderCallSuccessful,
            comparator: Comparator::Equal,
            threshold: Some(Value::Bool(false)),
            phrase: None,
        },
    );
    storage.insert_check(&slow).await.unwrap();
    storage.insert_check(&failed).await.unwrap();
    let monitor = |name: &str, filter: MonitorFilter, checks: Vec<Check>| Monitor {
        filter,
        ..monitor_of(organization, name, checks)
    };
    let retell = monitor(
        "retell quality",
        MonitorFilter { provider: Some("retell".into()), ..MonitorFilter::default() },
        vec![slow.check.clone(), failed.check.clone()],
    );
    let everyone = monitor("latency", MonitorFilter::default(), vec![slow.check.clone()]);
    storage.insert_monitor(&retell).await.unwrap();
    storage.insert_monitor(&everyone).await.unwrap();
    let stranger = Uuid::now_v7();
    let theirs = Monitor {
        id: Uuid::now_v7(),
        organization_id: stranger,
        name: "theirs".into(),
        ..retell.clone()
    };
    storage.insert_monitor(&theirs).await.unwrap();

    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let write = IngestWrite {
        ingests: vec![
            call(organization, project, "retell", "good", 400, true),
            call(organization, project, "retell", "bad", 400, false),
            call(organization, project, "retell", "slow", 2_000, true),
            call(organization, project, "custom", "other", 400, false),
        ],
        ..IngestWrite::default()
    };
    storage.commit_ingest_writes(&[&write], at_intake, now).await.unwrap();

    let query = DatapointQuery::default;
    assert_eq!(
        found(storage, organization, DatapointQuery { issues_only: true, ..query() }).await,
        set(&["bad", "slow"])
    );
    let failing = |name: &str| DatapointQuery { failed_check: Some(name.into()), ..query() };
    assert_eq!(found(storage, organization, failing("provider says failed")).await, set(&["bad"]));
    assert_eq!(found(storage, organization, failing("slow responses")).await, set(&["slow"]));
    let of = |monitor: &Monitor| DatapointQuery { monitor_id: Some(monitor.id), ..query() };
    assert_eq!(found(storage, organization, of(&retell)).await, set(&["good", "bad", "slow"]));
    assert_eq!(
        found(storage, organization, of(&everyone)).await,
        set(&["good", "bad", "slow", "other"])
    );
    assert!(found(storage, organization, of(&theirs)).await.is_empty());
    assert!(found(storage, stranger, of(&theirs)).await.is_empty(), "nothing of theirs stored");

    let page = DatapointQuery { page_size: 10, ..query() };
    let views = storage.search_datapoints(organization, &page).await.unwrap();
    let bad = views.iter().find(|view| view.datapoint.call_id == "bad").unwrap();
    assert_eq!(bad.failed_checks(), ["provider says failed"]);
    let names: Vec<&str> =
        bad.check_results.iter().map(|result| result.value.name.as_str()).collect();
    assert_eq!(names, ["provider says failed", "slow responses"]);
    let latency = &bad.check_results[1].value;
    assert_eq!((latency.value.clone(), latency.is_issue), (Some(Value::Number(400.0)), false));
    assert_eq!((latency.check_id, latency.check_version), (slow.check.id, 1));
    let other = views.iter().find(|view| view.datapoint.call_id == "other").unwrap();
    assert_eq!(other.check_results.len(), 1, "only the monitor that matched it");
    assert!(other.failed_checks().is_empty());

    // The provider's verdict changes: the call is evaluated again and is no longer an issue.
    let later = IngestWrite {
        ingests: vec![call(organization, project, "retell", "bad", 400, true)],
        ..IngestWrite::default()
    };
    storage.commit_ingest_writes(&[&later], at_intake, now).await.unwrap();
    assert_eq!(
        found(storage, organization, DatapointQuery { issues_only: true, ..query() }).await,
        set(&["slow"])
    );
    assert!(found(storage, organization, failing("provider says failed")).await.is_empty());
    assert_eq!(found(storage, organization, of(&retell)).await, set(&["good", "bad", "slow"]));
}

/// A check's rule change makes a new version, kept beside the old; a name is unique in an
/// organization; a deleted monitor leaves its calls' results and stops listing its calls.
#[tokio::test]
async fn checks_are_versioned_and_monitors_deleted_cleanly() {
    let storage = &super::testing::storage().await;
    let organization = super::testing::organization(storage).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let long = check(
        organization,
        "long calls",
        Rule {
            measure: Measure::DurationMs,
            comparator: Comparator::GreaterThan,
            threshold: Some(Value::Number(600_000.0)),
            phrase: None,
        },
    );
    storage.insert_check(&long).await.unwrap();
    let again = check(organization, "long calls", long.check.rule.clone());
    let taken = storage.insert_check(&again).await;
    assert!(matches!(taken, Err(crate::error::Error::AlreadyExists(_))), "{taken:?}");
    storage
        .insert_check(&check(Uuid::now_v7(), "long calls", long.check.rule.clone()))
        .await
        .expect("names are per organization");

    let same = storage
        .update_check(
            organization,
            long.check.id,
            Some("calls over ten minutes".into()),
            Some(long.check.rule.clone()),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((same.check.version, same.description.as_str()), (1, "calls over ten minutes"));
    let shorter = Rule { threshold: Some(Value::Number(300_000.0)), ..long.check.rule.clone() };
    let changed = storage
        .update_check(organization, long.check.id, None, Some(shorter.clone()), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((changed.check.version, &changed.check.rule), (2, &shorter));
    assert_eq!(
        storage.get_check(organization, long.check.id).await.unwrap().unwrap().check.version,
        2
    );
    assert_eq!(
        storage.update_check(Uuid::now_v7(), long.check.id, None, None, now).await.unwrap(),
        None
    );

    let monitor = monitor_of(organization, "all calls", vec![changed.check.clone()]);
    storage.insert_monitor(&monitor).await.unwrap();
    assert_eq!(storage.monitors_using(organization, long.check.id).await.unwrap(), ["all calls"]);
    let listed = storage.list_monitors(organization).await.unwrap();
    assert_eq!(
        listed[0].checks,
        std::slice::from_ref(&changed.check),
        "checks at their current version"
    );
    let project = Uuid::now_v7();
    let write = IngestWrite {
        ingests: vec![call(organization, project, "retell", "c1", 0, true)],
        ..IngestWrite::default()
    };
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&[&write], at_intake, now).await.unwrap();
    let by_monitor = DatapointQuery { monitor_id: Some(monitor.id), ..DatapointQuery::default() };
    assert_eq!(found(storage, organization, by_monitor.clone()).await, set(&["c1"]));
    assert!(storage.delete_monitor(organization, monitor.id).await.unwrap());
    assert!(!storage.delete_monitor(organization, monitor.id).await.unwrap());
    assert!(found(storage, organization, by_monitor).await.is_empty());
    let all = found(storage, organization, DatapointQuery::default()).await;
    assert_eq!(all, set(&["c1"]));
    let query = DatapointQuery { page_size: 10, ..DatapointQuery::default() };
    let views = storage.search_datapoints(organization, &query).await.unwrap();
    assert_eq!(views[0].check_results[0].value.check_version, 2, "results stay");
    assert!(storage.delete_check(organization, long.check.id).await.unwrap());
    assert_eq!(storage.get_check(organization, long.check.id).await.unwrap(), None);
}

/// The figures of `monitor`'s summary by day over November 2026: (calls, issues), and per
/// check (calls, issues, mean).
async fn summary_of(
    storage: &super::Storage,
    monitor: &Monitor,
) -> ((u64, u64), Vec<(String, u64, u64, Option<f64>)>) {
    use crate::model::monitors::Granularity;
    let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap().timestamp_millis();
    let to = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap().timestamp_millis();
    let summary = storage.monitor_summary(monitor, from, to, Granularity::Day).await.unwrap();
    let buckets: u64 = summary.buckets.iter().map(|bucket| bucket.datapoints).sum();
    assert_eq!(buckets, summary.total.datapoints, "the buckets add up to the total");
    let checks = summary
        .total
        .checks
        .iter()
        .map(|check| (check.name.clone(), check.datapoints, check.issues, check.mean))
        .collect();
    ((summary.total.datapoints, summary.total.issues), checks)
}

/// A monitor's summary counts each call once, as its latest evaluation found it: a call
/// evaluated again replaces its part, a deleted call takes it out, and a call evaluated by an
/// earlier version of the monitor (other checks) is taken out by that version's checks.
#[tokio::test]
async fn summaries_count_each_call_as_last_evaluated() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let slow = slow_check(organization);
    let failed = check(
        organization,
        "provider says failed",
        Rule {
            measure: Measure::ProviderCallSuccessful,
            comparator: Comparator::Equal,
            threshold: Some(Value::Bool(false)),
            phrase: None,
        },
    );
    storage.insert_check(&slow).await.unwrap();
    storage.insert_check(&failed).await.unwrap();
    let mut monitor =
        monitor_of(organization, "quality", vec![slow.check.clone(), failed.check.clone()]);
    storage.insert_monitor(&monitor).await.unwrap();
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let store = |ingests| async move {
        let write = IngestWrite { ingests, ..IngestWrite::default() };
        storage.commit_ingest_writes(&[&write], at_intake, now).await.unwrap();
    };
    store(vec![
        call(organization, project, "retell", "good", 400, true),
        call(organization, project, "retell", "bad", 400, false),
        call(organization, project, "retell", "slow", 2_000, true),
    ])
    .await;
    let slow_name = "slow responses".to_owned();
    let failed_name = "provider says failed".to_owned();
    assert_eq!(
        summary_of(storage, &monitor).await,
        (
            (3, 2),
            vec![
                (slow_name.clone(), 3, 1, Some((400.0 + 400.0 + 2_000.0) / 3.0)),
                (failed_name.clone(), 3, 1, Some(2.0 / 3.0)),
            ]
        )
    );

    // "bad" arrives again, successful and slow: its part is replaced, not added.
    store(vec![call(organization, project, "retell", "bad", 3_000, true)]).await;
    assert_eq!(
        summary_of(storage, &monitor).await,
        (
            (3, 2),
            vec![
                (slow_name.clone(), 3, 2, Some((400.0 + 3_000.0 + 2_000.0) / 3.0)),
                (failed_name.clone(), 3, 0, Some(1.0)),
            ]
        )
    );

    // The monitor drops a check (version 2); "good" evaluated again by it takes out its
    // version-1 part (both checks) and adds one with the remaining check only.
    monitor.checks = vec![slow.check.clone()];
    assert_eq!(storage.update_monitor(&monitor).await.unwrap(), Some(2));
    monitor.version = 2;
    store(vec![call(organization, project, "retell", "good", 500, true)]).await;
    assert_eq!(
        summary_of(storage, &monitor).await,
        (
            (3, 2),
            vec![
                (slow_name.clone(), 3, 2, Some((500.0 + 3_000.0 + 2_000.0) / 3.0)),
                (failed_name.clone(), 2, 0, Some(1.0)),
            ]
        )
    );

    // Deleting "slow" takes its part out.
    let slow_call = super::testing::stored_call(storage, organization, project, "retell", "slow")
        .await
        .unwrap();
    let calls = storage.calls_by_ids(organization, &[slow_call.id]).await.unwrap();
    let deletion = crate::storage::ingest_tests::requested_deletion(organization, now);
    storage.delete_calls(&calls, &deletion, now).await.unwrap();
    assert_eq!(
        summary_of(storage, &monitor).await,
        (
            (2, 1),
            vec![
                (slow_name.clone(), 2, 1, Some((500.0 + 3_000.0) / 2.0)),
                (failed_name.clone(), 1, 0, Some(1.0)),
            ]
        )
    );

    // An external judge cannot overwrite a monitor's result (its summary counts it).
    let bad =
        super::testing::stored_call(storage, organization, project, "retell", "bad").await.unwrap();
    let refused = storage
        .attach_check_results(
            organization,
            bad.id,
            vec![crate::model::checks::CheckValue {
                name: slow_name.clone(),
                value: Some(Value::Number(1.0)),
                value_type: crate::model::checks::ValueType::Number,
                check_id: slow.check.id,
                check_version: 1,
                is_issue: false,
                explanation: String::new(),
            }],
            now,
        )
        .await;
    assert!(matches!(refused, Err(crate::error::Error::InvalidArgument(_))), "{refused:?}");

    // Deleting the monitor removes its summary.
    assert!(storage.delete_monitor(organization, monitor.id).await.unwrap());
    assert_eq!(summary_of(storage, &monitor).await, ((0, 0), vec![]));
}

/// A backfill evaluates calls stored before its monitor, batch by batch, each batch's results
/// committed with the cursor: the calls get the results live evaluation gives, its counts and
/// the monitor's summary count each call once, and a step after the end changes nothing.
#[tokio::test]
async fn a_backfill_evaluates_stored_calls_once() {
    use crate::model::monitors::{Backfill, BackfillState};
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let failed = check(
        organization,
        "provider says failed",
        Rule {
            measure: Measure::ProviderCallSuccessful,
            comparator: Comparator::Equal,
            threshold: Some(Value::Bool(false)),
            phrase: None,
        },
    );
    storage.insert_check(&failed).await.unwrap();
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let before: Vec<_> = (0..7)
        .map(|index| {
            let provider = if index == 6 { "vapi" } else { "retell" };
            call(organization, project, provider, &format!("old-{index}"), 400, index % 3 != 0)
        })
        .collect();
    let write = IngestWrite { ingests: before, ..IngestWrite::default() };
    storage.commit_ingest_writes(&[&write], at_intake, now).await.unwrap();

    let monitor = Monitor {
        id: Uuid::now_v7(),
        organization_id: organization,
        name: "retell failures".into(),
        description: String::new(),
        filter: MonitorFilter { provider: Some("retell".into()), ..MonitorFilter::default() },
        checks: vec![failed.check.clone()],
        version: 1,
        created_at: now,
        updated_at: now,
    };
    storage.insert_monitor(&monitor).await.unwrap();
    let live = IngestWrite {
        ingests: vec![call(organization, project, "retell", "new-0", 400, false)],
        ..IngestWrite::default()
    };
    storage.commit_ingest_writes(&[&live], at_intake, now).await.unwrap();
    assert_eq!(summary_of(storage, &monitor).await.0, (1, 1), "only the live call");

    let total = storage.count_backfill_calls(&monitor, None, None).await.unwrap();
    assert_eq!(total, 7, "six old retell calls and the live one");
    let backfill = Backfill::start(organization, monitor.id, None, None, total, now);
    storage.start_backfill(&backfill, 3).await.unwrap();
    let mut steps = 0;
    let done = loop {
        steps += 1;
        let step = storage.backfill_step(backfill.id, 3, now).await.unwrap().unwrap();
        if step.state != BackfillState::Running {
            break step;
        }
        assert_eq!(step.processed, 3 * steps, "a whole batch per step");
    };
    assert_eq!(steps, 3, "3 + 3 + 1 calls");
    assert_eq!(
        (done.state, done.processed, done.matched, done.issues),
        (BackfillState::Succeeded, 7, 7, 3)
    );
    assert_eq!(storage.queue().count(crate::jobs::JobStatus::Queued).await.unwrap(), 0);
    let again = storage.backfill_step(backfill.id, 3, now).await.unwrap().unwrap();
    assert_eq!(again, done, "a finished backfill stays as it ended");
    assert_eq!(summary_of(storage, &monitor).await.0, (7, 3), "each call once");
    let issues = DatapointQuery { issues_only: true, ..DatapointQuery::default() };
    assert_eq!(
        found(storage, organization, issues).await,
        set(&["old-0", "old-3", "new-0"]),
        "old-6 is a vapi call the monitor does not look at"
    );
    assert_eq!(storage.list_backfills(organization, monitor.id).await.unwrap(), [done]);
    assert!(storage.list_backfills(Uuid::now_v7(), monitor.id).await.unwrap().is_empty());
}

/// Calls evaluated before m0016 get their monitors' hourly counts from the migration (their
/// check means from a backfill), and their monitors a first version.
#[tokio::test]
async fn the_migration_counts_calls_evaluated_before_it() {
    use sea_orm_migration::MigratorTrait;
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let failed = check(
        organization,
        "provider says failed",
        Rule {
            measure: Measure::ProviderCallSuccessful,
            comparator: Comparator::Equal,
            threshold: Some(Value::Bool(false)),
            phrase: None,
        },
    );
    storage.insert_check(&failed).await.unwrap();
    let monitor = monitor_of(organization, "failures", vec![failed.check.clone()]);
    storage.insert_monitor(&monitor).await.unwrap();
    let write = IngestWrite {
        ingests: vec![
            call(organization, project, "retell", "good", 400, true),
            call(organization, project, "retell", "bad", 400, false),
        ],
        ..IngestWrite::default()
    };
    let at_intake = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&[&write], at_intake, now).await.unwrap();
    // Back to before m0016 (it and every later migration undone), and up again.
    super::testing::migrate_down_through(storage, "m0016_monitor_rollups").await;
    super::migrations::Migrator::up(&storage.db, None).await.unwrap();

    assert_eq!(summary_of(storage, &monitor).await, ((2, 1), vec![]));
    // Evaluated again, a call takes out what the migration counted and adds its whole part.
    let again = IngestWrite {
        ingests: vec![call(organization, project, "retell", "bad", 400, true)],
        ..IngestWrite::default()
    };
    storage.commit_ingest_writes(&[&again], at_intake, now).await.unwrap();
    let ((calls, issues), checks) = summary_of(storage, &monitor).await;
    assert_eq!((calls, issues), (2, 0));
    assert_eq!(checks, [("provider says failed".to_owned(), 1, 0, Some(1.0))]);
}

/// The statements of summaries (the monitor's key range), take-outs (a call's results row, and
/// each of its matches by its whole key) and backfill listings read a range of an index without a sort,
/// on SQLite (PostgreSQL's plans depend on statistics; the keys are the same).
#[tokio::test]
async fn summary_statements_are_read_through_indexes() {
    use sea_orm::QueryTrait;
    let storage = &super::testing::storage().await;
    let backend = sea_orm::DbBackend::Sqlite;
    if storage.db.get_database_backend() != backend {
        return;
    }
    let ids = [Uuid::now_v7(), Uuid::now_v7()];
    let (organization, monitor) = (Uuid::now_v7(), Uuid::now_v7());
    let cases = [
        (
            "summary",
            super::rollups::summary_rows(monitor, 0, 1).build(backend),
            "INDEX sqlite_autoindex_monitor_rollups_1 (monitor_id=? AND bucket_ms>? AND bucket_ms<?)",
        ),
        (
            "results of calls",
            super::rollups::results_rows(&ids).build(backend),
            "INDEX sqlite_autoindex_datapoint_checks_1 (datapoint_id=?)",
        ),
        (
            "deleting a match",
            backend.build(
                &super::monitors::forget_match(&super::entities::monitor_datapoint::Model {
                    monitor_id: monitor.to_string(),
                    occurred_at_ms: 1,
                    datapoint_id: ids[0],
                    is_issue: false,
                    monitor_version: 1,
                })
                .unwrap(),
            ),
            "USING PRIMARY KEY (monitor_id=? AND occurred_at_ms=? AND datapoint_id=?)",
        ),
        (
            "backfills of a monitor",
            super::backfills::backfills_of(organization, monitor).build(backend),
            "INDEX monitor_backfills_by_monitor",
        ),
    ];
    for (name, statement, index) in cases {
        let plan = super::ingest_tests::sqlite_plan(storage, statement).await;
        assert!(plan.iter().all(|step| !step.starts_with("SCAN ")), "{name}: a scan: {plan:?}");
        assert!(plan.iter().any(|step| step.contains(index)), "{name}: {index} unused: {plan:?}");
        assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{name}: sorted: {plan:?}");
    }
}

/// A call's matches follow it (SQLite keeps them only in the searches' order, found again from
/// the monitors its results row names, m0028): when a later event changes its time, at intake
/// or in a worker's batch, its old rows go and the new are found; a monitor with no checks
/// matches it too, and once deleted adds nothing to summaries when the call changes again; when
/// the call is deleted, its rows and results go with it.
#[tokio::test]
async fn matches_follow_a_call_that_changes_and_go_with_it() {
    use crate::storage::datapoints::FinishedIngest;

    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let (_, latency) = slow_monitor(storage, organization, "latency").await;
    let bare = monitor_of(organization, "every call", Vec::new());
    storage.insert_monitor(&bare).await.unwrap();
    let at = |hour: u32| Utc.with_ymd_and_hms(2026, 11, 30, hour, 0, 0).unwrap();
    let event = |hour: u32, latency_ms: i64| {
        let mut ingest = call(organization, project, "custom", "moving", latency_ms, true);
        ingest.conversation.started_at = Some(at(hour));
        ingest.dedup_key = format!("{hour}");
        IngestWrite { ingests: vec![ingest], ..IngestWrite::default() }
    };
    let count = |sql: String| async move { super::testing::count(storage, &sql).await };
    // Match rows at `hour`, match rows in all, results rows.
    let rows = |hour: u32| async move {
        (
            count(format!(
                "SELECT COUNT(*) AS n FROM monitor_datapoints WHERE occurred_at_ms = {}",
                at(hour).timestamp_millis()
            ))
            .await,
            count("SELECT COUNT(*) AS n FROM monitor_datapoints".into()).await,
            count("SELECT COUNT(*) AS n FROM datapoint_checks".into()).await,
        )
    };
    let of =
        |monitor: &Monitor| DatapointQuery { monitor_id: Some(monitor.id), ..Default::default() };
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };

    storage.commit_ingest_writes(&[&event(8, 2_000)], settings, now).await.unwrap();
    // At intake: a new time.
    storage.commit_ingest_writes(&[&event(9, 400)], settings, now).await.unwrap();
    assert_eq!(rows(8).await, (0, 2, 1), "the old time's rows are gone");
    assert_eq!(rows(9).await, (2, 2, 1));
    assert_eq!(found(storage, organization, of(&latency)).await, set(&["moving"]));
    assert_eq!(found(storage, organization, of(&bare)).await, set(&["moving"]));
    assert_eq!(summary_of(storage, &latency).await.0, (1, 0), "counted once, as last found");

    // In a worker's batch: the stored datapoint merged again, at another time, slow again.
    let stored = super::testing::stored_call(storage, organization, project, "custom", "moving")
        .await
        .unwrap();
    let mut later = event(10, 2_000).ingests.remove(0);
    let merged = crate::model::datapoints::Datapoint::merge(
        Some(stored),
        &later.conversation,
        None,
        organization,
        project,
        Uuid::now_v7(),
        now,
    );
    let job = Uuid::now_v7();
    later.id = job;
    let write = IngestWrite { ingests: vec![later], ..IngestWrite::default() };
    storage
        .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), now)
        .await
        .unwrap();
    let finished =
        FinishedIngest { job_id: job, ingest_id: job, attempts: 1, datapoint: &merged, new: false };
    storage.finish_ingests(&[finished], now).await.unwrap();
    assert_eq!(rows(9).await, (0, 2, 1));
    assert_eq!(rows(10).await, (2, 2, 1));
    assert_eq!(found(storage, organization, of(&bare)).await, set(&["moving"]));
    assert_eq!(
        found(storage, organization, DatapointQuery { issues_only: true, ..Default::default() })
            .await,
        set(&["moving"])
    );
    assert_eq!(summary_of(storage, &latency).await.0, (1, 1));

    // A deleted monitor's part is not taken out again: its summary went with it.
    assert!(storage.delete_monitor(organization, bare.id).await.unwrap());
    storage.commit_ingest_writes(&[&event(11, 400)], settings, now).await.unwrap();
    assert_eq!(rows(11).await, (1, 1, 1));
    let summary_rows =
        format!("SELECT COUNT(*) AS n FROM monitor_rollups WHERE monitor_id = '{}'", bare.id);
    assert_eq!(count(summary_rows).await, 0, "no summary rows of a deleted monitor");
    assert_eq!(summary_of(storage, &latency).await.0, (1, 0));

    let calls = storage.calls_by_ids(organization, &[merged.id]).await.unwrap();
    let deletion = crate::storage::ingest_tests::requested_deletion(organization, now);
    storage.delete_calls(&calls, &deletion, now).await.unwrap();
    assert_eq!(rows(11).await, (0, 0, 0));
    assert_eq!(summary_of(storage, &latency).await.0, (0, 0));
}

/// A check deleted from under a monitor (the API refuses that while a monitor uses the check;
/// the storage does not) stays in the list of the monitor's version, in whose order a match
/// holds its results: the monitor's results on a call are then kept in full instead, and read
/// back.
#[tokio::test]
async fn results_stay_readable_when_a_monitors_check_is_gone() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let rule = |measure: Measure, threshold: Value| Rule {
        measure,
        comparator: Comparator::GreaterThan,
        threshold: Some(threshold),
        phrase: None,
    };
    let slow = check(
        organization,
        "slow responses",
        rule(Measure::P95ResponseLatencyMs, Value::Number(1_500.0)),
    );
    let long = check(organization, "long calls", rule(Measure::DurationMs, Value::Number(6e5)));
    storage.insert_check(&slow).await.unwrap();
    storage.insert_check(&long).await.unwrap();
    let monitor = monitor_of(organization, "quality", vec![slow.check.clone(), long.check.clone()]);
    storage.insert_monitor(&monitor).await.unwrap();
    assert!(storage.delete_check(organization, long.check.id).await.unwrap());
    let write = IngestWrite {
        ingests: vec![call(organization, project, "custom", "slow", 2_000, true)],
        ..IngestWrite::default()
    };
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&[&write], settings, now).await.unwrap();
    let query = DatapointQuery { page_size: 10, ..DatapointQuery::default() };
    let views = storage.search_datapoints(organization, &query).await.unwrap();
    let results: Vec<(&str, Option<Value>, bool)> = views[0]
        .check_results
        .iter()
        .map(|result| {
            (result.value.name.as_str(), result.value.value.clone(), result.value.is_issue)
        })
        .collect();
    assert_eq!(results, [("slow responses", Some(Value::Number(2_000.0)), true)]);
    assert_eq!(summary_of(storage, &monitor).await.0, (1, 1));
}

/// A batch of new calls evaluated before its write turn (`EarlyEvaluation`) is stored as
/// evaluated only while its organization's monitors and their checks are as it found them: a
/// changed check, a new monitor or a deleted one sends the batch back to be evaluated in the
/// turn; another organization's monitors do not.
#[tokio::test]
async fn an_evaluation_before_the_turn_stands_while_its_monitors_do() {
    use super::monitors::EarlyEvaluation;
    let storage = &super::testing::storage().await;
    let organization = super::testing::organization(storage).await;
    let other = super::testing::organization(storage).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let (slow, monitor) = slow_monitor(storage, organization, "slow calls").await;
    let project = Uuid::now_v7();
    let ingest = call(organization, project, "retell", "early", 2_000, true);
    let datapoint = fresh_datapoint(&ingest, now);
    let context = "testing";
    let batch = [&datapoint];
    let texts = super::monitors::SearchTexts::default();
    let early = || EarlyEvaluation::of(&storage.db, &batch, &texts, now, context);
    let stands = |early: EarlyEvaluation| async move {
        early.confirm(&storage.db, context).await.unwrap().map(|(_, found)| found.counts)
    };

    let counts = stands(early().await.unwrap()).await.expect("nothing changed");
    assert_eq!(counts.get(&monitor.id), Some(&(1, 1)), "one call, slow: an issue");

    let unrelated = check(other, "other", slow.check.rule.clone());
    storage.insert_check(&unrelated).await.unwrap();
    let evaluated = early().await.unwrap();
    storage
        .insert_monitor(&monitor_of(other, "theirs", vec![unrelated.check.clone()]))
        .await
        .unwrap();
    assert!(stands(evaluated).await.is_some(), "another organization's monitor changes nothing");

    let evaluated = early().await.unwrap();
    let faster = Rule { threshold: Some(Value::Number(3_000.0)), ..slow.check.rule.clone() };
    storage.update_check(organization, slow.check.id, None, Some(faster), now).await.unwrap();
    assert!(stands(evaluated).await.is_none(), "a check changed");

    let evaluated = early().await.unwrap();
    let second = monitor_of(organization, "every call", Vec::new());
    storage.insert_monitor(&second).await.unwrap();
    assert!(stands(evaluated).await.is_none(), "a monitor added");

    let evaluated = early().await.unwrap();
    assert!(storage.delete_monitor(organization, second.id).await.unwrap());
    assert!(stands(evaluated).await.is_none(), "a monitor deleted");

    let evaluated = early().await.unwrap();
    let without = Monitor { checks: Vec::new(), ..monitor.clone() };
    assert_eq!(storage.update_monitor(&without).await.unwrap(), Some(2));
    assert!(stands(evaluated).await.is_none(), "a monitor's checks changed");
    let with = Monitor { checks: vec![slow.check.clone()], ..monitor.clone() };
    assert_eq!(storage.update_monitor(&with).await.unwrap(), Some(3));

    let counts = stands(early().await.unwrap()).await.expect("nothing changed since");
    assert_eq!(counts.get(&monitor.id), Some(&(1, 0)), "under the new threshold");
}

/// A worker's batch of new calls, evaluated before its write turn, is stored as one evaluated
/// in the turn would be: its results on the datapoint, its issue searchable, its match and its
/// part of the summary.
#[tokio::test]
async fn a_workers_new_calls_are_stored_as_evaluated_before_the_turn() {
    use crate::storage::datapoints::FinishedIngest;

    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let (_, monitor) = slow_monitor(storage, organization, "slow calls").await;
    let mut calls = Vec::new();
    for (call_id, latency_ms) in [("slow", 2_000), ("quick", 300)] {
        let mut ingest = call(organization, project, "retell", call_id, latency_ms, true);
        ingest.id = Uuid::now_v7();
        let write = IngestWrite { ingests: vec![ingest.clone()], ..IngestWrite::default() };
        storage
            .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), now)
            .await
            .unwrap();
        calls.push((ingest.id, fresh_datapoint(&ingest, now)));
    }
    let finished: Vec<FinishedIngest<'_>> = calls
        .iter()
        .map(|(id, datapoint)| FinishedIngest {
            job_id: *id,
            ingest_id: *id,
            attempts: 1,
            datapoint,
            new: true,
        })
        .collect();
    storage.finish_ingests(&finished, now).await.unwrap();

    let issues = DatapointQuery { issues_only: true, ..DatapointQuery::default() };
    assert_eq!(found(storage, organization, issues).await, set(&["slow"]));
    let by_monitor = DatapointQuery { monitor_id: Some(monitor.id), ..DatapointQuery::default() };
    assert_eq!(found(storage, organization, by_monitor).await, set(&["slow", "quick"]));
    assert_eq!(summary_of(storage, &monitor).await.0, (2, 1));
    let query = DatapointQuery { page_size: 10, ..DatapointQuery::default() };
    let mut results: Vec<(String, Option<Value>, bool)> = storage
        .search_datapoints(organization, &query)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|view| {
            view.check_results.into_iter().map(move |result| {
                (view.datapoint.call_id.clone(), result.value.value, result.value.is_issue)
            })
        })
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        results,
        [
            ("quick".to_owned(), Some(Value::Number(300.0)), false),
            ("slow".to_owned(), Some(Value::Number(2_000.0)), true),
        ]
    );
}

/// A batch's matches are stored as they were found, each with its issue and version, whatever
/// the number of monitors (a statement per 63, the bits of a call's masks) and of calls (a
/// statement per 500), a call matched by some monitors and not by others.
#[tokio::test]
async fn matches_are_stored_as_found_for_many_monitors_and_calls() {
    use sea_orm::{ConnectionTrait, EntityTrait};
    let storage = &super::testing::storage().await;
    let keys: Vec<String> = (0..70).map(|_| Uuid::now_v7().to_string()).collect();
    let calls: Vec<(i64, Uuid)> =
        (0..600).map(|index| (1_796_000_000_000 + index / 3, Uuid::now_v7())).collect();
    let mut matched = Vec::new();
    for (index, (occurred_at_ms, id)) in calls.iter().enumerate() {
        for (bit, key) in keys.iter().enumerate() {
            if (index + bit) % 4 == 0 {
                continue;
            }
            let version = i32::try_from(bit % 3).unwrap() + 1;
            matched.push((key.as_str(), *occurred_at_ms, *id, (index * bit) % 5 == 1, version));
        }
    }
    let transaction = storage.begin_write().await.unwrap();
    let mut batch = super::Batch::new(transaction.get_database_backend());
    super::monitors::insert_matches(&mut batch, &matched);
    batch.execute(&transaction, "storing matches").await.unwrap();
    transaction.commit().await.unwrap();

    let stored: BTreeSet<(String, i64, Uuid, bool, i32)> =
        super::entities::monitor_datapoint::Entity::find()
            .all(&storage.db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| {
                (
                    row.monitor_id,
                    row.occurred_at_ms,
                    row.datapoint_id,
                    row.is_issue,
                    row.monitor_version,
                )
            })
            .collect();
    let expected: BTreeSet<(String, i64, Uuid, bool, i32)> = matched
        .iter()
        .map(|&(key, occurred_at_ms, id, is_issue, version)| {
            (key.to_owned(), occurred_at_ms, id, is_issue, version)
        })
        .collect();
    assert_eq!(stored.len(), matched.len());
    assert!(stored.iter().any(|row| row.3) && stored.iter().any(|row| !row.3));
    assert_eq!(stored, expected);
}
