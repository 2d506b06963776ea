//! Requests to a running server: API keys on gRPC calls, polling an ingest, streaming audio
//! back, plain HTTP to the REST routes, integrations, and the datapoint of a call.

use earshot_proto::v1 as pb;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use tonic::transport::Channel;

use crate::Server;

/// A call with `call_id` and a one-turn transcript: the smallest conversation the APIs take.
pub fn transcript_call(call_id: &str) -> pb::Conversation {
    pb::Conversation {
        call_id: call_id.to_owned(),
        transcript: vec![pb::Turn {
            role: pb::Role::User as i32,
            content: "Hello".to_owned(),
            timestamp_ms: 0,
            end_ms: None,
        }],
        ..Default::default()
    }
}

/// A batch of `conversations` for the server's project.
pub fn ingest_request(
    server: &impl Server,
    conversations: Vec<pb::Conversation>,
) -> pb::IngestConversationsRequest {
    pb::IngestConversationsRequest {
        project_id: server.project_id().to_owned(),
        conversations,
        mut_id: String::new(),
    }
}

/// A request carrying an API key in the `api-key` metadata.
pub fn authed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("api-key", key.parse().unwrap());
    request
}

/// A request carrying an API key as `authorization: Bearer`.
pub fn bearer<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// Field names of the `google.rpc.BadRequest` details of a status.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|details| {
            details.field_violations.into_iter().map(|violation| violation.field).collect()
        })
        .unwrap_or_default()
}

/// Polls an ingest until `done` says so; fails after 180 s (a bound, not a pause: the Twilio
/// recording test, transcription included, takes about 26 s alone on a quiet 2-core machine,
/// and CI's are not quiet).
pub async fn wait_for_ingest(
    client: &mut earshot_proto::v1::ingest_service_client::IngestServiceClient<Channel>,
    key: &str,
    ingest_id: &str,
    done: impl Fn(&earshot_proto::v1::IngestStatus) -> bool,
) -> earshot_proto::v1::IngestStatus {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let status = client
            .get_ingest_status(authed(
                earshot_proto::v1::GetIngestStatusRequest { ingest_id: ingest_id.to_owned() },
                key,
            ))
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        if done(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "ingest {ingest_id} stuck in {status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Plain HTTP/1.1 requests to the server's REST routes.
pub async fn http_request(
    server: &impl Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let (status, _, json) = http_exchange(server, method, path, headers, body).await;
    (status, json)
}

/// Like `http_request`, with the response headers.
pub async fn http_exchange(
    server: &impl Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, serde_json::Value) {
    try_http_exchange(&server.url(), method, path, headers, body).await.unwrap()
}

/// Like `http_exchange`, to the server at `url`, with the failure of a request that got no
/// whole answer (a server killed while it is in flight) returned instead of panicking.
pub async fn try_http_exchange(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, http::HeaderMap, serde_json::Value), String> {
    let (status, headers, bytes) = try_http_raw(url, method, path, headers, body).await?;
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, headers, json))
}

/// Like `try_http_exchange`, with the body as it came (JSON Lines, audio).
pub async fn try_http_raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, http::HeaderMap, bytes::Bytes), String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = http::Request::builder().method(method).uri(format!("{url}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(http_body_util::Full::new(bytes::Bytes::from(body))).unwrap())
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.map_err(|error| error.to_string())?.to_bytes();
    Ok((status, headers, bytes))
}

/// Streams a datapoint's audio; returns its info (which must come first) and its bytes.
pub async fn download_audio(
    client: &mut earshot_proto::v1::datapoint_service_client::DatapointServiceClient<Channel>,
    key: &str,
    datapoint_id: &str,
) -> (earshot_proto::v1::AudioInfo, Vec<u8>) {
    use earshot_proto::v1::get_datapoint_audio_response::Part;
    let mut stream = client
        .get_datapoint_audio(authed(
            earshot_proto::v1::GetDatapointAudioRequest { datapoint_id: datapoint_id.to_owned() },
            key,
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(Part::Info(info)) = stream.message().await.unwrap().and_then(|message| message.part)
    else {
        panic!("the first message carries the audio info");
    };
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        match message.part {
            Some(Part::Chunk(chunk)) => bytes.extend_from_slice(&chunk),
            other => panic!("only chunks follow the info, got {other:?}"),
        }
    }
    (info, bytes)
}

/// Creates an integration in the server's project with the admin key.
pub async fn create_integration(
    server: &impl Server,
    provider: pb::Provider,
    auth_type: pb::WebhookAuthType,
    secrets: &[(&str, &str)],
    options: Option<pb::IntegrationOptions>,
) -> pb::Integration {
    IntegrationServiceClient::new(server.channel().await)
        .create_integration(authed(
            pb::CreateIntegrationRequest {
                project_id: server.project_id().to_owned(),
                provider: provider as i32,
                webhook_auth_type: auth_type as i32,
                secrets: secrets
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect(),
                options,
                ..Default::default()
            },
            server.admin_key(),
        ))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap()
}

/// Replays delivery `delivery_id` of integration `integration_id` with the admin key: the
/// delivery the replay recorded, or the refusal.
pub async fn replay_delivery(
    server: &impl Server,
    integration_id: &str,
    delivery_id: &str,
) -> Result<pb::WebhookDelivery, tonic::Status> {
    let request = pb::ReplayWebhookDeliveryRequest {
        integration_id: integration_id.to_owned(),
        delivery_id: delivery_id.to_owned(),
    };
    let mut client = IntegrationServiceClient::new(server.channel().await);
    let replayed = client.replay_webhook_delivery(authed(request, server.admin_key())).await?;
    Ok(replayed.into_inner().delivery.unwrap_or_default())
}

/// Waits until every ingest of `ingest_ids` is done, then returns the one datapoint whose
/// context token is `call_id` (in the JSON shape of /v0/find_datapoints).
pub async fn datapoint_of(
    server: &impl Server,
    ingest_ids: &[&serde_json::Value],
    call_id: &str,
) -> serde_json::Value {
    let mut ingest = IngestServiceClient::new(server.channel().await);
    for id in ingest_ids {
        let done =
            wait_for_ingest(&mut ingest, server.admin_key(), id.as_str().unwrap(), |status| {
                status.state == pb::IngestState::Done as i32
                    || status.state == pb::IngestState::Failed as i32
                    || status.state == pb::IngestState::Dead as i32
            })
            .await;
        assert_eq!(done.state, pb::IngestState::Done as i32, "{done:?}");
    }
    let (status, found) = http_request(
        server,
        "POST",
        "/v0/find_datapoints",
        &[("content-type", "application/json"), ("api-key", server.admin_key())],
        serde_json::json!({"project_id": server.project_id(), "context_token": call_id})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let datapoints = found.as_array().unwrap();
    assert_eq!(datapoints.len(), 1, "{found}");
    datapoints[0].clone()
}

/// `GET /metrics` as a loopback peer reads it (no token needed): the exposition text.
pub async fn metrics_text(server: &impl Server) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: earshot\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// The value of the sample `series` (name and labels exactly as exposed) in a metrics text.
pub fn metrics_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
