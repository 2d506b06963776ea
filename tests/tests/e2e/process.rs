//! The `earshot` binary as a user runs it: first start, restart, bootstrap, migrate, master-key
//! rotation, configuration errors, SIGTERM.

use earshot_e2e::process::{ServerProcess, run_command};
use earshot_e2e::{client::authed, storage_env};
use earshot_proto::v1 as pb;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use tokio::process::Command;

async fn client(url: &str) -> IntegrationServiceClient<tonic::transport::Channel> {
    IntegrationServiceClient::connect(url.to_owned()).await.unwrap()
}

async fn create_twilio(url: &str, key: &str, project_id: &str, token: &str) -> pb::Integration {
    client(url)
        .await
        .create_integration(authed(
            pb::CreateIntegrationRequest {
                project_id: project_id.to_owned(),
                provider: pb::Provider::Twilio as i32,
                secrets: [("auth_token".to_owned(), token.to_owned())].into(),
                ..Default::default()
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap()
}

async fn get(url: &str, key: &str, id: &str) -> Result<pb::Integration, tonic::Status> {
    Ok(client(url)
        .await
        .get_integration(authed(pb::GetIntegrationRequest { id: id.to_owned() }, key))
        .await?
        .into_inner()
        .integration
        .unwrap())
}

#[tokio::test]
async fn first_start_prints_an_admin_key_and_data_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let first = ServerProcess::start_in(&data_dir, &[]).await;
    let key = first.printed_key.clone().expect("first start prints the admin key");
    let project_id = first.printed_project_id.clone().expect("first start prints the project id");
    assert!(key.starts_with("es_"));
    let created =
        create_twilio(&first.url(), &key, &project_id, "0123456789abcdef0123456789abcdef").await;
    first.stop().await;

    let second = ServerProcess::start_in(&data_dir, &[]).await;
    assert_eq!(second.printed_key, None, "the key is printed only on first start");
    let after = get(&second.url(), &key, &created.id).await.unwrap();
    assert_eq!(after.public_id, created.public_id);
    assert_eq!(after.secret_summary, created.secret_summary);
    let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap();
    assert!(!log.contains(&key), "the admin key must not reach the log");
    second.stop().await;
}

#[tokio::test]
async fn bootstrap_prints_json_once_and_migrate_reports_migrations() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let output = run_command(&["bootstrap"], &data_dir, &[]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("es_"));
    uuid::Uuid::parse_str(created["project_id"].as_str().unwrap()).unwrap();

    let again = run_command(&["bootstrap"], &data_dir, &[]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already bootstrapped"));
    let another = run_command(&["bootstrap", "--new-organization"], &data_dir, &[]).await;
    assert!(another.status.success());

    let migrate = run_command(&["migrate"], &data_dir, &[]).await;
    assert!(migrate.status.success());
    let applied: serde_json::Value = serde_json::from_slice(&migrate.stdout).unwrap();
    assert_eq!(applied["applied_migrations"][0], "m0001_initial");

    // The server started afterwards uses the bootstrapped key and prints none.
    let server = ServerProcess::start_in(&data_dir, &[]).await;
    assert_eq!(server.printed_key, None);
    let project_id = created["project_id"].as_str().unwrap();
    create_twilio(&server.url(), &key, project_id, "0123456789abcdef0123456789abcdef").await;
    server.stop().await;
}

#[tokio::test]
async fn rotate_master_key_reseals_and_every_integration_stays_usable() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let server = ServerProcess::start_in(&data_dir, &[]).await;
    let key = server.printed_key.clone().unwrap();
    let project_id = server.printed_project_id.clone().unwrap();
    let tokens = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"];
    let mut ids = Vec::new();
    for token in tokens {
        ids.push(create_twilio(&server.url(), &key, &project_id, token).await.id);
    }
    server.stop().await;
    let key_before = std::fs::read_to_string(data_dir.join("master.key")).unwrap();

    let output = run_command(&["rotate-master-key"], &data_dir, &[]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["resealed_secrets"], 2);
    assert_ne!(report["new_key_id"], report["previous_key_id"]);
    let key_after = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    assert_ne!(key_before, key_after);
    assert!(!data_dir.join("master.key.next").exists());

    // The secrets open under the new key alone.
    let overrides = earshot_server::config::Overrides {
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".to_owned()),
        log_format: None,
        role: None,
    };
    let env = storage_env(&data_dir).await;
    let config = earshot_server::config::Config::load_with_env(None, &overrides, env).unwrap();
    let app =
        earshot_server::app::App::build(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (id, token) in ids.iter().zip(tokens) {
        let sets = app.domain.verification_secrets(id.parse().unwrap()).await.unwrap();
        assert_eq!(sets[0].get("auth_token").unwrap().expose(), token);
    }
    app.domain.storage.close().await.unwrap();

    let restarted = ServerProcess::start_in(&data_dir, &[]).await;
    for id in &ids {
        get(&restarted.url(), &key, id).await.unwrap();
    }
    restarted.stop().await;
}

#[tokio::test]
async fn a_configured_master_key_is_used_and_rotated_through_the_environment() {
    let encode = |bytes: [u8; 32]| data_encoding::BASE64.encode(&bytes);
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let old_key = encode([7u8; 32]);
    let new_key = encode([9u8; 32]);
    let server = ServerProcess::start_in(&data_dir, &[("EARSHOT_MASTER_KEY", &old_key)]).await;
    let key = server.printed_key.clone().unwrap();
    let project_id = server.printed_project_id.clone().unwrap();
    let id = create_twilio(&server.url(), &key, &project_id, "0123456789abcdef0123456789abcdef")
        .await
        .id;
    server.stop().await;
    assert!(!data_dir.join("master.key").exists(), "no key file when the key is configured");

    let refused =
        run_command(&["rotate-master-key"], &data_dir, &[("EARSHOT_MASTER_KEY", &old_key)]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("EARSHOT_NEW_MASTER_KEY"));
    let rotated = run_command(
        &["rotate-master-key"],
        &data_dir,
        &[("EARSHOT_MASTER_KEY", &old_key), ("EARSHOT_NEW_MASTER_KEY", &new_key)],
    )
    .await;
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));

    let restarted = ServerProcess::start_in(&data_dir, &[("EARSHOT_MASTER_KEY", &new_key)]).await;
    get(&restarted.url(), &key, &id).await.unwrap();
    restarted.stop().await;
}

#[tokio::test]
async fn invalid_configuration_fails_fast_naming_the_key() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let cases = [
        ("EARSHOT_LISTEN", "not-an-address", "`listen`"),
        ("EARSHOT_MASTER_KEY", "dG9vIHNob3J0", "`master_key`"),
        (
            "EARSHOT_INTEGRATIONS__RATE_LIMIT_PER_MINUTE_DEFAULT",
            "0",
            "`integrations.rate_limit_per_minute_default`",
        ),
    ];
    for (name, value, expected) in cases {
        let output = Command::new(earshot_e2e::process::earshot_binary())
            .args(["serve", "--data-dir"])
            .arg(&data_dir)
            .env(name, value)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    assert!(!data_dir.exists(), "a rejected configuration creates nothing");
}

/// The main flow against the `earshot` binary: ingest with inline audio, poll the status,
/// search by context token (exactly one datapoint with its turns, tags, metadata and metrics),
/// and download the audio byte for byte.
#[tokio::test]
async fn ingest_search_and_download_against_the_binary() {
    use earshot_proto::v1::datapoint_service_client::DatapointServiceClient;
    use earshot_proto::v1::ingest_service_client::IngestServiceClient;

    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let server = ServerProcess::start_in(&data_dir, &[]).await;
    let key = server.printed_key.clone().unwrap();
    let project_id = server.printed_project_id.clone().unwrap();
    let channel = server.channel().await;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut datapoints = DatapointServiceClient::new(channel);

    let audio = earshot_e2e::audio::wav(2, 16_000, 1_000, 9);
    let turn = |role: pb::Role, content: &str, timestamp_ms: i64, end_ms: i64| pb::Turn {
        role: role as i32,
        content: content.to_owned(),
        timestamp_ms,
        end_ms: Some(end_ms),
    };
    let conversation = pb::Conversation {
        call_id: "process-call-1".to_owned(),
        context_token: "process-session".to_owned(),
        source_platform: "vapi".to_owned(),
        audio: Some(pb::Audio {
            source: Some(pb::audio::Source::InlineB64(data_encoding::BASE64.encode(&audio))),
        }),
        transcript: vec![
            turn(pb::Role::Assistant, "Hello, this is Acme.", 0, 1_500),
            turn(pb::Role::User, "I need to reschedule.", 2_000, 3_500),
            turn(pb::Role::Assistant, "Sure, which day works?", 4_300, 5_500),
        ],
        tags: vec!["reschedule".to_owned()],
        metadata: Some(prost_types::Struct {
            fields: [(
                "account".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("acct_7".to_owned())),
                },
            )]
            .into(),
        }),
        ..Default::default()
    };
    let accepted = ingest
        .ingest_conversations(authed(
            pb::IngestConversationsRequest {
                project_id: project_id.clone(),
                conversations: vec![conversation],
                mut_id: String::new(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    let ingest_id = accepted.conversations[0].ingest_id.clone();
    let done = earshot_e2e::client::wait_for_ingest(&mut ingest, &key, &ingest_id, |status| {
        status.state == pb::IngestState::Done as i32
    })
    .await;

    let found = datapoints
        .search_datapoints(authed(
            pb::SearchDatapointsRequest {
                project_id,
                context_token: "process-session".to_owned(),
                ..Default::default()
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .datapoints;
    assert_eq!(found.len(), 1);
    let datapoint = &found[0];
    assert_eq!(datapoint.id, done.datapoint_id);
    assert_eq!(datapoint.provider, "vapi");
    assert_eq!(datapoint.turns.len(), 3);
    assert_eq!(datapoint.turns[1].content, "I need to reschedule.");
    assert_eq!(datapoint.tags, ["reschedule"]);
    assert!(datapoint.metadata.as_ref().unwrap().fields.contains_key("account"));
    assert_eq!(datapoint.metrics.as_ref().unwrap().response_latency_p50_ms, 800);
    let info = datapoint.audio.as_ref().unwrap();
    assert_eq!((info.channels, info.sample_rate_hz, info.duration_ms), (2, 16_000, 1_000));

    let (_, downloaded) =
        earshot_e2e::client::download_audio(&mut datapoints, &key, &datapoint.id).await;
    assert_eq!(downloaded, audio, "the audio downloads byte-identical");
    server.stop().await;
}

/// `earshot serve --role api` and `--role worker` split intake and processing over one
/// PostgreSQL database: the api process acknowledges and never claims a job; the worker, which
/// serves only its probes and metrics, stores the datapoints. On the embedded SQLite file,
/// which belongs to one process, the roles are refused with the key named.
#[tokio::test]
async fn roles_split_intake_and_processing() {
    use earshot_e2e::client::{
        http_request, ingest_request, metrics_sample, metrics_text, transcript_call,
        wait_for_ingest,
    };
    use earshot_proto::v1::ingest_service_client::IngestServiceClient;

    let directory = tempfile::tempdir().unwrap();
    let api_dir = directory.path().join("api");
    let shared = storage_env(&api_dir).await;
    if !shared.iter().any(|(name, _)| name == "EARSHOT_DATABASE_URL") {
        let output = run_command(&["serve", "--role", "worker"], &api_dir, &[]).await;
        assert!(!output.status.success());
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(error.contains("`server.role`") && error.contains("PostgreSQL"), "{error}");
        return;
    }
    let master_key = earshot_server::crypto::MasterKey::generate().to_base64();
    let api_env = [
        ("EARSHOT_MASTER_KEY", master_key.as_str()),
        // Transcripts go through the queue, so that there are jobs to (not) claim.
        ("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false"),
    ];
    let api = ServerProcess::start_in_with_args(&api_dir, &["--role", "api"], &api_env).await;
    let mut worker_env: Vec<(&str, &str)> = shared
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        // A poll a minute: the jobs the api queues must wake the worker (NOTIFY), since
        // waiting for the poll would outlast the test's bound.
        .chain([
            ("EARSHOT_MASTER_KEY", master_key.as_str()),
            ("EARSHOT_JOBS__POLL_INTERVAL_MS", "60000"),
        ])
        .collect();
    worker_env.push(("EARSHOT_ASR__ENABLED", "false"));
    let worker_dir = directory.path().join("worker");
    let worker =
        ServerProcess::start_in_with_args(&worker_dir, &["--role", "worker"], &worker_env).await;
    assert_eq!(worker.printed_key, None, "a worker creates no key");

    let key = api.printed_key.clone().unwrap();
    let mut ingest = IngestServiceClient::new(api.channel().await);
    // Two rounds: the first may be found by the worker's wake-up when it starts listening;
    // the second, sent once it waits, only by the announcement.
    let mut accepted = Vec::new();
    for round in 0..2 {
        let sent = std::time::Instant::now();
        let calls = (0..10).map(|index| transcript_call(&format!("role-{round}-{index}")));
        let batch = ingest
            .ingest_conversations(authed(ingest_request(&api, calls.collect()), &key))
            .await
            .unwrap()
            .into_inner();
        for conversation in &batch.conversations {
            wait_for_ingest(&mut ingest, &key, &conversation.ingest_id, |status| {
                status.state == pb::IngestState::Done as i32
            })
            .await;
        }
        // Far below the worker's poll of a minute.
        let waited = sent.elapsed();
        assert!(waited < std::time::Duration::from_secs(10), "round {round} took {waited:?}");
        accepted.extend(batch.conversations);
    }
    let succeeded = "earshot_jobs_total{outcome=\"succeeded\"}";
    assert_eq!(metrics_sample(&metrics_text(&api).await, succeeded), None);
    let worker_metrics = metrics_text(&worker).await;
    assert_eq!(metrics_sample(&worker_metrics, succeeded), Some(20.0));
    assert_eq!(metrics_sample(&worker_metrics, "earshot_datapoints_written_total"), Some(20.0));

    // The worker answers its probes, and nothing of the API.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(http_request(&worker, "GET", path, &[], Vec::new()).await.0, 200, "{path}");
    }
    let search = br#"{"context_token": "ctx-role-0-1"}"#.to_vec();
    let headers = [("content-type", "application/json"), ("api-key", key.as_str())];
    let (status, body) =
        http_request(&worker, "POST", "/v0/find_datapoints", &headers, search).await;
    assert_eq!(status, 404);
    assert!(body.to_string().contains("server.role = worker"), "{body}");
    let mut on_worker = IngestServiceClient::new(worker.channel().await);
    let refused = on_worker
        .get_ingest_status(authed(
            pb::GetIngestStatusRequest { ingest_id: accepted[0].ingest_id.clone() },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");
    assert!(refused.message().contains("server.role = worker"), "{refused:?}");
    worker.stop().await;
    api.stop().await;
}
