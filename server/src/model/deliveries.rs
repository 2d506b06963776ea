//! The webhook delivery log: one record per request that reached an integration, with the
//! request kept for replay while the body retention lasts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What earshot answered to one webhook request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryVerdict {
    Accepted,
    Duplicate,
    Ignored,
    Rejected,
}

impl DeliveryVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryVerdict::Accepted => "accepted",
            DeliveryVerdict::Duplicate => "duplicate",
            DeliveryVerdict::Ignored => "ignored",
            DeliveryVerdict::Rejected => "rejected",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "accepted" => Some(DeliveryVerdict::Accepted),
            "duplicate" => Some(DeliveryVerdict::Duplicate),
            "ignored" => Some(DeliveryVerdict::Ignored),
            "rejected" => Some(DeliveryVerdict::Rejected),
            _ => None,
        }
    }
}

/// The parts of a request a replay needs besides its body: the URL as called and the headers,
/// without credentials (static tokens are never stored; signatures are, as they reveal nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// One delivery as it is written: the listed record, whose owner and kept request.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub organization_id: Uuid,
    pub project_id: Uuid,
    /// When the same write stores a call, the storage sets its verdict to accepted (202) or
    /// duplicate (200) and its ingest id from that call's outcome, in the same transaction.
    pub record: WebhookDelivery,
    pub request: Option<StoredRequest>,
    /// Shared with the request's own buffer, not copied.
    pub body: Option<bytes::Bytes>,
}

/// A delivery as it is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub integration_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub verdict: DeliveryVerdict,
    pub http_status: u16,
    pub event_type: String,
    pub call_id: String,
    pub body_sha256: String,
    pub error: String,
    pub error_message: String,
    pub ingest_id: Option<Uuid>,
    pub authenticated: bool,
    /// The body is still kept.
    pub replayable: bool,
}

/// A delivery with what a replay needs.
#[derive(Clone, Debug)]
pub struct StoredDelivery {
    pub delivery: WebhookDelivery,
    pub request: Option<StoredRequest>,
    pub body: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct DeliveryPage {
    pub deliveries: Vec<WebhookDelivery>,
    pub next_page_token: Option<String>,
}

/// The request headers worth keeping for a replay: everything but credentials and cookies.
/// `credential_header` is the header that carries a static token for this integration, if any.
pub fn headers_to_store(
    headers: &http::HeaderMap,
    credential_header: Option<&str>,
) -> Vec<(String, String)> {
    const NEVER: [&str; 4] = ["api-key", "cookie", "proxy-authorization", "x-vapi-secret"];
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !NEVER.contains(&name) && credential_header.is_none_or(|credential| credential != name)
        })
        .filter_map(|(name, value)| {
            value.to_str().ok().map(|value| (name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

/// `url` with the value of its `token` query parameter replaced, so URL tokens are not stored.
pub fn url_to_store(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    if !form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "token") {
        return url.to_owned();
    }
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = if key == "token" { "redacted".into() } else { value };
        serializer.append_pair(&key, &value);
    }
    format!("{base}?{}", serializer.finish())
}
