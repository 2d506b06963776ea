//! Downloads audio URLs behind the SSRF guard, with time and size limits, re-checking every
//! redirect.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::ssrf;

#[derive(Clone, Debug)]
pub struct FetchSettings {
    pub timeout: Duration,
    pub max_bytes: usize,
    pub max_redirects: usize,
    pub allow_private_networks: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Will fail the same way every time: no retry.
    #[error("{0}")]
    Permanent(String),
    /// May work later (network, 5xx, 429).
    #[error("{0}")]
    Transient(String),
}

#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    settings: FetchSettings,
}

impl Fetcher {
    pub fn new(settings: FetchSettings) -> Result<Self, String> {
        crate::crypto::install_tls_provider();
        let max_redirects = settings.max_redirects;
        let allow_private = settings.allow_private_networks;
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(format!("more than {max_redirects} redirects"));
            }
            let url = attempt.url();
            if !matches!(url.scheme(), "http" | "https") {
                return attempt.error("redirect to a non-http URL");
            }
            if let Err(reason) =
                ssrf::check_literal_host(url.host_str().unwrap_or_default(), allow_private)
            {
                return attempt.error(format!("redirect target {reason}"));
            }
            attempt.follow()
        });
        let client = reqwest::Client::builder()
            .dns_resolver(ssrf::resolver(allow_private))
            .redirect(redirect)
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()
            .map_err(|error| format!("building the HTTP client: {error}"))?;
        Ok(Self { client, settings })
    }

    /// GETs `url` and returns its body, at most `max_bytes`.
    pub async fn fetch(
        &self,
        url: &str,
        basic_auth: Option<(&str, &str)>,
    ) -> Result<Bytes, FetchError> {
        // Hostnames are checked by the guarded resolver when the client connects (one lookup,
        // no window for rebinding); a literal address is checked here.
        let parsed: http::Uri = url
            .parse()
            .map_err(|_| FetchError::Permanent("audio URL is not a valid URL".into()))?;
        ssrf::check_literal_host(
            parsed.host().unwrap_or_default(),
            self.settings.allow_private_networks,
        )
        .map_err(|reason| FetchError::Permanent(format!("audio URL {reason}")))?;
        let mut request = self.client.get(url);
        if let Some((user, password)) = basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|error| classify(&error))?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("audio URL answered HTTP {}", status.as_u16());
            return Err(
                if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                    FetchError::Transient(message)
                } else {
                    FetchError::Permanent(message)
                },
            );
        }
        let max = self.settings.max_bytes;
        if response.content_length().is_some_and(|length| length > max as u64) {
            return Err(FetchError::Permanent(format!(
                "audio is larger than the {max}-byte limit"
            )));
        }
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| classify(&error))?;
            if body.len() + chunk.len() > max {
                return Err(FetchError::Permanent(format!(
                    "audio is larger than the {max}-byte limit"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

fn classify(error: &reqwest::Error) -> FetchError {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_redirect() || text.contains("does not fetch") {
        FetchError::Permanent(format!("fetching audio: {text}"))
    } else {
        FetchError::Transient(format!("fetching audio: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher() -> Fetcher {
        Fetcher::new(FetchSettings {
            timeout: Duration::from_secs(5),
            max_bytes: 1024,
            max_redirects: 2,
            allow_private_networks: false,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn refused_targets_fail_permanently_without_retries() {
        for url in ["http://127.0.0.1:9/a.wav", "http://[::1]:9/a.wav", "http://localhost:9/a.wav"]
        {
            match fetcher().fetch(url, None).await {
                Err(FetchError::Permanent(reason)) => {
                    assert!(reason.contains("does not fetch"), "{url}: {reason}");
                }
                other => panic!("{url}: expected a permanent refusal, got {other:?}"),
            }
        }
    }
}
