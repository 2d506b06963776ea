//! Provider webhooks against a running server: signed the provider's way, admitted in order,
//! stored once, searchable with the mapped fields.

use earshot_proto::v1 as pb;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use serde_json::json;

use earshot_e2e::audio::wav;
use earshot_e2e::client::{authed, create_integration, http_request, wait_for_ingest};
use earshot_e2e::in_process::TestServer;
use earshot_e2e::media::serve_audio;

const RETELL_KEY: &str = "key_0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn retell_payload(event: &str, recording: &str) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut call = json!({
        "call_id": "call_webhook_1", "agent_id": "agent_d4e5f6", "call_type": "phone_call",
        "direction": "inbound", "from_number": "+14155550100", "to_number": "+14155550199",
        "start_timestamp": now - 21522, "end_timestamp": now, "duration_ms": 21522,
        "disconnection_reason": "user_hangup",
        "transcript_object": [
            {"role": "agent", "content": "hi how are you doing?",
             "words": [{"word": "hi", "start": 0.7, "end": 1.3}]},
            {"role": "user", "content": "Doing pretty well.",
             "words": [{"word": "Doing", "start": 3.3, "end": 3.6}]}
        ],
        "recording_multi_channel_url": recording,
        "call_cost": {"combined_cost": 12.4},
        "metadata": {"customer_id": "cust_123"}
    });
    if event == "call_analyzed" {
        call["call_analysis"] = json!({"call_summary": "Short greeting.", "user_sentiment": "Positive", "call_successful": true});
    }
    json!({"event": event, "call": call}).to_string().into_bytes()
}

fn retell_signature(body: &[u8], key: &str) -> String {
    let timestamp = chrono::Utc::now().timestamp_millis().to_string();
    format!("v={timestamp},d={}", earshot_server::providers::retell::sign(key, body, &timestamp))
}

#[tokio::test]
async fn retell_calls_are_admitted_in_order_and_stored_once() {
    let audio = wav(2, 8_000, 600, 3);
    let file_server = serve_audio("/recording.wav", audio.clone()).await;
    let server =
        TestServer::start_with_env(&[("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true")]).await;
    let integration = create_integration(
        &server,
        pb::Provider::Retell,
        pb::WebhookAuthType::Unspecified,
        &[("api_key", RETELL_KEY)],
        None,
    )
    .await;
    let path = format!("/v0/voice/retell/monitor/{}", integration.public_id);
    let recording = format!("http://{file_server}/recording.wav");
    let post = |body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let server = &server;
        let path = path.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
            http_request(server, "POST", &path, &headers, body).await
        }
    };
    let signed = |body: &[u8]| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("x-retell-signature", retell_signature(body, RETELL_KEY)),
        ]
    };

    // Unknown public id, and the right id under another provider: 404 alike.
    let ended = retell_payload("call_ended", &recording);
    let (status, unknown) = http_request(
        &server,
        "POST",
        "/v0/voice/retell/monitor/pub_unknown",
        &[("content-type", "application/json")],
        ended.clone(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, other) = http_request(
        &server,
        "POST",
        &format!("/v0/voice/vapi/monitor/{}", integration.public_id),
        &[("content-type", "application/json")],
        ended.clone(),
    )
    .await;
    assert_eq!((status, &other), (404, &unknown));
    // Wrong content type, oversized body.
    let (status, _) = post(ended.clone(), vec![("content-type", "text/plain".to_owned())]).await;
    assert_eq!(status, 415);
    let (status, _) = post(vec![b' '; (1 << 20) + 1], signed(b"")).await;
    assert_eq!(status, 413);
    // Missing, wrong and stale signatures: 401 with a reason and no secret material.
    let (status, missing) =
        post(ended.clone(), vec![("content-type", "application/json".to_owned())]).await;
    assert_eq!((status, missing["error"]["reason"].as_str()), (401, Some("missing_signature")));
    let (status, wrong) = post(ended.clone(), signed(b"another body")).await;
    assert_eq!((status, wrong["error"]["reason"].as_str()), (401, Some("signature_mismatch")));
    assert!(!wrong.to_string().contains(RETELL_KEY));
    let stale_at = (chrono::Utc::now().timestamp_millis() - 301_000).to_string();
    let stale = format!(
        "v={stale_at},d={}",
        earshot_server::providers::retell::sign(RETELL_KEY, &ended, &stale_at)
    );
    let (status, stale) = post(
        ended.clone(),
        vec![("content-type", "application/json".to_owned()), ("x-retell-signature", stale)],
    )
    .await;
    assert_eq!((status, stale["error"]["reason"].as_str()), (401, Some("stale_timestamp")));
    // Malformed payload (signed), non-final event.
    let malformed = br#"{"event":"call_ended","call":{"call_id":7}}"#.to_vec();
    let (status, body) = post(malformed.clone(), signed(&malformed)).await;
    assert_eq!(
        (status, body["error"]["field_violations"][0]["field"].as_str()),
        (400, Some("call.call_id"))
    );
    let started = br#"{"event":"call_started","call":{"call_id":"call_webhook_1"}}"#.to_vec();
    let (status, body) = post(started.clone(), signed(&started)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));

    // Nothing so far reached the queue.
    let mut ingest = IngestServiceClient::new(server.channel().await);
    let listed = ingest
        .list_ingests(authed(
            pb::ListIngestsRequest { project_id: server.project_id.clone(), ..Default::default() },
            &server.admin_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.ingests.is_empty(), "{listed:?}");

    // call_ended accepted; the same delivery again is a duplicate; call_analyzed enriches.
    let (status, accepted) = post(ended.clone(), signed(&ended)).await;
    assert_eq!(
        (status, accepted["status"].as_str(), accepted["call_id"].as_str()),
        (202, Some("accepted"), Some("call_webhook_1"))
    );
    let (status, duplicate) = post(ended.clone(), signed(&ended)).await;
    assert_eq!((status, duplicate["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(duplicate["ingest_id"], accepted["ingest_id"]);
    let analyzed = retell_payload("call_analyzed", &recording);
    let (status, enriched) = post(analyzed.clone(), signed(&analyzed)).await;
    assert_eq!(status, 202);
    for id in [&accepted["ingest_id"], &enriched["ingest_id"]] {
        wait_for_ingest(&mut ingest, &server.admin_key, id.as_str().unwrap(), |status| {
            status.state == pb::IngestState::Done as i32
        })
        .await;
    }

    let (status, found) = http_request(
        &server,
        "POST",
        "/v0/find_datapoints",
        &[("content-type", "application/json"), ("api-key", &server.admin_key)],
        json!({"project_id": server.project_id, "context_token": "call_webhook_1"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let datapoints = found.as_array().unwrap();
    assert_eq!(datapoints.len(), 1, "{found}");
    let datapoint = &datapoints[0];
    assert_eq!(datapoint["source"], "webhook");
    assert_eq!(datapoint["provider"], "retell");
    assert_eq!(
        datapoint["input"],
        json!([
            {"role": "assistant", "content": "hi how are you doing?", "timestamp_ms": 700, "end_ms": 1300},
            {"role": "user", "content": "Doing pretty well.", "timestamp_ms": 3300, "end_ms": 3600}
        ])
    );
    assert_eq!(datapoint["result"], "Short greeting.");
    assert_eq!(datapoint["cost"], 0.124);
    assert_eq!(datapoint["user_metadata"]["customer_id"], "cust_123");
    assert_eq!(datapoint["model_metadata"]["audio"]["size_bytes"], audio.len());
    assert_eq!(datapoint["model_metadata"]["audio"]["channels"], 2);

    // A disabled integration answers like an unknown one.
    IntegrationServiceClient::new(server.channel().await)
        .update_status(authed(
            pb::UpdateStatusRequest {
                id: integration.id.clone(),
                status: pb::IntegrationStatus::Disabled as i32,
            },
            &server.admin_key,
        ))
        .await
        .unwrap();
    let (status, disabled) = post(ended.clone(), signed(&ended)).await;
    assert_eq!((status, &disabled), (404, &unknown));
    server.stop().await;
}
