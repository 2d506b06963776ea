//! Hostile input over HTTP and gRPC against a real server (SQLite, or PostgreSQL when
//! EARSHOT_TEST_POSTGRES_URL is set): each is refused with a 4xx naming the field, nothing is
//! stored, and another organization's writes in the same moments go through.

use earshot_e2e::client::transcript_call as conversation;
use earshot_e2e::client::{
    authed, create_integration, http_exchange, http_request, violated_fields,
};
use earshot_e2e::in_process::TestServer;
use earshot_proto::v1 as pb;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;
use serde_json::{Value, json};

async fn ingest(
    server: &TestServer,
    key: &str,
    project_id: &str,
    conversations: Vec<pb::Conversation>,
    mut_id: &str,
) -> Result<pb::IngestConversationsResponse, tonic::Status> {
    IngestServiceClient::new(server.channel().await)
        .ingest_conversations(authed(
            pb::IngestConversationsRequest {
                project_id: project_id.to_owned(),
                conversations,
                mut_id: mut_id.to_owned(),
            },
            key,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// How many ingests the server's first project holds, in any state.
async fn stored_ingests(server: &TestServer) -> usize {
    IngestServiceClient::new(server.channel().await)
        .list_ingests(authed(
            pb::ListIngestsRequest {
                project_id: server.project_id.clone(),
                page_size: 100,
                ..Default::default()
            },
            &server.admin_key,
        ))
        .await
        .unwrap()
        .into_inner()
        .ingests
        .len()
}

/// The fields of a 422 from the JSON mirror, as dotted paths.
fn json_fields(body: &Value) -> Vec<String> {
    body["detail"]
        .as_array()
        .map(|detail| {
            detail
                .iter()
                .map(|problem| {
                    problem["loc"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|part| part.as_str().map_or_else(|| part.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn nul_bytes_long_ids_and_key_floods_are_refused_by_name_and_store_nothing() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    let project = server.project_id.clone();
    let other = server.app_domain.bootstrap(false).await.unwrap().unwrap();
    let (other_key, other_project) =
        (other.api_key_value.expose().to_owned(), other.project.id.to_string());

    // gRPC: NUL in a call id, a transcript, a tag, a metadata value; a 1 MB mut_id.
    let mut with_nul = vec![conversation("grpc\u{0}call"), conversation("grpc-2")];
    with_nul[1].transcript[0].content = "hi\u{0}".to_owned();
    with_nul.push(pb::Conversation { tags: vec!["t\u{0}".to_owned()], ..conversation("grpc-3") });
    let status = ingest(&server, &key, &project, with_nul, "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        [
            "conversations[0].call_id",
            "conversations[1].transcript[0].content",
            "conversations[2].tags[0]"
        ]
    );
    let status =
        ingest(&server, &key, &project, vec![conversation("m")], &"m".repeat(1 << 20)).await;
    assert_eq!(violated_fields(&status.unwrap_err()), ["mut_id"]);

    // JSON: NUL in metadata, 8,192 metadata keys.
    let headers = [("content-type", "application/json"), ("api-key", key.as_str())];
    let keys: serde_json::Map<String, Value> =
        (0..8192).map(|index| (format!("k{index}"), json!(1))).collect();
    let body = json!({"project_id": project, "conversations": [
        {"call_id": "json-1", "transcript": [{"role": "user", "content": "x"}], "metadata": {"note": "a\u{0}b"}},
        {"call_id": "json-2", "transcript": [{"role": "user", "content": "x"}], "metadata": keys},
    ]});
    let (status, refused) = http_request(
        &server,
        "POST",
        "/v0/conversations/ingest",
        &headers,
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        json_fields(&refused),
        ["body.conversations.0.metadata.note", "body.conversations.1.metadata"]
    );

    // A provider webhook: NUL in Bland's call id.
    let bland = create_integration(
        &server,
        pb::Provider::Bland,
        pb::WebhookAuthType::Unspecified,
        &[("webhook_secret", "bland-webhook-secret-01")],
        None,
    )
    .await;
    let body = json!({"call_id": "bland\u{0}1", "summary": "x"}).to_string().into_bytes();
    let signature = earshot_server::providers::bland::sign("bland-webhook-secret-01", &body);
    let (status, _, refused) = http_exchange(
        &server,
        "POST",
        &format!("/v0/voice/bland/monitor/{}", bland.public_id),
        &[("content-type", "application/json"), ("x-webhook-signature", &signature)],
        body,
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field_violations"][0]["field"], "call_id", "{refused}");

    assert_eq!(stored_ingests(&server).await, 0, "nothing refused was stored");
    // Another organization's calls went through meanwhile, and do now.
    let accepted = ingest(&server, &other_key, &other_project, vec![conversation("ok")], "").await;
    assert_eq!(accepted.unwrap().conversations.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_call_with_256_metadata_keys_is_stored_and_each_key_filters() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    let fields = (0..256)
        .map(|index| {
            let value = prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(format!("v{index}"))),
            };
            (format!("k{index}"), value)
        })
        .collect();
    let call = pb::Conversation {
        metadata: Some(prost_types::Struct { fields }),
        ..conversation("many-keys")
    };
    let accepted = ingest(&server, &key, &server.project_id, vec![call], "").await.unwrap();
    let mut client = IngestServiceClient::new(server.channel().await);
    let done = earshot_e2e::client::wait_for_ingest(
        &mut client,
        &key,
        &accepted.conversations[0].ingest_id,
        |status| {
            status.state == pb::IngestState::Done as i32
                || status.state == pb::IngestState::Dead as i32
        },
    )
    .await;
    assert_eq!(done.state, pb::IngestState::Done as i32, "{done:?}");
    server.stop().await;
}

#[tokio::test]
async fn find_datapoints_refuses_a_deep_offset_and_nul_text_by_name() {
    let server = TestServer::start().await;
    let headers = [("content-type", "application/json"), ("api-key", server.admin_key.as_str())];
    let body = json!({"project_id": server.project_id, "offset": 9_223_372_036_854_775_808u64});
    let (status, refused) = http_request(
        &server,
        "POST",
        "/v0/find_datapoints",
        &headers,
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(json_fields(&refused), ["body.offset"]);
    let body = json!({"project_id": server.project_id, "search_value": "\u{0}"});
    let (status, refused) = http_request(
        &server,
        "POST",
        "/v0/find_datapoints",
        &headers,
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!((status, json_fields(&refused)), (422, vec!["body.search_value".to_owned()]));
    server.stop().await;
}

/// An upper bound for an answer that needs no body, not a pause: a server that waited for the
/// body would wait forever, since none is sent.
const UNREAD_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request announcing a 60 MB body, of which nothing is sent, with a wrong key: answered 401
/// at once, from the headers, on every JSON route that takes a key.
#[tokio::test]
async fn a_wrong_key_is_refused_before_the_body_is_read_over_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    for path in ["/v0/conversations/ingest", "/v0/find_datapoints", "/v0/voice/vapi/monitor"] {
        let mut stream = tokio::net::TcpStream::connect(server.address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: earshot\r\ncontent-type: application/json\r\n\
             api-key: es_wrong\r\ncontent-length: 60000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 512];
        let read = tokio::time::timeout(UNREAD_BODY_TIMEOUT, stream.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer without the body"))
            .unwrap();
        let status_line =
            String::from_utf8_lossy(&answer[..read]).lines().next().map(str::to_owned);
        assert_eq!(status_line.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "{path}");
    }
    server.stop().await;
}

/// The same over gRPC: a call whose message never arrives, with a wrong key, gets
/// UNAUTHENTICATED in a trailers-only answer; health checks need no key.
#[tokio::test]
async fn a_wrong_key_is_refused_before_the_message_is_read_over_grpc() {
    use http_body_util::StreamBody;
    let server = TestServer::start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let never = futures_util::stream::pending::<
        Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
    >();
    let request = http::Request::post(format!(
        "{}/earshot.v1.IngestService/IngestConversations",
        server.url()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("api-key", "es_wrong")
    .body(StreamBody::new(never))
    .unwrap();
    let response = tokio::time::timeout(UNREAD_BODY_TIMEOUT, client.request(request))
        .await
        .expect("no answer without the message")
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "16", "{:?}", response.headers());
    assert_eq!(response.headers()["content-type"], "application/grpc");

    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(serving.into_inner().status, 1);
    server.stop().await;
}

/// Smaller holes, each closed: a CR/LF in a webhook path cannot forge a log line; an empty
/// api-key header does not hide a Bearer token; out-of-range gRPC timestamps and search text with
/// NUL are refused by name instead of turning a filter off; an upload's content type cannot carry
/// a line break; a URL with port 99999 is refused at once instead of retried.
#[tokio::test]
async fn smaller_holes_are_closed() {
    use earshot_proto::v1::datapoint_service_client::DatapointServiceClient;
    let logs = earshot_e2e::in_process::captured_logs();
    let server = TestServer::start().await;
    let key = server.admin_key.clone();

    let (status, _, _) = http_exchange(
        &server,
        "POST",
        "/v0/voice/bland/monitor/pub_x%0D%0AFORGED%20line",
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(!logs.text().contains("\nFORGED line"), "a CR/LF from the path reached the log raw");

    let bearer = format!("Bearer {key}");
    let (status, _) = http_request(
        &server,
        "GET",
        "/v0/projects",
        &[("api-key", ""), ("authorization", &bearer)],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 201);

    let datapoints = DatapointServiceClient::new(server.channel().await);
    let refused_fields = |request: pb::SearchDatapointsRequest| {
        let mut datapoints = datapoints.clone();
        let key = key.clone();
        let request =
            pb::SearchDatapointsRequest { project_id: server.project_id.clone(), ..request };
        async move {
            violated_fields(&datapoints.search_datapoints(authed(request, &key)).await.unwrap_err())
        }
    };
    let out_of_range = Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 });
    let cases = [
        (
            pb::SearchDatapointsRequest { start_time: out_of_range, ..Default::default() },
            "start_time",
        ),
        (
            pb::SearchDatapointsRequest { text_contains: "\u{0}".to_owned(), ..Default::default() },
            "text_contains",
        ),
        (
            pb::SearchDatapointsRequest {
                tags_any: (0..1000).map(|index| format!("t{index}")).collect(),
                ..Default::default()
            },
            "tags_any",
        ),
    ];
    for (request, field) in cases {
        assert_eq!(refused_fields(request).await, [field]);
    }
    let mut late = conversation("late");
    late.conversation_start_at = Some(prost_types::Timestamp { seconds: 0, nanos: -1 });
    let status = ingest(&server, &key, &server.project_id, vec![late], "").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["conversations[0].conversation_start_at"]);

    let upload = pb::UploadAudioRequest {
        part: Some(pb::upload_audio_request::Part::Metadata(pb::UploadAudioMetadata {
            project_id: server.project_id.clone(),
            content_type: "audio/wav\r\nx-forged: 1".to_owned(),
            ..Default::default()
        })),
    };
    let status = IngestServiceClient::new(server.channel().await)
        .upload_audio(authed(futures_util::stream::iter(vec![upload]), &key))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["metadata.content_type"]);

    let mut bad_port = conversation("port");
    bad_port.audio = Some(pb::Audio {
        source: Some(pb::audio::Source::Url("https://example.com:99999/a.wav".to_owned())),
    });
    let status = ingest(&server, &key, &server.project_id, vec![bad_port], "").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["conversations[0].audio.url"], "{status:?}");
    server.stop().await;
}

/// A message over the size limit is RESOURCE_EXHAUSTED and one nested too deep to decode is
/// INVALID_ARGUMENT: the caller's doing, not the server's (not OUT_OF_RANGE or INTERNAL).
#[tokio::test]
async fn undecodable_messages_are_the_callers_fault() {
    let server =
        TestServer::start_with_env(&[("EARSHOT_SERVER__MAX_GRPC_MESSAGE_BYTES", "4096")]).await;
    let key = server.admin_key.clone();
    let mut big = conversation("big");
    big.transcript[0].content = "x".repeat(8192);
    let status = ingest(&server, &key, &server.project_id, vec![big], "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    let mut deep = prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(1.0)) };
    for _ in 0..150 {
        deep = prost_types::Value {
            kind: Some(prost_types::value::Kind::ListValue(prost_types::ListValue {
                values: vec![deep],
            })),
        };
    }
    let nested = pb::Conversation {
        metadata: Some(prost_types::Struct { fields: [("deep".to_owned(), deep)].into() }),
        ..conversation("deep")
    };
    let status = ingest(&server, &key, &server.project_id, vec![nested], "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    server.stop().await;
}

/// The peak resident memory of a process, in kB (`VmHWM` of /proc/<pid>/status).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Eight anonymous clients each sending a 60 MB body to the JSON ingest route: the earshot
/// process answers each 401 from the headers, and its peak memory grows by far less than one
/// body (the issue measured 330 MB when bodies were read before the key was checked).
#[tokio::test]
async fn anonymous_bodies_cost_the_binary_no_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = earshot_e2e::process::ServerProcess::start(&[]).await;
    let pid = server.child.id().unwrap();
    let before = peak_rss_kb(pid);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let address = server.address;
        clients.spawn(async move {
            let stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            // The whole body is offered while the answer is awaited: a server that read bodies
            // before checking the key would take all of it first.
            let sender = tokio::spawn(async move {
                let head = "POST /v0/conversations/ingest HTTP/1.1\r\nhost: earshot\r\n\
                            content-type: application/json\r\napi-key: es_forged\r\n\
                            content-length: 60000000\r\n\r\n";
                writer.write_all(head.as_bytes()).await.unwrap();
                let chunk = vec![b' '; 1 << 20];
                for _ in 0..60 {
                    if writer.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                writer
            });
            let mut answer = vec![0u8; 256];
            let read = reader.read(&mut answer).await.unwrap_or(0);
            sender.abort();
            String::from_utf8_lossy(&answer[..read]).lines().next().map(str::to_owned)
        });
    }
    while let Some(answer) = clients.join_next().await {
        if let Some(status_line) = answer.unwrap() {
            assert_eq!(status_line, "HTTP/1.1 401 Unauthorized");
        }
    }
    let grown_mb = peak_rss_kb(pid).saturating_sub(before) / 1024;
    eprintln!("peak RSS grew by {grown_mb} MB for 8 anonymous 60 MB bodies");
    assert!(grown_mb < 60, "peak RSS grew by {grown_mb} MB");
    server.stop().await;
}
