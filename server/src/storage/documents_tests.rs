//! Documents written against their deliveries' kept bodies (m0033), over a real database
//! (in-memory SQLite; PostgreSQL when EARSHOT_TEST_POSTGRES_URL is set).

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::testing::{count, migrate_down_through, stored_call};
use super::{DeliveryIntegrations, IntakeSettings, Storage};
use crate::model::commit::IngestWrite;
use crate::model::datapoints::{Datapoint, DatapointQuery};
use crate::model::ingest::{IngestOutcome, dedup_key};
use crate::storage::ingest_tests::new_ingest;
use crate::storage::intake_log_tests::webhook_write;

const AT_INTAKE: IntakeSettings = IntakeSettings { max_attempts: 3, transcripts_at_intake: true };

/// When `webhook_write`'s deliveries are received.
fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()
}

/// How many datapoints of `call_id` keep a document written against the body of delivery
/// `base` (version 3 naming it, or version 4 when it is the datapoint's own id), or with none,
/// on its own (version 2); or those versions leaving out the metrics (5 to 7, m0040).
async fn documents(storage: &Storage, call_id: &str, base: Option<Uuid>) -> i64 {
    let postgres = storage.db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let (version, id) = match postgres {
        true => ("get_byte(document, 0)", "substring(document from 2 for 16)"),
        false => ("unicode(substr(document, 1, 1))", "substr(document, 2, 16)"),
    };
    let against = match base {
        Some(base) => {
            let literal = super::testing::id_literal(storage, base);
            let bytes = match postgres {
                true => format!("'\\x{}'::bytea", base.simple()),
                false => format!("x'{}'", base.simple()),
            };
            format!(
                "(({version} IN (3, 6) AND {id} = {bytes}) \
                 OR ({version} IN (4, 7) AND id = {literal}))"
            )
        }
        None => format!("{version} IN (2, 5)"),
    };
    let sql =
        format!("SELECT COUNT(*) AS n FROM datapoints WHERE call_id = '{call_id}' AND {against}");
    count(storage, &sql).await
}

/// Stores `write` with transcripts at intake; its first outcome.
async fn commit(storage: &Storage, write: &IngestWrite) -> IngestOutcome {
    storage.commit_ingest_writes(&[write], AT_INTAKE, received()).await.unwrap()[0][0]
}

/// A call's datapoint as it reads.
async fn read(storage: &Storage, organization: Uuid, project: Uuid, call_id: &str) -> Datapoint {
    stored_call(storage, organization, project, "custom", call_id).await.unwrap()
}

/// A call stored at intake from a webhook keeps its document written against the delivery's
/// kept body (a merge, against the body of the delivery that brought it; a write's later calls,
/// which its delivery does not link, on their own), and reads back whole: by call, in a search,
/// after m0033 down (every document on its own again) and up. Before a body is cleared or its
/// delivery deleted, the documents written against it are written again on their own, in the
/// same commit, and read the same.
#[tokio::test]
async fn documents_are_written_against_kept_bodies_until_the_bodies_go() {
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let delivery_of = |write: &IngestWrite| write.delivery.as_ref().unwrap().record.id;

    let a = webhook_write(organization, project, "a");
    assert!(matches!(commit(storage, &a).await, IngestOutcome::Created(_)));
    assert_eq!(documents(storage, "a", Some(delivery_of(&a))).await, 1);
    let first = read(storage, organization, project, "a").await;
    let sent = &a.ingests[0].conversation;
    assert_eq!(
        (&first.turns, &first.tags, &first.metadata),
        (&sent.turns, &sent.tags, &sent.metadata)
    );

    // New content for a, in a second delivery: merged, and written against that one's body.
    let mut again = webhook_write(organization, project, "a");
    let conversation = &mut again.ingests[0].conversation;
    conversation.tags = vec!["again".to_owned()];
    again.ingests[0].dedup_key = dedup_key(&again.ingests[0].conversation);
    assert!(matches!(commit(storage, &again).await, IngestOutcome::Created(_)));
    assert_eq!(documents(storage, "a", Some(delivery_of(&again))).await, 1);
    let merged = read(storage, organization, project, "a").await;
    assert_eq!((merged.id, &merged.tags), (first.id, &vec!["t1".to_owned(), "again".to_owned()]));

    // Two calls in one delivery: the first against its body, the second on its own.
    let mut pair = webhook_write(organization, project, "b");
    pair.ingests.push(new_ingest(organization, project, "c"));
    commit(storage, &pair).await;
    assert_eq!(documents(storage, "b", Some(delivery_of(&pair))).await, 1);
    assert_eq!(documents(storage, "c", None).await, 1);
    let (b, c) = (
        read(storage, organization, project, "b").await,
        read(storage, organization, project, "c").await,
    );
    let query = DatapointQuery { page_size: 10, ..Default::default() };
    let found = storage.search_datapoints(organization, &query).await.unwrap();
    let mut found: Vec<Datapoint> = found.into_iter().map(|view| view.datapoint).collect();
    found.sort_by(|x, y| x.call_id.cmp(&y.call_id));
    assert_eq!(found, [merged.clone(), b.clone(), c.clone()]);

    // a's merged document names the second delivery (version 6), b's was written against the
    // delivery of its own id (7), c's on its own (5): each leaves out its metrics, which are its
    // turns'. Down through m0040, each is written with them against the same body (versions 3, 4
    // and 2), and reads the same; down through m0039, b's names its delivery too (3).
    let versions = || async {
        let version = match storage.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => "get_byte(document, 0)::bigint",
            _ => "unicode(substr(document, 1, 1))",
        };
        let mut found = Vec::new();
        for call_id in ["a", "b", "c"] {
            let sql = format!("SELECT {version} AS n FROM datapoints WHERE call_id = '{call_id}'");
            found.push(count(storage, &sql).await);
        }
        found
    };
    assert_eq!(versions().await, [6, 7, 5]);
    migrate_down_through(storage, "m0040_metrics_of_the_turns").await;
    assert_eq!(versions().await, [3, 4, 2]);
    assert_eq!(read(storage, organization, project, "a").await, merged);
    assert_eq!(read(storage, organization, project, "b").await, b);
    assert_eq!(read(storage, organization, project, "c").await, c);
    migrate_down_through(storage, "m0039_documents_of_own_deliveries").await;
    assert_eq!(versions().await, [3, 3, 2]);
    assert_eq!(documents(storage, "b", Some(delivery_of(&pair))).await, 1);
    assert_eq!(read(storage, organization, project, "b").await, b);

    // Down through m0033: every document on its own, read the same; up again.
    migrate_down_through(storage, "m0033_documents_against_bodies").await;
    for call_id in ["a", "b", "c"] {
        assert_eq!(documents(storage, call_id, None).await, 1, "{call_id}");
    }
    assert_eq!(read(storage, organization, project, "a").await, merged);
    assert_eq!(read(storage, organization, project, "b").await, b);
    super::testing::migrate_up(storage).await;

    // Bodies past their retention: d's document is written on its own as its body goes.
    let d = webhook_write(organization, project, "d");
    commit(storage, &d).await;
    assert_eq!(documents(storage, "d", Some(delivery_of(&d))).await, 1);
    let d_before = read(storage, organization, project, "d").await;
    let day = chrono::Duration::days(1);
    let everyone = DeliveryIntegrations::AllBut(Vec::new());
    let pruned =
        storage.prune_webhook_deliveries(&everyone, received() + day, received() - day, 100);
    assert_eq!(pruned.await.unwrap(), (4, 0), "the four deliveries' bodies cleared");
    assert_eq!(documents(storage, "d", None).await, 1);
    assert_eq!(read(storage, organization, project, "d").await, d_before);

    // A delivery deleted with its body still kept (its retention as short as its body's).
    let e = webhook_write(organization, project, "e");
    commit(storage, &e).await;
    assert_eq!(documents(storage, "e", Some(delivery_of(&e))).await, 1);
    let e_before = read(storage, organization, project, "e").await;
    let pruned =
        storage.prune_webhook_deliveries(&everyone, received() + day, received() + day, 100);
    assert_eq!(pruned.await.unwrap(), (0, 5));
    assert_eq!(documents(storage, "e", None).await, 1);
    assert_eq!(read(storage, organization, project, "e").await, e_before);
    let kept = "SELECT COUNT(*) AS n FROM datapoints";
    assert_eq!(count(storage, kept).await, 5, "the calls stay");
}

/// A page of calls is read in two statements, its rows and then the bodies their documents
/// need: a body the delivery log's retention clears in between is no longer there, and the
/// document, written on its own by the commit that cleared the body, is read again.
#[tokio::test]
async fn a_document_whose_body_left_after_its_row_was_read_is_read_again() {
    use sea_orm::EntityTrait;
    let storage = &super::testing::storage().await;
    let (organization, project) = (super::testing::organization(storage).await, Uuid::now_v7());
    let write = webhook_write(organization, project, "a");
    commit(storage, &write).await;
    let stored = read(storage, organization, project, "a").await;
    let rows = super::entities::datapoint::Entity::find().all(&storage.db).await.unwrap();
    // Against the body of the delivery of its own id (version 4, m0039), its metrics its turns'
    // (7, m0040).
    assert_eq!(rows[0].document.as_ref().unwrap()[0], 7, "written against the body");

    let day = chrono::Duration::days(1);
    let everyone = DeliveryIntegrations::AllBut(Vec::new());
    let pruned =
        storage.prune_webhook_deliveries(&everyone, received() + day, received() - day, 100);
    assert_eq!(pruned.await.unwrap(), (1, 0));
    let read_again =
        super::datapoints::datapoints_from_models(&storage.db, rows, "reading").await.unwrap();
    assert_eq!(read_again, [stored]);
}

/// The bodies a page's documents need, and the documents a leaving body's calls hold, are read
/// by primary keys alone (SQLite's plans): each a seek, whatever the tables hold.
#[tokio::test]
async fn bodies_and_their_documents_are_found_by_primary_keys() {
    let storage = &super::testing::storage().await;
    let backend = sea_orm::DbBackend::Sqlite;
    if storage.db.get_database_backend() != backend {
        return;
    }
    let ids = [Uuid::now_v7(), Uuid::now_v7()];
    let cases = [
        ("kept bodies", backend.build(&super::deliveries::kept_bodies_of(&ids)), 1),
        ("documents against bodies", backend.build(&super::documents::detaching(&ids)), 3),
    ];
    for (name, statement, seeks) in cases {
        let plan = super::ingest_tests::sqlite_plan(storage, statement).await;
        assert_eq!(plan.len(), seeks, "{name}: {plan:?}");
        for step in &plan {
            assert!(
                step.starts_with("SEARCH ") && step.contains("USING INDEX sqlite_autoindex_"),
                "{name}: not a seek by primary key: {plan:?}"
            );
        }
    }
}
