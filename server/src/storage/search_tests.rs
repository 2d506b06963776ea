//! The plans of datapoint searches (SQLite's; PostgreSQL reads the same indexes,
//! docs/ARCHITECTURE.md): every filter of the datapoints' own columns, with or without a project,
//! is read through an index, never by a scan of the table; the filters that can match many calls
//! (none, a project, a time range, a provider, a source) walk their index in the searches' order,
//! so a page costs a page of index entries however many calls are stored.

use chrono::{TimeZone, Utc};
use sea_orm::QueryTrait;
use uuid::Uuid;

use super::ingest_tests::sqlite_plan;
use crate::model::conversation::Source;
use crate::model::datapoints::{DatapointCursor, DatapointQuery};

/// What a search must show in its plan.
struct Expected {
    /// The index that serves the filter.
    index: &'static str,
    /// The index gives the order, so nothing is sorted.
    ordered: bool,
}

/// Each filter alone (on a page of 100), and the index that must serve it.
fn cases() -> Vec<(&'static str, DatapointQuery, Expected)> {
    let page = DatapointQuery { page_size: 101, ..Default::default() };
    let at = |day| Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap();
    let walk = |index| Expected { index, ordered: true };
    let seek = |index| Expected { index, ordered: false };
    vec![
        ("no filter", page.clone(), walk("datapoints_by_occurrence")),
        (
            "a page after a cursor",
            DatapointQuery {
                before: Some(DatapointCursor { occurred_at_ms: 1, id: Uuid::now_v7() }),
                ..page.clone()
            },
            walk("datapoints_by_occurrence"),
        ),
        (
            "a time range",
            DatapointQuery { from: Some(at(1)), to: Some(at(2)), ..page.clone() },
            walk("datapoints_by_occurrence"),
        ),
        (
            "a provider",
            DatapointQuery { provider: Some("retell".into()), ..page.clone() },
            walk("datapoints_by_provider"),
        ),
        (
            "a source",
            DatapointQuery { source: Some(Source::Webhook), ..page.clone() },
            walk("datapoints_by_source"),
        ),
        (
            "a context token",
            DatapointQuery { context_token: Some("session-7".into()), ..page.clone() },
            walk("datapoints_by_context_token_occurrence"),
        ),
        (
            "a call id",
            DatapointQuery { call_id: Some("call-7".into()), ..page.clone() },
            walk("datapoints_by_call_id"),
        ),
        (
            "any of two tags",
            DatapointQuery { tags_any: vec!["billing".into(), "vip".into()], ..page.clone() },
            seek("datapoint_tags_by_tag_alone"),
        ),
        (
            "a tag that must be there",
            DatapointQuery { tags_all: vec!["billing".into()], ..page.clone() },
            seek("datapoint_tags_by_tag_alone"),
        ),
        (
            "a metadata pair",
            DatapointQuery { metadata_equals: vec![("queue".into(), "billing".into())], ..page },
            seek("datapoint_metadata_by_pair_alone"),
        ),
    ]
}

#[tokio::test]
async fn every_filter_is_read_through_its_index() {
    let storage = super::testing::storage().await;
    if storage.db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    let organization = Uuid::now_v7();
    for with_project in [false, true] {
        for (name, mut query, expected) in cases() {
            if with_project {
                query.project_id = Some(Uuid::now_v7());
            }
            let statement = super::datapoints::search_statement(organization, &query)
                .build(sea_orm::DbBackend::Sqlite);
            let plan = sqlite_plan(&storage, statement).await;
            let context = format!("{name}, project given: {with_project}: {plan:?}");
            let scans = ["SCAN datapoints", "SCAN datapoint_tags", "SCAN datapoint_metadata"];
            assert!(
                plan.iter().all(|step| !scans.iter().any(|scan| step.starts_with(scan))),
                "a scan of a table: {context}"
            );
            // A project narrows the walk of the whole organization to its own index.
            let index = match expected.index {
                "datapoints_by_occurrence" if with_project => "datapoints_by_project_occurrence",
                index => index,
            };
            assert!(
                plan.iter().any(|step| step.contains(&format!("INDEX {index} "))),
                "{index} unused: {context}"
            );
            if expected.ordered {
                assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "a sort: {context}");
            }
        }
    }
}

/// Pages follow the searches' order, newest call first, then by id, with calls that started
/// in the same millisecond split across pages: every call comes exactly once, in order.
#[tokio::test]
async fn pages_follow_the_time_of_each_call() {
    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (Uuid::now_v7(), Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    // Seven calls: three started at the same moment, one without a start (stored now, so the
    // newest), the others on different days, stored in an order unlike their starts.
    let starts = [Some(3), Some(1), Some(3), None, Some(2), Some(3), Some(5)];
    let writes: Vec<IngestWrite> = starts
        .iter()
        .enumerate()
        .map(|(index, day)| {
            let mut ingest = new_ingest(organization, project, &format!("paged-{index}"));
            ingest.conversation.started_at =
                day.map(|day| Utc.with_ymd_and_hms(2026, 11, day, 8, 0, 0).unwrap());
            IngestWrite { ingests: vec![ingest], ..Default::default() }
        })
        .collect();
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&writes.iter().collect::<Vec<_>>(), settings, now).await.unwrap();

    let mut seen = Vec::new();
    let mut query =
        DatapointQuery { project_id: Some(project), page_size: 2, ..Default::default() };
    loop {
        let page = storage.search_datapoints(organization, &query).await.unwrap();
        let Some(last) = page.last() else { break };
        query.before = Some(DatapointCursor::after(&last.datapoint));
        seen.extend(page.iter().map(|view| DatapointCursor::after(&view.datapoint)));
    }
    let mut expected = seen.clone();
    expected.sort_by_key(|cursor| std::cmp::Reverse((cursor.occurred_at_ms, cursor.id)));
    expected.dedup();
    assert_eq!(seen, expected, "each call once, newest call first");
    assert_eq!(seen.len(), starts.len());
    assert_eq!(seen[0].occurred_at_ms, now.timestamp_millis(), "the call without a start");

    // The token carries the place; garbage is refused naming the field.
    let token = seen[3].to_token();
    assert_eq!(DatapointCursor::from_token(&token).unwrap(), Some(seen[3]));
    assert_eq!(DatapointCursor::from_token("").unwrap(), None);
    for garbage in ["!!!", "AAAA"] {
        let error = DatapointCursor::from_token(garbage).unwrap_err();
        assert_eq!(error.field_violations()[0].field, "page_token");
    }
}
