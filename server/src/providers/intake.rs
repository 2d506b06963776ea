//! The admission of one webhook request, in the documented order: unknown or disabled id, content
//! type, signature, payload, then the durable commit. The transport turns the verdict into HTTP.

use super::{AuthFailure, NormalizeContext, Normalized, PayloadError, WebhookRequest};
use crate::domain::Domain;
use crate::domain::integrations::{IntegrationStatus, Provider};
use crate::error::Error;

/// A webhook request as it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub provider: &'a str,
    pub public_id: &'a str,
    /// The public URL the sender called (base URL from the configuration, path and query from
    /// the request).
    pub url: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

#[derive(Debug)]
pub enum Verdict {
    /// Unknown provider, unknown public id, or a disabled integration: the same answer for all.
    NotFound,
    UnsupportedMediaType {
        expected: &'static str,
    },
    Unauthorized(AuthFailure),
    Malformed(PayloadError),
    Ignored {
        event: String,
    },
    Duplicate {
        call_id: String,
        ingest_id: uuid::Uuid,
    },
    Accepted {
        call_id: String,
        ingest_id: uuid::Uuid,
    },
    /// The domain refused the call (a refused audio URL, say: 400) or could not store it (503:
    /// nothing was stored and the sender should retry).
    Failed(Error),
}

/// The content types a provider posts.
fn accepted_content_types(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Twilio => &["application/x-www-form-urlencoded"],
        Provider::Livekit => &["application/webhook+json", "application/json"],
        _ => &["application/json"],
    }
}

fn content_type_matches(headers: &http::HeaderMap, accepted: &[&str]) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    accepted.contains(&essence.as_str())
}

pub async fn receive(domain: &Domain, incoming: Incoming<'_>) -> Verdict {
    let Some(provider) = Provider::parse(incoming.provider) else {
        return Verdict::NotFound;
    };
    let integration = match domain.integration_by_public_id(incoming.public_id).await {
        Ok(Some(integration))
            if integration.provider == provider
                && integration.status == IntegrationStatus::Active =>
        {
            integration
        }
        Ok(_) => return Verdict::NotFound,
        Err(error) => return Verdict::Failed(error),
    };
    let accepted = accepted_content_types(provider);
    if !content_type_matches(incoming.headers, accepted) {
        return Verdict::UnsupportedMediaType { expected: accepted[0] };
    }
    let secrets = match domain.verification_secrets(integration.id).await {
        Ok(secrets) => secrets,
        Err(error) => return Verdict::Failed(error),
    };
    let request = WebhookRequest {
        url: incoming.url,
        headers: incoming.headers,
        body: incoming.body,
        now: domain.clock.now(),
    };
    if let Err(failure) =
        super::verify_any(integration.auth_type, &integration.options, &secrets, &request)
    {
        return Verdict::Unauthorized(failure);
    }
    let context = NormalizeContext {
        integration_id: integration.id,
        options: &integration.options,
        url: incoming.url,
    };
    let call = match super::normalize(provider, &context, incoming.body) {
        Ok(Normalized::Call(call)) => call,
        Ok(Normalized::Ignored { event }) => return Verdict::Ignored { event },
        Err(error) => return Verdict::Malformed(error),
    };
    let call = *call;
    match domain.admit_webhook_call(&integration, call.conversation, call.inline_audio).await {
        Ok(admitted) if admitted.duplicate => {
            Verdict::Duplicate { call_id: admitted.call_id, ingest_id: admitted.ingest_id }
        }
        Ok(admitted) => {
            Verdict::Accepted { call_id: admitted.call_id, ingest_id: admitted.ingest_id }
        }
        Err(error) => Verdict::Failed(error),
    }
}
