//! One realistic, correctly signed payload per provider, posted to a running server, becomes
//! one datapoint with the mapped fields; recordings come from a loopback host (allowed by the
//! test configuration) and are stored.

use earshot_proto::v1 as pb;
use serde_json::{Value, json};

use earshot_e2e::audio::wav;
use earshot_e2e::client::{create_integration, datapoint_of, http_request};
use earshot_e2e::in_process::TestServer;
use earshot_e2e::media::{serve_audio, silent_mp3};

async fn server() -> TestServer {
    TestServer::start_with_env(&[("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true")]).await
}

async fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    http_request(server, "POST", path, headers, body.to_vec()).await
}

fn turns(datapoint: &Value) -> Vec<(String, String, i64)> {
    datapoint["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|turn| {
            (
                turn["role"].as_str().unwrap().to_owned(),
                turn["content"].as_str().unwrap().to_owned(),
                turn["timestamp_ms"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn turn(role: &str, content: &str, at: i64) -> (String, String, i64) {
    (role.to_owned(), content.to_owned(), at)
}

#[tokio::test]
async fn vapi_reports_by_secret_header_and_by_api_key() {
    let recording = wav(2, 8_000, 500, 11);
    let media = serve_audio("/stereo.wav", recording.clone()).await;
    let server = server().await;
    let secret = "vapi-server-secret-0001";
    let integration = create_integration(
        &server,
        pb::Provider::Vapi,
        pb::WebhookAuthType::Unspecified,
        &[("secret", secret)],
        None,
    )
    .await;
    let path = format!("/v0/voice/vapi/monitor/{}", integration.public_id);
    let report = json!({"message": {
        "type": "end-of-call-report", "endedReason": "customer-ended-call",
        "startedAt": "2026-11-20T16:20:01.120Z", "endedAt": "2026-11-20T16:21:10.450Z",
        "cost": 0.0842,
        "call": {"id": "vapi-call-1", "type": "inboundPhoneCall", "assistantId": "asst_9f8e7d"},
        "customer": {"number": "+14155550100"}, "phoneNumber": {"number": "+14155550199"},
        "artifact": {
            "messages": [
                {"role": "system", "message": "You are Acme's receptionist.", "secondsFromStart": 0},
                {"role": "bot", "message": "Thanks for calling Acme.", "secondsFromStart": 1.36},
                {"role": "user", "message": "What are your hours?", "secondsFromStart": 4.98}
            ],
            "stereoRecordingUrl": format!("http://{media}/stereo.wav")
        },
        "analysis": {"summary": "Caller asked for opening hours.", "successEvaluation": "true"}
    }})
    .to_string();
    let json = ("content-type", "application/json");

    let (status, body) =
        post(&server, &path, &[json, ("x-vapi-secret", "wrong")], report.as_bytes()).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (401, Some("token_mismatch")));
    let update = br#"{"message":{"type":"status-update","status":"in-progress"}}"#;
    let (status, body) = post(&server, &path, &[json, ("x-vapi-secret", secret)], update).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    let (status, accepted) =
        post(&server, &path, &[json, ("x-vapi-secret", secret)], report.as_bytes()).await;
    assert_eq!((status, accepted["call_id"].as_str()), (202, Some("vapi-call-1")));

    let datapoint = datapoint_of(&server, &[&accepted["ingest_id"]], "vapi-call-1").await;
    assert_eq!(
        (datapoint["source"].as_str(), datapoint["provider"].as_str()),
        (Some("webhook"), Some("vapi"))
    );
    assert_eq!(
        turns(&datapoint),
        vec![
            turn("assistant", "Thanks for calling Acme.", 1360),
            turn("user", "What are your hours?", 4980)
        ]
    );
    assert_eq!(datapoint["input_datetime"], "2026-11-20T16:20:01.120+00:00");
    assert_eq!(datapoint["result"], "Caller asked for opening hours.");
    assert_eq!(datapoint["cost"], 0.0842);
    assert_eq!(datapoint["model_metadata"]["audio"]["size_bytes"], recording.len());
    assert_eq!(datapoint["model_metadata"]["audio"]["channels"], 2);

    // The API-key route: the project from ?project_id=, no integration needed.
    let keyed = format!("/v0/voice/vapi/monitor?project_id={}", server.project_id);
    let other = report.replace("vapi-call-1", "vapi-call-2");
    let (status, _) = post(&server, &keyed, &[json], other.as_bytes()).await;
    assert_eq!(status, 401);
    let (status, accepted) =
        post(&server, &keyed, &[json, ("api-key", &server.admin_key)], other.as_bytes()).await;
    assert_eq!((status, accepted["status"].as_str()), (202, Some("accepted")));
    let (status, body) =
        post(&server, &keyed, &[json, ("api-key", &server.admin_key)], update).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    let datapoint = datapoint_of(&server, &[&accepted["ingest_id"]], "vapi-call-2").await;
    assert_eq!(datapoint["provider"], "vapi");

    // Searching by integration finds the call its webhook delivered, not the other.
    let mut datapoints = earshot_proto::v1::datapoint_service_client::DatapointServiceClient::new(
        server.channel().await,
    );
    let found = datapoints
        .search_datapoints(earshot_e2e::client::authed(
            earshot_proto::v1::SearchDatapointsRequest {
                integration_id: integration.id.clone(),
                ..Default::default()
            },
            &server.admin_key,
        ))
        .await
        .unwrap()
        .into_inner()
        .datapoints;
    let found: Vec<(&str, &str)> =
        found.iter().map(|d| (d.call_id.as_str(), d.integration_id.as_str())).collect();
    assert_eq!(found, [("vapi-call-1", integration.id.as_str())]);
    server.stop().await;
}

#[tokio::test]
async fn elevenlabs_transcription_and_audio_merge_into_one_call() {
    let server = server().await;
    let secret = "wsec_elevenlabs_0123456789";
    let integration = create_integration(
        &server,
        pb::Provider::Elevenlabs,
        pb::WebhookAuthType::Unspecified,
        &[("webhook_secret", secret)],
        None,
    )
    .await;
    let path = format!("/v0/voice/elevenlabs/monitor/{}", integration.public_id);
    let send = |body: Vec<u8>| {
        let (server, path) = (&server, path.clone());
        async move {
            let now = chrono::Utc::now().timestamp().to_string();
            let signature = format!(
                "t={now},{}",
                earshot_server::providers::elevenlabs::sign(secret, &body, &now)
            );
            post(
                server,
                &path,
                &[("content-type", "application/json"), ("elevenlabs-signature", &signature)],
                &body,
            )
            .await
        }
    };
    let transcription = json!({
        "type": "post_call_transcription", "event_timestamp": 1_795_000_022,
        "data": {
            "agent_id": "agent_7101k0abc", "conversation_id": "conv_e2e_1", "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hi, how can I help?", "time_in_call_secs": 0},
                {"role": "user", "message": "What are your hours?", "time_in_call_secs": 3}
            ],
            "metadata": {"start_time_unix_secs": 1_795_000_000, "call_duration_secs": 22,
                         "cost": 296, "cost_fiat": 0.31},
            "analysis": {"call_successful": "success", "transcript_summary": "Caller asked for hours."}
        }
    });
    let (status, first) = send(transcription.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{first}");
    // The audio event: a whole MP3, base64, well over the 1 MiB default limit.
    let mp3 = silent_mp3(3_000);
    assert!(mp3.len() > 1 << 20);
    let audio = json!({
        "type": "post_call_audio", "event_timestamp": 1_795_000_030,
        "data": {"agent_id": "agent_7101k0abc", "conversation_id": "conv_e2e_1",
                 "full_audio": data_encoding::BASE64.encode(&mp3)}
    });
    let (status, second) = send(audio.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{second}");

    let datapoint =
        datapoint_of(&server, &[&first["ingest_id"], &second["ingest_id"]], "conv_e2e_1").await;
    assert_eq!(
        turns(&datapoint),
        vec![
            turn("assistant", "Hi, how can I help?", 0),
            turn("user", "What are your hours?", 3000)
        ]
    );
    assert_eq!(datapoint["result"], "Caller asked for hours.");
    assert_eq!(datapoint["cost"], 0.31);
    assert_eq!(datapoint["input_datetime"], "2026-11-18T11:06:40+00:00");
    assert_eq!(datapoint["model_metadata"]["audio"]["size_bytes"], mp3.len());
    assert_eq!(datapoint["model_metadata"]["audio"]["content_type"], "audio/mpeg");
    server.stop().await;
}

#[tokio::test]
async fn livekit_egress_and_room_finished_make_one_call_with_the_recording() {
    let recording = wav(1, 16_000, 400, 21);
    let media = serve_audio("/calls/RM_e2e.wav", recording.clone()).await;
    let server = server().await;
    let (api_key, api_secret) = ("APIe2eKey", "livekit-secret-with-enough-length-0001");
    let integration = create_integration(
        &server,
        pb::Provider::Livekit,
        pb::WebhookAuthType::Unspecified,
        &[("api_key", api_key), ("api_secret", api_secret)],
        None,
    )
    .await;
    let path = format!("/v0/voice/livekit/monitor/{}", integration.public_id);
    let send = |body: String, secret: &'static str| {
        let (server, path) = (&server, path.clone());
        async move {
            let token = earshot_server::providers::livekit::sign(
                api_key,
                secret,
                body.as_bytes(),
                chrono::Utc::now().timestamp(),
            );
            post(
                server,
                &path,
                &[("content-type", "application/webhook+json"), ("authorization", &token)],
                body.as_bytes(),
            )
            .await
        }
    };
    let egress = json!({
        "event": "egress_ended", "id": "EV_e2e_1", "createdAt": "1795000080",
        "egressInfo": {
            "egressId": "EG_e2e", "roomId": "RM_e2e", "roomName": "call-1", "status": "EGRESS_COMPLETE",
            "startedAt": "1795000000000000000", "endedAt": "1795000060000000000",
            "fileResults": [{"filename": "calls/RM_e2e.wav", "location": format!("http://{media}/calls/RM_e2e.wav")}]
        }
    })
    .to_string();
    let (status, body) = send(egress.clone(), "not-the-secret-but-long-enough-000").await;
    assert_eq!((status, body["error"]["reason"].as_str()), (401, Some("signature_mismatch")));
    let (status, first) = send(egress, api_secret).await;
    assert_eq!((status, first["call_id"].as_str()), (202, Some("RM_e2e")));
    let finished = json!({"event": "room_finished", "id": "EV_e2e_2", "createdAt": "1795000090",
        "room": {"sid": "RM_e2e", "name": "call-1", "creationTime": "1795000000"}})
    .to_string();
    let (status, second) = send(finished, api_secret).await;
    assert_eq!((status, second["call_id"].as_str()), (202, Some("RM_e2e")));
    let (status, body) = send(json!({"event": "participant_joined"}).to_string(), api_secret).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));

    let mut ingest =
        earshot_proto::v1::ingest_service_client::IngestServiceClient::new(server.channel().await);
    // No transcript: the recording is stored and waits for transcription.
    for id in [&first["ingest_id"], &second["ingest_id"]] {
        let status = earshot_e2e::client::wait_for_ingest(
            &mut ingest,
            &server.admin_key,
            id.as_str().unwrap(),
            |status| {
                status.state == pb::IngestState::AwaitingTranscription as i32
                    || status.state == pb::IngestState::Done as i32
                    || status.state == pb::IngestState::Failed as i32
            },
        )
        .await;
        assert_ne!(status.state, pb::IngestState::Failed as i32, "{status:?}");
    }
    let stored = earshot_e2e::audio_store(server.data_dir()).keys().await;
    let expected = earshot_server::crypto::sha256_hex(&recording);
    assert!(stored.iter().any(|file| file.ends_with(&expected)), "{stored:?}");

    // The JWT (a bearer credential naming the API key) is not kept with the delivery.
    let integration_id = integration.id.parse().unwrap();
    let page = server
        .app_domain
        .storage
        .list_webhook_deliveries(integration_id, None, None, 10)
        .await
        .unwrap();
    for delivery in page {
        let kept = server
            .app_domain
            .storage
            .get_webhook_delivery(integration_id, delivery.id)
            .await
            .unwrap()
            .unwrap();
        if let Some(request) = kept.request {
            assert!(
                request.headers.iter().all(|(name, _)| name != "authorization"),
                "{:?}",
                request.headers
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn bland_calls_are_verified_and_mapped() {
    let recording = wav(1, 8_000, 300, 31);
    let media = serve_audio("/recordings/bland.wav", recording.clone()).await;
    let server = server().await;
    let secret = "bland-webhook-secret-01";
    let integration = create_integration(
        &server,
        pb::Provider::Bland,
        pb::WebhookAuthType::Unspecified,
        &[("webhook_secret", secret)],
        None,
    )
    .await;
    let path = format!("/v0/voice/bland/monitor/{}", integration.public_id);
    let body = json!({
        "call_id": "bland-e2e-1", "call_length": 0.75, "corrected_duration": "45",
        "to": "+12223334444", "from": "+17163511654", "inbound": false, "completed": true,
        "started_at": "2026-11-20T23:51:25+00:00",
        "recording_url": format!("http://{media}/recordings/bland.wav"),
        "summary": "Customer booked three rooms.", "price": 0.068, "metadata": {"crm_id": "42"},
        "transcripts": [
            {"id": 1, "created_at": "2026-11-20T23:51:26.101+00:00", "text": "Hello?", "user": "user"},
            {"id": 2, "created_at": "2026-11-20T23:51:28.442+00:00", "text": "Hi there!", "user": "assistant"}
        ]
    })
    .to_string();
    let signature = earshot_server::providers::bland::sign(secret, body.as_bytes());
    let json = ("content-type", "application/json");
    let (status, _) =
        post(&server, &path, &[json, ("x-webhook-signature", "00ff")], body.as_bytes()).await;
    assert_eq!(status, 401);
    let (status, accepted) =
        post(&server, &path, &[json, ("x-webhook-signature", &signature)], body.as_bytes()).await;
    assert_eq!(status, 202, "{accepted}");
    let datapoint = datapoint_of(&server, &[&accepted["ingest_id"]], "bland-e2e-1").await;
    assert_eq!(
        turns(&datapoint),
        vec![turn("user", "Hello?", 1101), turn("assistant", "Hi there!", 3442)]
    );
    assert_eq!(datapoint["result"], "Customer booked three rooms.");
    assert_eq!(datapoint["cost"], 0.068);
    assert_eq!(datapoint["user_metadata"]["crm_id"], "42");
    assert_eq!(datapoint["model_metadata"]["audio"]["size_bytes"], recording.len());
    server.stop().await;
}

#[tokio::test]
async fn voicekit_envelopes_with_a_url_token_build_one_call() {
    let recording = wav(2, 8_000, 300, 41);
    let media = serve_audio("/vk/call.wav", recording.clone()).await;
    let server = server().await;
    let token = "vk-url-token-0123456789";
    let integration = create_integration(
        &server,
        pb::Provider::Voicekit,
        pb::WebhookAuthType::UrlToken,
        &[("token", token)],
        None,
    )
    .await;
    let path = format!("/v0/voice/voicekit/monitor/{}?token={token}", integration.public_id);
    let json = ("content-type", "application/json");
    let envelope = |event: &str, data: Value| {
        json!({"event": event, "timestamp": "2026-11-20T10:02:05Z", "data": data}).to_string()
    };
    let started = envelope("call_started", json!({"call_id": "vk-e2e"}));
    let wrong = format!("/v0/voice/voicekit/monitor/{}?token=guess", integration.public_id);
    let (status, body) = post(&server, &wrong, &[json], started.as_bytes()).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (401, Some("token_mismatch")));
    let (status, body) = post(&server, &path, &[json], started.as_bytes()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    let ended = envelope("call_ended", json!({"call_id": "vk-e2e", "duration": 125}));
    let (status, first) = post(&server, &path, &[json], ended.as_bytes()).await;
    assert_eq!(status, 202, "{first}");
    let finalized = envelope(
        "call_finalized",
        json!({
            "call_id": "vk-e2e", "started_at": "2026-11-20T10:00:00Z",
            "recording_url": format!("http://{media}/vk/call.wav"),
            "transcript": [
                {"role": "agent", "text": "Hi, this is Ava.", "start": 0.4},
                {"role": "customer", "text": "Hello.", "start": 2.1}
            ],
            "summary": "Greeting only.", "cost": 0.12
        }),
    );
    let (status, second) = post(&server, &path, &[json], finalized.as_bytes()).await;
    assert_eq!(status, 202, "{second}");
    let datapoint =
        datapoint_of(&server, &[&first["ingest_id"], &second["ingest_id"]], "vk-e2e").await;
    assert_eq!(
        turns(&datapoint),
        vec![turn("assistant", "Hi, this is Ava.", 400), turn("user", "Hello.", 2100)]
    );
    assert_eq!(datapoint["provider"], "voicekit");
    assert_eq!(datapoint["input_datetime"], "2026-11-20T10:00:00+00:00");
    assert_eq!(datapoint["result"], "Greeting only.");
    assert_eq!(datapoint["model_metadata"]["audio"]["size_bytes"], recording.len());
    server.stop().await;
}

#[tokio::test]
async fn standard_webhooks_and_hmac_senders_post_canonical_lead_and_completed_calls() {
    let server = server().await;
    let signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let standard = create_integration(
        &server,
        pb::Provider::Webhook,
        pb::WebhookAuthType::StandardWebhooks,
        &[("signing_secret", signing_secret)],
        None,
    )
    .await;
    let path = format!("/v0/voice/webhook/monitor/{}", standard.public_id);
    let send = |id: &'static str, body: String| {
        let (server, path) = (&server, path.clone());
        async move {
            let now = chrono::Utc::now().timestamp().to_string();
            let signature = format!(
                "v1,{}",
                earshot_server::providers::standard_webhooks::sign(
                    signing_secret,
                    id,
                    &now,
                    body.as_bytes(),
                )
                .unwrap()
            );
            post(
                server,
                &path,
                &[
                    ("content-type", "application/json"),
                    ("webhook-id", id),
                    ("webhook-timestamp", &now),
                    ("webhook-signature", &signature),
                ],
                body.as_bytes(),
            )
            .await
        }
    };
    let canonical = json!({
        "call_id": "std-canonical-1", "source_platform": "acme-dialer",
        "conversation_start_at": "2026-11-20T08:00:00Z",
        "transcript": [
            {"role": "assistant", "content": "Acme, how can I help?", "timestamp_ms": 0},
            {"role": "user", "content": "I need a refund.", "timestamp_ms": 1800}
        ],
        "tags": ["prod"], "metadata": {"queue": "billing"}
    });
    let (status, canonical_accepted) = send("msg_1", canonical.to_string()).await;
    assert_eq!(status, 202, "{canonical_accepted}");
    let invalid =
        json!({"call_id": "std-bad", "transcript": [{"role": "narrator", "content": "x"}]});
    let (status, body) = send("msg_2", invalid.to_string()).await;
    assert_eq!(
        (status, body["error"]["field_violations"][0]["field"].as_str()),
        (400, Some("transcript[0].role"))
    );
    let lead = json!({
        "event": {"id": "evt_91", "channel": "voice", "timestamp": "2026-11-20T09:30:00Z",
            "data": {"call_id": "lead-call-1", "direction": "outbound", "vapi_status": "ended",
                     "duration": 64, "cost": 0.31,
                     "transcription": "Agent: Hi Sam, it's Riley from Acme.\nLead: Oh hi.",
                     "summary": "Lead agreed to a demo.", "analysis_result": {"interested": true}}},
        "lead_id": "lead_5", "lead_contact": {"phone": "+14155550123"}, "business_id": "biz_2"
    });
    let (status, lead_accepted) = send("msg_3", lead.to_string()).await;
    assert_eq!(status, 202, "{lead_accepted}");

    let datapoint =
        datapoint_of(&server, &[&canonical_accepted["ingest_id"]], "std-canonical-1").await;
    assert_eq!(
        turns(&datapoint),
        vec![turn("assistant", "Acme, how can I help?", 0), turn("user", "I need a refund.", 1800)]
    );
    assert_eq!(
        (datapoint["source"].as_str(), datapoint["provider"].as_str()),
        (Some("webhook"), Some("acme-dialer"))
    );
    assert_eq!(datapoint["tags"], json!(["prod"]));
    let datapoint = datapoint_of(&server, &[&lead_accepted["ingest_id"]], "lead-call-1").await;
    assert_eq!(
        turns(&datapoint),
        vec![turn("assistant", "Hi Sam, it's Riley from Acme.", 0), turn("user", "Oh hi.", 0)]
    );
    assert_eq!(datapoint["cost"], 0.31);
    assert_eq!(datapoint["result"], "Lead agreed to a demo.");
    assert_eq!(datapoint["user_metadata"]["lead_id"], "lead_5");

    // A platform signing with its own header: X-VOICEOI-SIGNATURE, hex HMAC-SHA256 of the body.
    let hmac_options = pb::IntegrationOptions {
        hmac: Some(pb::HmacOptions {
            signature_header: "X-VOICEOI-SIGNATURE".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let custom = create_integration(
        &server,
        pb::Provider::Webhook,
        pb::WebhookAuthType::Hmac,
        &[("secret", "voiceoi-secret-123")],
        Some(hmac_options),
    )
    .await;
    let completed = json!({
        "event": "call.completed",
        "data": {"call_id": "voi-e2e-1", "duration": 42, "cost": 0.08, "sentiment": "neutral",
                 "started_at": "2026-11-20T11:00:00Z",
                 "transcript": "AI: Thanks for calling.\nCaller: Is the store open?"}
    })
    .to_string();
    let signature = data_encoding::HEXLOWER.encode(&{
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"voiceoi-secret-123").unwrap();
        mac.update(completed.as_bytes());
        mac.finalize().into_bytes()
    });
    let custom_path = format!("/v0/voice/webhook/monitor/{}", custom.public_id);
    let (status, accepted) = post(
        &server,
        &custom_path,
        &[("content-type", "application/json"), ("x-voiceoi-signature", &signature)],
        completed.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let datapoint = datapoint_of(&server, &[&accepted["ingest_id"]], "voi-e2e-1").await;
    assert_eq!(
        turns(&datapoint),
        vec![turn("assistant", "Thanks for calling.", 0), turn("user", "Is the store open?", 0)]
    );
    assert_eq!(datapoint["cost"], 0.08);
    assert_eq!(datapoint["input_datetime"], "2026-11-20T11:00:00+00:00");
    server.stop().await;
}
