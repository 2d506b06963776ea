//! Provider integrations: where a voice platform posts finished calls and how earshot
//! authenticates those posts.
//!
//! Secret values are sealed before they reach storage and are never returned: callers see a
//! summary (names, last four characters, times). A rotation makes a new set current and keeps
//! the replaced set valid until a grace deadline; verification tries the current set first.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Domain, decode_page_token};
use crate::crypto::SecretValue;
use crate::crypto::secret_box::integration_secret_aad;
use crate::error::{Error, Result, Violations};
use crate::model::auth::{Principal, Scope};
use crate::model::conversation::Role;
use crate::model::integrations::{
    DEFAULT_TIMESTAMP_TOLERANCE_SECONDS, HeaderTokenOptions, HmacOptions, Integration,
    IntegrationOptions, IntegrationPage, IntegrationStatus, IntegrationUpdate,
    MAX_PREVIOUS_SECRET_SETS, MAX_TIMESTAMP_TOLERANCE_SECONDS, NewIntegration, NewSealedSecret,
    Provider, SecretSet, WebhookAuthType, catalog, parse_cidr,
};

/// Secret values shorter than this show no last characters in summaries.
const MIN_LEN_FOR_LAST4: usize = 12;
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 100;

impl Domain {
    pub async fn create_integration(
        &self,
        principal: &Principal,
        request: NewIntegration,
    ) -> Result<Integration> {
        principal.require(Scope::Admin)?;
        let mut violations = Violations::new();
        let Some(provider) = request.provider else {
            return Err(Error::invalid(
                "provider",
                "required: one of twilio, retell, vapi, elevenlabs, livekit, bland, voicekit, webhook",
            ));
        };
        let auth_type = request.auth_type.unwrap_or_else(|| provider.default_auth_type());
        if !provider.auth_types().contains(&auth_type) {
            let allowed: Vec<_> = provider.auth_types().iter().map(|auth| auth.as_str()).collect();
            violations.add(
                "webhook_auth_type",
                format!(
                    "{} does not support {}; use {}",
                    provider.as_str(),
                    auth_type.as_str(),
                    allowed.join(", ")
                ),
            );
        }
        let display_name = check_display_name(&request.display_name, &mut violations)
            .unwrap_or_else(|| format!("{} integration", provider.as_str()));
        let options = self.check_options(provider, auth_type, request.options, &mut violations);
        let secret_is_base64 = options.hmac.as_ref().is_some_and(|hmac| hmac.secret_is_base64);
        catalog::check_secrets(
            auth_type,
            request.secrets.iter().map(|(name, value)| (name.as_str(), value.expose())),
            secret_is_base64,
            &mut violations,
        );
        violations.into_result()?;
        self.project_for(principal, request.project_id).await?;

        let now = self.clock.now();
        let id = Uuid::now_v7();
        let integration = Integration {
            id,
            organization_id: principal.organization_id,
            project_id: request.project_id,
            provider,
            display_name,
            public_id: crate::crypto::new_public_id(),
            auth_type,
            status: IntegrationStatus::Active,
            options,
            secrets: Vec::new(),
            request_count: 0,
            rate_limited_count: 0,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            last_validated_at: None,
        };
        let sealed = self.seal_secrets(id, &request.secrets);
        self.storage.insert_integration(&integration, &sealed, now).await?;
        tracing::info!(
            integration_id = %id,
            project_id = %integration.project_id,
            provider = provider.as_str(),
            auth_type = auth_type.as_str(),
            "created integration"
        );
        self.integration_for(principal, id).await
    }

    pub async fn get_integration(&self, principal: &Principal, id: Uuid) -> Result<Integration> {
        principal.require(Scope::Read)?;
        self.integration_for(principal, id).await
    }

    pub async fn list_integrations(
        &self,
        principal: &Principal,
        project_id: Uuid,
        provider: Option<Provider>,
        page_size: i32,
        page_token: &str,
    ) -> Result<IntegrationPage> {
        principal.require(Scope::Read)?;
        self.project_for(principal, project_id).await?;
        let page_size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size if size < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            size => usize::try_from(size).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
        };
        let after = decode_page_token(page_token)?;
        let _settled = self.webhook_gate.usage_settled().await;
        let mut integrations = self
            .storage
            .list_integrations(
                principal.organization_id,
                project_id,
                provider,
                after,
                page_size + 1,
                self.clock.now(),
            )
            .await?;
        for integration in &mut integrations {
            self.webhook_gate.pending_usage(integration.id).apply_to(integration);
        }
        let next_page_token =
            super::finish_page(&mut integrations, page_size, |integration| integration.id);
        Ok(IntegrationPage { integrations, next_page_token })
    }

    pub async fn update_integration(
        &self,
        principal: &Principal,
        id: Uuid,
        update: IntegrationUpdate,
    ) -> Result<Integration> {
        principal.require(Scope::Admin)?;
        let mut integration = self.integration_for(principal, id).await?;
        let mut violations = Violations::new();
        if let Some(display_name) = &update.display_name {
            match check_display_name(display_name, &mut violations) {
                Some(name) => integration.display_name = name,
                None => violations.add("display_name", "must not be empty"),
            }
        }
        if let Some(options) = update.options {
            let was_base64 =
                integration.options.hmac.as_ref().is_some_and(|hmac| hmac.secret_is_base64);
            integration.options = self.check_options(
                integration.provider,
                integration.auth_type,
                options,
                &mut violations,
            );
            let secret_is_base64 =
                integration.options.hmac.as_ref().is_some_and(|hmac| hmac.secret_is_base64);
            if secret_is_base64 != was_base64 {
                violations.add(
                    "options.hmac.secret_is_base64",
                    "cannot change without new secrets; the stored ones were checked the other way",
                );
            }
        }
        violations.into_result()?;
        integration.updated_at = self.clock.now();
        self.storage
            .update_integration(
                principal.organization_id,
                id,
                &integration.display_name,
                &integration.options,
                integration.updated_at,
            )
            .await?;
        self.integration_changed(&integration.public_id).await;
        tracing::info!(integration_id = %id, "updated integration");
        self.integration_for(principal, id).await
    }

    /// Makes `secrets` the current set. The replaced set stays valid for `grace_period`
    /// (default from the configuration, at most its maximum; zero ends it at once).
    pub async fn rotate_secrets(
        &self,
        principal: &Principal,
        id: Uuid,
        secrets: BTreeMap<String, SecretValue>,
        grace_period: Option<chrono::Duration>,
    ) -> Result<Integration> {
        principal.require(Scope::Admin)?;
        let integration = self.integration_for(principal, id).await?;
        let mut violations = Violations::new();
        let grace_period = grace_period.unwrap_or(self.settings.rotation_grace_default);
        if grace_period < chrono::Duration::zero() {
            violations.add("grace_period", "must not be negative");
        } else if grace_period > self.settings.rotation_grace_max {
            violations.add(
                "grace_period",
                format!("must be at most {} hours", self.settings.rotation_grace_max.num_hours()),
            );
        }
        let secret_is_base64 =
            integration.options.hmac.as_ref().is_some_and(|hmac| hmac.secret_is_base64);
        catalog::check_secrets(
            integration.auth_type,
            secrets.iter().map(|(name, value)| (name.as_str(), value.expose())),
            secret_is_base64,
            &mut violations,
        );
        if integration.auth_type.secret_names().is_empty() {
            violations.add(
                "secrets",
                format!(
                    "{} integrations have no secrets to rotate",
                    integration.auth_type.as_str()
                ),
            );
        }
        violations.into_result()?;
        let now = self.clock.now();
        let sealed = self.seal_secrets(id, &secrets);
        self.storage
            .rotate_integration_secrets(
                principal.organization_id,
                id,
                &sealed,
                now + grace_period,
                now,
                MAX_PREVIOUS_SECRET_SETS,
            )
            .await?;
        self.integration_changed(&integration.public_id).await;
        tracing::info!(integration_id = %id, grace_seconds = grace_period.num_seconds(), "rotated integration secrets");
        self.integration_for(principal, id).await
    }

    pub async fn set_integration_status(
        &self,
        principal: &Principal,
        id: Uuid,
        status: IntegrationStatus,
    ) -> Result<Integration> {
        principal.require(Scope::Admin)?;
        let integration = self.integration_for(principal, id).await?;
        self.storage
            .set_integration_status(principal.organization_id, id, status, self.clock.now())
            .await?;
        self.integration_changed(&integration.public_id).await;
        tracing::info!(integration_id = %id, status = status.as_str(), "changed integration status");
        self.integration_for(principal, id).await
    }

    /// Deletes the integration and every ciphertext of its secrets.
    pub async fn delete_integration(&self, principal: &Principal, id: Uuid) -> Result<()> {
        principal.require(Scope::Admin)?;
        let integration = self.integration_for(principal, id).await?;
        self.storage.delete_integration(principal.organization_id, id).await?;
        self.integration_changed(&integration.public_id).await;
        tracing::info!(integration_id = %id, "deleted integration");
        Ok(())
    }

    /// The integration behind a webhook URL, whatever its status (the webhook route answers
    /// disabled and unknown ids alike).
    pub async fn integration_by_public_id(&self, public_id: &str) -> Result<Option<Integration>> {
        self.storage.get_integration_by_public_id(public_id, self.clock.now()).await
    }

    /// The secret sets a webhook request may be signed with right now: the current set first,
    /// then replaced sets whose grace deadline has not passed.
    pub async fn verification_secrets(&self, integration_id: Uuid) -> Result<Vec<SecretSet>> {
        let now = self.clock.now();
        let stored = self.storage.list_integration_secrets(integration_id).await?;
        let mut sets: BTreeMap<i32, SecretSet> = BTreeMap::new();
        for secret in stored {
            if secret.expires_at.is_some_and(|deadline| deadline <= now) {
                continue;
            }
            let plaintext = self
                .keyring
                .open(&secret.sealed, &integration_secret_aad(&integration_id, &secret.name))
                .map_err(|error| Error::internal("opening an integration secret", error))?;
            let value = String::from_utf8(plaintext).map_err(|_| {
                Error::internal("opening an integration secret", "secret is not UTF-8")
            })?;
            sets.entry(secret.generation)
                .or_insert_with(|| SecretSet {
                    generation: secret.generation,
                    expires_at: secret.expires_at,
                    values: BTreeMap::new(),
                })
                .values
                .insert(secret.name, SecretValue::new(value));
        }
        Ok(sets.into_values().rev().collect())
    }

    /// The URL to configure at the provider.
    pub fn webhook_url(&self, integration: &Integration) -> String {
        format!(
            "{}/v0/voice/{}/monitor/{}",
            self.settings.public_base_url,
            integration.provider.as_str(),
            integration.public_id
        )
    }

    async fn integration_for(&self, principal: &Principal, id: Uuid) -> Result<Integration> {
        let not_found = || Error::not_found(format!("integration {id} not found"));
        let _settled = self.webhook_gate.usage_settled().await;
        let mut integration = self
            .storage
            .get_integration(principal.organization_id, id, self.clock.now())
            .await?
            .ok_or_else(not_found)?;
        if !principal.may_access_project(integration.project_id) {
            return Err(not_found());
        }
        self.webhook_gate.pending_usage(id).apply_to(&mut integration);
        Ok(integration)
    }

    fn seal_secrets(
        &self,
        integration_id: Uuid,
        secrets: &BTreeMap<String, SecretValue>,
    ) -> Vec<NewSealedSecret> {
        secrets
            .iter()
            .map(|(name, value)| NewSealedSecret {
                name: name.clone(),
                sealed: self.keyring.seal(
                    value.expose().as_bytes(),
                    &integration_secret_aad(&integration_id, name),
                ),
                last4: last4(value.expose()),
            })
            .collect()
    }

    /// Validates options for this provider and auth type and returns them canonicalized.
    fn check_options(
        &self,
        provider: Provider,
        auth_type: WebhookAuthType,
        mut options: IntegrationOptions,
        violations: &mut Violations,
    ) -> IntegrationOptions {
        let mut allowlist = Vec::with_capacity(options.ip_allowlist.len());
        for (index, entry) in options.ip_allowlist.iter().enumerate() {
            match parse_cidr(entry) {
                Some(network) => allowlist.push(network.to_string()),
                None => violations.add(
                    format!("options.ip_allowlist[{index}]"),
                    format!("{entry:?} is not an IP address or CIDR such as 203.0.113.0/24"),
                ),
            }
        }
        allowlist.dedup();
        options.ip_allowlist = allowlist;
        if auth_type == WebhookAuthType::IpAllowlist && options.ip_allowlist.is_empty() {
            violations
                .add("options.ip_allowlist", "required when webhook_auth_type is ip_allowlist");
        }
        if let Some(limit) = options.rate_limit_per_minute {
            let max = self.settings.rate_limit_per_minute_max;
            if !(1..=max).contains(&limit) {
                violations
                    .add("options.rate_limit_per_minute", format!("must be between 1 and {max}"));
            }
        }
        if let Some(role) = options.default_first_turn
            && !matches!(role, Role::User | Role::Assistant)
        {
            violations.add("options.default_first_turn", "must be user or assistant");
        }
        if let Some(twilio) = &options.twilio {
            if provider != Provider::Twilio {
                violations.add("options.twilio", "only applies to twilio integrations");
            }
            if !twilio.account_sid.is_empty()
                && !catalog::is_twilio_account_sid(&twilio.account_sid)
            {
                violations.add(
                    "options.twilio.account_sid",
                    "must be a Twilio account SID: AC followed by 32 hex characters",
                );
            }
            if twilio.assistant_channel > 2 {
                violations.add("options.twilio.assistant_channel", "must be 0, 1 or 2");
            }
        }
        match (&mut options.hmac, auth_type) {
            (None, WebhookAuthType::Hmac) => options.hmac = Some(HmacOptions::default()),
            (Some(hmac), WebhookAuthType::Hmac) => {
                hmac.signature_header = hmac.signature_header.trim().to_ascii_lowercase();
                if hmac.signature_header.is_empty() {
                    hmac.signature_header = HmacOptions::default().signature_header;
                }
                if !is_header_name(&hmac.signature_header) {
                    violations
                        .add("options.hmac.signature_header", "must be a valid HTTP header name");
                }
                hmac.timestamp_header = hmac.timestamp_header.trim().to_ascii_lowercase();
                if !hmac.timestamp_header.is_empty() && !is_header_name(&hmac.timestamp_header) {
                    violations
                        .add("options.hmac.timestamp_header", "must be a valid HTTP header name");
                }
                if hmac.timestamp_tolerance_seconds == 0 {
                    hmac.timestamp_tolerance_seconds = DEFAULT_TIMESTAMP_TOLERANCE_SECONDS;
                }
                if hmac.timestamp_tolerance_seconds > MAX_TIMESTAMP_TOLERANCE_SECONDS {
                    violations.add(
                        "options.hmac.timestamp_tolerance_seconds",
                        format!("must be at most {MAX_TIMESTAMP_TOLERANCE_SECONDS}"),
                    );
                }
                if hmac.signature_prefix.len() > 64
                    || hmac.signature_prefix.chars().any(char::is_control)
                {
                    violations.add(
                        "options.hmac.signature_prefix",
                        "must be at most 64 printable characters",
                    );
                }
            }
            (Some(_), _) => {
                violations.add("options.hmac", "only applies when webhook_auth_type is hmac");
            }
            (None, _) => {}
        }
        match (&mut options.header_token, auth_type) {
            (None, WebhookAuthType::HeaderToken) => {
                options.header_token = Some(HeaderTokenOptions::default());
            }
            (Some(header_token), WebhookAuthType::HeaderToken) => {
                header_token.header_name = header_token.header_name.trim().to_ascii_lowercase();
                if header_token.header_name.is_empty() {
                    header_token.header_name = HeaderTokenOptions::default().header_name;
                }
                if !is_header_name(&header_token.header_name) {
                    violations.add(
                        "options.header_token.header_name",
                        "must be a valid HTTP header name",
                    );
                }
            }
            (Some(_), _) => {
                violations.add(
                    "options.header_token",
                    "only applies when webhook_auth_type is header_token",
                );
            }
            (None, _) => {}
        }
        options
    }
}

/// Re-seals every integration secret and every event endpoint's secrets and headers: opened
/// with `old`, sealed with `new`, in one transaction.
/// Returns how many values were re-sealed.
pub async fn reseal_all_secrets(
    storage: &crate::storage::Storage,
    old: &crate::crypto::Keyring,
    new: &crate::crypto::Keyring,
) -> Result<usize> {
    storage
        .reseal_all_secrets(
            |stored| {
                let associated_data = integration_secret_aad(&stored.integration_id, &stored.name);
                let plaintext = old
                    .open(&stored.sealed, &associated_data)
                    .map_err(|error| Error::internal("opening a secret for re-sealing", error))?;
                Ok(new.seal(&plaintext, &associated_data))
            },
            |endpoint_id, headers, sealed| {
                let associated_data = super::events::sealed_value_aad(endpoint_id, headers);
                let plaintext = old
                    .open(sealed, &associated_data)
                    .map_err(|error| Error::internal("opening a secret for re-sealing", error))?;
                Ok(new.seal(&plaintext, &associated_data))
            },
        )
        .await
}

fn check_display_name(name: &str, violations: &mut Violations) -> Option<String> {
    let name = name.trim();
    if name.chars().count() > 200 {
        violations.add("display_name", "must be at most 200 characters");
    }
    (!name.is_empty()).then(|| name.to_owned())
}

fn is_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

fn last4(value: &str) -> String {
    let characters: Vec<char> = value.chars().collect();
    if characters.len() < MIN_LEN_FOR_LAST4 {
        return String::new();
    }
    characters[characters.len() - 4..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last4_hides_short_values() {
        assert_eq!(last4("0123456789abcdef0123456789abcdef"), "cdef");
        assert_eq!(last4("short"), "");
        assert_eq!(last4("elevenchars"), "");
    }

    #[test]
    fn cidrs_are_canonicalized() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("203.0.113.7").unwrap().to_string(), "203.0.113.7/32");
        assert_eq!(parse_cidr("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("example.com").is_none());
    }
}

#[cfg(test)]
mod storage_tests;
