//! API keys and the principal they authenticate.
//!
//! Every domain operation takes a `Principal` and checks scope and ownership itself; resources
//! of another organization (or another project, for a project-restricted key) answer NOT_FOUND,
//! so their existence is not revealed.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use super::Domain;
use crate::crypto::{SecretValue, api_key};
use crate::error::{Error, Result, Violations};
use crate::model::auth::{ApiKeyRecord, Principal, Scope};

/// A token bucket per API key over gRPC and the JSON API, so one runaway client cannot starve
/// the others. Webhooks have their own buckets, per integration. With several processes serving
/// the API on one database, each holds its share of the budget (`set_replicas`), as the
/// integration buckets do.
#[derive(Debug)]
pub struct ApiKeyLimiter {
    per_minute: u32,
    /// This process's share of `per_minute` and its buckets; None without a limit.
    limiter: std::sync::RwLock<Option<(u32, DefaultKeyedRateLimiter<Uuid>)>>,
}

impl ApiKeyLimiter {
    /// `per_minute` of 0 sets no limit.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, limiter: std::sync::RwLock::new(Self::buckets(per_minute)) }
    }

    fn buckets(share: u32) -> Option<(u32, DefaultKeyedRateLimiter<Uuid>)> {
        NonZeroU32::new(share)
            .map(|share| (share.get(), DefaultKeyedRateLimiter::keyed(Quota::per_minute(share))))
    }

    /// Divides the budget among `replicas` processes serving the API (rounded down, at least
    /// one request a minute). A change starts every key's bucket afresh.
    pub fn set_replicas(&self, replicas: u32) {
        if self.per_minute == 0 {
            return;
        }
        let share = (self.per_minute / replicas.max(1)).max(1);
        let mut limiter = self.limiter.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if limiter.as_ref().is_none_or(|(current, _)| *current != share) {
            *limiter = Self::buckets(share);
        }
    }

    /// Takes one request from the key's budget.
    pub fn check(&self, api_key_id: Uuid) -> Result<()> {
        let limiter = self.limiter.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((_, limiter)) = limiter.as_ref() else { return Ok(()) };
        limiter.check_key(&api_key_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::ResourceExhausted(format!(
                "this API key's limit of {} requests a minute is used up; retry in {} s",
                self.per_minute,
                super::retry_after_seconds(wait)
            ))
        })
    }
}

/// The API key a request presents: the `api-key` header, else `authorization: Bearer <key>`.
/// Transports pass the two header values; an absent or unusable one is None.
pub fn presented_key<'a>(
    api_key_header: Option<&'a str>,
    authorization_header: Option<&'a str>,
) -> &'a str {
    // An empty api-key header does not hide a Bearer token.
    if let Some(key) = api_key_header.map(str::trim).filter(|key| !key.is_empty()) {
        return key;
    }
    authorization_header
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
        })
        .unwrap_or_default()
}

/// How long a key's last-used time may lag, so reads do not turn into a write per request.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

/// Scopes and a name for a new key.
#[derive(Clone, Debug, Default)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub project_id: Option<Uuid>,
}

/// A created key; `value` is shown once and never stored.
#[derive(Clone, Debug)]
pub struct CreatedApiKey {
    pub record: ApiKeyRecord,
    pub value: SecretValue,
}

impl Domain {
    /// Resolves a presented key to its principal. Unknown, malformed and revoked keys all
    /// answer the same way.
    pub async fn authenticate(&self, presented_key: &str) -> Result<Principal> {
        let unauthenticated = || Error::Unauthenticated("invalid or revoked API key".to_owned());
        if presented_key.is_empty() {
            return Err(Error::Unauthenticated(
                "missing API key: send it in the api-key header or as authorization: Bearer"
                    .to_owned(),
            ));
        }
        let hash = api_key::hash(presented_key);
        let record = self.storage.find_api_key_by_hash(&hash).await?.ok_or_else(unauthenticated)?;
        if record.revoked_at.is_some() {
            return Err(unauthenticated());
        }
        self.api_key_limiter.check(record.id)?;
        let now = self.clock.now();
        let stale = record.last_used_at.is_none_or(|last_used| {
            (now - last_used).num_seconds() >= LAST_USED_RESOLUTION_SECONDS
        });
        if stale {
            self.storage.touch_api_key(record.id, now).await?;
        }
        Ok(Principal {
            organization_id: record.organization_id,
            api_key_id: record.id,
            scopes: record.scopes,
            project_id: record.project_id,
        })
    }

    pub async fn create_api_key(
        &self,
        principal: &Principal,
        request: NewApiKey,
    ) -> Result<CreatedApiKey> {
        principal.require(Scope::Admin)?;
        let mut violations = Violations::new();
        let name = request.name.trim().to_owned();
        if name.chars().count() > 200 {
            violations.add("name", "must be at most 200 characters");
        }
        if request.scopes.is_empty() {
            violations.add("scopes", "at least one of admin, ingest, read is required");
        }
        violations.into_result()?;
        let project_id = match (principal.project_id, request.project_id) {
            // A project-restricted admin can only mint keys for its own project.
            (Some(restricted), None) => Some(restricted),
            (_, requested) => requested,
        };
        if let Some(project_id) = project_id {
            self.project_for(principal, project_id).await?;
        }
        let generated = api_key::generate();
        let mut scopes = request.scopes;
        scopes.sort();
        scopes.dedup();
        let record = ApiKeyRecord {
            id: Uuid::now_v7(),
            organization_id: principal.organization_id,
            project_id,
            name: if name.is_empty() { "unnamed".to_owned() } else { name },
            key_prefix: generated.display_prefix.clone(),
            scopes,
            created_at: self.clock.now(),
            revoked_at: None,
            last_used_at: None,
        };
        self.storage.insert_api_key(&record, &generated.hash).await?;
        tracing::info!(api_key_id = %record.id, organization_id = %record.organization_id, "created api key");
        Ok(CreatedApiKey { record, value: generated.value })
    }

    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        include_revoked: bool,
    ) -> Result<Vec<ApiKeyRecord>> {
        principal.require(Scope::Admin)?;
        let keys = self.storage.list_api_keys(principal.organization_id).await?;
        Ok(keys
            .into_iter()
            .filter(|key| include_revoked || key.revoked_at.is_none())
            .filter(|key| principal.project_id.is_none() || key.project_id == principal.project_id)
            .collect())
    }

    pub async fn revoke_api_key(&self, principal: &Principal, id: Uuid) -> Result<ApiKeyRecord> {
        principal.require(Scope::Admin)?;
        let not_found = || Error::not_found(format!("api key {id} not found"));
        let key =
            self.storage.get_api_key(principal.organization_id, id).await?.ok_or_else(not_found)?;
        if principal.project_id.is_some() && key.project_id != principal.project_id {
            return Err(not_found());
        }
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let now = self.clock.now();
        self.storage.revoke_api_key(principal.organization_id, id, now).await?;
        tracing::info!(api_key_id = %id, "revoked api key");
        Ok(ApiKeyRecord { revoked_at: Some(now), ..key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: &[Scope], project_id: Option<Uuid>) -> Principal {
        Principal {
            organization_id: Uuid::now_v7(),
            api_key_id: Uuid::now_v7(),
            scopes: scopes.to_vec(),
            project_id,
        }
    }

    #[test]
    fn presented_key_reads_api_key_then_bearer() {
        assert_eq!(presented_key(None, None), "");
        assert_eq!(presented_key(None, Some("Bearer es_abc")), "es_abc");
        assert_eq!(presented_key(None, Some("bearer  es_abc ")), "es_abc");
        assert_eq!(presented_key(Some(" es_def "), Some("Bearer es_abc")), "es_def");
        assert_eq!(presented_key(None, Some("Basic dXNlcjpwYXNz")), "");
        assert_eq!(presented_key(Some(" "), Some("Bearer es_abc")), "es_abc");
    }

    #[test]
    fn admin_implies_every_scope_and_others_do_not() {
        let admin = principal(&[Scope::Admin], None);
        assert!(admin.require(Scope::Ingest).is_ok());
        assert!(admin.require(Scope::Read).is_ok());
        let ingest = principal(&[Scope::Ingest], None);
        assert!(ingest.require(Scope::Ingest).is_ok());
        let error = ingest.require(Scope::Read).unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::PermissionDenied);
        assert!(ingest.require(Scope::Admin).is_err());
    }

    #[test]
    fn project_restriction_limits_access() {
        let project = Uuid::now_v7();
        let restricted = principal(&[Scope::Admin], Some(project));
        assert!(restricted.may_access_project(project));
        assert!(!restricted.may_access_project(Uuid::now_v7()));
        assert!(principal(&[Scope::Read], None).may_access_project(project));
    }

    #[test]
    fn each_key_has_its_own_budget() {
        let limiter = ApiKeyLimiter::new(2);
        let (busy, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(limiter.check(busy).is_ok());
        assert!(limiter.check(busy).is_ok());
        let refused = limiter.check(busy).unwrap_err();
        assert_eq!(refused.code(), crate::error::ErrorCode::ResourceExhausted);
        assert!(refused.public_message().contains("2 requests a minute"), "{refused}");
        assert!(limiter.check(other).is_ok());
        let unlimited = ApiKeyLimiter::new(0);
        assert!((0..1000).all(|_| unlimited.check(busy).is_ok()));
    }

    #[test]
    fn replicas_share_a_keys_budget() {
        let limiter = ApiKeyLimiter::new(30);
        limiter.set_replicas(3);
        let key = Uuid::now_v7();
        assert_eq!((0..30).filter(|_| limiter.check(key).is_ok()).count(), 10);
        // One process again: the whole budget.
        limiter.set_replicas(1);
        assert_eq!((0..40).filter(|_| limiter.check(key).is_ok()).count(), 30);
        // More processes than requests a minute: one each.
        limiter.set_replicas(100);
        assert_eq!((0..5).filter(|_| limiter.check(key).is_ok()).count(), 1);
    }
}
