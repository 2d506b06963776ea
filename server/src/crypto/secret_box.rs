//! AES-256-GCM sealing of integration secrets.
//!
//! Each value gets a random 96-bit nonce; the associated data binds it to its row (integration id
//! and secret name), so a ciphertext copied to another integration or name fails to open. The id
//! of the master key that sealed it is stored beside it, so the keyring can open values sealed
//! before a master-key rotation.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::Digest;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("no master key with id {0} is configured")]
    UnknownKey(String),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value failed authentication (wrong key, changed ciphertext or moved row)")]
    Authentication,
    #[error("master key must be base64 of exactly 32 bytes")]
    BadMasterKey,
}

/// A secret value in memory. `Debug` never shows it; read it with `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

/// One 256-bit master key and its id (a digest of the key, safe to store and log).
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: [u8; 32],
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let digest = sha2::Sha256::new_with_prefix(b"earshot master key id\0").chain_update(key);
        let id = data_encoding::HEXLOWER.encode(&digest.finalize()[..8]);
        Self { id, key }
    }

    pub fn generate() -> Self {
        Self::from_bytes(super::random_bytes::<32>())
    }

    /// Parses standard base64 (padding optional) of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, SealError> {
        let trimmed = encoded.trim().trim_end_matches('=');
        let bytes = data_encoding::BASE64_NOPAD
            .decode(trimmed.as_bytes())
            .map_err(|_| SealError::BadMasterKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadMasterKey)?;
        Ok(Self::from_bytes(key))
    }

    pub fn to_base64(&self) -> String {
        data_encoding::BASE64.encode(&self.key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A sealed value as stored: `nonce || ciphertext || tag`, and the id of the key that sealed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

/// The current master key (seals) and earlier ones (only open), for master-key rotation.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> SealedSecret {
        let cipher = Aes256Gcm::new((&self.current.key).into());
        let nonce_bytes = super::random_bytes::<NONCE_LEN>();
        let nonce = Nonce::from_slice(&nonce_bytes);
        // Encryption only fails for inputs beyond GCM's 64 GiB limit, far above any secret.
        #[allow(clippy::expect_used)]
        let sealed = cipher
            .encrypt(nonce, Payload { msg: plaintext, aad: associated_data })
            .expect("AES-GCM encryption of a small secret cannot fail");
        let mut ciphertext = Vec::with_capacity(NONCE_LEN + sealed.len());
        ciphertext.extend_from_slice(&nonce_bytes);
        ciphertext.extend_from_slice(&sealed);
        SealedSecret { key_id: self.current.id.clone(), ciphertext }
    }

    pub fn open(
        &self,
        sealed: &SealedSecret,
        associated_data: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.ciphertext.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce_bytes, body) = sealed.ciphertext.split_at(NONCE_LEN);
        Aes256Gcm::new((&key.key).into())
            .decrypt(Nonce::from_slice(nonce_bytes), Payload { msg: body, aad: associated_data })
            .map_err(|_| SealError::Authentication)
    }
}

/// Associated data binding a sealed integration secret to its row.
pub fn integration_secret_aad(integration_id: &uuid::Uuid, secret_name: &str) -> Vec<u8> {
    format!("earshot/integration-secret/{integration_id}/{secret_name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(MasterKey::generate(), Vec::new())
    }

    #[test]
    fn seal_then_open_round_trips() {
        let keyring = keyring();
        let sealed = keyring.seal(b"0123456789abcdef0123456789abcdef", b"row-1/auth_token");
        assert_eq!(sealed.key_id, keyring.current().id());
        assert_eq!(sealed.ciphertext.len(), 12 + 32 + 16);
        let opened = keyring.open(&sealed, b"row-1/auth_token").unwrap();
        assert_eq!(opened, b"0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let keyring = keyring();
        let first = keyring.seal(b"same", b"aad");
        let second = keyring.seal(b"same", b"aad");
        assert_ne!(first.ciphertext, second.ciphertext);
    }

    #[test]
    fn changed_ciphertext_fails_with_an_error() {
        let keyring = keyring();
        let mut sealed = keyring.seal(b"secret", b"aad");
        for index in [0, 12, sealed.ciphertext.len() - 1] {
            let mut tampered = sealed.clone();
            tampered.ciphertext[index] ^= 0x01;
            assert_eq!(keyring.open(&tampered, b"aad"), Err(SealError::Authentication));
        }
        sealed.ciphertext.truncate(10);
        assert_eq!(keyring.open(&sealed, b"aad"), Err(SealError::Malformed));
    }

    #[test]
    fn swapped_associated_data_fails_with_an_error() {
        let keyring = keyring();
        let first = uuid::Uuid::now_v7();
        let second = uuid::Uuid::now_v7();
        let sealed = keyring.seal(b"secret", &integration_secret_aad(&first, "auth_token"));
        assert_eq!(
            keyring.open(&sealed, &integration_secret_aad(&second, "auth_token")),
            Err(SealError::Authentication)
        );
        assert_eq!(
            keyring.open(&sealed, &integration_secret_aad(&first, "api_key")),
            Err(SealError::Authentication)
        );
    }

    #[test]
    fn wrong_key_fails_with_an_error() {
        let sealed = keyring().seal(b"secret", b"aad");
        let other = keyring();
        assert!(matches!(other.open(&sealed, b"aad"), Err(SealError::UnknownKey(_))));
        // Same key id claimed, different key material.
        let forged = SealedSecret { key_id: other.current().id().to_owned(), ..sealed };
        assert_eq!(other.open(&forged, b"aad"), Err(SealError::Authentication));
    }

    #[test]
    fn previous_keys_open_but_never_seal() {
        let old = MasterKey::generate();
        let sealed = Keyring::new(old.clone(), Vec::new()).seal(b"secret", b"aad");
        let rotated = Keyring::new(MasterKey::generate(), vec![old.clone()]);
        assert_eq!(rotated.open(&sealed, b"aad").unwrap(), b"secret");
        assert_ne!(rotated.seal(b"secret", b"aad").key_id, old.id());
    }

    #[test]
    fn master_key_parsing_is_strict_and_debug_is_redacted() {
        let key = MasterKey::generate();
        let parsed = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(parsed.id(), key.id());
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").unwrap_err(), SealError::BadMasterKey);
        assert_eq!(MasterKey::from_base64("not base64!").unwrap_err(), SealError::BadMasterKey);
        assert!(!format!("{key:?}").contains(&key.to_base64()));
        assert_eq!(format!("{:?}", SecretValue::new("hunter2")), "[redacted]");
    }
}
