//! The API over real gRPC and gRPC-web connections to a real server.

use std::collections::HashMap;

use earshot_proto::v1 as pb;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use earshot_proto::v1::project_service_client::ProjectServiceClient;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use earshot_e2e::client::{authed, bearer, violated_fields};
use earshot_e2e::in_process::{TestServer, captured_logs};

const TWILIO_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN_ROTATED: &str = "fedcba9876543210fedcba9876543210";

fn twilio_request(project_id: &str, token: &str) -> pb::CreateIntegrationRequest {
    pb::CreateIntegrationRequest {
        project_id: project_id.to_owned(),
        provider: pb::Provider::Twilio as i32,
        display_name: "Support line".to_owned(),
        webhook_auth_type: 0,
        secrets: HashMap::from([("auth_token".to_owned(), token.to_owned())]),
        options: Some(pb::IntegrationOptions {
            twilio: Some(pb::TwilioOptions {
                account_sid: "AC11111111111111111111111111111111".to_owned(),
                assistant_channel: 2,
            }),
            ..Default::default()
        }),
    }
}

/// Create, get, list, update, rotate, disable, enable and delete through one client.
async fn exercise_lifecycle<T>(client: &mut IntegrationServiceClient<T>, server: &TestServer)
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let key = &server.admin_key;
    let created = client
        .create_integration(authed(twilio_request(&server.project_id, TWILIO_TOKEN), key))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    assert_eq!(created.provider, pb::Provider::Twilio as i32);
    assert_eq!(created.webhook_auth_type, pb::WebhookAuthType::TwilioSignature as i32);
    assert_eq!(created.status, pb::IntegrationStatus::Active as i32);
    assert_eq!(created.display_name, "Support line");
    assert_eq!(
        created.webhook_url,
        format!("{}/v0/voice/twilio/monitor/{}", server.url(), created.public_id)
    );
    let summary = created.secret_summary.clone().unwrap();
    assert_eq!(summary.secret_names, ["auth_token"]);
    assert_eq!(summary.secrets[0].last4, "cdef");

    let fetched = client
        .get_integration(bearer(pb::GetIntegrationRequest { id: created.id.clone() }, key))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    assert_eq!(fetched, created);

    let listed = client
        .list_integrations(authed(
            pb::ListIntegrationsRequest {
                project_id: server.project_id.clone(),
                ..Default::default()
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.integrations.iter().any(|integration| integration.id == created.id));

    let updated = client
        .update_integration(authed(
            pb::UpdateIntegrationRequest {
                id: created.id.clone(),
                display_name: Some("Sales line".to_owned()),
                options: Some(pb::IntegrationOptions {
                    ip_allowlist: vec!["198.51.100.0/24".to_owned()],
                    rate_limit_per_minute: Some(60),
                    ..Default::default()
                }),
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    assert_eq!(updated.display_name, "Sales line");
    let options = updated.options.unwrap();
    assert_eq!(options.ip_allowlist, ["198.51.100.0/24"]);
    assert_eq!(options.rate_limit_per_minute, Some(60));

    let rotated = client
        .rotate_secrets(authed(
            pb::RotateSecretsRequest {
                id: created.id.clone(),
                secrets: HashMap::from([(
                    "auth_token".to_owned(),
                    TWILIO_TOKEN_ROTATED.to_owned(),
                )]),
                grace_period: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    let secrets = rotated.secret_summary.unwrap().secrets;
    assert_eq!(secrets.len(), 2);
    assert_eq!(
        (secrets[0].last4.as_str(), secrets[0].state),
        ("3210", pb::SecretState::Current as i32)
    );
    assert_eq!(
        (secrets[1].last4.as_str(), secrets[1].state),
        ("cdef", pb::SecretState::Previous as i32)
    );
    assert!(secrets[1].expire_time.is_some());

    for status in [pb::IntegrationStatus::Disabled, pb::IntegrationStatus::Active] {
        let changed = client
            .update_status(authed(
                pb::UpdateStatusRequest { id: created.id.clone(), status: status as i32 },
                key,
            ))
            .await
            .unwrap()
            .into_inner()
            .integration
            .unwrap();
        assert_eq!(changed.status, status as i32);
    }

    client
        .delete_integration(authed(pb::DeleteIntegrationRequest { id: created.id.clone() }, key))
        .await
        .unwrap();
    let gone = client
        .get_integration(authed(pb::GetIntegrationRequest { id: created.id.clone() }, key))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn integration_lifecycle_over_grpc() {
    let server = TestServer::start().await;
    let mut client = IntegrationServiceClient::new(server.channel().await);
    exercise_lifecycle(&mut client, &server).await;
    server.stop().await;
}

#[tokio::test]
async fn integration_lifecycle_over_grpc_web_on_http1() {
    let server = TestServer::start().await;
    // A plain HTTP/1.1 client, as a browser would use, speaking gRPC-web to the same port.
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let grpc_web =
        tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).service(http1);
    let mut client = IntegrationServiceClient::with_origin(grpc_web, server.url().parse().unwrap());
    exercise_lifecycle(&mut client, &server).await;
    server.stop().await;
}

#[tokio::test]
async fn health_reports_serving_and_rest_routes_share_the_port() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "earshot.v1.IntegrationService", "earshot.v1.IngestService"] {
        let response = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.to_owned() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status, ServingStatus::Serving as i32, "{service}");
    }

    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<String>();
    let get = |path: &str, key: Option<&str>| {
        let mut request = http::Request::get(format!("{}{path}", server.url()));
        if let Some(key) = key {
            request = request.header("api-key", key);
        }
        http1.request(request.body(String::new()).unwrap())
    };
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
    assert_eq!(get("/readyz", None).await.unwrap().status(), 200);
    let projects = get("/v0/projects", Some(&server.admin_key)).await.unwrap();
    assert_eq!(projects.status(), 201);
    let body = read_body(projects).await;
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed[0]["id"], server.project_id.as_str());
    assert_eq!(listed[0]["name"], "Default");
    assert_eq!(get("/v0/projects", Some("es_wrong")).await.unwrap().status(), 401);
    assert_eq!(get("/no/such/route", None).await.unwrap().status(), 404);

    // A browser's CORS preflight for gRPC-web.
    let preflight = http::Request::builder()
        .method("OPTIONS")
        .uri(format!("{}/earshot.v1.IntegrationService/ListIntegrations", server.url()))
        .header("origin", "https://dashboard.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web,api-key")
        .body(String::new())
        .unwrap();
    let response = http1.request(preflight).await.unwrap();
    assert!(response.status().is_success());
    let allowed = response.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
    assert!(allowed.contains("api-key") && allowed.contains("x-grpc-web"), "{allowed}");
    server.stop().await;
}

async fn read_body(response: http::Response<hyper::body::Incoming>) -> String {
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn authentication_scopes_and_errors() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut integrations = IntegrationServiceClient::new(channel.clone());
    let mut projects = ProjectServiceClient::new(channel.clone());

    let missing = integrations
        .list_integrations(pb::ListIntegrationsRequest {
            project_id: server.project_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("api-key"), "{}", missing.message());
    let wrong = integrations
        .list_integrations(authed(
            pb::ListIntegrationsRequest {
                project_id: server.project_id.clone(),
                ..Default::default()
            },
            "es_notakey",
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);

    let invalid = integrations
        .create_integration(authed(
            pb::CreateIntegrationRequest {
                secrets: HashMap::from([("auth_token".to_owned(), "short".to_owned())]),
                options: Some(pb::IntegrationOptions {
                    ip_allowlist: vec!["300.1.1.1".to_owned()],
                    ..Default::default()
                }),
                ..twilio_request(&server.project_id, TWILIO_TOKEN)
            },
            &server.admin_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&invalid), ["options.ip_allowlist[0]", "secrets[auth_token]"]);

    let no_provider = integrations
        .create_integration(authed(
            pb::CreateIntegrationRequest {
                provider: 0,
                ..twilio_request(&server.project_id, TWILIO_TOKEN)
            },
            &server.admin_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_provider), ["provider"]);
    let bad_id = integrations
        .get_integration(authed(
            pb::GetIntegrationRequest { id: "nope".to_owned() },
            &server.admin_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_id), ["id"]);

    // A read-only key can read but not change.
    let reader = projects
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                name: "dashboard".to_owned(),
                scopes: vec![pb::ApiKeyScope::Read as i32],
                project_id: String::new(),
            },
            &server.admin_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reader.secret.starts_with("es_"));
    let reader_key = reader.secret.clone();
    integrations
        .list_integrations(authed(
            pb::ListIntegrationsRequest {
                project_id: server.project_id.clone(),
                ..Default::default()
            },
            &reader_key,
        ))
        .await
        .unwrap();
    let denied = integrations
        .create_integration(authed(twilio_request(&server.project_id, TWILIO_TOKEN), &reader_key))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Listing keys never shows their values; a revoked key stops working at once.
    let listed = projects
        .list_api_keys(authed(pb::ListApiKeysRequest { include_revoked: false }, &server.admin_key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.api_keys.len(), 2);
    assert!(!format!("{listed:?}").contains(&reader_key));
    projects
        .revoke_api_key(authed(
            pb::RevokeApiKeyRequest { id: reader.api_key.unwrap().id },
            &server.admin_key,
        ))
        .await
        .unwrap();
    let revoked = integrations
        .list_integrations(authed(
            pb::ListIntegrationsRequest {
                project_id: server.project_id.clone(),
                ..Default::default()
            },
            &reader_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);

    // Ingest authenticates first, then validates the whole batch.
    let mut ingest = IngestServiceClient::new(channel);
    let unauthenticated =
        ingest.ingest_conversations(pb::IngestConversationsRequest::default()).await.unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    let empty = ingest
        .ingest_conversations(authed(
            pb::IngestConversationsRequest {
                project_id: server.project_id.clone(),
                ..Default::default()
            },
            &server.admin_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&empty), ["conversations"]);
    server.stop().await;
}

#[tokio::test]
async fn another_organization_gets_not_found_over_grpc() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut integrations = IntegrationServiceClient::new(channel.clone());
    let created = integrations
        .create_integration(authed(
            twilio_request(&server.project_id, TWILIO_TOKEN),
            &server.admin_key,
        ))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    let other = server.app_domain.bootstrap(false).await.unwrap().unwrap();
    let intruder = other.api_key_value.expose().to_owned();

    let codes = [
        integrations
            .get_integration(authed(
                pb::GetIntegrationRequest { id: created.id.clone() },
                &intruder,
            ))
            .await
            .map(drop),
        integrations
            .rotate_secrets(authed(
                pb::RotateSecretsRequest {
                    id: created.id.clone(),
                    secrets: HashMap::from([(
                        "auth_token".to_owned(),
                        TWILIO_TOKEN_ROTATED.to_owned(),
                    )]),
                    grace_period: None,
                },
                &intruder,
            ))
            .await
            .map(drop),
        integrations
            .update_status(authed(
                pb::UpdateStatusRequest {
                    id: created.id.clone(),
                    status: pb::IntegrationStatus::Disabled as i32,
                },
                &intruder,
            ))
            .await
            .map(drop),
        integrations
            .delete_integration(authed(
                pb::DeleteIntegrationRequest { id: created.id.clone() },
                &intruder,
            ))
            .await
            .map(drop),
        integrations
            .list_integrations(authed(
                pb::ListIntegrationsRequest {
                    project_id: server.project_id.clone(),
                    ..Default::default()
                },
                &intruder,
            ))
            .await
            .map(drop),
        integrations
            .create_integration(authed(twilio_request(&server.project_id, TWILIO_TOKEN), &intruder))
            .await
            .map(drop),
    ];
    for result in codes {
        assert_eq!(result.unwrap_err().code(), Code::NotFound);
    }
    let mut projects = ProjectServiceClient::new(channel);
    let visible = projects
        .list_projects(authed(pb::ListProjectsRequest {}, &intruder))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(visible.len(), 1);
    assert_ne!(visible[0].id, server.project_id);
    let still_there = integrations
        .get_integration(authed(pb::GetIntegrationRequest { id: created.id }, &server.admin_key))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    assert_eq!(still_there.status, pb::IntegrationStatus::Active as i32);
    server.stop().await;
}

/// Provider, auth type, secrets and options of one integration to create.
type LeakCase = (
    pb::Provider,
    pb::WebhookAuthType,
    Vec<(&'static str, &'static str)>,
    Option<pb::IntegrationOptions>,
);

#[tokio::test]
async fn no_secret_value_appears_in_responses_or_logs() {
    let logs = captured_logs();
    let server = TestServer::start().await;
    let mut client = IntegrationServiceClient::new(server.channel().await);
    let project_id = server.project_id.clone();
    // Distinct values used nowhere else, one per provider and auth type.
    let cases: Vec<LeakCase> = vec![
        (
            pb::Provider::Twilio,
            pb::WebhookAuthType::Unspecified,
            vec![("auth_token", "9a8b7c6d5e4f30211203f4e5d6c7b8a9")],
            None,
        ),
        (
            pb::Provider::Retell,
            pb::WebhookAuthType::Unspecified,
            vec![("api_key", "key_leakcheck_retell_0001")],
            None,
        ),
        (
            pb::Provider::Vapi,
            pb::WebhookAuthType::VapiSecret,
            vec![("secret", "leakcheck-vapi-secret-0002")],
            None,
        ),
        (
            pb::Provider::Vapi,
            pb::WebhookAuthType::HeaderToken,
            vec![("token", "leakcheck-vapi-token-0003")],
            Some(pb::IntegrationOptions {
                header_token: Some(pb::HeaderTokenOptions {
                    header_name: "api-key".into(),
                    bearer_prefix: false,
                }),
                ..Default::default()
            }),
        ),
        (
            pb::Provider::Elevenlabs,
            pb::WebhookAuthType::Unspecified,
            vec![("webhook_secret", "wsec_leakcheck_elevenlabs_0004")],
            None,
        ),
        (
            pb::Provider::Livekit,
            pb::WebhookAuthType::Unspecified,
            vec![("api_key", "APIleakcheck0005"), ("api_secret", "leakcheck-livekit-secret-0006")],
            None,
        ),
        (
            pb::Provider::Bland,
            pb::WebhookAuthType::Unspecified,
            vec![("webhook_secret", "leakcheck-bland-secret-0007")],
            None,
        ),
        (
            pb::Provider::Webhook,
            pb::WebhookAuthType::Unspecified,
            vec![("signing_secret", "whsec_bGVha2NoZWNrLXN0YW5kYXJkLXdlYmhvb2tzLTAwMDg=")],
            None,
        ),
        (
            pb::Provider::Voicekit,
            pb::WebhookAuthType::Unspecified,
            vec![("token", "leakcheck-voicekit-token-0009")],
            None,
        ),
        (
            pb::Provider::Bland,
            pb::WebhookAuthType::Hmac,
            vec![("secret", "leakcheck-hmac-secret-0010")],
            Some(pb::IntegrationOptions {
                hmac: Some(pb::HmacOptions {
                    signature_header: "X-Webhook-Signature".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        ),
    ];
    let mut secret_values: Vec<String> = Vec::new();
    let mut responses = String::new();
    for (provider, auth_type, secrets, options) in cases {
        secret_values.extend(secrets.iter().map(|(_, value)| (*value).to_owned()));
        let created = client
            .create_integration(authed(
                pb::CreateIntegrationRequest {
                    project_id: project_id.clone(),
                    provider: provider as i32,
                    display_name: String::new(),
                    webhook_auth_type: auth_type as i32,
                    secrets: secrets
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .collect(),
                    options,
                },
                &server.admin_key,
            ))
            .await
            .unwrap_or_else(|status| panic!("{provider:?}: {status:?}"))
            .into_inner();
        responses.push_str(&format!("{created:?}"));
        let id = created.integration.unwrap().id;
        let rotated_value = format!("{}-rotated", secrets[0].1);
        if provider == pb::Provider::Retell {
            secret_values.push(rotated_value.clone());
            let rotated = client
                .rotate_secrets(authed(
                    pb::RotateSecretsRequest {
                        id: id.clone(),
                        secrets: HashMap::from([("api_key".to_owned(), rotated_value)]),
                        grace_period: None,
                    },
                    &server.admin_key,
                ))
                .await
                .unwrap();
            responses.push_str(&format!("{rotated:?}"));
        }
        let fetched = client
            .get_integration(authed(pb::GetIntegrationRequest { id }, &server.admin_key))
            .await
            .unwrap();
        responses.push_str(&format!("{fetched:?}"));
    }
    // A rejected request must not echo its secret either.
    let rejected_value = "leakcheck-rejected-0011";
    secret_values.push(rejected_value.to_owned());
    let rejected = client
        .create_integration(authed(
            pb::CreateIntegrationRequest {
                secrets: HashMap::from([("auth_token".to_owned(), rejected_value.to_owned())]),
                ..twilio_request(&project_id, TWILIO_TOKEN)
            },
            &server.admin_key,
        ))
        .await
        .unwrap_err();
    responses.push_str(&format!("{rejected:?}"));
    let listed = client
        .list_integrations(authed(
            pb::ListIntegrationsRequest { project_id, ..Default::default() },
            &server.admin_key,
        ))
        .await
        .unwrap();
    responses.push_str(&format!("{listed:?}"));
    let admin_key = server.admin_key.clone();
    server.stop().await;

    let log_text = logs.text();
    assert!(
        log_text.contains("created integration"),
        "the capture must have seen this server's logs"
    );
    for value in &secret_values {
        assert!(!responses.contains(value.as_str()), "a response contains a secret value");
        assert!(!log_text.contains(value.as_str()), "a log line contains a secret value");
    }
    assert!(!log_text.contains(&admin_key), "a log line contains the API key");
}

#[tokio::test]
async fn shutdown_serves_in_flight_streams_until_they_end() {
    let mut server =
        TestServer::start_with_env(&[("EARSHOT_SERVER__SHUTDOWN_GRACE_SECONDS", "2")]).await;
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "earshot.v1.IngestService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    server.begin_shutdown();
    // The stream opened before the shutdown keeps being served: it learns the service stopped.
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // The server returns once the grace period ends the still-open stream.
    server.wait().await;
    assert!(tokio::net::TcpStream::connect(server.address).await.is_err());
}
