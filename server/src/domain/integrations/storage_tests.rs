//! Integration rules over a real database (in-memory SQLite; Postgres when
//! EARSHOT_TEST_POSTGRES_URL is set), with a clock the tests move.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::crypto::{Keyring, MasterKey};
use crate::domain::Domain;
use crate::domain::auth::NewApiKey;
use crate::model::integrations::TwilioOptions;

const TOKEN_A: &str = "0123456789abcdef0123456789abcdef";
const TOKEN_B: &str = "fedcba9876543210fedcba9876543210";
const TOKEN_C: &str = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb";

struct Fixture {
    domain: Domain,
    _audio_dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    admin: Principal,
    project_id: Uuid,
}

async fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()));
    let (domain, audio_dir) = crate::domain::test_support::domain(clock.clone()).await;
    let bootstrap = domain.bootstrap(false).await.unwrap().unwrap();
    let admin = domain.authenticate(bootstrap.api_key_value.expose()).await.unwrap();
    Fixture { domain, _audio_dir: audio_dir, clock, admin, project_id: bootstrap.project.id }
}

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretValue> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), SecretValue::new(*value))).collect()
}

fn twilio(project_id: Uuid, token: &str) -> NewIntegration {
    NewIntegration {
        project_id,
        provider: Some(Provider::Twilio),
        display_name: String::new(),
        auth_type: None,
        secrets: secrets(&[("auth_token", token)]),
        options: IntegrationOptions::default(),
    }
}

fn tokens(sets: &[SecretSet]) -> Vec<String> {
    sets.iter().map(|set| set.get("auth_token").unwrap().expose().to_owned()).collect()
}

#[tokio::test]
async fn create_seals_secrets_and_summarizes_them() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    assert_eq!(integration.auth_type, WebhookAuthType::TwilioSignature);
    assert_eq!(integration.status, IntegrationStatus::Active);
    assert_eq!(integration.display_name, "twilio integration");
    assert!(integration.public_id.starts_with("pub_"));
    assert_eq!(integration.secrets.len(), 1);
    assert_eq!(integration.secrets[0].last4, "cdef");
    assert!(!format!("{integration:?}").contains(TOKEN_A));
    assert_eq!(
        domain.webhook_url(&integration),
        format!("https://hooks.example.com/v0/voice/twilio/monitor/{}", integration.public_id)
    );
    // What storage holds is ciphertext, not the token.
    let stored = domain.storage.list_integration_secrets(integration.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0]
            .sealed
            .ciphertext
            .windows(TOKEN_A.len())
            .any(|window| window == TOKEN_A.as_bytes())
    );
    assert_eq!(tokens(&domain.verification_secrets(integration.id).await.unwrap()), [TOKEN_A]);
}

#[tokio::test]
async fn rotation_grace_is_honoured() {
    let Fixture { domain, clock, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();

    let rotated = domain
        .rotate_secrets(
            &admin,
            integration.id,
            secrets(&[("auth_token", TOKEN_B)]),
            Some(Duration::hours(2)),
        )
        .await
        .unwrap();
    assert_eq!(rotated.secrets.len(), 2);
    assert_eq!(rotated.secrets[0].expires_at, None);
    assert_eq!(rotated.secrets[1].expires_at, Some(clock.now() + Duration::hours(2)));
    // Before the deadline: the new secret first, the old one still valid.
    assert_eq!(
        tokens(&domain.verification_secrets(integration.id).await.unwrap()),
        [TOKEN_B, TOKEN_A]
    );

    clock.advance(Duration::hours(2) - Duration::seconds(1));
    assert_eq!(
        tokens(&domain.verification_secrets(integration.id).await.unwrap()),
        [TOKEN_B, TOKEN_A]
    );

    // At and after the deadline: only the new secret.
    clock.advance(Duration::seconds(1));
    assert_eq!(tokens(&domain.verification_secrets(integration.id).await.unwrap()), [TOKEN_B]);
    let after = domain.get_integration(&admin, integration.id).await.unwrap();
    assert_eq!(after.secrets.len(), 1, "expired secrets leave the summary");
}

#[tokio::test]
async fn rotation_defaults_bounds_and_previous_limit() {
    let Fixture { domain, clock, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();

    let rotated = domain
        .rotate_secrets(&admin, integration.id, secrets(&[("auth_token", TOKEN_B)]), None)
        .await
        .unwrap();
    assert_eq!(
        rotated.secrets[1].expires_at,
        Some(clock.now() + Duration::hours(24)),
        "default grace is 24 h"
    );

    let too_long = domain
        .rotate_secrets(
            &admin,
            integration.id,
            secrets(&[("auth_token", TOKEN_C)]),
            Some(Duration::days(8)),
        )
        .await
        .unwrap_err();
    assert_eq!(too_long.field_violations()[0].field, "grace_period");
    let bad_secret = domain
        .rotate_secrets(&admin, integration.id, secrets(&[("auth_token", "nothex")]), None)
        .await
        .unwrap_err();
    assert_eq!(bad_secret.field_violations()[0].field, "secrets[auth_token]");

    // Zero grace ends the replaced secret at once.
    domain
        .rotate_secrets(
            &admin,
            integration.id,
            secrets(&[("auth_token", TOKEN_C)]),
            Some(Duration::zero()),
        )
        .await
        .unwrap();
    assert_eq!(
        tokens(&domain.verification_secrets(integration.id).await.unwrap()),
        [TOKEN_C, TOKEN_A]
    );

    // Many rotations keep at most five previous sets.
    for round in 0..8u8 {
        let token = format!("{:032x}", u128::from(round) + 1);
        clock.advance(Duration::minutes(1));
        domain
            .rotate_secrets(&admin, integration.id, secrets(&[("auth_token", &token)]), None)
            .await
            .unwrap();
    }
    let sets = domain.verification_secrets(integration.id).await.unwrap();
    assert_eq!(sets.len(), 1 + MAX_PREVIOUS_SECRET_SETS);
    assert_eq!(sets[0].get("auth_token").unwrap().expose(), format!("{:032x}", 8));
    assert_eq!(domain.storage.list_integration_secrets(integration.id).await.unwrap().len(), 6);
}

#[tokio::test]
async fn master_key_rotation_keeps_every_integration_usable() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let mut expected = Vec::new();
    for token in [TOKEN_A, TOKEN_B] {
        let integration =
            domain.create_integration(&admin, twilio(project_id, token)).await.unwrap();
        expected.push((integration.id, vec![token.to_owned()]));
    }
    let livekit = domain
        .create_integration(
            &admin,
            NewIntegration {
                provider: Some(Provider::Livekit),
                secrets: secrets(&[("api_key", "APIxyz"), ("api_secret", "livekit-secret-value")]),
                ..twilio(project_id, TOKEN_A)
            },
        )
        .await
        .unwrap();
    domain
        .rotate_secrets(&admin, expected[0].0, secrets(&[("auth_token", TOKEN_C)]), None)
        .await
        .unwrap();
    expected[0].1.insert(0, TOKEN_C.to_owned());

    // An event endpoint's secrets (two during a rotation) and headers are re-sealed too.
    let endpoint = crate::domain::events::EndpointInput {
        url: "https://1.1.1.1/hooks".into(),
        headers: [("x-token".to_owned(), "tok_9".to_owned())].into(),
        ..Default::default()
    };
    let (endpoint, first) = domain.create_event_endpoint(&admin, endpoint).await.unwrap();
    let (_, second) = domain.rotate_event_endpoint_secret(&admin, endpoint.id, None).await.unwrap();

    let new_keyring = Keyring::new(MasterKey::generate(), Vec::new());
    let resealed =
        reseal_all_secrets(&domain.storage, &domain.keyring, &new_keyring).await.unwrap();
    assert_eq!(resealed, 2 + 1 + 2 + (2 + 1));

    // Only the new key is needed from now on.
    let rotated = Domain { keyring: Arc::new(new_keyring.clone()), ..domain.clone() };
    for (id, tokens_expected) in &expected {
        assert_eq!(&tokens(&rotated.verification_secrets(*id).await.unwrap()), tokens_expected);
    }
    let sets = rotated.verification_secrets(livekit.id).await.unwrap();
    assert_eq!(sets[0].get("api_secret").unwrap().expose(), "livekit-secret-value");
    for stored in rotated.storage.list_integration_secrets(expected[0].0).await.unwrap() {
        assert_eq!(stored.sealed.key_id, new_keyring.current().id());
    }
    let sealed =
        rotated.storage.event_endpoint(admin.organization_id, endpoint.id).await.unwrap().unwrap();
    let (signing, headers) = rotated.open_endpoint(&sealed).unwrap();
    assert_eq!(signing, [second, first]);
    assert_eq!(headers.get("x-token").map(String::as_str), Some("tok_9"));
    // The old key alone no longer opens them.
    let error = domain.verification_secrets(expected[0].0).await.unwrap_err();
    assert_eq!(error.code(), crate::ErrorCode::Internal);
    assert!(domain.open_endpoint(&sealed).is_err());
}

#[tokio::test]
async fn a_failed_reseal_changes_nothing() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    domain.create_integration(&admin, twilio(project_id, TOKEN_B)).await.unwrap();
    let wrong_old = Keyring::new(MasterKey::generate(), Vec::new());
    let new_keyring = Keyring::new(MasterKey::generate(), Vec::new());
    assert!(reseal_all_secrets(&domain.storage, &wrong_old, &new_keyring).await.is_err());
    assert_eq!(tokens(&domain.verification_secrets(integration.id).await.unwrap()), [TOKEN_A]);
}

#[tokio::test]
async fn another_organization_sees_nothing() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    let other = domain.bootstrap(false).await.unwrap().unwrap();
    let intruder = domain.authenticate(other.api_key_value.expose()).await.unwrap();

    let not_found = |result: crate::error::Result<Integration>| {
        assert_eq!(result.unwrap_err().code(), crate::ErrorCode::NotFound);
    };
    not_found(domain.get_integration(&intruder, integration.id).await);
    not_found(
        domain.update_integration(&intruder, integration.id, IntegrationUpdate::default()).await,
    );
    not_found(
        domain
            .rotate_secrets(&intruder, integration.id, secrets(&[("auth_token", TOKEN_B)]), None)
            .await,
    );
    not_found(
        domain.set_integration_status(&intruder, integration.id, IntegrationStatus::Disabled).await,
    );
    assert_eq!(
        domain.delete_integration(&intruder, integration.id).await.unwrap_err().code(),
        crate::ErrorCode::NotFound
    );
    assert_eq!(
        domain.list_integrations(&intruder, project_id, None, 0, "").await.unwrap_err().code(),
        crate::ErrorCode::NotFound
    );
    assert_eq!(
        domain.create_integration(&intruder, twilio(project_id, TOKEN_B)).await.unwrap_err().code(),
        crate::ErrorCode::NotFound
    );
    // The owner's view is unchanged.
    let unchanged = domain.get_integration(&admin, integration.id).await.unwrap();
    assert_eq!(unchanged.status, IntegrationStatus::Active);
    assert_eq!(tokens(&domain.verification_secrets(integration.id).await.unwrap()), [TOKEN_A]);
}

#[tokio::test]
async fn scopes_and_project_restriction_are_enforced() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    let other_project = domain.create_project(&admin, "Second").await.unwrap();

    let reader = domain
        .create_api_key(
            &admin,
            NewApiKey { name: "reader".into(), scopes: vec![Scope::Read], project_id: None },
        )
        .await
        .unwrap();
    let reader = domain.authenticate(reader.value.expose()).await.unwrap();
    assert!(domain.get_integration(&reader, integration.id).await.is_ok());
    let denied = domain.create_integration(&reader, twilio(project_id, TOKEN_B)).await.unwrap_err();
    assert_eq!(denied.code(), crate::ErrorCode::PermissionDenied);

    let restricted = domain
        .create_api_key(
            &admin,
            NewApiKey {
                name: "second only".into(),
                scopes: vec![Scope::Admin],
                project_id: Some(other_project.id),
            },
        )
        .await
        .unwrap();
    let restricted_principal = domain.authenticate(restricted.value.expose()).await.unwrap();
    assert_eq!(
        domain.get_integration(&restricted_principal, integration.id).await.unwrap_err().code(),
        crate::ErrorCode::NotFound
    );
    let projects = domain.list_projects(&restricted_principal).await.unwrap();
    assert_eq!(projects.iter().map(|project| project.id).collect::<Vec<_>>(), [other_project.id]);

    domain.revoke_api_key(&admin, restricted.record.id).await.unwrap();
    let revoked = domain.authenticate(restricted.value.expose()).await.unwrap_err();
    assert_eq!(revoked.code(), crate::ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn delete_removes_the_ciphertexts() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    domain
        .rotate_secrets(&admin, integration.id, secrets(&[("auth_token", TOKEN_B)]), None)
        .await
        .unwrap();
    assert_eq!(domain.storage.list_integration_secrets(integration.id).await.unwrap().len(), 2);
    domain.delete_integration(&admin, integration.id).await.unwrap();
    assert!(domain.storage.list_integration_secrets(integration.id).await.unwrap().is_empty());
    assert!(domain.integration_by_public_id(&integration.public_id).await.unwrap().is_none());
    assert_eq!(
        domain.get_integration(&admin, integration.id).await.unwrap_err().code(),
        crate::ErrorCode::NotFound
    );
}

#[tokio::test]
async fn options_are_checked_per_provider_and_auth_type() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let fields = |error: crate::Error| {
        error.field_violations().iter().map(|violation| violation.field.clone()).collect::<Vec<_>>()
    };

    let mut request = twilio(project_id, TOKEN_A);
    request.options = IntegrationOptions {
        ip_allowlist: vec!["10.0.0.0/8".into(), "not-a-cidr".into()],
        rate_limit_per_minute: Some(0),
        twilio: Some(TwilioOptions { account_sid: "AC123".into(), assistant_channel: 3 }),
        hmac: Some(HmacOptions::default()),
        ..IntegrationOptions::default()
    };
    let error = domain.create_integration(&admin, request).await.unwrap_err();
    assert_eq!(
        fields(error),
        [
            "options.ip_allowlist[1]",
            "options.rate_limit_per_minute",
            "options.twilio.account_sid",
            "options.twilio.assistant_channel",
            "options.hmac",
        ]
    );

    let voicekit = NewIntegration {
        provider: Some(Provider::Voicekit),
        auth_type: Some(WebhookAuthType::IpAllowlist),
        secrets: BTreeMap::new(),
        ..twilio(project_id, TOKEN_A)
    };
    assert_eq!(
        fields(domain.create_integration(&admin, voicekit.clone()).await.unwrap_err()),
        ["options.ip_allowlist"]
    );
    let created = domain
        .create_integration(
            &admin,
            NewIntegration {
                options: IntegrationOptions {
                    ip_allowlist: vec!["203.0.113.9".into()],
                    ..Default::default()
                },
                ..voicekit
            },
        )
        .await
        .unwrap();
    assert_eq!(created.options.ip_allowlist, ["203.0.113.9/32"]);

    let wrong_auth =
        NewIntegration { auth_type: Some(WebhookAuthType::Hmac), ..twilio(project_id, TOKEN_A) };
    let error = domain.create_integration(&admin, wrong_auth).await.unwrap_err();
    assert!(fields(error).contains(&"webhook_auth_type".to_owned()));

    let vapi_hmac = domain
        .create_integration(
            &admin,
            NewIntegration {
                provider: Some(Provider::Vapi),
                auth_type: Some(WebhookAuthType::Hmac),
                secrets: secrets(&[("secret", "vapi-hmac-secret")]),
                options: IntegrationOptions {
                    hmac: Some(HmacOptions {
                        signature_header: "X-Signature".into(),
                        timestamp_header: "X-Timestamp".into(),
                        timestamp_tolerance_seconds: 0,
                        ..HmacOptions::default()
                    }),
                    ..Default::default()
                },
                ..twilio(project_id, TOKEN_A)
            },
        )
        .await
        .unwrap();
    let hmac = vapi_hmac.options.hmac.unwrap();
    assert_eq!(hmac.signature_header, "x-signature");
    assert_eq!(hmac.timestamp_header, "x-timestamp");
    assert_eq!(hmac.timestamp_tolerance_seconds, 300);
}

#[tokio::test]
async fn list_pages_through_integrations_in_creation_order() {
    let Fixture { domain, admin, project_id, .. } = fixture().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created
            .push(domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = domain.list_integrations(&admin, project_id, None, 2, &token).await.unwrap();
        assert!(page.integrations.len() <= 2);
        seen.extend(page.integrations.iter().map(|integration| integration.id));
        match page.next_page_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(seen, created);
    let retell =
        domain.list_integrations(&admin, project_id, Some(Provider::Retell), 0, "").await.unwrap();
    assert!(retell.integrations.is_empty());
}

/// Disabling an integration sends `integration.disabled` to the endpoints that subscribe (a
/// filter's provider narrows; endpoints filtering calls by tag get none), in the transaction
/// that disables it; disabling it again, or enabling it, sends nothing.
#[tokio::test]
async fn disabling_an_integration_sends_integration_disabled() {
    use crate::model::events::{Endpoint, EventFilter};
    use crate::storage::{SealedEndpoint, StoredHeaders, StoredSecret};
    let Fixture { domain, admin, project_id, clock, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    let endpoint = |event_types: &[&str], filter: EventFilter| SealedEndpoint {
        endpoint: Endpoint {
            event_types: event_types.iter().map(|kind| (*kind).to_owned()).collect(),
            filter,
            ..Endpoint::new(
                Uuid::now_v7(),
                admin.organization_id,
                "https://receiver.example/hook".into(),
                clock.now(),
            )
        },
        secrets: vec![StoredSecret {
            key_id: "k".into(),
            sealed: "AAAA".into(),
            expires_at_ms: None,
        }],
        headers: StoredHeaders::default(),
    };
    let twilio_only = endpoint(
        &["integration.disabled"],
        EventFilter { provider: Some("twilio".into()), ..EventFilter::default() },
    );
    let retell_only = endpoint(
        &["integration.disabled"],
        EventFilter { provider: Some("retell".into()), ..EventFilter::default() },
    );
    let vip_calls =
        endpoint(&[], EventFilter { tags: vec!["vip".into()], ..EventFilter::default() });
    for sealed in [&twilio_only, &retell_only, &vip_calls] {
        domain.storage.insert_event_endpoint(sealed).await.unwrap();
    }
    for status in
        [IntegrationStatus::Disabled, IntegrationStatus::Disabled, IntegrationStatus::Active]
    {
        domain.set_integration_status(&admin, integration.id, status).await.unwrap();
    }
    let now = clock.now();
    let due = domain.storage.take_due_event_deliveries(now, now, 100).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(
        (due[0].endpoint_id, due[0].event_type.as_str()),
        (twilio_only.endpoint.id, "integration.disabled")
    );
    let event: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(event["data"]["integration_id"], integration.id.to_string());
    assert_eq!(event["data"]["provider"], "twilio");
    assert_eq!(event["data"]["project_id"], project_id.to_string());
}

/// A rotated-out secret set is announced (`integration.secret_expiring`, names but no values)
/// once its grace ends within the notice, once only, and not after it ended.
#[tokio::test]
async fn a_rotated_out_secret_is_announced_once_before_its_grace_ends() {
    let Fixture { domain, admin, project_id, clock, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    let listener = crate::storage::testing::event_endpoint(
        admin.organization_id,
        &["integration.secret_expiring"],
        crate::model::events::EventFilter::default(),
    );
    domain.storage.insert_event_endpoint(&listener).await.unwrap();
    domain
        .rotate_secrets(
            &admin,
            integration.id,
            secrets(&[("auth_token", TOKEN_B)]),
            Some(Duration::hours(48)),
        )
        .await
        .unwrap();
    let deadline = clock.now() + Duration::hours(48);
    // 48 hours left: beyond the 24-hour notice.
    assert_eq!(domain.announce_expiring_secrets().await.unwrap(), 0);
    clock.advance(Duration::hours(25));
    assert_eq!(domain.announce_expiring_secrets().await.unwrap(), 1);
    assert_eq!(domain.announce_expiring_secrets().await.unwrap(), 0, "announced once");
    let now = clock.now();
    let due = domain.storage.take_due_event_deliveries(now, now, 100).await.unwrap();
    assert_eq!(due.len(), 1);
    let event: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(event["type"], "integration.secret_expiring");
    let data = &event["data"];
    assert_eq!(data["integration_id"], integration.id.to_string());
    assert_eq!(data["secret_names"], serde_json::json!(["auth_token"]));
    assert_eq!(data["generation"], 1);
    assert_eq!(data["expires_at"], deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    assert!(!due[0].body.contains(TOKEN_A));
    // A set whose grace has already ended when first looked at is not announced.
    domain
        .rotate_secrets(
            &admin,
            integration.id,
            secrets(&[("auth_token", TOKEN_C)]),
            Some(Duration::hours(1)),
        )
        .await
        .unwrap();
    clock.advance(Duration::hours(2));
    assert_eq!(domain.announce_expiring_secrets().await.unwrap(), 0);
}

#[tokio::test]
async fn counts_are_read_in_memory_or_stored_never_in_neither() {
    use futures_util::FutureExt;

    let Fixture { domain, clock, admin, project_id, .. } = fixture().await;
    let integration = domain.create_integration(&admin, twilio(project_id, TOKEN_A)).await.unwrap();
    domain.webhook_gate.note_use(integration.id, clock.now());
    assert_eq!(domain.get_integration(&admin, integration.id).await.unwrap().request_count, 1);

    // A reader between reading the row and adding what memory holds keeps the counts where
    // they are: the flush waits for it, then moves them.
    let reading = domain.webhook_gate.usage_settled().await;
    let mut flush = std::pin::pin!(domain.flush_webhook_usage());
    assert!(flush.as_mut().now_or_never().is_none());
    assert_eq!(domain.webhook_gate.pending_usage(integration.id).requests, 1);
    drop(reading);
    assert_eq!(flush.await.unwrap(), 1);
    assert_eq!(domain.webhook_gate.pending_usage(integration.id).requests, 0);
    assert_eq!(domain.get_integration(&admin, integration.id).await.unwrap().request_count, 1);
}
