//! `GET /metrics` counts what was sent: acknowledged conversations by way in and outcome,
//! datapoints written, the queue's depth as the database has it, and the writer's turns.

use earshot_e2e::client::transcript_call as conversation;
use earshot_e2e::client::{authed, ingest_request, metrics_sample, metrics_text, wait_for_ingest};
use earshot_e2e::in_process::TestServer;
use earshot_proto::v1 as pb;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;

#[tokio::test]
async fn metrics_report_the_acks_and_the_queue_that_were_sent() {
    // Transcripts stored at intake (the default): no job runs.
    acks_and_queue_are_counted(TestServer::start().await, None).await;
}

#[tokio::test]
async fn metrics_report_the_jobs_of_transcripts_left_to_the_workers() {
    let env = [("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false")];
    acks_and_queue_are_counted(TestServer::start_with_env(&env).await, Some(5.0)).await;
}

/// Sends five calls and two repeats to `server`, then checks the counts; `succeeded` is the
/// jobs expected to have run.
async fn acks_and_queue_are_counted(server: TestServer, succeeded: Option<f64>) {
    let key = server.admin_key.clone();
    let mut ingest = IngestServiceClient::new(server.channel().await);
    let calls: Vec<_> = (0..5).map(|index| conversation(&format!("m-{index}"))).collect();
    let accepted = ingest
        .ingest_conversations(authed(ingest_request(&server, calls.clone()), &key))
        .await
        .unwrap()
        .into_inner();
    // The same two again: acknowledged as duplicates.
    ingest
        .ingest_conversations(authed(ingest_request(&server, calls[..2].to_vec()), &key))
        .await
        .unwrap();
    for conversation in &accepted.conversations {
        wait_for_ingest(&mut ingest, &key, &conversation.ingest_id, |status| {
            status.state == pb::IngestState::Done as i32
        })
        .await;
    }

    // A worker counts a datapoint and its job just after the commit that the ingest's state
    // shows, so a scrape can come between the two: the counts are awaited, the rest asserted.
    let counted = |text: &str| {
        metrics_sample(text, "earshot_datapoints_written_total") == Some(5.0)
            && metrics_sample(text, "earshot_jobs_total{outcome=\"succeeded\"}") == succeeded
    };
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let text = metrics_text(&server).await;
            if counted(&text) {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("five datapoints and their jobs counted within 10 s of being stored");
    let acks = "earshot_acknowledged_conversations_total";
    assert_eq!(
        metrics_sample(&text, &format!("{acks}{{source=\"api\",outcome=\"created\"}}")),
        Some(5.0)
    );
    assert_eq!(
        metrics_sample(&text, &format!("{acks}{{source=\"api\",outcome=\"duplicate\"}}")),
        Some(2.0)
    );
    // Successes are counted as they happen, not from the table at each scrape.
    assert_eq!(metrics_sample(&text, "earshot_queue_jobs{status=\"succeeded\"}"), None);
    assert_eq!(metrics_sample(&text, "earshot_queue_jobs{status=\"queued\"}"), Some(0.0));
    assert_eq!(metrics_sample(&text, "earshot_queue_oldest_due_seconds"), Some(0.0));
    assert_eq!(metrics_sample(&text, "earshot_ack_seconds_count"), Some(2.0));
    // The one writer's turns (SQLite): at least the two requests' group commits, each held a
    // while. PostgreSQL locks rows and has no turns.
    let turns = metrics_sample(&text, "earshot_write_turns_total").unwrap();
    let held = metrics_sample(&text, "earshot_write_turn_seconds_total").unwrap();
    if std::env::var_os("EARSHOT_TEST_POSTGRES_URL").is_some() {
        assert_eq!((turns, held), (0.0, 0.0));
    } else {
        assert!(turns >= 2.0 && held > 0.0, "{turns} turns held {held} s");
    }
    assert!(text.ends_with("# EOF\n"));
    server.stop().await;
}
