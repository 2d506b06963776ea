//! The plans of datapoint searches (SQLite's; PostgreSQL reads the same indexes,
//! docs/ARCHITECTURE.md): every documented filter, with or without a project, is read through an
//! index in the searches' order, never by a scan of a table or a sort, so a
//! page costs about a page of index entries however many calls are stored.

use chrono::{TimeZone, Utc};
use sea_orm::QueryTrait;
use uuid::Uuid;

use super::datapoints::{Part, TextFilter, search_part};
use super::ingest_tests::sqlite_plan;
use crate::model::conversation::Source;
use crate::model::datapoints::{DatapointCursor, DatapointQuery, TextQuery};

/// Each filter alone (on a page of 100) and a few together, and the index that must serve it
/// in the searches' order.
fn cases() -> Vec<(&'static str, DatapointQuery, &'static str)> {
    let page = DatapointQuery { page_size: 101, ..Default::default() };
    let at = |day| Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap();
    vec![
        ("no filter", page.clone(), "datapoints_by_occurrence"),
        (
            "a page after a cursor",
            DatapointQuery {
                before: Some(DatapointCursor { occurred_at_ms: 1, id: Uuid::now_v7() }),
                ..page.clone()
            },
            "datapoints_by_occurrence",
        ),
        (
            "a time range",
            DatapointQuery { from: Some(at(1)), to: Some(at(2)), ..page.clone() },
            "datapoints_by_occurrence",
        ),
        (
            "a provider",
            DatapointQuery { provider: Some("retell".into()), ..page.clone() },
            "datapoints_by_provider",
        ),
        (
            "a source",
            DatapointQuery { source: Some(Source::Webhook), ..page.clone() },
            "datapoints_by_source",
        ),
        // A context token that names too many calls to list (`RARE_TEXT_MATCHES`): the
        // ordering index walked, each call checked for either form of the token (m0030). Fewer
        // are listed from their own indexes and read by id (below).
        (
            "a context token",
            DatapointQuery { context_token: Some("session-7".into()), ..page.clone() },
            "datapoints_by_occurrence",
        ),
        // A call id names a few calls (one a project and provider): a seek of the unique key,
        // then sorted (m0031).
        (
            "a call id",
            DatapointQuery { call_id: Some("call-7".into()), ..page.clone() },
            "datapoints_unique_call",
        ),
        (
            "an integration",
            DatapointQuery { integration_id: Some(Uuid::now_v7()), ..page.clone() },
            "datapoints_by_integration",
        ),
        (
            "a tag that must be there",
            DatapointQuery { tags_all: vec!["billing".into(), "vip".into()], ..page.clone() },
            "datapoint_tags",
        ),
        (
            "one tag, any",
            DatapointQuery { tags_any: vec!["billing".into()], ..page.clone() },
            "datapoint_tags",
        ),
        // Several tags of which any will do: the ordering index is walked, each call's tags
        // probed by their primary key.
        (
            "any of two tags",
            DatapointQuery { tags_any: vec!["billing".into(), "vip".into()], ..page.clone() },
            "datapoints_by_occurrence",
        ),
        (
            "a context token and a tag",
            DatapointQuery {
                context_token: Some("session-7".into()),
                tags_all: vec!["billing".into()],
                ..page.clone()
            },
            "datapoints_by_occurrence",
        ),
        (
            "transcript words",
            DatapointQuery {
                text_contains: Some("refund \"speak to a human\"".into()),
                ..page.clone()
            },
            "datapoints_by_occurrence",
        ),
        (
            "a metadata pair",
            DatapointQuery {
                metadata_equals: vec![("queue".into(), "billing".into())],
                ..page.clone()
            },
            "datapoint_metadata",
        ),
        (
            "the provider's verdict",
            DatapointQuery { successful: Some(false), ..page.clone() },
            "datapoints_by_verdict_successful",
        ),
        (
            "the provider's sentiment",
            DatapointQuery { sentiment: Some("Negative".into()), ..page.clone() },
            "datapoints_by_verdict_sentiment",
        ),
        (
            "the provider's outcome",
            DatapointQuery { outcome: Some("voicemail".into()), ..page.clone() },
            "datapoints_by_verdict_outcome",
        ),
        (
            "a failed check's issue rows",
            DatapointQuery { failed_check: Some("slow responses".into()), ..page.clone() },
            "check_issues_by_name",
        ),
        (
            "a monitor's match rows",
            DatapointQuery { monitor_id: Some(Uuid::now_v7()), ..page },
            "monitor_datapoints",
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
    let cursor = DatapointCursor { occurred_at_ms: 1, id: Uuid::now_v7() };
    for (with_project, with_cursor) in [(false, false), (true, false), (false, true), (true, true)]
    {
        for (name, mut query, index) in cases() {
            if with_project {
                query.project_id = Some(Uuid::now_v7());
            }
            if with_cursor {
                query.before = Some(cursor);
            }
            // Words too common to list: each call of the walk is checked.
            let text = query
                .text_contains
                .as_deref()
                .map(|text| TextFilter::Check(TextQuery::parse(text)));
            let backend = sea_orm::DbBackend::Sqlite;
            for part in Part::of(&query, text.as_ref(), backend) {
                let statement =
                    search_part(organization, &query, text.as_ref(), backend, *part).build(backend);
                let plan = sqlite_plan(&storage, statement).await;
                let context = format!(
                    "{name}, project given: {with_project}, cursor: {with_cursor}: {plan:?}"
                );
                let scans = ["SCAN datapoints", "SCAN datapoint_tags", "SCAN datapoint_metadata"];
                assert!(
                    plan.iter().all(|step| !scans.iter().any(|scan| step.starts_with(scan))),
                    "a scan of a table: {context}"
                );
                // A project narrows the walk of the whole organization to its own index.
                let index = match index {
                    "datapoints_by_occurrence" if with_project => {
                        "datapoints_by_project_occurrence"
                    }
                    index => index,
                };
                // Tag, metadata and match rows (the search's `drive`) are read in the order of
                // their tables' own keys (m0027, m0028).
                let read = match index {
                    "datapoint_tags" | "datapoint_metadata" => {
                        "SEARCH drive USING PRIMARY KEY (organization_rowid=?".to_owned()
                    }
                    "monitor_datapoints" => {
                        "SEARCH drive USING PRIMARY KEY (monitor_id=?".to_owned()
                    }
                    index => format!("INDEX {index} "),
                };
                assert!(plan.iter().any(|step| step.contains(&read)), "{index} unused: {context}");
                let sorted = plan.iter().any(|step| step.contains("TEMP B-TREE"));
                assert_eq!(sorted, index == "datapoints_unique_call", "a sort: {context}");
                // Tag and metadata rows name their call by rowid (m0038): the call is read by
                // it, and a cursor is a seek of the rows' own key.
                if matches!(index, "datapoint_tags" | "datapoint_metadata") {
                    let by_rowid = "SEARCH datapoints USING INTEGER PRIMARY KEY (rowid=?)";
                    assert!(plan.iter().any(|step| step == by_rowid), "{context}");
                    let after = "(occurred_at_ms,datapoint_rowid)<(?,?))";
                    let seeks = plan.iter().any(|step| step.contains(after));
                    assert_eq!(seeks, with_cursor, "{context}");
                }
                // Every other tag or pair is a probe of its row by the whole key.
                if name == "a tag that must be there" {
                    let probe = "SEARCH datapoint_tags EXISTS USING PRIMARY KEY (organization_rowid=? \
                                 AND tag=? AND occurred_at_ms=? AND datapoint_rowid=?)";
                    assert!(plan.iter().any(|step| step.contains(probe)), "{context}");
                }
                // After a cursor, the walk of the datapoints' own index starts at the cursor: the
                // rest of its millisecond by rowid, then the older calls (m0035).
                let starts = match part {
                    Part::Whole => "",
                    Part::Ties => "occurred_at_ms=? AND rowid<?)",
                    Part::Older => "occurred_at_ms<?)",
                };
                assert!(plan.iter().any(|step| step.contains(starts)), "no seek: {context}");
            }
        }
    }

    // Rare words: the few matching calls are read by id (and sorted: fewer than
    // RARE_TEXT_MATCHES), and listing them reads the full-text index, not the table. So are
    // the calls a context token names (m0030), each checked for words too common to list.
    let rare_words = (
        DatapointQuery { text_contains: Some("zebra".into()), ..Default::default() },
        TextFilter::Among(
            (0..super::datapoints::RARE_TEXT_MATCHES - 1).map(|_| Uuid::now_v7()).collect(),
        ),
    );
    let named_calls = (
        DatapointQuery {
            context_token: Some("session-7".into()),
            text_contains: Some("refund".into()),
            ..Default::default()
        },
        TextFilter::AmongChecked(vec![Uuid::now_v7()], TextQuery::parse("refund")),
    );
    for (query, ids) in [rare_words, named_calls] {
        let query = DatapointQuery { page_size: 101, ..query };
        let checked = matches!(ids, TextFilter::AmongChecked(..));
        let backend = sea_orm::DbBackend::Sqlite;
        let statement =
            super::datapoints::search_statement(organization, &query, Some(&ids), backend);
        let plan = sqlite_plan(&storage, statement.build(backend)).await;
        assert!(
            plan.iter().any(|step| step.contains("sqlite_autoindex_datapoints_1 (id=?)")),
            "{plan:?}"
        );
        assert!(plan.iter().all(|step| !step.starts_with("SCAN datapoints")), "{plan:?}");
        let each_checked = plan.iter().any(|step| step.contains("VIRTUAL TABLE"));
        assert_eq!(each_checked, checked, "{plan:?}");
    }
    let statement = super::datapoints::text_matches_statement(
        sea_orm::DbBackend::Sqlite,
        organization,
        &TextQuery::parse("zebra"),
    );
    let plan = sqlite_plan(&storage, statement).await;
    assert!(plan[0].starts_with("SCAN datapoint_text VIRTUAL TABLE"), "{plan:?}");
    assert!(plan.iter().any(|step| step.contains("PRIMARY KEY (rowid=?)")), "{plan:?}");

    // A context token: the calls of each form are listed from their own index (m0030).
    let indexes = [
        "INDEX datapoints_by_own_context_token (organization_id=? AND context_token=?)",
        "INDEX datapoints_unique_call (call_id=?)",
    ];
    let statements = super::datapoints::context_token_statements(
        organization,
        "session-7",
        sea_orm::DbBackend::Sqlite,
    );
    for (statement, index) in statements.iter().zip(indexes) {
        let plan = sqlite_plan(&storage, sea_orm::DbBackend::Sqlite.build(statement)).await;
        assert!(plan.iter().any(|step| step.contains(index)), "{plan:?}");
    }
}

/// A call's context token is stored only when it is its own (m0030): a call whose token is its
/// id keeps the column empty in its datapoint and ingest rows, reads its token back, and is
/// found by it, beside the calls that carry that text as their own token; with transcript
/// words too. Down through m0030 every column holds its token again; up, it is emptied again
/// and the same calls are found.
#[tokio::test]
async fn context_tokens_are_stored_only_when_a_call_has_its_own() {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;

    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    // "a" has its id as its token (the default); "b" has "a" as its own; "c" has its own.
    let calls =
        [("a", "a", "Thanks for calling."), ("b", "a", "I want a refund."), ("c", "s-9", "")];
    let writes: Vec<IngestWrite> = calls
        .iter()
        .map(|(call_id, token, words)| {
            let mut ingest = new_ingest(organization, project, call_id);
            ingest.conversation.context_token = (*token).to_owned();
            ingest.conversation.turns[0].content = (*words).to_owned();
            IngestWrite { ingests: vec![ingest], ..Default::default() }
        })
        .collect();
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&writes.iter().collect::<Vec<_>>(), settings, now).await.unwrap();

    let columns = |table: &'static str| {
        let storage = &storage;
        async move {
            let sql = format!("SELECT call_id, context_token FROM {table} ORDER BY call_id");
            let backend = storage.db.get_database_backend();
            let rows = storage
                .db
                .query_all_raw(sea_orm::Statement::from_string(backend, sql))
                .await
                .unwrap();
            rows.iter()
                .map(|row| {
                    let column = |name| row.try_get::<String>("", name).unwrap();
                    format!("{}:{}", column("call_id"), column("context_token"))
                })
                .collect::<Vec<_>>()
        }
    };
    let found = |token: &'static str, words: Option<&'static str>| {
        let storage = &storage;
        async move {
            let query = DatapointQuery {
                context_token: Some(token.to_owned()),
                text_contains: words.map(str::to_owned),
                page_size: 10,
                ..Default::default()
            };
            let page = storage.search_datapoints(organization, &query).await.unwrap();
            page.iter().map(|view| view.datapoint.call_id.clone()).collect::<Vec<_>>()
        }
    };
    let searches = || async {
        assert_eq!(found("a", None).await, ["b", "a"], "its own token and the default");
        assert_eq!(found("s-9", None).await, ["c"]);
        assert!(found("c", None).await.is_empty(), "c's id is not its token");
        assert!(found("b", None).await.is_empty());
        assert_eq!(found("a", Some("refund")).await, ["b"]);
        assert!(found("s-9", Some("refund")).await.is_empty());
    };

    for table in ["datapoints", "ingests"] {
        assert_eq!(columns(table).await, ["a:", "b:a", "c:s-9"], "{table}");
    }
    let a =
        super::testing::stored_call(&storage, organization, project, "custom", "a").await.unwrap();
    assert_eq!(a.context_token, "a");
    let ingests = storage.call_ingests(organization, project, "custom", "a", 10).await.unwrap();
    assert_eq!(ingests[0].context_token, "a");
    searches().await;

    super::testing::migrate_down_through(&storage, "m0030_own_context_tokens").await;
    for table in ["datapoints", "ingests"] {
        assert_eq!(columns(table).await, ["a:a", "b:a", "c:s-9"], "{table}");
    }
    super::migrations::Migrator::up(&storage.db, None).await.unwrap();
    for table in ["datapoints", "ingests"] {
        assert_eq!(columns(table).await, ["a:", "b:a", "c:s-9"], "{table}");
    }
    searches().await;
}

/// Pages follow the searches' order, newest call first, then by id, with calls that started
/// in the same millisecond split across pages: every call comes exactly once, in order.
#[tokio::test]
async fn pages_follow_the_time_of_each_call() {
    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
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

/// A call id's calls and an integration's are found through indexes that do not hold the
/// organization (m0037), and only the organization's: another organization's call of the same
/// id, naming the same integration id, is not. Down, the indexes hold the organization again;
/// up, the same calls are found.
#[tokio::test]
async fn call_ids_and_integrations_find_only_the_organizations_calls() {
    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let (mine, theirs) = (
        super::testing::organization(&storage).await,
        super::testing::organization(&storage).await,
    );
    let integration = Uuid::now_v7();
    let mut stored = Vec::new();
    for organization in [mine, theirs] {
        let mut ingest = new_ingest(organization, Uuid::now_v7(), "shared");
        // No token of its own: the call id is its token.
        ingest.conversation.context_token.clear();
        ingest.conversation.integration_id = Some(integration);
        stored.push(ingest.id);
        let write = IngestWrite { ingests: vec![ingest], ..Default::default() };
        let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
        storage.commit_ingest_writes(&[&write], settings, now).await.unwrap();
    }
    let found = |query: DatapointQuery| {
        let storage = &storage;
        async move {
            let page = storage.search_datapoints(mine, &query).await.unwrap();
            page.iter().map(|view| view.datapoint.id).collect::<Vec<_>>()
        }
    };
    let columns = |index: &'static str| {
        let storage = &storage;
        async move {
            use sea_orm::ConnectionTrait;
            let sql = format!("SELECT name FROM pragma_index_info('{index}') ORDER BY seqno");
            let statement = sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, sql);
            let rows = storage.db.query_all_raw(statement).await.unwrap();
            rows.iter().map(|row| row.try_get::<String>("", "name").unwrap()).collect::<Vec<_>>()
        }
    };
    let sqlite = storage.db.get_database_backend() == sea_orm::DbBackend::Sqlite;
    let page = DatapointQuery { page_size: 10, ..DatapointQuery::default() };
    for state in ["up", "down", "again"] {
        match state {
            "down" => {
                super::testing::migrate_down_through(&storage, "m0037_calls_by_their_own_keys")
                    .await;
            }
            "again" => super::testing::migrate_up(&storage).await,
            _ => {}
        }
        if sqlite {
            let holds = columns("datapoints_unique_call").await.contains(&"organization_id".into());
            assert_eq!(holds, state == "down", "{state}");
            let holds =
                columns("datapoints_by_integration").await.contains(&"organization_id".into());
            assert_eq!(holds, state == "down", "{state}");
        }
        let by_call = DatapointQuery { call_id: Some("shared".into()), ..page.clone() };
        assert_eq!(found(by_call).await, [stored[0]], "{state}");
        let by_integration = DatapointQuery { integration_id: Some(integration), ..page.clone() };
        assert_eq!(found(by_integration).await, [stored[0]], "{state}");
        let by_token = DatapointQuery { context_token: Some("shared".into()), ..page.clone() };
        assert_eq!(found(by_token).await, [stored[0]], "{state}");
    }
}

/// Calls of one millisecond, more than a page of them: each comes once, in pages that start
/// where the last one ended (on SQLite the rest of the cursor's millisecond by rowid, then the
/// older calls, m0035), also when the call a cursor names is deleted before the next page.
#[tokio::test]
async fn calls_of_one_millisecond_are_paged_through_once_each() {
    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    // An older call, six at one moment, a newer call; stored one write each, the older first.
    let days = [1, 3, 3, 3, 3, 3, 3, 5];
    for (index, day) in days.iter().enumerate() {
        let mut ingest = new_ingest(organization, project, &format!("tied-{index}"));
        ingest.conversation.started_at =
            Some(Utc.with_ymd_and_hms(2026, 11, *day, 8, 0, 0).unwrap());
        let write = IngestWrite { ingests: vec![ingest], ..Default::default() };
        let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
        storage.commit_ingest_writes(&[&write], settings, now).await.unwrap();
    }
    let pages = |first: Vec<Uuid>, mut query: DatapointQuery| {
        let storage = &storage;
        async move {
            let mut seen = first;
            loop {
                let page = storage.search_datapoints(organization, &query).await.unwrap();
                let Some(last) = page.last() else { break };
                query.before = Some(DatapointCursor::after(&last.datapoint));
                seen.extend(page.iter().map(|view| view.datapoint.id));
            }
            seen
        }
    };
    let call = |id: Uuid| {
        let storage = &storage;
        async move { storage.get_datapoint(organization, id).await.unwrap().unwrap() }
    };
    // On SQLite, the ordering index ends with the time after m0035, with the id before it; the
    // tag rows' key with the call's rowid after m0038, with its id before it, and starts with
    // the organization's rowid after m0041, with its id before it.
    let key_column = |index: &'static str, last: bool| {
        let storage = &storage;
        async move {
            use sea_orm::ConnectionTrait;
            let order = if last { "DESC" } else { "ASC" };
            let statement = sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                format!(
                    "SELECT name FROM pragma_index_info('{index}') WHERE name IS NOT NULL \
                     ORDER BY seqno {order}"
                ),
            );
            let row = storage.db.query_one_raw(statement).await.unwrap().unwrap();
            row.try_get::<String>("", "name").unwrap()
        }
    };
    let sqlite = storage.db.get_database_backend() == sea_orm::DbBackend::Sqlite;
    // Walked in the datapoints' ordering index, and driven by tag rows and by metadata rows,
    // which name their calls by rowid on SQLite since m0038.
    let drives = [
        DatapointQuery::default(),
        DatapointQuery { tags_all: vec!["t1".into()], ..Default::default() },
        DatapointQuery {
            metadata_equals: vec![("tier".into(), "gold".into())],
            ..Default::default()
        },
    ];
    for (state, with_project) in [("up", false), ("up", true), ("down", false), ("again", true)] {
        match state {
            "down" => {
                super::testing::migrate_down_through(&storage, "m0035_ordered_by_rowid").await;
            }
            "again" => {
                super::testing::migrate_up(&storage).await;
            }
            _ => {}
        }
        if sqlite {
            let last = if state == "down" { "id" } else { "occurred_at_ms" };
            assert_eq!(key_column("datapoints_by_occurrence", true).await, last, "{state}");
            let key = "sqlite_autoindex_datapoint_tags_1";
            let last = if state == "down" { "datapoint_id" } else { "datapoint_rowid" };
            assert_eq!(key_column(key, true).await, last, "{state}");
            let first = if state == "down" { "organization_id" } else { "organization_rowid" };
            assert_eq!(key_column(key, false).await, first, "{state}");
        }
        // Down through m0038, the tag and metadata rows name their calls by id, which this
        // version does not read: they are read again once m0038 has run up again.
        let drives = if state == "down" { &drives[..1] } else { &drives[..] };
        for drive in drives {
            let query = DatapointQuery {
                project_id: with_project.then_some(project),
                page_size: 2,
                ..drive.clone()
            };
            let seen = pages(Vec::new(), query.clone()).await;
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            let context = format!("{state}: {drive:?}");
            assert_eq!((seen.len(), unique.len()), (days.len(), days.len()), "{context}");
            let mut times = Vec::new();
            for id in &seen {
                times.push(call(*id).await.datapoint.occurred_at());
            }
            assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "{context}: {times:?}");
        }
    }

    // A page ends inside the millisecond; its last call is deleted before the next page. Once
    // for each drive, a call fewer each time.
    for (deleted, drive) in drives.iter().enumerate() {
        let query = DatapointQuery { page_size: 2, ..drive.clone() };
        let first = storage.search_datapoints(organization, &query).await.unwrap();
        let cursor = DatapointCursor::after(&first[1].datapoint);
        assert_eq!(
            first[1].datapoint.occurred_at(),
            Utc.with_ymd_and_hms(2026, 11, 3, 8, 0, 0).unwrap()
        );
        let calls = storage.calls_by_ids(organization, &[cursor.id]).await.unwrap();
        let deletion = crate::storage::ingest_tests::requested_deletion(organization, now);
        storage.delete_calls(&calls, &deletion, now).await.unwrap();
        let first: Vec<Uuid> = first.iter().map(|view| view.datapoint.id).collect();
        let seen = pages(first, DatapointQuery { before: Some(cursor), ..query }).await;
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        let calls = days.len() - deleted;
        assert_eq!(
            (seen.len(), unique.len()),
            (calls, calls),
            "none skipped, none twice: {drive:?}"
        );
    }
}

/// Tags and metadata pairs, alone and together, whichever rows drive the search: the same calls,
/// newest first, and pages that follow the rows that drive them.
#[tokio::test]
async fn tags_and_metadata_find_the_same_calls_however_driven() {
    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let calls: [(&[&str], &str); 4] =
        [(&["a"], "1"), (&["a", "b"], "2"), (&["b"], "1"), (&[], "1")];
    let writes: Vec<IngestWrite> = calls
        .iter()
        .enumerate()
        .map(|(index, (tags, queue))| {
            let mut ingest = new_ingest(organization, project, &format!("c{index}"));
            let conversation = &mut ingest.conversation;
            conversation.tags = tags.iter().map(|tag| (*tag).to_owned()).collect();
            conversation.metadata =
                [("q".to_owned(), serde_json::json!(queue))].into_iter().collect();
            // c0 the oldest call, c3 the newest.
            let day = u32::try_from(index).unwrap() + 1;
            conversation.started_at = Some(Utc.with_ymd_and_hms(2026, 11, day, 8, 0, 0).unwrap());
            IngestWrite { ingests: vec![ingest], ..Default::default() }
        })
        .collect();
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&writes.iter().collect::<Vec<_>>(), settings, now).await.unwrap();

    let found = |query: DatapointQuery| {
        let storage = &storage;
        async move {
            let query = DatapointQuery { page_size: 10, ..query };
            let page = storage.search_datapoints(organization, &query).await.unwrap();
            page.iter().map(|view| view.datapoint.call_id.clone()).collect::<Vec<_>>()
        }
    };
    let strings = |values: &[&str]| values.iter().map(|value| (*value).to_owned()).collect();
    let pair = |value: &str| vec![("q".to_owned(), value.to_owned())];
    let cases = [
        (DatapointQuery { tags_all: strings(&["a"]), ..Default::default() }, vec!["c1", "c0"]),
        (DatapointQuery { tags_all: strings(&["a", "b"]), ..Default::default() }, vec!["c1"]),
        (DatapointQuery { tags_any: strings(&["b"]), ..Default::default() }, vec!["c2", "c1"]),
        (
            DatapointQuery { tags_any: strings(&["a", "b"]), ..Default::default() },
            vec!["c2", "c1", "c0"],
        ),
        (
            DatapointQuery { metadata_equals: pair("1"), ..Default::default() },
            vec!["c3", "c2", "c0"],
        ),
        (
            DatapointQuery {
                metadata_equals: pair("1"),
                tags_any: strings(&["a", "b"]),
                ..Default::default()
            },
            vec!["c2", "c0"],
        ),
        (
            DatapointQuery {
                metadata_equals: pair("1"),
                tags_all: strings(&["b"]),
                ..Default::default()
            },
            vec!["c2"],
        ),
        (
            DatapointQuery {
                tags_any: strings(&["a"]),
                project_id: Some(Uuid::now_v7()),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (query, expected) in cases {
        let context = format!("{query:?}");
        assert_eq!(found(query).await, expected, "{context}");
    }
    // Another organization's search sees none of them, whichever rows drive it.
    let other = DatapointQuery { tags_all: strings(&["a"]), page_size: 10, ..Default::default() };
    assert!(storage.search_datapoints(Uuid::now_v7(), &other).await.unwrap().is_empty());

    // A page of one at a time, driven by the tag rows.
    let mut query =
        DatapointQuery { tags_any: strings(&["a"]), page_size: 1, ..Default::default() };
    let mut paged = Vec::new();
    while let Some(view) = storage.search_datapoints(organization, &query).await.unwrap().pop() {
        query.before = Some(DatapointCursor::after(&view.datapoint));
        paged.push(view.datapoint.call_id);
    }
    assert_eq!(paged, ["c1", "c0"]);
}

/// Rows survive m0026 and the migrations after it run down and up again, and are found by every search
/// their search rows drive. m0027's down writes each datapoint's words back into
/// `transcript_search` for the external-content index, and its up indexes them again without
/// their text; m0026's down writes each document back into the JSON columns, so the datapoint
/// then reads as one stored before it, unchanged, and its words are made from its `turns_json`.
#[tokio::test]
async fn search_rows_stored_before_the_migration_are_found() {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;

    use crate::model::commit::IngestWrite;
    use crate::model::datapoints::SearchOrder;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let mut ingest = new_ingest(organization, project, "before");
    ingest.conversation.turns[0].content = "Please REFUND my order.".into();
    let write = IngestWrite { ingests: vec![ingest], ..Default::default() };
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&[&write], settings, now).await.unwrap();
    let stored = super::testing::stored_call(&storage, organization, project, "custom", "before")
        .await
        .unwrap();
    super::testing::migrate_down_through(&storage, "m0026_datapoint_document").await;
    let backend = storage.db.get_database_backend();
    let written_back = storage
        .db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DbBackend::Postgres => {
                    "SELECT transcript_search FROM datapoints WHERE id = $1"
                }
                _ => "SELECT transcript_search FROM datapoints WHERE id = ?",
            },
            [stored.id.to_string().into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "transcript_search")
        .unwrap();
    assert_eq!(written_back, stored.transcript_search_text());
    super::migrations::Migrator::up(&storage.db, None).await.unwrap();
    let legacy = super::testing::stored_call(&storage, organization, project, "custom", "before")
        .await
        .unwrap();
    assert_eq!(legacy, stored, "read back from its JSON columns");

    for query in [
        DatapointQuery { tags_all: vec!["t1".into()], ..Default::default() },
        DatapointQuery {
            metadata_equals: vec![("tier".into(), "gold".into())],
            ..Default::default()
        },
        DatapointQuery { text_contains: Some("refund".into()), ..Default::default() },
    ] {
        let query = DatapointQuery { page_size: 10, ..query };
        let found = storage.search_datapoints(organization, &query).await.unwrap();
        assert_eq!(found.len(), 1, "{query:?}");
        assert_eq!(found[0].datapoint.call_id, "before");
    }
    let ranked = DatapointQuery {
        text_contains: Some("refund order".into()),
        order: SearchOrder::Relevance,
        page_size: 10,
        ..Default::default()
    };
    let found = storage.search_by_relevance(organization, &ranked).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].1 > 0.0, "scored from the words made from its turns: {found:?}");
}

/// Transcript search: whole words and quoted phrases, case- and accent-insensitive, nothing the
/// caller types a wildcard or an operator; the full-text index follows every write, an
/// overwrite included.
#[tokio::test]
async fn transcripts_are_searched_by_words_and_phrases() {
    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let texts = [
        "Un café au lait, s'il vous plaît.",
        "I want a REFUND now.",
        "Please refund me, or let me speak to a human.",
        "I am 100% sure, under_score.",
    ];
    let store = |index: usize, text: &str| {
        let mut ingest = new_ingest(organization, project, &format!("t{index}"));
        ingest.conversation.turns[0].content = text.to_owned();
        // A new payload for the same call: its datapoint is overwritten, not added.
        ingest.dedup_key = format!("{index}:{text}");
        IngestWrite { ingests: vec![ingest], ..Default::default() }
    };
    let writes: Vec<IngestWrite> =
        texts.iter().enumerate().map(|(index, text)| store(index, text)).collect();
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&writes.iter().collect::<Vec<_>>(), settings, now).await.unwrap();

    let found = |text: &'static str| {
        let storage = &storage;
        async move {
            let query = DatapointQuery {
                text_contains: Some(text.to_owned()),
                page_size: 10,
                ..Default::default()
            };
            let mut calls: Vec<String> = storage
                .search_datapoints(organization, &query)
                .await
                .unwrap()
                .into_iter()
                .map(|view| view.datapoint.call_id)
                .collect();
            calls.sort();
            calls
        }
    };
    let cases: [(&str, &[&str]); 11] = [
        ("refund", &["t1", "t2"]),
        ("Refund PLEASE", &["t2"]),
        ("\"speak to a human\"", &["t2"]),
        ("\"human a to speak\"", &[]),
        ("CAFÉ", &["t0"]),
        ("cafe plait", &["t0"]),
        ("ref", &[]),
        ("re%nd", &[]),
        ("100", &["t3"]),
        ("under", &["t3"]),
        ("refund OR cafe", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(found(text).await, expected, "{text}");
        // The same calls when the words are taken for common ones and each call is checked.
        let query = DatapointQuery {
            text_contains: Some(text.to_owned()),
            page_size: 10,
            ..Default::default()
        };
        let backend = storage.db.get_database_backend();
        let check = TextFilter::Check(TextQuery::parse(text));
        let mut checked: Vec<String> =
            super::datapoints::search_statement(organization, &query, Some(&check), backend)
                .all(&storage.db)
                .await
                .unwrap()
                .into_iter()
                .map(|model| model.call_id)
                .collect();
        checked.sort();
        assert_eq!(checked, expected, "{text}, each call checked");
    }

    // The call says something else now: the index follows the overwrite.
    let again = store(1, "All sorted, thank you.");
    storage.commit_ingest_writes(&[&again], settings, now).await.unwrap();
    assert_eq!(found("refund").await, ["t2"]);
    assert_eq!(found("sorted").await, ["t1"]);
}

/// Relevance order: the calls that match best come first (the searched word more often, in a
/// shorter transcript), each once across pages of its own tokens, with the other filters
/// applied.
#[tokio::test]
async fn relevance_puts_the_best_matches_first() {
    use crate::model::commit::IngestWrite;
    use crate::model::datapoints::{RelevanceCursor, SearchOrder};
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let filler = "the caller asked about the opening hours of the store and the parking";
    let texts = [
        ("once", format!("refund {filler} {filler}")),
        ("thrice", "refund refund refund please".to_owned()),
        ("twice", format!("refund refund {filler}")),
        ("never", filler.to_owned()),
        ("other-tag", "refund refund refund refund".to_owned()),
    ];
    let writes: Vec<IngestWrite> = texts
        .iter()
        .map(|(call, text)| {
            let mut ingest = new_ingest(organization, project, call);
            ingest.conversation.turns[0].content.clone_from(text);
            if *call == "other-tag" {
                ingest.conversation.tags = vec!["other".into()];
            }
            IngestWrite { ingests: vec![ingest], ..Default::default() }
        })
        .collect();
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&writes.iter().collect::<Vec<_>>(), settings, now).await.unwrap();

    let mut query = DatapointQuery {
        text_contains: Some("Refund".into()),
        tags_all: vec!["t1".into()],
        order: SearchOrder::Relevance,
        page_size: 2,
        ..Default::default()
    };
    let mut ranked = Vec::new();
    loop {
        let page = storage.search_by_relevance(organization, &query).await.unwrap();
        let Some((last, score)) = page.last() else { break };
        query.after_relevance = Some(RelevanceCursor { score: *score, id: last.datapoint.id });
        ranked.extend(page.iter().map(|(view, score)| (view.datapoint.call_id.clone(), *score)));
    }
    let calls: Vec<&str> = ranked.iter().map(|(call, _)| call.as_str()).collect();
    assert_eq!(calls, ["thrice", "twice", "once"], "{ranked:?}");
    assert!(ranked.windows(2).all(|pair| pair[0].1 >= pair[1].1), "{ranked:?}");

    // A relevance token reads back; a time token is not one.
    let cursor = RelevanceCursor { score: ranked[0].1, id: Uuid::now_v7() };
    assert_eq!(RelevanceCursor::from_token(&cursor.to_token()).unwrap(), Some(cursor));
    let time = DatapointCursor { occurred_at_ms: 5, id: Uuid::now_v7() }.to_token();
    assert_eq!(
        RelevanceCursor::from_token(&time).unwrap_err().field_violations()[0].field,
        "page_token"
    );
    // Relevance needs words to rank by.
    let unranked = DatapointQuery { order: SearchOrder::Relevance, ..Default::default() };
    assert_eq!(unranked.check().unwrap_err().field_violations()[0].field, "order");
}

/// PostgreSQL's plans for the same filters (run when the suite runs on PostgreSQL), on 2,000
/// calls with statistics (`ANALYZE`, as autovacuum keeps them): never a sequential scan of the
/// datapoints, and a filter of their own columns read backward through its index, `LIMIT`
/// stopping it. The plans are printed (`--nocapture`) for docs/ARCHITECTURE.md.
#[tokio::test]
async fn postgresql_reads_every_filter_through_its_index() {
    use sea_orm::ConnectionTrait;

    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let backend = sea_orm::DbBackend::Postgres;
    if storage.db.get_database_backend() != backend {
        return;
    }
    let (organization, project) = (Uuid::now_v7(), Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    for batch in 0..4 {
        let writes: Vec<IngestWrite> = (0..500)
            .map(|index| {
                let mut ingest = new_ingest(organization, project, &format!("pg-{batch}-{index}"));
                ingest.conversation.started_at = Some(now - chrono::Duration::minutes(index));
                IngestWrite { ingests: vec![ingest], ..Default::default() }
            })
            .collect();
        storage
            .commit_ingest_writes(&writes.iter().collect::<Vec<_>>(), settings, now)
            .await
            .unwrap();
    }
    storage.db.execute_unprepared("ANALYZE").await.unwrap();
    for (name, query, index) in cases() {
        let text =
            query.text_contains.as_deref().map(|text| TextFilter::Check(TextQuery::parse(text)));
        let statement =
            super::datapoints::search_statement(organization, &query, text.as_ref(), backend)
                .build(backend);
        let plan = super::ingest_tests::postgres_plan(&storage, statement).await;
        println!("{name}:\n  {}", plan.join("\n  "));
        let text = plan.join("\n");
        assert!(!text.contains("Seq Scan on datapoints "), "{name}: {text}");
        // Where the filter is on the datapoints' own columns, its index gives the order. (With
        // statistics of a small table PostgreSQL may read tag rows another way, a sequential
        // scan of 2,000 tag rows included; that is its choice for this size.)
        // A context token: both of its forms' indexes (m0030), their few calls then sorted; a
        // call id, the unique key (m0031).
        if name.contains("call id") {
            assert!(text.contains("Index Scan using datapoints_unique_call "), "{name}: {text}");
        } else if name.contains("context token") {
            for index in ["datapoints_by_own_context_token", "datapoints_unique_call"] {
                assert!(text.contains(&format!("Index Scan on {index} ")), "{name}: {text}");
            }
        } else if !name.contains("tag")
            && !name.contains("metadata")
            && !name.contains("transcript")
            && !name.contains("rows")
        {
            assert!(
                text.contains(&format!("Index Scan Backward using {index} ")),
                "{name}: {text}"
            );
        }
    }
}

/// The provider's verdicts are searchable (text without regard to case or surrounding space),
/// also for calls stored before the columns existed (filled by m0018 from the analysis).
#[tokio::test]
async fn provider_verdicts_are_searchable() {
    use sea_orm_migration::MigratorTrait;

    use crate::model::commit::IngestWrite;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let call = |call_id: &str,
                successful: Option<bool>,
                sentiment: Option<&str>,
                outcome: Option<&str>| {
        let mut ingest = new_ingest(organization, project, call_id);
        ingest.conversation.extras.successful = successful;
        ingest.conversation.extras.sentiment = sentiment.map(str::to_owned);
        ingest.conversation.extras.outcome = outcome.map(str::to_owned);
        ingest
    };
    let write = IngestWrite {
        ingests: vec![
            call("won", Some(true), Some("Positive"), Some("booked")),
            call("lost", Some(false), Some(" Negative"), Some("voicemail")),
            call("unknown", None, None, None),
        ],
        ..Default::default()
    };
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    storage.commit_ingest_writes(&[&write], settings, now).await.unwrap();
    let found = |query: DatapointQuery| {
        let storage = &storage;
        async move {
            let query = DatapointQuery { page_size: 10, ..query };
            let mut calls: Vec<String> = storage
                .search_datapoints(organization, &query)
                .await
                .unwrap()
                .into_iter()
                .map(|view| view.datapoint.call_id)
                .collect();
            calls.sort();
            calls
        }
    };
    let check = || async {
        assert_eq!(
            found(DatapointQuery { successful: Some(false), ..Default::default() }).await,
            ["lost"]
        );
        assert_eq!(
            found(DatapointQuery { successful: Some(true), ..Default::default() }).await,
            ["won"]
        );
        let negative = DatapointQuery { sentiment: Some("NEGATIVE ".into()), ..Default::default() };
        assert_eq!(found(negative).await, ["lost"]);
        let booked = DatapointQuery { outcome: Some("Booked".into()), ..Default::default() };
        assert_eq!(found(booked).await, ["won"]);
        let none = DatapointQuery { outcome: Some("transferred".into()), ..Default::default() };
        assert!(found(none).await.is_empty());
    };
    check().await;
    // Back to before m0018 and up again: the columns are filled from the analysis.
    super::testing::migrate_down_through(&storage, "m0018_verdict_columns").await;
    super::migrations::Migrator::up(&storage.db, None).await.unwrap();
    check().await;
}

/// A call's tag and metadata rows follow it (SQLite keeps them only by the searches' key, found
/// again from the call's stored tags, metadata and time, m0027): when a later event changes its
/// time, tags and metadata, at intake or in a worker's batch, the old rows go and the new are
/// found, probed by that whole key too; when the call is deleted, its rows go with it.
#[tokio::test]
async fn search_rows_follow_a_call_that_changes_and_go_with_it() {
    use crate::model::commit::IngestWrite;
    use crate::storage::datapoints::FinishedIngest;
    use crate::storage::ingest_tests::new_ingest;

    let storage = super::testing::storage().await;
    let (organization, project) = (super::testing::organization(&storage).await, Uuid::now_v7());
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let settings = super::IntakeSettings { max_attempts: 3, transcripts_at_intake: true };
    let event = |tag: &str, tier: &str, started_hour: u32| {
        let mut ingest = new_ingest(organization, project, "moving");
        ingest.conversation.tags = vec![tag.to_owned()];
        ingest.conversation.metadata =
            serde_json::json!({"tier": tier}).as_object().cloned().unwrap();
        ingest.conversation.started_at =
            Some(Utc.with_ymd_and_hms(2026, 11, 30, started_hour, 0, 0).unwrap());
        ingest.dedup_key = format!("{tag}:{tier}:{started_hour}");
        IngestWrite { ingests: vec![ingest], ..Default::default() }
    };
    let found = |query: DatapointQuery| {
        let storage = &storage;
        async move {
            let query = DatapointQuery { page_size: 10, ..query };
            storage.search_datapoints(organization, &query).await.unwrap().len()
        }
    };
    let tags = |tags: &[&str]| DatapointQuery {
        tags_all: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        ..Default::default()
    };
    let tier = |tier: &str| DatapointQuery {
        metadata_equals: vec![("tier".into(), tier.into())],
        ..Default::default()
    };
    let rows = |table: &'static str| {
        let storage = &storage;
        async move {
            super::testing::count(storage, &format!("SELECT COUNT(*) AS n FROM {table}")).await
        }
    };

    storage.commit_ingest_writes(&[&event("a", "gold", 8)], settings, now).await.unwrap();
    // At intake: a new time, a second tag, another tier.
    storage.commit_ingest_writes(&[&event("b", "silver", 9)], settings, now).await.unwrap();
    assert_eq!(found(tags(&["a", "b"])).await, 1, "both tags, the second probed at the new time");
    assert_eq!((found(tier("gold")).await, found(tier("silver")).await), (0, 1));
    assert_eq!((rows("datapoint_tags").await, rows("datapoint_metadata").await), (2, 1));

    // In a worker's batch: the stored datapoint merged again, at another time.
    let stored = super::testing::stored_call(&storage, organization, project, "custom", "moving")
        .await
        .unwrap();
    let mut later = new_ingest(organization, project, "moving").conversation;
    later.tags = vec!["c".into()];
    later.metadata = serde_json::json!({"tier": "bronze"}).as_object().cloned().unwrap();
    later.started_at = Some(Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap());
    let merged = crate::model::datapoints::Datapoint::merge(
        Some(stored),
        &later,
        None,
        organization,
        project,
        Uuid::now_v7(),
        now,
    );
    let job = Uuid::now_v7();
    let finished =
        FinishedIngest { job_id: job, ingest_id: job, attempts: 1, datapoint: &merged, new: false };
    // Its ingest must exist for the batch to store it.
    let mut ingest = new_ingest(organization, project, "moving");
    ingest.id = job;
    ingest.dedup_key = "worker".into();
    let write = IngestWrite { ingests: vec![ingest], ..Default::default() };
    storage
        .commit_ingest_writes(&[&write], crate::storage::testing::jobs_only(3), now)
        .await
        .unwrap();
    storage.finish_ingests(&[finished], now).await.unwrap();
    assert_eq!(found(tags(&["a", "b", "c"])).await, 1);
    assert_eq!((found(tier("silver")).await, found(tier("bronze")).await), (0, 1));
    assert_eq!((rows("datapoint_tags").await, rows("datapoint_metadata").await), (3, 1));

    let calls = storage.calls_by_ids(organization, &[merged.id]).await.unwrap();
    let deletion = crate::storage::ingest_tests::requested_deletion(organization, now);
    storage.delete_calls(&calls, &deletion, now).await.unwrap();
    assert_eq!(found(tags(&["a"])).await, 0);
    assert_eq!((rows("datapoint_tags").await, rows("datapoint_metadata").await), (0, 0));
}
