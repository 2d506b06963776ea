//! The Rust SDK (`earshot`) against an `earshot` process on loopback (gRPC over HTTP/2, SQLite,
//! or PostgreSQL when EARSHOT_TEST_POSTGRES_URL is set).

use std::collections::HashMap;
use std::time::Duration;

use earshot::{
    ApiKeyScope, Audio, Client, Code, Conversation, DatapointQuery, IngestBatch, IntegrationStatus,
    NewIntegration, Provider, Turn, proto,
};
use earshot_e2e::audio::wav;
use earshot_e2e::process::ServerProcess;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn client_of(server: &ServerProcess, key: &str) -> Client {
    Client::builder(server.url())
        .api_key(key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap()
}

fn fields(error: &earshot::Error) -> Vec<&str> {
    error.field_violations().iter().map(|violation| violation.field.as_str()).collect()
}

#[tokio::test]
async fn ingest_a_transcript_then_wait_and_search() {
    let server = ServerProcess::start(&[]).await;
    let client = client_of(&server, &server.admin_key).await;

    let conversation = Conversation::new("call-rust-1")
        .source_platform("retell")
        .context_token("ctx-rust-1")
        .turn(Turn::assistant("Thanks for calling, how can I help?").at_ms(0).end_ms(2000))
        .turn(Turn::user("What are your hours?").at_ms(2400))
        .tags(["support", "hours"])
        .metadata("customer_id", "cust_123")
        .metadata("attempt", 2);
    let receipt = client.ingest_conversations(conversation.clone()).await.unwrap();
    assert_eq!(receipt.status, "accepted");
    let ingested = &receipt.conversations[0];
    assert_eq!(
        (ingested.call_id.as_str(), ingested.context_token.as_str()),
        ("call-rust-1", "ctx-rust-1")
    );
    assert!(!ingested.duplicate);

    let datapoint = client.wait_for_datapoint("ctx-rust-1", WAIT).await.unwrap();
    assert_eq!(datapoint.call_id, "call-rust-1");
    assert_eq!(datapoint.provider, "retell");
    assert_eq!(datapoint.source, proto::Source::Sdk as i32);
    let contents: Vec<_> = datapoint.turns.iter().map(|turn| turn.content.as_str()).collect();
    assert_eq!(contents, ["Thanks for calling, how can I help?", "What are your hours?"]);
    assert_eq!(datapoint.tags, ["support", "hours"]);
    let metadata = earshot::struct_to_json(datapoint.metadata.clone().unwrap());
    assert_eq!(metadata["customer_id"], json!("cust_123"));
    assert_eq!(metadata["attempt"], json!(2));

    let status = client.ingest_status(&ingested.ingest_id).await.unwrap();
    assert_eq!(status.state, proto::IngestState::Done as i32);
    assert_eq!(status.datapoint_id, datapoint.id);
    assert_eq!(client.get_datapoint(&datapoint.id).await.unwrap().call_id, "call-rust-1");

    let again = client.ingest_conversations(conversation).await.unwrap();
    assert!(again.conversations[0].duplicate);

    let found = client
        .search_datapoints(DatapointQuery::new().tags_all(["support"]).text_contains("HOURS"))
        .await
        .unwrap();
    assert_eq!(found.datapoints.len(), 1);
    let none = client.search_datapoints(DatapointQuery::new().provider("vapi")).await.unwrap();
    assert!(none.datapoints.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn json_shaped_batches_go_through_the_same_path() {
    let server = ServerProcess::start(&[]).await;
    let client = client_of(&server, &server.admin_key).await;
    let batch = IngestBatch::from_json(vec![json!({
        "call_id": "call-json-1",
        "transcript": [{"role": "user", "content": "Hi", "timestamp_ms": 0, "speaker_id": "s1"}],
        "metadata": {"customer_id": "cust_9"}
    })])
    .unwrap()
    .mut_id("batch-7");
    let receipt = client.ingest_conversations(batch).await.unwrap();
    assert_eq!(receipt.conversations[0].context_token, "call-json-1");
    let datapoint = client.wait_for_datapoint("call-json-1", WAIT).await.unwrap();
    assert_eq!(datapoint.turns[0].role, proto::Role::User as i32);
    server.stop().await;
}

#[tokio::test]
async fn audio_inline_from_a_file_and_uploaded_is_stored_and_downloads_intact() {
    let server = ServerProcess::start(&[]).await;
    let client = client_of(&server, &server.admin_key).await;
    let directory = tempfile::tempdir().unwrap();

    let inline = wav(1, 8000, 1500, 1);
    let file_audio = wav(2, 16000, 1000, 2);
    let file_path = directory.path().join("call.wav");
    std::fs::write(&file_path, &file_audio).unwrap();
    // Larger than one upload chunk, so the upload really streams.
    let uploaded_audio = wav(1, 16000, 12_000, 3);
    let upload_path = directory.path().join("long.wav");
    std::fs::write(&upload_path, &uploaded_audio).unwrap();

    let uploaded = client.upload_audio(&upload_path).await.unwrap();
    assert_eq!(uploaded.size_bytes, uploaded_audio.len() as u64);
    assert_eq!(uploaded.content_type, "audio/wav");

    client
        .ingest_conversations(vec![
            Conversation::new("audio-inline")
                .audio(Audio::from_bytes(inline.clone()))
                .diarization(false),
            Conversation::new("audio-file").audio(Audio::from_file(&file_path)).diarization(false),
            Conversation::new("audio-uploaded")
                .audio(Audio::uploaded(uploaded.audio_id.clone()))
                .turn(Turn::assistant("Hello").at_ms(0)),
        ])
        .await
        .unwrap();

    for (call_id, bytes, channels) in [
        ("audio-inline", &inline, 1),
        ("audio-file", &file_audio, 2),
        ("audio-uploaded", &uploaded_audio, 1),
    ] {
        let datapoint = client.wait_for_datapoint(call_id, WAIT).await.unwrap();
        let audio = datapoint.audio.clone().unwrap();
        assert_eq!(audio.channels, channels, "{call_id}");
        let downloaded = client.download_audio(&datapoint.id).await.unwrap();
        assert_eq!(&downloaded.bytes[..], &bytes[..], "{call_id}");
        assert_eq!(downloaded.info.sha256, audio.sha256);
    }

    let uploaded_datapoint = client.wait_for_datapoint("audio-uploaded", WAIT).await.unwrap();
    let target = directory.path().join("downloaded.wav");
    let info = client.download_audio_to_file(&uploaded_datapoint.id, &target).await.unwrap();
    assert_eq!(info.size_bytes, uploaded_audio.len() as u64);
    assert_eq!(std::fs::read(&target).unwrap(), uploaded_audio);

    let from_memory = client.upload_audio_bytes(None, "memory.wav", inline.clone()).await.unwrap();
    assert_eq!(from_memory.size_bytes, inline.len() as u64);
    server.stop().await;
}

#[tokio::test]
async fn errors_keep_the_code_message_and_fields() {
    let server = ServerProcess::start(&[]).await;
    let admin = client_of(&server, &server.admin_key).await;

    let invalid = admin
        .ingest_conversations(vec![
            Conversation::new("fine").turn(Turn::user("hi")),
            Conversation::new(""),
        ])
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(fields(&invalid), ["conversations[1].call_id", "conversations[1]"]);
    // Nothing of the refused batch was stored.
    let listed = admin.list_ingests(None, None, None).await.unwrap();
    assert!(listed.ingests.is_empty());

    let missing_file = admin.upload_audio("/nonexistent/earshot.wav").await.unwrap_err();
    assert_eq!(missing_file.code(), Code::NotFound);

    let unknown = admin.get_datapoint("0193a5d0-0000-7000-8000-000000000000").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let stranger = client_of(&server, "es_notarealkey").await;
    let unauthenticated = stranger.list_projects().await.unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);

    let reader_key = admin.create_api_key("reader", &[ApiKeyScope::Read], None).await.unwrap();
    let reader = client_of(&server, &reader_key.secret).await;
    let denied = reader
        .ingest_conversations(Conversation::new("c").turn(Turn::user("hi")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let revoked = admin.revoke_api_key(&reader_key.api_key.id).await.unwrap();
    assert!(revoked.revoke_time.is_some());
    assert_eq!(reader.list_projects().await.unwrap_err().code(), Code::Unauthenticated);

    let address = server.address;
    server.stop().await;
    let unreachable = Client::builder(format!("http://{address}"))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(unreachable.code(), Code::Unavailable);
    assert!(unreachable.message().to_lowercase().contains("connect"), "{unreachable}");

    let bad_url = Client::builder("not a url").connect().await.unwrap_err();
    assert!(matches!(bad_url, earshot::Error::Config(_)));
}

#[tokio::test]
async fn integrations_projects_and_keys() {
    let server = ServerProcess::start(&[]).await;
    let client = client_of(&server, &server.admin_key).await;
    let integrations = client.integrations();

    let created = integrations
        .create(
            NewIntegration::new(Provider::Retell)
                .display_name("Support agent")
                .secret("api_key", "key_0123456789abcdef"),
        )
        .await
        .unwrap();
    assert!(created.webhook_url.contains(&created.public_id));
    assert_eq!(created.secret_summary.as_ref().unwrap().secrets[0].last4, "cdef");
    assert_eq!(integrations.get(&created.id).await.unwrap().display_name, "Support agent");
    let listed = integrations.list(None, Some(Provider::Retell), None).await.unwrap();
    assert_eq!(listed.integrations.len(), 1);

    let renamed = integrations.update(&created.id, Some("Sales agent".into()), None).await.unwrap();
    assert_eq!(renamed.display_name, "Sales agent");
    let rotated = integrations
        .rotate(
            &created.id,
            HashMap::from([("api_key".to_owned(), "key_fedcba9876543210".to_owned())]),
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let states: Vec<_> =
        rotated.secret_summary.unwrap().secrets.iter().map(|secret| secret.state).collect();
    assert_eq!(states.len(), 2);
    let disabled = integrations.set_status(&created.id, IntegrationStatus::Disabled).await.unwrap();
    assert_eq!(disabled.status, IntegrationStatus::Disabled as i32);
    assert!(integrations.deliveries(&created.id, None, None).await.unwrap().deliveries.is_empty());

    let invalid = integrations
        .create(NewIntegration::new(Provider::Twilio).secret("auth_token", "short"))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(fields(&invalid), ["secrets[auth_token]"]);

    integrations.delete(&created.id).await.unwrap();
    assert_eq!(integrations.get(&created.id).await.unwrap_err().code(), Code::NotFound);

    let project = client.create_project("Second line").await.unwrap();
    let names: Vec<_> =
        client.list_projects().await.unwrap().into_iter().map(|project| project.name).collect();
    assert!(names.contains(&"Second line".to_owned()));
    let ingest_key = client
        .create_api_key("dialer", &[ApiKeyScope::Ingest], Some(project.id.clone()))
        .await
        .unwrap();
    assert!(ingest_key.secret.starts_with("es_"));
    // A key restricted to one project ingests there without naming it.
    let dialer = Client::builder(server.url()).api_key(&ingest_key.secret).connect().await.unwrap();
    dialer
        .ingest_conversations(Conversation::new("second-line-1").turn(Turn::user("hi")))
        .await
        .unwrap();
    let second = Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&project.id)
        .connect()
        .await
        .unwrap();
    let datapoint = second.wait_for_datapoint("second-line-1", WAIT).await.unwrap();
    assert_eq!(datapoint.project_id, project.id);
    let in_default =
        client.search_datapoints(DatapointQuery::new().call_id("second-line-1")).await.unwrap();
    assert!(in_default.datapoints.is_empty());
    let keys = client.list_api_keys(false).await.unwrap();
    assert!(keys.iter().any(|key| key.name == "dialer"));
    server.stop().await;
}

#[tokio::test]
async fn waiting_for_a_datapoint_that_never_comes_times_out() {
    let server = ServerProcess::start(&[]).await;
    let client = client_of(&server, &server.admin_key).await;
    let error =
        client.wait_for_datapoint("never-sent", Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert!(error.message().contains("never-sent"));
    server.stop().await;
}

#[tokio::test]
async fn audio_only_stereo_calls_come_back_transcribed_with_roles_in_order() {
    use earshot_e2e::audio::{self, SAMPLE_CALL};
    let server = ServerProcess::start_with_asr(&[]).await;
    let client = client_of(&server, &server.admin_key).await;
    let call = audio::generated_call(SAMPLE_CALL, 700);
    let recording = audio::wav_from_channels(&call.channels, 16_000);

    let conversation = Conversation::new("call-stereo-asr")
        .audio(Audio::from_bytes(recording))
        .diarization(true)
        .first_turn(earshot::Role::Assistant);
    client.ingest_conversations(conversation).await.unwrap();
    let datapoint =
        client.wait_for_datapoint("call-stereo-asr", Duration::from_secs(120)).await.unwrap();

    assert_eq!(datapoint.transcript_source, proto::TranscriptSource::Asr as i32);
    assert!(!datapoint.speaker_labels_estimated);
    let roles: Vec<i32> = datapoint.turns.iter().map(|turn| turn.role).collect();
    let (assistant, user) = (proto::Role::Assistant as i32, proto::Role::User as i32);
    assert_eq!(roles, [assistant, user, assistant, user, assistant], "{:#?}", datapoint.turns);
    for (turn, (speaker, _, start_ms, _)) in datapoint.turns.iter().zip(&call.lines) {
        assert_eq!(turn.channel, u32::try_from(speaker + 1).unwrap());
        assert!((turn.start_ms - start_ms).abs() < 700, "{turn:?} began near {start_ms}");
    }
    let reference: Vec<&str> = call.lines.iter().map(|(_, text, _, _)| text.as_str()).collect();
    let heard: Vec<&str> = datapoint.turns.iter().map(|turn| turn.content.as_str()).collect();
    let recall = audio::word_recall(&reference.join(" "), &heard.join(" "));
    assert!(recall >= 0.8, "{recall}: {heard:?}");
    server.stop().await;
}
