//! Admission rules over HTTP: the IP allowlist (with trusted proxies), the rate limit, rotation
//! grace, usage counters, and the delivery log with replay.

use earshot_proto::v1 as pb;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use serde_json::json;

use earshot_e2e::client::{
    authed, create_integration, datapoint_of, http_exchange, replay_delivery,
};
use earshot_e2e::in_process::TestServer;

const BLAND_SECRET: &str = "bland-webhook-secret-01";

fn bland_call(call_id: &str) -> Vec<u8> {
    json!({
        "call_id": call_id, "corrected_duration": "12", "started_at": "2026-11-20T23:51:25+00:00",
        "summary": "Short call.",
        "transcripts": [
            {"id": 1, "created_at": "2026-11-20T23:51:26+00:00", "text": "Hello?", "user": "user"}
        ]
    })
    .to_string()
    .into_bytes()
}

async fn post_bland(
    server: &TestServer,
    public_id: &str,
    secret: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> (u16, http::HeaderMap, serde_json::Value) {
    let signature = earshot_server::providers::bland::sign(secret, body);
    let mut headers =
        vec![("content-type", "application/json"), ("x-webhook-signature", signature.as_str())];
    headers.extend_from_slice(extra);
    http_exchange(
        server,
        "POST",
        &format!("/v0/voice/bland/monitor/{public_id}"),
        &headers,
        body.to_vec(),
    )
    .await
}

async fn list_deliveries(
    client: &mut IntegrationServiceClient<tonic::transport::Channel>,
    server: &TestServer,
    request: pb::ListWebhookDeliveriesRequest,
) -> pb::ListWebhookDeliveriesResponse {
    client.list_webhook_deliveries(authed(request, &server.admin_key)).await.unwrap().into_inner()
}

async fn bland_integration(
    server: &TestServer,
    options: Option<pb::IntegrationOptions>,
) -> pb::Integration {
    create_integration(
        server,
        pb::Provider::Bland,
        pb::WebhookAuthType::Unspecified,
        &[("webhook_secret", BLAND_SECRET)],
        options,
    )
    .await
}

#[tokio::test]
async fn allowlists_trust_forwarded_addresses_only_from_configured_proxies() {
    let server = TestServer::start().await;
    let elsewhere = bland_integration(
        &server,
        Some(pb::IntegrationOptions {
            ip_allowlist: vec!["203.0.113.0/24".to_owned()],
            ..Default::default()
        }),
    )
    .await;
    let body = bland_call("allow-1");
    // The test client connects from 127.0.0.1, which is not on the list; a forwarded address
    // means nothing from an untrusted peer.
    let (status, _, refused) =
        post_bland(&server, &elsewhere.public_id, BLAND_SECRET, &body, &[]).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("ip_not_allowed")));
    let (status, _, _) = post_bland(
        &server,
        &elsewhere.public_id,
        BLAND_SECRET,
        &body,
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(status, 403);
    let local = bland_integration(
        &server,
        Some(pb::IntegrationOptions {
            ip_allowlist: vec!["127.0.0.1".to_owned()],
            ..Default::default()
        }),
    )
    .await;
    let (status, _, _) = post_bland(&server, &local.public_id, BLAND_SECRET, &body, &[]).await;
    assert_eq!(status, 202);
    server.stop().await;

    // Behind a trusted proxy (here the loopback peer), the forwarded sender decides.
    let proxied =
        TestServer::start_with_env(&[("EARSHOT_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")])
            .await;
    let elsewhere = bland_integration(
        &proxied,
        Some(pb::IntegrationOptions {
            ip_allowlist: vec!["203.0.113.0/24".to_owned()],
            ..Default::default()
        }),
    )
    .await;
    let (status, _, _) = post_bland(
        &proxied,
        &elsewhere.public_id,
        BLAND_SECRET,
        &body,
        &[("x-forwarded-for", "198.51.100.4")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, accepted) = post_bland(
        &proxied,
        &elsewhere.public_id,
        BLAND_SECRET,
        &body,
        &[("x-forwarded-for", "192.0.2.1, 203.0.113.9")],
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    proxied.stop().await;
}

async fn get_integration(server: &TestServer, id: &str) -> pb::Integration {
    IntegrationServiceClient::new(server.channel().await)
        .get_integration(authed(pb::GetIntegrationRequest { id: id.to_owned() }, &server.admin_key))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap()
}

#[tokio::test]
async fn only_authenticated_requests_spend_the_rate_limit_and_429s_are_counted_not_logged() {
    let server = TestServer::start().await;
    let integration = bland_integration(
        &server,
        Some(pb::IntegrationOptions { rate_limit_per_minute: Some(2), ..Default::default() }),
    )
    .await;
    let public_id = &integration.public_id;
    // Forged posts (under the address's budget of failures) leave the budget alone...
    for attempt in 0..5 {
        let body = bland_call(&format!("forged-{attempt}"));
        let (status, _, _) = post_bland(&server, public_id, "wrong", &body, &[]).await;
        assert_eq!(status, 401);
    }
    // ...so the provider's genuine calls still pass, until they spend it themselves.
    for call_id in ["rate-1", "rate-2"] {
        let (status, _, _) =
            post_bland(&server, public_id, BLAND_SECRET, &bland_call(call_id), &[]).await;
        assert_eq!(status, 202, "{call_id}");
    }
    for _ in 0..3 {
        let (status, headers, limited) =
            post_bland(&server, public_id, BLAND_SECRET, &bland_call("rate-3"), &[]).await;
        assert_eq!((status, limited["error"]["code"].as_str()), (429, Some("rate_limited")));
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry_after), "{retry_after}");
    }
    // 429s are counted on the integration, not written as deliveries.
    let mut integrations = IntegrationServiceClient::new(server.channel().await);
    let request = pb::ListWebhookDeliveriesRequest {
        integration_id: integration.id.clone(),
        ..Default::default()
    };
    let listed = list_deliveries(&mut integrations, &server, request).await;
    let statuses: Vec<i32> =
        listed.deliveries.iter().map(|delivery| delivery.http_status).collect();
    assert_eq!(statuses, [202, 202, 401, 401, 401, 401, 401]);
    assert_eq!(get_integration(&server, &integration.id).await.rate_limited_count, 3);
    // Another integration has a budget of its own.
    let other = bland_integration(&server, None).await;
    let (status, _, _) =
        post_bland(&server, &other.public_id, BLAND_SECRET, &bland_call("rate-3"), &[]).await;
    assert_eq!(status, 202);
    server.stop().await;
}

#[tokio::test]
async fn an_address_past_its_failed_authentications_is_refused_unread_and_alone() {
    let server = TestServer::start_with_env(&[
        ("EARSHOT_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"),
        ("EARSHOT_INTEGRATIONS__UNAUTHENTICATED_PER_MINUTE_PER_ADDRESS", "3"),
    ])
    .await;
    let integration = bland_integration(&server, None).await;
    let public_id = &integration.public_id;
    let forger = [("x-forwarded-for", "198.51.100.66")];
    let provider = [("x-forwarded-for", "203.0.113.10")];
    let body = bland_call("flood-1");
    for _ in 0..3 {
        let (status, _, _) = post_bland(&server, public_id, "wrong", &body, &forger).await;
        assert_eq!(status, 401);
    }
    // Past its budget the address gets 429 before its body is read, signed or not...
    let (status, headers, _) = post_bland(&server, public_id, "wrong", &body, &forger).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = post_bland(&server, public_id, BLAND_SECRET, &body, &forger).await;
    assert_eq!(status, 429);
    // ...while the provider's own address is untouched.
    let (status, _, _) = post_bland(&server, public_id, BLAND_SECRET, &body, &provider).await;
    assert_eq!(status, 202);
    assert_eq!(get_integration(&server, &integration.id).await.rate_limited_count, 2);
    server.stop().await;
}

#[tokio::test]
async fn rotated_secrets_work_during_their_grace_period_and_fail_after() {
    let server = TestServer::start().await;
    let integration = bland_integration(&server, None).await;
    let mut integrations = IntegrationServiceClient::new(server.channel().await);
    let rotate = |secret: &str, grace_seconds: i64| {
        authed(
            pb::RotateSecretsRequest {
                id: integration.id.clone(),
                secrets: [("webhook_secret".to_owned(), secret.to_owned())].into(),
                grace_period: Some(prost_types::Duration { seconds: grace_seconds, nanos: 0 }),
            },
            &server.admin_key,
        )
    };
    let public_id = &integration.public_id;
    // First rotation with an hour of grace: both secrets pass.
    integrations.rotate_secrets(rotate("bland-second-secret-02", 3600)).await.unwrap();
    let (status, _, _) =
        post_bland(&server, public_id, BLAND_SECRET, &bland_call("grace-1"), &[]).await;
    assert_eq!(status, 202);
    let (status, _, _) =
        post_bland(&server, public_id, "bland-second-secret-02", &bland_call("grace-2"), &[]).await;
    assert_eq!(status, 202);
    // Second rotation with no grace: the replaced secret fails at once, the new one passes.
    integrations.rotate_secrets(rotate("bland-third-secret-03", 0)).await.unwrap();
    let (status, _, failed) =
        post_bland(&server, public_id, "bland-second-secret-02", &bland_call("grace-3"), &[]).await;
    assert_eq!((status, failed["error"]["reason"].as_str()), (401, Some("signature_mismatch")));
    let (status, _, _) =
        post_bland(&server, public_id, "bland-third-secret-03", &bland_call("grace-3"), &[]).await;
    assert_eq!(status, 202);
    server.stop().await;
}

#[tokio::test]
async fn deliveries_are_logged_counted_and_replayed_and_forged_bodies_are_never_kept() {
    let server = TestServer::start().await;
    let integration = bland_integration(&server, None).await;
    let public_id = &integration.public_id;
    let mut integrations = IntegrationServiceClient::new(server.channel().await);

    // The sender signs with a secret the integration does not have yet.
    let sender_secret = "bland-sender-real-secret";
    let body = bland_call("replay-1");
    let (status, _, _) = post_bland(&server, public_id, sender_secret, &body, &[]).await;
    assert_eq!(status, 401);
    let (status, _, _) = http_exchange(
        &server,
        "POST",
        &format!("/v0/voice/bland/monitor/{public_id}"),
        &[("content-type", "text/plain")],
        body.clone(),
    )
    .await;
    assert_eq!(status, 415);

    let listed = list_deliveries(
        &mut integrations,
        &server,
        pb::ListWebhookDeliveriesRequest {
            integration_id: integration.id.clone(),
            ..Default::default()
        },
    )
    .await;
    let summary: Vec<_> = listed
        .deliveries
        .iter()
        .map(|delivery| (delivery.http_status, delivery.error.as_str(), delivery.verdict))
        .collect();
    let rejected = pb::DeliveryVerdict::Rejected as i32;
    assert_eq!(
        summary,
        vec![(415, "unsupported_media_type", rejected), (401, "signature_mismatch", rejected)]
    );
    // A request that did not authenticate is known by its digest and verdict only: anyone who
    // sees a webhook URL could otherwise fill the disk.
    let refused = &listed.deliveries[1];
    assert!(!refused.replayable && !refused.authenticated);
    assert_eq!(refused.body_sha256, earshot_server::crypto::sha256_hex(&body));
    let status = replay_delivery(&server, &integration.id, &refused.id).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("unauthenticated requests are never stored"), "{status:?}");

    // Fix the secret; the sender's retry is accepted, and a replay of it is its duplicate.
    integrations
        .rotate_secrets(authed(
            pb::RotateSecretsRequest {
                id: integration.id.clone(),
                secrets: [("webhook_secret".to_owned(), sender_secret.to_owned())].into(),
                grace_period: Some(prost_types::Duration { seconds: 0, nanos: 0 }),
            },
            &server.admin_key,
        ))
        .await
        .unwrap();
    let (status, _, accepted_call) =
        post_bland(&server, public_id, sender_secret, &body, &[]).await;
    assert_eq!(status, 202, "{accepted_call}");
    let datapoint = datapoint_of(&server, &[&accepted_call["ingest_id"]], "replay-1").await;
    assert_eq!(datapoint["result"], "Short call.");
    let listed = list_deliveries(
        &mut integrations,
        &server,
        pb::ListWebhookDeliveriesRequest {
            integration_id: integration.id.clone(),
            verdict: pb::DeliveryVerdict::Accepted as i32,
            ..Default::default()
        },
    )
    .await;
    let original = &listed.deliveries[0];
    assert!(original.replayable && original.authenticated);
    let replayed = replay_delivery(&server, &integration.id, &original.id).await.unwrap();
    assert_eq!(
        (replayed.verdict, replayed.http_status, replayed.ingest_id.as_str()),
        (pb::DeliveryVerdict::Duplicate as i32, 200, accepted_call["ingest_id"].as_str().unwrap())
    );

    // Filters and paging.
    let accepted = list_deliveries(
        &mut integrations,
        &server,
        pb::ListWebhookDeliveriesRequest {
            integration_id: integration.id.clone(),
            verdict: pb::DeliveryVerdict::Accepted as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(accepted.deliveries.len(), 1);
    assert_eq!(accepted.deliveries[0].id, original.id);
    let first_page = list_deliveries(
        &mut integrations,
        &server,
        pb::ListWebhookDeliveriesRequest {
            integration_id: integration.id.clone(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    let second_page = list_deliveries(
        &mut integrations,
        &server,
        pb::ListWebhookDeliveriesRequest {
            integration_id: integration.id.clone(),
            page_size: 2,
            page_token: first_page.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first_page.deliveries.len() + second_page.deliveries.len(), 4);
    assert!(second_page.next_page_token.is_empty());

    // Usage: the three requests that reached the route, the last validation time.
    let counted = integrations
        .get_integration(authed(
            pb::GetIntegrationRequest { id: integration.id.clone() },
            &server.admin_key,
        ))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    assert_eq!(counted.request_count, 3);
    assert!(counted.last_used_time.is_some() && counted.last_validated_time.is_some());
    server.stop().await;
}
