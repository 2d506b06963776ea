//! Reads the API key from gRPC metadata: `api-key`, or `authorization: Bearer <key>`.

use tonic::metadata::MetadataMap;

use crate::domain::Domain;
use crate::domain::auth::Principal;
use crate::error::Error;

pub fn presented_key(metadata: &MetadataMap) -> &str {
    if let Some(key) = metadata.get("api-key").and_then(|value| value.to_str().ok()) {
        return key.trim();
    }
    metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
        })
        .unwrap_or_default()
}

pub async fn authenticate(domain: &Domain, metadata: &MetadataMap) -> Result<Principal, Error> {
    domain.authenticate(presented_key(metadata)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_api_key_then_bearer() {
        let mut metadata = MetadataMap::new();
        assert_eq!(presented_key(&metadata), "");
        metadata.insert("authorization", "Bearer es_abc".parse().unwrap());
        assert_eq!(presented_key(&metadata), "es_abc");
        metadata.insert("api-key", "es_def".parse().unwrap());
        assert_eq!(presented_key(&metadata), "es_def");
        let mut basic = MetadataMap::new();
        basic.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(presented_key(&basic), "");
    }
}
