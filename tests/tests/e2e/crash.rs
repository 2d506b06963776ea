//! Exactly-once after kill -9: every call the `earshot` process acknowledged before SIGKILL
//! becomes exactly one datapoint after a restart, within 30 s of it on the embedded SQLite
//! default (jobs left running are claimed again at start, the intake log is stored before the
//! process serves) and within the 30 s lease plus the drain on PostgreSQL.

use std::time::Duration;

use earshot_e2e::client::authed;
use earshot_e2e::process::{START_TIMEOUT, ServerProcess};
use earshot_proto::v1 as pb;

#[tokio::test]
async fn acknowledged_calls_survive_kill_9_exactly_once() {
    // The default configuration (the lease too): transcripts stored at intake.
    survive_kill_9(&[]).await;
}

#[tokio::test]
async fn acknowledged_calls_left_to_the_workers_survive_kill_9_exactly_once() {
    survive_kill_9(&[("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false")]).await;
}

#[tokio::test]
async fn acknowledged_calls_in_the_intake_log_survive_kill_9_exactly_once() {
    // Every write logged (on SQLite; PostgreSQL has no intake log): acknowledged calls not
    // stored as rows yet when the process dies are stored by the next one before it serves.
    survive_kill_9(&[("EARSHOT_INGEST__INTAKE_LOG", "always")]).await;
}

/// Sends conversations from many concurrent clients to a server started with `env`, kills it
/// with SIGKILL part-way, restarts it, and checks that every acknowledged call ends up as exactly
/// one datapoint, with no duplicates and nothing left in the queue.
async fn survive_kill_9(env: &[(&str, &str)]) {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use earshot_proto::v1::datapoint_service_client::DatapointServiceClient;
    use earshot_proto::v1::ingest_service_client::IngestServiceClient;

    const CLIENTS: usize = 40;
    const CALLS_PER_CLIENT: usize = 50;
    const KILL_AFTER_ACKS: usize = 700;

    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let mut server = ServerProcess::start_in(&data_dir, env).await;
    let key = server.printed_key.clone().unwrap();
    let project_id = server.printed_project_id.clone().unwrap();
    let channel = server.channel().await;

    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let ack_count = Arc::new(AtomicUsize::new(0));
    let (killed_sender, killed) = tokio::sync::watch::channel(false);
    let mut clients = tokio::task::JoinSet::new();
    for client_index in 0..CLIENTS {
        let mut ingest = IngestServiceClient::new(channel.clone());
        let (key, project_id) = (key.clone(), project_id.clone());
        let (acknowledged, ack_count, killed) =
            (acknowledged.clone(), ack_count.clone(), killed.clone());
        clients.spawn(async move {
            for call_index in 0..CALLS_PER_CLIENT {
                if *killed.borrow() {
                    return;
                }
                let call_id = format!("crash-{client_index}-{call_index}");
                let request = pb::IngestConversationsRequest {
                    project_id: project_id.clone(),
                    conversations: vec![pb::Conversation {
                        call_id: call_id.clone(),
                        transcript: vec![pb::Turn {
                            role: pb::Role::User as i32,
                            content: format!("message {call_index}"),
                            timestamp_ms: 0,
                            end_ms: None,
                        }],
                        ..Default::default()
                    }],
                    mut_id: String::new(),
                };
                match ingest.ingest_conversations(authed(request, &key)).await {
                    Ok(_) => {
                        acknowledged.lock().unwrap().push(call_id);
                        ack_count.fetch_add(1, Ordering::SeqCst);
                    }
                    // After the kill, requests fail; they were not acknowledged.
                    Err(status) => {
                        if !*killed.borrow() {
                            eprintln!("ingest failed before the kill: {status:?}");
                        }
                        return;
                    }
                }
            }
        });
    }
    // Kill once enough calls are acknowledged (a condition, polled), while clients still send.
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while ack_count.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "too few acknowledgements before the deadline"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Clients stop starting new requests; those in flight meet the kill.
    let _ = killed_sender.send(true);
    server.kill().await;
    while clients.join_next().await.is_some() {}
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= KILL_AFTER_ACKS);
    assert!(acknowledged.len() < CLIENTS * CALLS_PER_CLIENT, "the kill must land part-way");

    // From the restart itself: what the new process stores before it serves counts.
    let restarted_at = tokio::time::Instant::now();
    let restarted = ServerProcess::start_in(&data_dir, env).await;
    let channel = restarted.channel().await;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut datapoints = DatapointServiceClient::new(channel);

    // Wait for the queue to drain: nothing queued, processing or failed (a bounded wait).
    let drain_deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let mut pending = 0;
        for state in [pb::IngestState::Queued, pb::IngestState::Processing, pb::IngestState::Failed]
        {
            pending += ingest
                .list_ingests(authed(
                    pb::ListIngestsRequest {
                        project_id: project_id.clone(),
                        state: state as i32,
                        page_size: 10,
                        page_token: String::new(),
                    },
                    &key,
                ))
                .await
                .unwrap()
                .into_inner()
                .ingests
                .len();
        }
        if pending == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < drain_deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_after = restarted_at.elapsed();
    let dead = ingest
        .list_ingests(authed(
            pb::ListIngestsRequest {
                project_id: project_id.clone(),
                state: pb::IngestState::Dead as i32,
                page_size: 10,
                page_token: String::new(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .ingests;
    assert!(dead.is_empty(), "no job died: {dead:?}");

    // Every datapoint, counted by call.
    let mut per_call: HashMap<String, usize> = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = datapoints
            .search_datapoints(authed(
                pb::SearchDatapointsRequest {
                    project_id: project_id.clone(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        for datapoint in page.datapoints {
            *per_call.entry(datapoint.call_id).or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(per_call.values().all(|count| *count == 1), "no call has two datapoints");
    for call_id in &acknowledged {
        assert_eq!(
            per_call.get(call_id),
            Some(&1),
            "acknowledged call {call_id} has exactly one datapoint"
        );
    }
    let recovered_in = drained_after;
    eprintln!(
        "crash test: {} acknowledged before kill -9, {} datapoints after restart, all searchable \
         {:.1} s after the restart",
        acknowledged.len(),
        per_call.len(),
        recovered_in.as_secs_f64()
    );
    let bound = if std::env::var_os("EARSHOT_TEST_POSTGRES_URL").is_some() { 75 } else { 30 };
    assert!(
        recovered_in <= Duration::from_secs(bound),
        "acknowledged calls were searchable only {recovered_in:?} after the restart"
    );
    restarted.stop().await;
}
