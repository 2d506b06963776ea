//! Verifying the events earshot sends to an endpoint (Standard Webhooks), with the same code
//! the server signs them with (`earshot_webhooks`).

pub use earshot_webhooks::VerifyError;

/// Why a received event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The signature or its timestamp does not verify.
    #[error("the event does not verify: {0}")]
    Verify(#[from] VerifyError),
    /// It verifies, but the body is not an event envelope (a JSON object with `type`).
    #[error("the event's body is not an earshot event: {0}")]
    Body(String),
}

/// Verifies an event earshot sent to one of your endpoints and returns its envelope
/// (`{"type", "timestamp", "data"}`). `headers` are the request's headers (names in any case;
/// `webhook-id`, `webhook-timestamp`, `webhook-signature`), `body` its exact bytes, `secrets`
/// the endpoint's signing secrets (`whsec_…`; during a rotation, the new and the old: any one
/// matching passes). The timestamp must be within five minutes of this machine's clock, which
/// refuses replays of old deliveries; deduplicate on `webhook-id`, which every retry repeats.
///
/// ```
/// # let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// # let body = br#"{"type":"call.processed","timestamp":"2026-12-01T00:00:00Z","data":{}}"#;
/// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
/// # let signature = earshot_webhooks::signature_header(&[secret], "msg_1", now, body);
/// # let timestamp = now.to_string();
/// let headers = [
///     ("webhook-id", "msg_1"),
///     ("webhook-timestamp", timestamp.as_str()),
///     ("webhook-signature", signature.as_str()),
/// ];
/// let event = earshot::verify_webhook(headers, body, &[secret]).unwrap();
/// assert_eq!(event["type"], "call.processed");
/// ```
pub fn verify_webhook<'a, S: AsRef<str>>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    secrets: &[S],
) -> Result<serde_json::Value, WebhookError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    verify_webhook_at(headers, body, secrets, now)
}

/// `verify_webhook` with the time to judge the timestamp by (Unix seconds).
pub fn verify_webhook_at<'a, S: AsRef<str>>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    secrets: &[S],
    now_seconds: i64,
) -> Result<serde_json::Value, WebhookError> {
    let (mut id, mut timestamp, mut signature) = (None, None, None);
    for (name, value) in headers {
        match name.to_ascii_lowercase().as_str() {
            "webhook-id" => id = Some(value),
            "webhook-timestamp" => timestamp = Some(value),
            "webhook-signature" => signature = Some(value),
            _ => {}
        }
    }
    earshot_webhooks::verify(secrets, id, timestamp, signature, body, now_seconds)?;
    let event: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| WebhookError::Body(error.to_string()))?;
    if !event.get("type").is_some_and(serde_json::Value::is_string) {
        return Err(WebhookError::Body("no type".to_owned()));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn an_event_verifies_and_a_tampered_one_does_not() {
        let body = br#"{"type":"check.failed","timestamp":"2026-12-01T00:00:00Z","data":{}}"#;
        let signature = earshot_webhooks::signature_header(&[SECRET], "msg_1", 1_800_000_000, body);
        let headers = [
            ("Webhook-Id", "msg_1"),
            ("Webhook-Timestamp", "1800000000"),
            ("Webhook-Signature", signature.as_str()),
        ];
        let event = verify_webhook_at(headers, body, &[SECRET], 1_800_000_010).unwrap();
        assert_eq!(event["type"], "check.failed");
        let tampered =
            br#"{"type":"check.failed","timestamp":"2026-12-01T00:00:00Z","data":{"x":1}}"#;
        assert!(matches!(
            verify_webhook_at(headers, tampered, &[SECRET], 1_800_000_010),
            Err(WebhookError::Verify(VerifyError::Mismatch))
        ));
        assert!(matches!(
            verify_webhook_at(headers, body, &[SECRET], 1_800_001_000),
            Err(WebhookError::Verify(VerifyError::TooOld))
        ));
        let not_event = b"[1]";
        let signature =
            earshot_webhooks::signature_header(&[SECRET], "msg_1", 1_800_000_000, not_event);
        let headers = [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1800000000"),
            ("webhook-signature", signature.as_str()),
        ];
        assert!(matches!(
            verify_webhook_at(headers, not_event, &[SECRET], 1_800_000_000),
            Err(WebhookError::Body(_))
        ));
    }
}
