//! The console's sign-in: an API key exchanged for a server-side session. The browser holds
//! only a random token (in an `HttpOnly`, `SameSite=Strict` cookie); the database holds its
//! SHA-256 and the key it stands for, so every request is judged by that key's current scopes
//! and a revoked key ends its sessions at once. Forms that change something carry a CSRF
//! token derived from the session's token, which another site can neither read nor compute.

use chrono::Duration;
use subtle::ConstantTimeEq;

use super::Domain;
use crate::error::{Error, Result};
use crate::model::auth::{Principal, Scope};

/// How long a console session lasts after sign-in.
pub const SESSION_LENGTH: Duration = Duration::hours(12);

impl Domain {
    /// Opens a session for `api_key` (which needs the read scope). Returns the cookie's token,
    /// shown only here, and the key's principal.
    pub async fn sign_in(&self, api_key: &str) -> Result<(String, Principal)> {
        let principal = self.authenticate(api_key.trim()).await?;
        principal.require(Scope::Read)?;
        let token = data_encoding::BASE64URL_NOPAD.encode(&crate::crypto::random_bytes::<32>());
        let now = self.clock.now();
        self.storage
            .insert_console_session(
                &token_hash(&token),
                principal.organization_id,
                principal.api_key_id,
                now,
                now + SESSION_LENGTH,
            )
            .await?;
        Ok((token, principal))
    }

    /// The principal of the session `token`: its key as it is now (scopes, project), or
    /// unauthenticated when the session ended or the key was revoked.
    pub async fn console_principal(&self, token: &str) -> Result<Principal> {
        let signed_out = || Error::Unauthenticated("not signed in, or the session ended".into());
        if token.is_empty() {
            return Err(signed_out());
        }
        let (organization_id, api_key_id) = self
            .storage
            .console_session(&token_hash(token), self.clock.now())
            .await?
            .ok_or_else(signed_out)?;
        let key = self
            .storage
            .get_api_key(organization_id, api_key_id)
            .await?
            .filter(|key| key.revoked_at.is_none())
            .ok_or_else(signed_out)?;
        Ok(Principal {
            organization_id: key.organization_id,
            api_key_id: key.id,
            scopes: key.scopes,
            project_id: key.project_id,
        })
    }

    /// Ends the session `token` (nothing when there is none).
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        self.storage.delete_console_session(&token_hash(token)).await
    }
}

fn token_hash(token: &str) -> String {
    crate::crypto::sha256_hex(token.as_bytes())
}

/// The CSRF token of the session `token`: what its forms carry and what a change must send.
pub fn csrf_token(session_token: &str) -> String {
    crate::crypto::sha256_hex(format!("earshot console form:{session_token}").as_bytes())
}

/// Whether `presented` is the session's CSRF token, compared in constant time.
pub fn csrf_matches(session_token: &str, presented: &str) -> bool {
    !session_token.is_empty()
        && bool::from(csrf_token(session_token).as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::auth::NewApiKey;

    /// A session stands for its key as the key is now: it ends with its time, at sign-out, or
    /// when the key is revoked; a key without the read scope opens none.
    #[tokio::test]
    async fn a_session_lasts_until_it_ends_or_its_key_is_revoked() {
        let clock =
            Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()));
        let (domain, _audio) = crate::domain::test_support::domain(clock.clone()).await;
        let bootstrap = domain.bootstrap(false).await.unwrap().unwrap();
        let admin = bootstrap.api_key_value.expose().to_owned();
        let (token, principal) = domain.sign_in(&admin).await.unwrap();
        assert_eq!(domain.console_principal(&token).await.unwrap(), principal);
        assert!(domain.console_principal("forged").await.is_err());
        clock.advance(SESSION_LENGTH);
        assert_eq!(
            domain.console_principal(&token).await.unwrap_err().code(),
            crate::ErrorCode::Unauthenticated
        );
        let (token, _) = domain.sign_in(&admin).await.unwrap();
        domain.sign_out(&token).await.unwrap();
        assert!(domain.console_principal(&token).await.is_err());

        let ingest_only = domain
            .create_api_key(
                &principal,
                NewApiKey { name: "dialer".into(), scopes: vec![Scope::Ingest], project_id: None },
            )
            .await
            .unwrap();
        assert_eq!(
            domain.sign_in(ingest_only.value.expose()).await.unwrap_err().code(),
            crate::ErrorCode::PermissionDenied
        );
        let reader = domain
            .create_api_key(
                &principal,
                NewApiKey { name: "dashboard".into(), scopes: vec![Scope::Read], project_id: None },
            )
            .await
            .unwrap();
        let (token, _) = domain.sign_in(reader.value.expose()).await.unwrap();
        domain.revoke_api_key(&principal, reader.record.id).await.unwrap();
        assert!(domain.console_principal(&token).await.is_err());
        assert!(domain.sign_in("es_wrong").await.is_err());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let token = csrf_token("session-a");
        assert!(csrf_matches("session-a", &token));
        assert!(!csrf_matches("session-b", &token));
        assert!(!csrf_matches("session-a", ""));
        assert!(!csrf_matches("", &csrf_token("")));
    }
}
