//! Reads the API key from gRPC metadata (rule in `domain::auth::presented_key`).

use tonic::metadata::MetadataMap;

use crate::domain::Domain;
use crate::domain::auth::presented_key;
use crate::error::Error;
use crate::model::auth::Principal;

pub async fn authenticate(domain: &Domain, metadata: &MetadataMap) -> Result<Principal, Error> {
    let header = |name| metadata.get(name).and_then(|value| value.to_str().ok());
    domain.authenticate(presented_key(header("api-key"), header("authorization"))).await
}
