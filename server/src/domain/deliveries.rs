//! The webhook delivery log: every request that reached an integration, what earshot answered,
//! and (for a retention window) the request itself, so that it can be replayed.

use uuid::Uuid;

use super::Domain;
use crate::error::{Error, Result};
use crate::model::auth::{Principal, Scope};
use crate::model::commit::IngestWrite;
use crate::model::deliveries::{DeliveryPage, DeliveryVerdict, NewDelivery, StoredDelivery};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 100;

impl Domain {
    /// Writes a delivery that stores no call (a rejection or an ignored event), through the
    /// group-commit writer. A failure is logged and not passed on: the sender's answer does
    /// not depend on the log.
    pub async fn record_delivery(&self, delivery: NewDelivery) {
        let id = delivery.record.id;
        let write = IngestWrite { delivery: Some(delivery), ..IngestWrite::default() };
        if let Err(error) = self.ingest_writer.submit(write).await {
            tracing::warn!(delivery_id = %id, error = %error, "could not record a webhook delivery");
        }
    }

    /// An integration's deliveries, newest first.
    pub async fn list_webhook_deliveries(
        &self,
        principal: &Principal,
        integration_id: Uuid,
        verdict: Option<DeliveryVerdict>,
        page_size: usize,
        page_token: &str,
    ) -> Result<DeliveryPage> {
        principal.require(Scope::Read)?;
        let integration = self.get_integration(principal, integration_id).await?;
        let before = super::decode_page_token(page_token)?;
        let limit = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let mut deliveries = self
            .storage
            .list_webhook_deliveries(integration.id, verdict, before, limit + 1)
            .await?;
        let next_page_token = super::finish_page(&mut deliveries, limit, |delivery| delivery.id);
        Ok(DeliveryPage { deliveries, next_page_token })
    }

    /// A delivery of `integration_id` with its stored request, for a replay. Needs the admin
    /// scope: a replay stores calls.
    pub async fn delivery_for_replay(
        &self,
        principal: &Principal,
        integration_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<(crate::model::integrations::Integration, StoredDelivery)> {
        principal.require(Scope::Admin)?;
        let integration = self.get_integration(principal, integration_id).await?;
        let mut stored = self
            .storage
            .get_webhook_delivery(integration.id, delivery_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("delivery {delivery_id} not found")))?;
        let body_length = stored.body.as_ref().map_or(0, Vec::len);
        stored.request =
            stored.request.map(|request| request.as_sent(&integration.public_id, body_length));
        Ok((integration, stored))
    }

    /// Drops bodies and requests older than the body retention, and deliveries older than the
    /// delivery retention: each project's own, else the server's, in batches of
    /// `LifecycleSettings::batch_size` (ten times as many rows, deliveries being small), each
    /// committed on its own. Returns (bodies dropped, deliveries deleted).
    pub async fn prune_webhook_deliveries(&self) -> Result<(u64, u64)> {
        use crate::storage::DeliveryIntegrations;
        let now = self.clock.now();
        let settings = &self.settings.webhooks;
        let limit = self.settings.lifecycle.batch_size * 10;
        let own: Vec<_> = self
            .storage
            .projects_with_retention()
            .await?
            .into_iter()
            .filter(|project| {
                project.retention.delivery_body_days.is_some()
                    || project.retention.delivery_days.is_some()
            })
            .collect();
        let days = |days: u32| chrono::Duration::days(days.into());
        // A delivery's project is its integration's (m0036): each project's integrations, read
        // once a pass.
        let mut scopes = Vec::with_capacity(own.len() + 1);
        let mut theirs = Vec::new();
        for project in &own {
            let integrations =
                self.storage.integrations_of(project.organization_id, project.id).await?;
            theirs.extend(integrations.iter().copied());
            scopes.push((
                DeliveryIntegrations::Only(integrations),
                project.retention.delivery_body_days.map_or(settings.body_retention, days),
                project.retention.delivery_days.map_or(settings.delivery_retention, days),
            ));
        }
        scopes.push((
            DeliveryIntegrations::AllBut(theirs),
            settings.body_retention,
            settings.delivery_retention,
        ));
        let mut total = (0, 0);
        for (integrations, bodies, deliveries) in scopes {
            loop {
                let (cleared, deleted) = self
                    .storage
                    .prune_webhook_deliveries(&integrations, now - bodies, now - deliveries, limit)
                    .await?;
                total = (total.0 + cleared, total.1 + deleted);
                if cleared < limit as u64 && deleted < limit as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::clock::ManualClock;
    use crate::model::deliveries::{
        StoredRequest, WebhookDelivery, headers_to_store, url_to_store,
    };

    fn delivery(received_at: DateTime<Utc>) -> NewDelivery {
        NewDelivery {
            organization_id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            record: WebhookDelivery {
                id: Uuid::now_v7(),
                integration_id: Uuid::nil(),
                received_at,
                verdict: DeliveryVerdict::Rejected,
                http_status: 401,
                event_type: String::new(),
                call_id: String::new(),
                body_sha256: crate::crypto::sha256_hex(b"{}"),
                error: "signature_mismatch".to_owned(),
                error_message: String::new(),
                ingest_id: None,
                authenticated: false,
                replayable: true,
            },
            request: Some(StoredRequest { url: "https://h/x".to_owned(), headers: Vec::new() }),
            body: Some(bytes::Bytes::from_static(b"{}")),
        }
    }

    /// Bodies go after their retention and deliveries after theirs; a delivery keeps its
    /// body's hash without its body (the hash of a kept body is read from it, not stored).
    #[tokio::test]
    async fn storage_drops_bodies_then_deliveries_after_their_retention() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let (domain, _audio) = crate::domain::test_support::domain(clock.clone()).await;
        let day = chrono::Duration::days(1);
        // Retention in the test settings: bodies 7 days, deliveries 30.
        let fresh = delivery(now - day);
        let old = delivery(now - day * 8);
        let ancient = delivery(now - day * 31);
        let damaged = delivery(now - day * 8);
        for record in [&fresh, &old, &ancient, &damaged] {
            domain.record_delivery(record.clone()).await;
        }
        let hashes_stored = "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE body_sha256 <> ''";
        let count = |sql| crate::storage::testing::count(&domain.storage, sql);
        assert_eq!(count(hashes_stored).await, 0, "kept bodies hold their hashes");
        // A body that no longer reads (labelled without its preset): listed with no hash, and
        // cleared like the others.
        let id = crate::storage::testing::id_literal(&domain.storage, damaged.record.id);
        let sql = format!(
            "UPDATE webhook_deliveries SET body_encoding = 'deflate-with-request' WHERE id = {id}"
        );
        crate::storage::testing::execute(&domain.storage, &sql).await;
        let listed = domain.storage.list_webhook_deliveries(Uuid::nil(), None, None, 10);
        let listed = listed.await.unwrap();
        let listed_damaged = listed.iter().find(|listed| listed.id == damaged.record.id);
        assert_eq!(listed_damaged.unwrap().body_sha256, "");
        assert!(domain.storage.get_webhook_delivery(Uuid::nil(), damaged.record.id).await.is_err());
        assert_eq!(domain.prune_webhook_deliveries().await.unwrap(), (2, 1));
        assert_eq!(count(hashes_stored).await, 1, "the cleared body's hash is written down");
        let stored = |id| domain.storage.get_webhook_delivery(Uuid::nil(), id);
        let sha = crate::crypto::sha256_hex(b"{}");
        let fresh = stored(fresh.record.id).await.unwrap().unwrap();
        assert!(fresh.delivery.replayable && fresh.body.is_some() && fresh.request.is_some());
        assert_eq!(fresh.delivery.body_sha256, sha);
        let old = stored(old.record.id).await.unwrap().unwrap();
        assert!(!old.delivery.replayable && old.body.is_none() && old.request.is_none());
        assert_eq!(old.delivery.error, "signature_mismatch");
        assert_eq!(old.delivery.body_sha256, sha);
        let listed = domain.storage.list_webhook_deliveries(Uuid::nil(), None, None, 10);
        let listed = listed.await.unwrap();
        assert_eq!(listed.len(), 3);
        let hashes: Vec<&str> =
            listed.iter().map(|delivery| delivery.body_sha256.as_str()).collect();
        // Newest first: the damaged one was recorded last.
        assert_eq!(hashes, ["", &*sha, &*sha]);
        // A row written before kept its hash beside its body, and that hash is read.
        let earlier = "ab".repeat(32);
        let id = crate::storage::testing::id_literal(&domain.storage, fresh.delivery.id);
        let sql =
            format!("UPDATE webhook_deliveries SET body_sha256 = '{earlier}' WHERE id = {id}");
        crate::storage::testing::execute(&domain.storage, &sql).await;
        let fresh = stored(fresh.delivery.id).await.unwrap().unwrap();
        assert_eq!((fresh.delivery.body_sha256.as_str(), fresh.body.is_some()), (&*earlier, true));
        assert!(stored(ancient.record.id).await.unwrap().is_none());
        // Nothing left to prune.
        assert_eq!(domain.prune_webhook_deliveries().await.unwrap(), (0, 0));
    }

    /// A Twilio integration of `project`.
    async fn twilio(
        domain: &Domain,
        admin: &Principal,
        project: Uuid,
    ) -> crate::model::integrations::Integration {
        use crate::crypto::SecretValue;
        use crate::model::integrations::{IntegrationOptions, NewIntegration, Provider};
        let token = SecretValue::new("0123456789abcdef".repeat(2));
        let integration = NewIntegration {
            project_id: project,
            provider: Some(Provider::Twilio),
            display_name: String::new(),
            auth_type: None,
            secrets: [("auth_token".to_owned(), token)].into(),
            options: IntegrationOptions::default(),
        };
        domain.create_integration(admin, integration).await.unwrap()
    }

    /// A delivery's organization and project are its integration's, not stored in its row
    /// (m0036). Run down, the migration writes them back from the integration, and the nil id
    /// where the integration is gone; run up again, the deliveries read as before.
    #[tokio::test]
    async fn deliveries_take_their_owners_from_their_integrations() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (domain, _audio) =
            crate::domain::test_support::domain(Arc::new(ManualClock::new(now))).await;
        let bootstrap = domain.bootstrap(false).await.unwrap().unwrap();
        let admin = crate::domain::test_support::admin_of(&bootstrap);
        let integration = twilio(&domain, &admin, bootstrap.project.id).await;
        let mut own = delivery(now);
        own.record.integration_id = integration.id;
        let orphan = delivery(now);
        for record in [&own, &orphan] {
            domain.record_delivery(record.clone()).await;
        }
        let storage = &domain.storage;
        let columns = "SELECT COUNT(*) AS n FROM information_schema.columns \
            WHERE table_name = 'webhook_deliveries' AND column_name = 'project_id'";
        let columns = match storage.backend_name() {
            "postgres" => columns,
            _ => {
                "SELECT COUNT(*) AS n FROM pragma_table_info('webhook_deliveries') \
                WHERE name = 'project_id'"
            }
        };
        assert_eq!(crate::storage::testing::count(storage, columns).await, 0);

        crate::storage::testing::migrate_down_through(storage, "m0036_deliveries_of_integrations")
            .await;
        let owners = |delivery: Uuid, organization: Uuid, project: Uuid| {
            let [delivery, organization, project] = [delivery, organization, project]
                .map(|id| crate::storage::testing::id_literal(storage, id));
            format!(
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE id = {delivery} \
                 AND organization_id = {organization} AND project_id = {project}"
            )
        };
        let organization = bootstrap.organization.id;
        let named = owners(own.record.id, organization, bootstrap.project.id);
        assert_eq!(crate::storage::testing::count(storage, &named).await, 1);
        let nil = owners(orphan.record.id, Uuid::nil(), Uuid::nil());
        assert_eq!(crate::storage::testing::count(storage, &nil).await, 1);

        crate::storage::testing::migrate_up(storage).await;
        assert_eq!(crate::storage::testing::count(storage, columns).await, 0);
        let stored = storage.get_webhook_delivery(integration.id, own.record.id).await.unwrap();
        assert_eq!(stored.unwrap().delivery, WebhookDelivery { ..own.record.clone() });
        let listed = storage.list_webhook_deliveries(Uuid::nil(), None, None, 10).await.unwrap();
        assert_eq!(listed.iter().map(|listed| listed.id).collect::<Vec<_>>(), [orphan.record.id]);
    }

    /// A project's own delivery retention overrides the server's for its deliveries only, and
    /// pruning takes its rows in bounded batches until nothing expired is left.
    #[tokio::test]
    async fn a_project_keeps_its_deliveries_as_long_as_it_says() {
        use crate::model::projects::Retention;

        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let (mut domain, _audio) = crate::domain::test_support::domain(clock.clone()).await;
        let mut settings = crate::domain::test_support::settings();
        // Pruning batches of 10 rows.
        settings.lifecycle.batch_size = 1;
        domain.settings = Arc::new(settings);
        let bootstrap = domain.bootstrap(false).await.unwrap().unwrap();
        let admin = crate::domain::test_support::admin_of(&bootstrap);
        let keeping = bootstrap.project.id;
        let retention = Retention {
            delivery_body_days: Some(40),
            delivery_days: Some(60),
            ..Retention::default()
        };
        domain.set_project_retention(&admin, keeping, retention).await.unwrap();
        // A delivery's project is its integration's.
        let integration = twilio(&domain, &admin, keeping).await;
        let day = chrono::Duration::days(1);
        let mut kept = Vec::new();
        let mut others = Vec::new();
        // 25 of each, 35 days old: past the server's 30 days, within the project's 60.
        for _ in 0..25 {
            let mut own = delivery(now - day * 35);
            own.record.integration_id = integration.id;
            kept.push(own.record.id);
            domain.record_delivery(own).await;
            let other = delivery(now - day * 35);
            others.push(other.record.id);
            domain.record_delivery(other).await;
        }
        assert_eq!(domain.prune_webhook_deliveries().await.unwrap(), (0, 25));
        let stored = |id| domain.storage.get_webhook_delivery(Uuid::nil(), id);
        let own = |id| domain.storage.get_webhook_delivery(integration.id, id);
        for id in &others {
            assert!(stored(*id).await.unwrap().is_none());
        }
        for id in &kept {
            let delivery = own(*id).await.unwrap().unwrap();
            assert!(delivery.body.is_some(), "35 days is within the project's 40 for bodies");
        }
        // Five days on, the bodies pass the project's 40 days; the deliveries stay.
        clock.advance(day * 6);
        assert_eq!(domain.prune_webhook_deliveries().await.unwrap(), (25, 0));
        assert!(own(kept[0]).await.unwrap().unwrap().body.is_none());
        // Past 60 days, they go too.
        clock.advance(day * 20);
        assert_eq!(domain.prune_webhook_deliveries().await.unwrap(), (0, 25));
        assert!(own(kept[0]).await.unwrap().is_none());
    }

    #[test]
    fn credentials_are_not_stored() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-retell-signature", "v=1,d=ab".parse().unwrap());
        headers.insert("x-vapi-secret", "hunter2".parse().unwrap());
        headers.insert("api-key", "es_key".parse().unwrap());
        headers.insert("x-custom-token", "secret".parse().unwrap());
        let kept = headers_to_store(&headers, Some("x-custom-token"));
        assert_eq!(kept, vec![("x-retell-signature".to_owned(), "v=1,d=ab".to_owned())]);
        assert_eq!(
            url_to_store("https://h/v0/voice/voicekit/monitor/pub_1?token=abc&first_turn=user"),
            "https://h/v0/voice/voicekit/monitor/pub_1?token=redacted&first_turn=user"
        );
        assert_eq!(url_to_store("https://h/a?first_turn=user"), "https://h/a?first_turn=user");
    }
}
