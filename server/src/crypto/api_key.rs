//! API keys: `es_` and 32 random bytes in lowercase base32, shown once, stored as SHA-256.
//!
//! A plain SHA-256 suffices (no slow KDF): the keys carry 256 random bits, so there is nothing
//! to brute-force, and lookups by hash stay a single indexed query.

pub const API_KEY_PREFIX: &str = "es_";
/// How many leading characters of a key are kept to recognise it in listings.
const DISPLAY_PREFIX_LEN: usize = 10;

/// A freshly generated key: the value for the caller, and what is stored.
#[derive(Clone)]
pub struct GeneratedApiKey {
    pub value: super::SecretValue,
    pub hash: String,
    pub display_prefix: String,
}

impl std::fmt::Debug for GeneratedApiKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("GeneratedApiKey").field("prefix", &self.display_prefix).finish()
    }
}

pub fn generate() -> GeneratedApiKey {
    let value = format!("{API_KEY_PREFIX}{}", super::base32_lower(&super::random_bytes::<32>()));
    GeneratedApiKey {
        hash: hash(&value),
        display_prefix: value[..DISPLAY_PREFIX_LEN].to_owned(),
        value: super::SecretValue::new(value),
    }
}

/// The stored form of a key. Keys that do not look like earshot keys still hash, so a lookup
/// of garbage takes the same path as a lookup of a revoked key.
pub fn hash(value: &str) -> String {
    super::sha256_hex(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let first = generate();
        let second = generate();
        assert!(first.value.expose().starts_with("es_"));
        assert_eq!(first.value.expose().len(), 3 + 52);
        assert_ne!(first.value, second.value);
        assert_eq!(first.hash, hash(first.value.expose()));
        assert_eq!(first.hash.len(), 64);
        assert!(first.value.expose().starts_with(&first.display_prefix));
        assert!(!format!("{first:?}").contains(first.value.expose()));
    }
}
