//! Provider integrations: the records behind a webhook URL, their options and sealed secrets,
//! and the usage counters the webhook routes keep.

pub mod catalog;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use catalog::{Provider, WebhookAuthType, decode_base64_lenient};

use super::conversation::Role;
use crate::crypto::{SealedSecret, SecretValue};

/// How many replaced secret sets are kept at most (oldest dropped first).
pub const MAX_PREVIOUS_SECRET_SETS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationStatus {
    Active,
    Disabled,
}

impl IntegrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Active => "active",
            IntegrationStatus::Disabled => "disabled",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(IntegrationStatus::Active),
            "disabled" => Some(IntegrationStatus::Disabled),
            _ => None,
        }
    }
}

/// Non-secret settings, stored as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntegrationOptions {
    /// Canonical CIDRs (`10.0.0.0/8`, `203.0.113.7/32`).
    pub ip_allowlist: Vec<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub default_first_turn: Option<Role>,
    pub twilio: Option<TwilioOptions>,
    pub hmac: Option<HmacOptions>,
    pub header_token: Option<HeaderTokenOptions>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TwilioOptions {
    pub account_sid: String,
    /// 1 or 2; 0 decides by first_turn.
    pub assistant_channel: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HmacOptions {
    pub signature_header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: SignatureEncoding,
    pub signature_prefix: String,
    /// Empty when the sender signs the body alone.
    pub timestamp_header: String,
    pub timestamp_tolerance_seconds: u32,
    pub secret_is_base64: bool,
}

impl Default for HmacOptions {
    fn default() -> Self {
        Self {
            signature_header: "x-signature".to_owned(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            signature_prefix: String::new(),
            timestamp_header: String::new(),
            timestamp_tolerance_seconds: DEFAULT_TIMESTAMP_TOLERANCE_SECONDS,
            secret_is_base64: false,
        }
    }
}

pub const DEFAULT_TIMESTAMP_TOLERANCE_SECONDS: u32 = 300;

pub const MAX_TIMESTAMP_TOLERANCE_SECONDS: u32 = 86_400;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderTokenOptions {
    pub header_name: String,
    pub bearer_prefix: bool,
}

impl Default for HeaderTokenOptions {
    fn default() -> Self {
        Self { header_name: "authorization".to_owned(), bearer_prefix: true }
    }
}

/// What is known about one stored secret without revealing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMetadata {
    pub name: String,
    pub last4: String,
    /// Increases with every rotation; the highest unexpiring one is current.
    pub generation: i32,
    pub created_at: DateTime<Utc>,
    /// None for the current set; the grace deadline for replaced sets.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integration {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub provider: Provider,
    pub display_name: String,
    pub public_id: String,
    pub auth_type: WebhookAuthType,
    pub status: IntegrationStatus,
    pub options: IntegrationOptions,
    /// Current secrets first, then replaced ones still within their grace period.
    pub secrets: Vec<SecretMetadata>,
    pub request_count: i64,
    /// Webhook requests refused by a rate limit, counted instead of logged.
    pub rate_limited_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_validated_at: Option<DateTime<Utc>>,
}

/// A secret ready for storage.
#[derive(Clone, Debug)]
pub struct NewSealedSecret {
    pub name: String,
    pub sealed: SealedSecret,
    pub last4: String,
}

/// One stored secret row, still sealed.
#[derive(Clone, Debug)]
pub struct StoredSecret {
    pub integration_id: Uuid,
    pub name: String,
    pub generation: i32,
    pub sealed: SealedSecret,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A set of opened secrets to verify a request with.
#[derive(Clone, Debug)]
pub struct SecretSet {
    pub generation: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub values: BTreeMap<String, SecretValue>,
}

impl SecretSet {
    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.values.get(name)
    }
}

#[derive(Clone, Debug)]
pub struct NewIntegration {
    pub project_id: Uuid,
    pub provider: Option<Provider>,
    pub display_name: String,
    pub auth_type: Option<WebhookAuthType>,
    pub secrets: BTreeMap<String, SecretValue>,
    pub options: IntegrationOptions,
}

#[derive(Clone, Debug, Default)]
pub struct IntegrationUpdate {
    pub display_name: Option<String>,
    pub options: Option<IntegrationOptions>,
}

/// A page of integrations and the token of the next one (None on the last page).
#[derive(Clone, Debug)]
pub struct IntegrationPage {
    pub integrations: Vec<Integration>,
    pub next_page_token: Option<String>,
}

/// A CIDR, or a single address taken as a host network.
pub fn parse_cidr(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    entry
        .parse::<ipnet::IpNet>()
        .ok()
        .map(|network| network.trunc())
        .or_else(|| entry.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// Requests and last times not yet written to the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: i64,
    pub rate_limited: i64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_validated_at: Option<DateTime<Utc>>,
}

impl Usage {
    /// Adds `other`'s requests and keeps the later times.
    pub fn merge(&mut self, other: Usage) {
        self.requests = self.requests.saturating_add(other.requests);
        self.rate_limited = self.rate_limited.saturating_add(other.rate_limited);
        self.last_used_at = self.last_used_at.max(other.last_used_at);
        self.last_validated_at = self.last_validated_at.max(other.last_validated_at);
    }

    /// Adds the pending usage to what the database said.
    pub fn apply_to(&self, integration: &mut Integration) {
        let mut total = Usage {
            requests: integration.request_count,
            rate_limited: integration.rate_limited_count,
            last_used_at: integration.last_used_at,
            last_validated_at: integration.last_validated_at,
        };
        total.merge(*self);
        integration.request_count = total.requests;
        integration.rate_limited_count = total.rate_limited;
        integration.last_used_at = total.last_used_at;
        integration.last_validated_at = total.last_validated_at;
    }
}
