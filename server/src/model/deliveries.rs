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

/// What stands for the integration's public id at the end of a kept URL's path
/// (`StoredRequest::kept`). A webhook's path ends with the public id by which the request found
/// its integration, so no kept path ends with this as sent.
const PUBLIC_ID_LEFT_OUT: &str = "~";

impl StoredRequest {
    /// The request as the delivery log keeps it (issue 15, bytes per stored call): without
    /// what its integration and its body say again, each about 35 and 10 bytes of a kept
    /// request once compressed. The integration's public id at the end of the URL's path
    /// becomes `PUBLIC_ID_LEFT_OUT`; then a `host` header that is the URL's authority and a
    /// `content-length` that is the body's length keep their names with empty values. Only
    /// when the path ends with the public id and neither header was sent empty (so that
    /// `as_sent` reads each empty value as left out); else the request is kept as sent.
    pub fn kept(mut self, public_id: &str, body_length: usize) -> Self {
        let (path, query) = split_query(&self.url);
        let Some(base) = path.strip_suffix(public_id).filter(|base| base.ends_with('/')) else {
            return self;
        };
        if public_id.is_empty()
            || self.headers.iter().any(|(name, value)| {
                value.is_empty() && (name == "host" || name == "content-length")
            })
        {
            return self;
        }
        let url = format!("{base}{PUBLIC_ID_LEFT_OUT}{query}");
        let (host, length) = (authority(&self.url).to_owned(), body_length.to_string());
        for (name, value) in &mut self.headers {
            if (name == "host" && *value == host) || (name == "content-length" && *value == length)
            {
                value.clear();
            }
        }
        self.url = url;
        self
    }

    /// The request as it was sent, from the form `kept` gave it; a request kept as sent
    /// (before run 27, or one `kept` left whole) is returned as it is.
    pub fn as_sent(mut self, public_id: &str, body_length: usize) -> Self {
        let (path, query) = split_query(&self.url);
        let Some(base) = path.strip_suffix(PUBLIC_ID_LEFT_OUT).filter(|base| base.ends_with('/'))
        else {
            return self;
        };
        self.url = format!("{base}{public_id}{query}");
        let host = authority(&self.url).to_owned();
        for (name, value) in &mut self.headers {
            if value.is_empty() {
                match name.as_str() {
                    "host" => value.clone_from(&host),
                    "content-length" => *value = body_length.to_string(),
                    _ => {}
                }
            }
        }
        self
    }
}

/// `url`'s path (with its scheme and authority) and its query (with the `?`), or "".
fn split_query(url: &str) -> (&str, &str) {
    url.split_at(url.find('?').unwrap_or(url.len()))
}

/// `url`'s authority (`host:port`), or "" where it has none (a path alone).
fn authority(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    &rest[..rest.find(['/', '?']).unwrap_or(rest.len())]
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

#[cfg(test)]
mod tests {
    use super::StoredRequest;

    const PUBLIC_ID: &str = "pub_isdc7pmq2nfumegnogq5kaz7ilsnhycb";

    fn request(url: &str, headers: &[(&str, &str)]) -> StoredRequest {
        let headers =
            headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        StoredRequest { url: url.to_owned(), headers }
    }

    /// A webhook's request is kept without its integration's public id, its `host` where that
    /// is the URL's, and its `content-length` where that is the body's, and reads back as sent.
    #[test]
    fn a_kept_request_leaves_out_what_its_integration_and_body_say() {
        let url =
            format!("https://in.example:8443/v0/voice/webhook/twilio/{PUBLIC_ID}?token=redacted");
        let sent = request(
            &url,
            &[
                ("host", "in.example:8443"),
                ("x-twilio-signature", "abc="),
                ("content-length", "906"),
            ],
        );
        let kept = sent.clone().kept(PUBLIC_ID, 906);
        let expected = request(
            "https://in.example:8443/v0/voice/webhook/twilio/~?token=redacted",
            &[("host", ""), ("x-twilio-signature", "abc="), ("content-length", "")],
        );
        assert_eq!(kept, expected);
        assert_eq!(kept.as_sent(PUBLIC_ID, 906), sent);

        // A host behind a proxy and a length that is not the body's are kept as they are.
        let proxied = request(&url, &[("host", "10.0.0.7"), ("content-length", "12")]);
        let kept = proxied.clone().kept(PUBLIC_ID, 906);
        assert_eq!(kept.headers, proxied.headers);
        assert!(kept.url.ends_with("/~?token=redacted"));
        assert_eq!(kept.as_sent(PUBLIC_ID, 906), proxied);
    }

    /// What `kept` cannot leave out unambiguously is kept whole, and reads back as it is: a path
    /// that does not end with the public id (the API-key route), a header sent empty, and every
    /// request kept before (none ends with the marker).
    #[test]
    fn a_request_kept_whole_reads_as_it_is() {
        let cases = [
            request("/v0/voice/webhook?provider=retell", &[("content-length", "906")]),
            request(&format!("http://h/v0/voice/webhook/x/{PUBLIC_ID}x"), &[("host", "h")]),
            request(&format!("http://h/v0/voice/webhook/x{PUBLIC_ID}"), &[("host", "h")]),
            request(&format!("http://h/v0/voice/webhook/x/{PUBLIC_ID}"), &[("host", "")]),
            request(&format!("http://h/x/{PUBLIC_ID}"), &[("content-length", ""), ("host", "h")]),
        ];
        for sent in cases {
            let kept = sent.clone().kept(PUBLIC_ID, 906);
            assert_eq!(kept, sent);
            assert_eq!(kept.as_sent(PUBLIC_ID, 906), sent);
        }
        // An empty public id leaves nothing out.
        let sent = request("http://h/x/", &[("host", "h")]);
        assert_eq!(sent.clone().kept("", 0), sent);
    }
}
