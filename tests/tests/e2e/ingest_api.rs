//! Ingest end to end over a real server: accept, process, search, download; duplicates; bad
//! input refused with nothing stored; the JSON mirrors.

use earshot_proto::v1 as pb;
use earshot_proto::v1::datapoint_service_client::DatapointServiceClient;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;
use serde_json::json;
use tonic::Code;

use earshot_e2e::audio::wav;
use earshot_e2e::client::{
    authed, download_audio, http_request, ingest_request, violated_fields, wait_for_ingest,
};
use earshot_e2e::in_process::TestServer;
use earshot_e2e::media::serve_audio;

fn turn(role: pb::Role, content: &str, timestamp_ms: i64, end_ms: i64) -> pb::Turn {
    pb::Turn { role: role as i32, content: content.to_owned(), timestamp_ms, end_ms: Some(end_ms) }
}

fn metadata(pairs: &[(&str, &str)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue((*value).to_owned())),
                    },
                )
            })
            .collect(),
    }
}

fn conversation(call_id: &str) -> pb::Conversation {
    pb::Conversation {
        call_id: call_id.to_owned(),
        source_platform: "custom".to_owned(),
        transcript: vec![
            turn(pb::Role::Assistant, "Thanks for calling Acme, how can I help?", 0, 2_000),
            turn(pb::Role::User, "What are your opening hours?", 2_600, 4_000),
            turn(pb::Role::Assistant, "Nine to five on weekdays.", 4_700, 6_000),
        ],
        tags: vec!["support".to_owned(), "e2e".to_owned()],
        metadata: Some(metadata(&[("customer_id", "cust_123")])),
        ..Default::default()
    }
}

#[tokio::test]
async fn ingest_poll_search_and_download_the_audio() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut datapoints = DatapointServiceClient::new(channel);
    let key = server.admin_key.clone();
    let audio = wav(2, 8_000, 1_500, 1);
    let mut call = conversation("call-e2e-1");
    call.context_token = "session-42".to_owned();
    call.audio = Some(pb::Audio {
        source: Some(pb::audio::Source::InlineB64(data_encoding::BASE64.encode(&audio))),
    });

    let response = ingest
        .ingest_conversations(authed(ingest_request(&server, vec![call]), &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status, "accepted");
    let accepted = &response.conversations[0];
    assert_eq!(
        (accepted.call_id.as_str(), accepted.context_token.as_str()),
        ("call-e2e-1", "session-42")
    );
    assert!(!accepted.duplicate);

    let status = wait_for_ingest(&mut ingest, &key, &accepted.ingest_id, |status| {
        status.state == pb::IngestState::Done as i32
    })
    .await;
    assert!(!status.datapoint_id.is_empty());

    let found = datapoints
        .search_datapoints(authed(
            pb::SearchDatapointsRequest {
                context_token: "session-42".to_owned(),
                project_id: server.project_id.clone(),
                ..Default::default()
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .datapoints;
    assert_eq!(found.len(), 1, "exactly one datapoint per call");
    let datapoint = &found[0];
    assert_eq!(datapoint.id, status.datapoint_id);
    assert_eq!(datapoint.call_id, "call-e2e-1");
    assert_eq!(datapoint.provider, "custom");
    assert_eq!(datapoint.source, pb::Source::Api as i32);
    assert_eq!(datapoint.transcript_source, pb::TranscriptSource::Client as i32);
    let contents: Vec<_> = datapoint.turns.iter().map(|turn| turn.content.as_str()).collect();
    assert_eq!(
        contents,
        [
            "Thanks for calling Acme, how can I help?",
            "What are your opening hours?",
            "Nine to five on weekdays."
        ]
    );
    assert_eq!(datapoint.turns[1].role, pb::Role::User as i32);
    assert_eq!(datapoint.tags, ["support", "e2e"]);
    let customer = &datapoint.metadata.as_ref().unwrap().fields["customer_id"];
    assert_eq!(customer.kind, Some(prost_types::value::Kind::StringValue("cust_123".to_owned())));
    let metrics = datapoint.metrics.as_ref().unwrap();
    assert_eq!(metrics.response_latency_p50_ms, 700);
    let assistant =
        metrics.roles.iter().find(|role| role.role == pb::Role::Assistant as i32).unwrap();
    assert_eq!((assistant.turn_count, assistant.talk_time_ms), (2, 3_300));
    let info = datapoint.audio.as_ref().unwrap();
    assert_eq!((info.channels, info.sample_rate_hz, info.duration_ms), (2, 8_000, 1_500));
    assert_eq!(info.size_bytes, audio.len() as u64);

    // The stored audio streams back byte for byte.
    let (streamed_info, downloaded) = download_audio(&mut datapoints, &key, &datapoint.id).await;
    assert_eq!(streamed_info.content_type, "audio/wav");
    assert_eq!(downloaded, audio);

    // Filters: tags, metadata, text; and a filter that matches nothing.
    let search = |request: pb::SearchDatapointsRequest| {
        let mut client = datapoints.clone();
        let key = key.clone();
        async move {
            client
                .search_datapoints(authed(request, &key))
                .await
                .unwrap()
                .into_inner()
                .datapoints
                .len()
        }
    };
    let base =
        pb::SearchDatapointsRequest { project_id: server.project_id.clone(), ..Default::default() };
    assert_eq!(
        search(pb::SearchDatapointsRequest {
            tags_all: vec!["support".into(), "e2e".into()],
            ..base.clone()
        })
        .await,
        1
    );
    assert_eq!(
        search(pb::SearchDatapointsRequest {
            tags_any: vec!["nope".into(), "e2e".into()],
            ..base.clone()
        })
        .await,
        1
    );
    assert_eq!(
        search(pb::SearchDatapointsRequest {
            tags_all: vec!["support".into(), "nope".into()],
            ..base.clone()
        })
        .await,
        0
    );
    let by_customer = [("customer_id".to_owned(), "cust_123".to_owned())].into();
    assert_eq!(
        search(pb::SearchDatapointsRequest { metadata_equals: by_customer, ..base.clone() }).await,
        1
    );
    assert_eq!(
        search(pb::SearchDatapointsRequest {
            text_contains: "OPENING hours".into(),
            ..base.clone()
        })
        .await,
        1
    );
    assert_eq!(
        search(pb::SearchDatapointsRequest { text_contains: "100%".into(), ..base.clone() }).await,
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn the_same_batch_twice_makes_one_datapoint_per_call() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut datapoints = DatapointServiceClient::new(channel);
    let key = server.admin_key.clone();
    let batch: Vec<_> = (0..5).map(|index| conversation(&format!("dup-{index}"))).collect();

    let first = ingest
        .ingest_conversations(authed(ingest_request(&server, batch.clone()), &key))
        .await
        .unwrap()
        .into_inner();
    let second = ingest
        .ingest_conversations(authed(ingest_request(&server, batch), &key))
        .await
        .unwrap()
        .into_inner();
    for (before, again) in first.conversations.iter().zip(&second.conversations) {
        assert!(!before.duplicate);
        assert!(again.duplicate, "the second delivery reports a duplicate");
        assert_eq!(before.ingest_id, again.ingest_id);
    }
    for accepted in &first.conversations {
        wait_for_ingest(&mut ingest, &key, &accepted.ingest_id, |status| {
            status.state == pb::IngestState::Done as i32
        })
        .await;
    }
    let found = datapoints
        .search_datapoints(authed(
            pb::SearchDatapointsRequest {
                project_id: server.project_id.clone(),
                ..Default::default()
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .datapoints;
    let mut calls: Vec<_> = found.iter().map(|datapoint| datapoint.call_id.clone()).collect();
    calls.sort();
    assert_eq!(calls, ["dup-0", "dup-1", "dup-2", "dup-3", "dup-4"]);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_precise_error_and_nothing_is_stored() {
    let server = TestServer::start_with_env(&[
        ("EARSHOT_INGEST__MAX_INLINE_AUDIO_BYTES", "4096"),
        ("EARSHOT_INGEST__MAX_BATCH_CONVERSATIONS", "3"),
    ])
    .await;
    let mut ingest = IngestServiceClient::new(server.channel().await);
    let key = server.admin_key.clone();
    let with_audio = |source: pb::audio::Source| pb::Conversation {
        audio: Some(pb::Audio { source: Some(source) }),
        transcript: Vec::new(),
        ..conversation("bad-audio")
    };
    let cases: Vec<(&str, Vec<pb::Conversation>, &str)> = vec![
        (
            "invalid base64",
            vec![with_audio(pb::audio::Source::InlineB64("bm90!!YmFzZTY0".into()))],
            "conversations[0].audio.inline_b64",
        ),
        (
            "audio over the limit",
            vec![with_audio(pb::audio::Source::InlineB64(
                data_encoding::BASE64.encode(&wav(1, 8_000, 1_000, 2)),
            ))],
            "conversations[0].audio.inline_b64",
        ),
        (
            "not audio",
            vec![with_audio(pb::audio::Source::InlineB64(
                data_encoding::BASE64.encode(b"plain text, not audio"),
            ))],
            "conversations[0].audio.inline_b64",
        ),
        (
            "empty call id",
            vec![conversation("ok-1"), conversation("  ")],
            "conversations[1].call_id",
        ),
        (
            "unknown role",
            vec![pb::Conversation {
                transcript: vec![pb::Turn {
                    role: 99,
                    content: "x".into(),
                    timestamp_ms: 0,
                    end_ms: None,
                }],
                ..conversation("r")
            }],
            "conversations[0].transcript[0].role",
        ),
        (
            "batch over the limit",
            (0..4).map(|index| conversation(&format!("many-{index}"))).collect(),
            "conversations",
        ),
        (
            "unknown audio id",
            vec![with_audio(pb::audio::Source::AudioId(uuid::Uuid::new_v4().to_string()))],
            "conversations[0].audio.audio_id",
        ),
        (
            "loopback URL",
            vec![with_audio(pb::audio::Source::Url("http://127.0.0.1:9/a.wav".into()))],
            "conversations[0].audio.url",
        ),
        (
            "localhost URL",
            vec![with_audio(pb::audio::Source::Url("http://localhost/a.wav".into()))],
            "conversations[0].audio.url",
        ),
        (
            "cloud metadata URL",
            vec![with_audio(pb::audio::Source::Url(
                "http://169.254.169.254/latest/meta-data/".into(),
            ))],
            "conversations[0].audio.url",
        ),
        (
            "private URL",
            vec![with_audio(pb::audio::Source::Url("http://10.20.30.40/a.wav".into()))],
            "conversations[0].audio.url",
        ),
        (
            "no transcript or audio",
            vec![pb::Conversation { transcript: Vec::new(), ..conversation("empty") }],
            "conversations[0]",
        ),
    ];
    for (name, conversations, field) in cases {
        let error = ingest
            .ingest_conversations(authed(ingest_request(&server, conversations), &key))
            .await
            .expect_err(name);
        assert_eq!(error.code(), Code::InvalidArgument, "{name}");
        assert!(
            violated_fields(&error).contains(&field.to_owned()),
            "{name}: {:?} {}",
            violated_fields(&error),
            error.message()
        );
    }
    // A batch with one bad conversation stores none of the good ones either.
    let (listed, _) = server
        .app_domain
        .list_ingests(
            &server.app_domain.authenticate(&key).await.unwrap(),
            Some(server.project_id.parse().unwrap()),
            None,
            100,
            "",
        )
        .await
        .unwrap();
    assert!(listed.is_empty(), "nothing persisted: {listed:?}");
    server.stop().await;
}

#[tokio::test]
async fn uploaded_and_url_audio_and_audio_only_calls() {
    // A loopback file server stands in for a provider's recording host.
    let audio = wav(1, 16_000, 800, 3);
    let file_server = serve_audio("/recordings/call.wav", audio.clone()).await;

    let server =
        TestServer::start_with_env(&[("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true")]).await;
    let channel = server.channel().await;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let datapoints = DatapointServiceClient::new(channel);
    let key = server.admin_key.clone();

    // Upload, then ingest by audio id.
    let upload = wav(1, 8_000, 500, 4);
    let messages = vec![
        pb::UploadAudioRequest {
            part: Some(pb::upload_audio_request::Part::Metadata(pb::UploadAudioMetadata {
                project_id: server.project_id.clone(),
                filename: "call.wav".into(),
                sha256: earshot_server::crypto::sha256_hex(&upload),
                size_bytes: upload.len() as u64,
                ..Default::default()
            })),
        },
        pb::UploadAudioRequest {
            part: Some(pb::upload_audio_request::Part::Chunk(upload[..300].to_vec())),
        },
        pb::UploadAudioRequest {
            part: Some(pb::upload_audio_request::Part::Chunk(upload[300..].to_vec())),
        },
    ];
    let uploaded = ingest
        .upload_audio(authed(futures_util::stream::iter(messages), &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(uploaded.content_type, "audio/wav");
    assert_eq!(uploaded.size_bytes, upload.len() as u64);

    let conversations = vec![
        pb::Conversation {
            audio: Some(pb::Audio {
                source: Some(pb::audio::Source::AudioId(uploaded.audio_id.clone())),
            }),
            ..conversation("uploaded")
        },
        pb::Conversation {
            audio: Some(pb::Audio {
                source: Some(pb::audio::Source::Url(format!(
                    "http://{file_server}/recordings/call.wav"
                ))),
            }),
            ..conversation("fetched")
        },
        pb::Conversation {
            audio: Some(pb::Audio {
                source: Some(pb::audio::Source::AudioId(uploaded.audio_id.clone())),
            }),
            transcript: Vec::new(),
            diarization: Some(true),
            ..conversation("audio-only")
        },
        pb::Conversation {
            audio: Some(pb::Audio {
                source: Some(pb::audio::Source::AudioId(uploaded.audio_id.clone())),
            }),
            transcript: Vec::new(),
            diarization: Some(false),
            ..conversation("audio-no-diarization")
        },
    ];
    let accepted = ingest
        .ingest_conversations(authed(ingest_request(&server, conversations), &key))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = accepted.conversations.iter().map(|item| item.ingest_id.clone()).collect();
    for id in [&ids[0], &ids[1], &ids[3]] {
        wait_for_ingest(&mut ingest, &key, id, |status| {
            status.state == pb::IngestState::Done as i32
        })
        .await;
    }
    let parked = wait_for_ingest(&mut ingest, &key, &ids[2], |status| {
        status.state == pb::IngestState::AwaitingTranscription as i32
    })
    .await;
    assert!(
        parked.datapoint_id.is_empty(),
        "audio-only calls wait for transcription, kept and visible"
    );

    let get = |call_id: &str| {
        let mut client = datapoints.clone();
        let request = pb::SearchDatapointsRequest {
            call_id: call_id.to_owned(),
            project_id: server.project_id.clone(),
            ..Default::default()
        };
        let key = key.clone();
        async move {
            client
                .search_datapoints(authed(request, &key))
                .await
                .unwrap()
                .into_inner()
                .datapoints
                .remove(0)
        }
    };
    assert_eq!(get("uploaded").await.audio.unwrap().audio_id, uploaded.audio_id);
    let fetched = get("fetched").await.audio.unwrap();
    assert_eq!(fetched.sha256, earshot_server::crypto::sha256_hex(&audio));
    assert_eq!((fetched.sample_rate_hz, fetched.duration_ms), (16_000, 800));
    let no_diarization = get("audio-no-diarization").await;
    assert!(no_diarization.turns.is_empty());
    assert_eq!(no_diarization.transcript_source, pb::TranscriptSource::None as i32);

    // A URL that answers 404 fails permanently: the ingest is dead at once, listed, and
    // RetryIngest queues it again (it dies again, the file is still missing).
    let missing = pb::Conversation {
        audio: Some(pb::Audio {
            source: Some(pb::audio::Source::Url(format!(
                "http://{file_server}/recordings/missing.wav"
            ))),
        }),
        ..conversation("missing-audio")
    };
    let accepted = ingest
        .ingest_conversations(authed(ingest_request(&server, vec![missing]), &key))
        .await
        .unwrap()
        .into_inner();
    let dead_id = accepted.conversations[0].ingest_id.clone();
    let dead = wait_for_ingest(&mut ingest, &key, &dead_id, |status| {
        status.state == pb::IngestState::Dead as i32
    })
    .await;
    assert!(dead.error.contains("404"), "{}", dead.error);
    let listed = ingest
        .list_ingests(authed(
            pb::ListIngestsRequest {
                project_id: server.project_id.clone(),
                state: pb::IngestState::Dead as i32,
                ..Default::default()
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .ingests;
    assert_eq!(
        listed.iter().map(|status| status.ingest_id.as_str()).collect::<Vec<_>>(),
        [dead_id.as_str()]
    );
    let retried = ingest
        .retry_ingest(authed(pb::RetryIngestRequest { ingest_id: dead_id.clone() }, &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.status.unwrap().state, pb::IngestState::Queued as i32);
    wait_for_ingest(&mut ingest, &key, &dead_id, |status| {
        status.state == pb::IngestState::Dead as i32
    })
    .await;
    let not_retryable = ingest
        .retry_ingest(authed(pb::RetryIngestRequest { ingest_id: ids[0].clone() }, &key))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&not_retryable), ["ingest_id"]);

    // A checksum mismatch is refused.
    let mismatch = vec![
        pb::UploadAudioRequest {
            part: Some(pb::upload_audio_request::Part::Metadata(pb::UploadAudioMetadata {
                project_id: server.project_id.clone(),
                sha256: "0".repeat(64),
                ..Default::default()
            })),
        },
        pb::UploadAudioRequest {
            part: Some(pb::upload_audio_request::Part::Chunk(upload.clone())),
        },
    ];
    let error =
        ingest.upload_audio(authed(futures_util::stream::iter(mismatch), &key)).await.unwrap_err();
    assert_eq!(violated_fields(&error), ["metadata.sha256"]);
    server.stop().await;
}

fn upload_messages(
    project_id: &str,
    sha256: String,
    chunks: &[&[u8]],
) -> Vec<pb::UploadAudioRequest> {
    let metadata = pb::UploadAudioRequest {
        part: Some(pb::upload_audio_request::Part::Metadata(pb::UploadAudioMetadata {
            project_id: project_id.to_owned(),
            sha256,
            ..Default::default()
        })),
    };
    let chunks = chunks.iter().map(|chunk| pb::UploadAudioRequest {
        part: Some(pb::upload_audio_request::Part::Chunk(chunk.to_vec())),
    });
    std::iter::once(metadata).chain(chunks).collect()
}

#[tokio::test]
async fn uploads_stream_to_their_content_address_and_refused_ones_leave_nothing() {
    let server =
        TestServer::start_with_env(&[("EARSHOT_INGEST__MAX_UPLOAD_BYTES", "4000000")]).await;
    let mut ingest = IngestServiceClient::new(server.channel().await);
    let key = server.admin_key.clone();
    let audio = earshot_e2e::audio_store(server.data_dir());

    // 3.2 MB in 64 KiB chunks: more than one part of the staging writer.
    let large = wav(1, 16_000, 100_000, 7);
    let sha256 = earshot_server::crypto::sha256_hex(&large);
    let chunks: Vec<&[u8]> = large.chunks(64 * 1024).collect();
    let uploaded = ingest
        .upload_audio(authed(
            futures_util::stream::iter(upload_messages(
                &server.project_id,
                sha256.clone(),
                &chunks,
            )),
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (uploaded.sha256.as_str(), uploaded.size_bytes),
        (sha256.as_str(), large.len() as u64)
    );
    let blob = format!("sha256/{}/{sha256}", &sha256[..2]);
    assert_eq!(audio.keys().await, std::slice::from_ref(&blob));
    assert!(audio.get(&blob).await.unwrap() == large);

    // The same bytes again: the same object, still one file.
    let again = ingest
        .upload_audio(authed(
            futures_util::stream::iter(upload_messages(&server.project_id, String::new(), &chunks)),
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.audio_id, uploaded.audio_id);
    assert_eq!(audio.keys().await, std::slice::from_ref(&blob));

    // Refused uploads: over the limit part-way, a checksum mismatch, not audio, metadata twice.
    let too_large = wav(1, 16_000, 130_000, 8);
    let too_large_chunks: Vec<&[u8]> = too_large.chunks(256 * 1024).collect();
    let other = wav(1, 8_000, 300, 9);
    let mut metadata_twice = upload_messages(&server.project_id, String::new(), &[&other]);
    metadata_twice.push(metadata_twice[0].clone());
    let refused = [
        (upload_messages(&server.project_id, String::new(), &too_large_chunks), "chunk"),
        (upload_messages(&server.project_id, "0".repeat(64), &[&other]), "metadata.sha256"),
        (upload_messages(&server.project_id, String::new(), &[b"plain text, not audio"]), "chunk"),
        (metadata_twice, "metadata"),
    ];
    for (messages, field) in refused {
        let error = ingest
            .upload_audio(authed(futures_util::stream::iter(messages), &key))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        assert_eq!(violated_fields(&error), [field], "{error:?}");
    }
    assert_eq!(audio.keys().await, [blob]);
    server.stop().await;
}

#[tokio::test]
async fn json_mirrors_answer_with_the_documented_codes_and_shapes() {
    let server = TestServer::start_with_env(&[
        ("EARSHOT_INGEST__MAX_REQUEST_BYTES", "100000"),
        ("EARSHOT_INGEST__MAX_INLINE_AUDIO_BYTES", "50000"),
    ])
    .await;
    let key = server.admin_key.clone();
    let json_headers = [("content-type", "application/json"), ("api-key", key.as_str())];
    let audio_b64 = data_encoding::BASE64.encode(&wav(1, 8_000, 200, 5));
    let body = json!({
        "project_id": server.project_id,
        "conversations": [{
            "call_id": "json-1",
            "source_platform": "retell",
            "conversation_start_at": "2026-11-20T10:00:00Z",
            "audio": {"type": "inline_b64", "inline_b64": audio_b64},
            "transcript": [
                {"role": "assistant", "content": "Hello", "timestamp_ms": 0, "speaker_id": "a"},
                {"role": "user", "content": "Hi there", "timestamp_ms": 1200}
            ],
            "tags": ["json"],
            "metadata": {"customer_id": "cust_9"}
        }]
    });
    let (status, response) =
        post_ingest(&server, &json_headers, body.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["status"], "accepted");
    assert_eq!(response["conversations"][0]["call_id"], "json-1");
    assert_eq!(response["conversations"][0]["context_token"], "json-1");
    let ingest_id = response["conversations"][0]["ingest_id"].as_str().unwrap().to_owned();

    let mut ingest = IngestServiceClient::new(server.channel().await);
    wait_for_ingest(&mut ingest, &key, &ingest_id, |status| {
        status.state == pb::IngestState::Done as i32
    })
    .await;

    let (status, found) = http_request(
        &server,
        "POST",
        "/v0/find_datapoints",
        &json_headers,
        json!({"context_token": "json-1", "project_id": server.project_id})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let list = found.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let datapoint = &list[0];
    uuid::Uuid::parse_str(datapoint["id"].as_str().unwrap()).unwrap();
    assert_eq!(datapoint["context_token"], "json-1");
    assert_eq!(datapoint["source"], "sdk");
    assert_eq!(datapoint["provider"], "retell");
    assert_eq!(
        datapoint["input"][1],
        json!({"role": "user", "content": "Hi there", "timestamp_ms": 1200})
    );
    assert_eq!(datapoint["model_metadata"]["source_platform"], "retell");
    assert_eq!(datapoint["model_metadata"]["call_id"], "json-1");
    assert!(datapoint["model_metadata"]["voice_file_id"].is_string());
    assert_eq!(datapoint["user_metadata"]["customer_id"], "cust_9");
    assert_eq!(datapoint["tags"], json!(["json"]));

    // Validation errors: 422 in FastAPI's shape, naming the field.
    let bad = json!({"project_id": server.project_id, "conversations": [{"call_id": "x", "transcript": [{"role": "user", "content": 7}]}]});
    let (status, error) = post_ingest(&server, &json_headers, bad.to_string().into_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(
        error["detail"][0]["loc"],
        json!(["body", "conversations", 0, "transcript", 0, "content"])
    );
    let bad_role = json!({"project_id": server.project_id, "conversations": [{"call_id": "x", "transcript": [{"role": "robot", "content": "hi"}]}]});
    let (status, error) =
        post_ingest(&server, &json_headers, bad_role.to_string().into_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(
        error["detail"][0]["loc"],
        json!(["body", "conversations", 0, "transcript", 0, "role"])
    );
    let (status, error) =
        post_ingest(&server, &json_headers, b"{\"conversations\": [".to_vec()).await;
    assert_eq!(status, 422);
    assert!(error["detail"][0]["msg"].as_str().unwrap().starts_with("malformed JSON"));

    // Transport-level refusals.
    let (status, _) = post_ingest(
        &server,
        &[("content-type", "text/plain"), ("api-key", key.as_str())],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = post_ingest(&server, &json_headers, vec![b' '; 200_000]).await;
    assert_eq!(status, 413);
    let (status, error) = post_ingest(
        &server,
        &[("content-type", "application/json"), ("api-key", "es_wrong")],
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(error["detail"].is_string());
    let (status, projects) =
        http_request(&server, "GET", "/v0/projects", &[("api-key", key.as_str())], Vec::new())
            .await;
    assert_eq!(status, 201);
    assert_eq!(projects[0]["id"], server.project_id.as_str());
    server.stop().await;
}

/// `POST /v0/conversations/ingest` with `headers` and `body`.
async fn post_ingest(
    server: &TestServer,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    http_request(server, "POST", "/v0/conversations/ingest", headers, body).await
}

#[tokio::test]
async fn audio_that_cannot_be_decoded_fails_its_job_with_the_reason_and_is_not_retried() {
    let server = TestServer::start_with_asr(&[]).await;
    let mut ingest = IngestServiceClient::new(server.channel().await);
    let key = server.admin_key.clone();
    // A WAV header whose format chunk is garbage: accepted (it is audio by its magic), then
    // refused by the decoder.
    let mut corrupt = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00".to_vec();
    corrupt.extend_from_slice(&[0xEE; 16]);
    corrupt.extend_from_slice(b"data\x00\x10\x00\x00");
    corrupt.extend_from_slice(&[0x55; 4096]);
    let call = pb::Conversation {
        transcript: Vec::new(),
        diarization: Some(true),
        audio: Some(pb::Audio {
            source: Some(pb::audio::Source::InlineB64(data_encoding::BASE64.encode(&corrupt))),
        }),
        ..conversation("call-corrupt-audio")
    };
    let accepted = ingest
        .ingest_conversations(authed(ingest_request(&server, vec![call]), &key))
        .await
        .unwrap()
        .into_inner();
    let ingest_id = &accepted.conversations[0].ingest_id;
    let failed = wait_for_ingest(&mut ingest, &key, ingest_id, |status| {
        status.state == pb::IngestState::Dead as i32 || status.state == pb::IngestState::Done as i32
    })
    .await;
    assert_eq!(failed.state, pb::IngestState::Dead as i32, "{failed:?}");
    assert_eq!(failed.attempts, 1, "a permanent failure is not retried: {failed:?}");
    assert!(failed.error.starts_with("the audio cannot be transcribed: "), "{failed:?}");
    assert!(failed.datapoint_id.is_empty());
    server.stop().await;
}
