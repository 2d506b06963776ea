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
    let (organization, project) = (Uuid::now_v7(), Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let slow = check(
        organization,
        "slow responses",
        Rule {
            measure: Measure::P95ResponseLatencyMs,
            comparator: Comparator::GreaterThan,
            threshold: Some(Value::Number(1_500.0)),
            phrase: None,
        },
    );
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
        id: Uuid::now_v7(),
        organization_id: organization,
        name: name.into(),
        description: String::new(),
        filter,
        checks,
        created_at: now,
        updated_at: now,
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
    let organization = Uuid::now_v7();
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

    let monitor = Monitor {
        id: Uuid::now_v7(),
        organization_id: organization,
        name: "all calls".into(),
        description: String::new(),
        filter: MonitorFilter::default(),
        checks: vec![changed.check.clone()],
        created_at: now,
        updated_at: now,
    };
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
