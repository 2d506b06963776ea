//! The rules of earshot, free of transport and storage types. Both gRPC and REST call these
//! functions; they call `storage` for persistence.

pub mod auth;
pub mod conversation;
pub mod integrations;
pub mod projects;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::storage::Storage;

/// Everything a domain operation may need, cheap to clone.
#[derive(Clone, Debug)]
pub struct Domain {
    pub storage: Storage,
    pub keyring: Arc<Keyring>,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
}

/// Settings the domain rules read, taken from the configuration at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub public_base_url: String,
    pub rotation_grace_default: chrono::Duration,
    pub rotation_grace_max: chrono::Duration,
    pub rate_limit_per_minute_default: u32,
    pub rate_limit_per_minute_max: u32,
}

impl Settings {
    pub fn from_config(config: &Config, public_base_url: String) -> Self {
        let integrations = &config.integrations;
        Self {
            public_base_url,
            rotation_grace_default: chrono::Duration::hours(
                integrations.rotation_grace_default_hours.into(),
            ),
            rotation_grace_max: chrono::Duration::hours(
                integrations.rotation_grace_max_hours.into(),
            ),
            rate_limit_per_minute_default: integrations.rate_limit_per_minute_default,
            rate_limit_per_minute_max: integrations.rate_limit_per_minute_max,
        }
    }
}

/// Parses a UUID given by a caller, naming the field when it is not one.
pub fn parse_id(field: &str, value: &str) -> crate::error::Result<uuid::Uuid> {
    if value.is_empty() {
        return Err(crate::Error::invalid(field, "required"));
    }
    uuid::Uuid::parse_str(value).map_err(|_| crate::Error::invalid(field, "must be a UUID"))
}
