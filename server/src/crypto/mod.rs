//! Sealing secrets (AES-256-GCM under a master key), API keys, and random identifiers.

pub mod api_key;
pub mod master_key;
pub mod secret_box;

pub use secret_box::{Keyring, MasterKey, SealedSecret, SecretValue};

/// Fills a buffer from the operating system's random source.
///
/// A failing OS random source leaves nothing safe to do, so this panics rather than hand out
/// predictable keys.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system random source failed");
    bytes
}

/// Lowercase, unpadded base32: URL-safe, case-insensitive to read aloud, no ambiguous symbols.
pub fn base32_lower(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
}

/// A non-secret, random, URL-safe webhook id: `pub_` and 160 random bits.
pub fn new_public_id() -> String {
    format!("pub_{}", base32_lower(&random_bytes::<20>()))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&sha256(bytes))
}

/// Installs rustls' ring provider as the process's TLS crypto provider (reqwest is built
/// without a bundled one). The command line does it once at start; the audio fetcher and the
/// S3 audio store, which a library user may build without it, do it too. Later calls are
/// no-ops.
pub fn install_tls_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_are_url_safe_and_carry_160_bits() {
        let first = new_public_id();
        let second = new_public_id();
        assert_ne!(first, second);
        assert!(first.starts_with("pub_"));
        // 20 bytes in unpadded base32 are 32 characters of 5 bits each.
        assert_eq!(first.len(), 4 + 32);
        assert!(first[4..].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
