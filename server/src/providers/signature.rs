//! The primitives every verifier shares: HMACs, constant-time comparison, timestamp windows.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use super::AuthFailure;
use crate::model::integrations::HmacAlgorithm;

/// HMAC of `parts` (concatenated) under `key`.
pub fn hmac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        HmacAlgorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
        HmacAlgorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
    }
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac(HmacAlgorithm::Sha256, key, parts)
}

/// Equality that takes the same time wherever the inputs differ (the length may show).
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.ct_eq(right).into()
}

/// `Ok` when `timestamp` lies within `[now - past, now + future]`, all in one unit.
pub fn check_window(timestamp: i64, now: i64, past: i64, future: i64) -> Result<(), AuthFailure> {
    if timestamp < now.saturating_sub(past) {
        Err(AuthFailure::TimestampTooOld)
    } else if timestamp > now.saturating_add(future) {
        Err(AuthFailure::TimestampInFuture)
    } else {
        Ok(())
    }
}

/// A header's value as text; a missing or non-ASCII header is `None`.
pub fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            data_encoding::HEXLOWER.encode(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn windows_are_inclusive() {
        assert_eq!(check_window(100, 100, 10, 10), Ok(()));
        assert_eq!(check_window(90, 100, 10, 10), Ok(()));
        assert_eq!(check_window(110, 100, 10, 10), Ok(()));
        assert_eq!(check_window(89, 100, 10, 10), Err(AuthFailure::TimestampTooOld));
        assert_eq!(check_window(111, 100, 10, 10), Err(AuthFailure::TimestampInFuture));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
