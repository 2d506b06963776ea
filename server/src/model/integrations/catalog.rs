//! Which providers accept which webhook auth types, which secrets each type needs, and the
//! offline checks of those secrets. Formats per shared/reference/providers.md.

use crate::error::Violations;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Twilio,
    Retell,
    Vapi,
    Elevenlabs,
    Livekit,
    Bland,
    Voicekit,
    Webhook,
}

impl Provider {
    pub const ALL: [Provider; 8] = [
        Provider::Twilio,
        Provider::Retell,
        Provider::Vapi,
        Provider::Elevenlabs,
        Provider::Livekit,
        Provider::Bland,
        Provider::Voicekit,
        Provider::Webhook,
    ];

    /// The name used in webhook URLs and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Retell => "retell",
            Provider::Vapi => "vapi",
            Provider::Elevenlabs => "elevenlabs",
            Provider::Livekit => "livekit",
            Provider::Bland => "bland",
            Provider::Voicekit => "voicekit",
            Provider::Webhook => "webhook",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|provider| provider.as_str() == name)
    }

    /// Auth types this provider's webhooks can carry; the first is the default.
    pub fn auth_types(self) -> &'static [WebhookAuthType] {
        use WebhookAuthType as Auth;
        match self {
            Provider::Twilio => &[Auth::TwilioSignature],
            Provider::Retell => &[Auth::RetellSignature],
            Provider::Vapi => &[Auth::VapiSecret, Auth::HeaderToken, Auth::Hmac],
            Provider::Elevenlabs => &[Auth::ElevenlabsSignature],
            Provider::Livekit => &[Auth::LivekitJwt],
            Provider::Bland => &[Auth::BlandSignature, Auth::Hmac],
            Provider::Voicekit => &[Auth::UrlToken, Auth::IpAllowlist],
            Provider::Webhook => &[Auth::StandardWebhooks, Auth::Hmac],
        }
    }

    pub fn default_auth_type(self) -> WebhookAuthType {
        self.auth_types()[0]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookAuthType {
    TwilioSignature,
    RetellSignature,
    VapiSecret,
    HeaderToken,
    Hmac,
    ElevenlabsSignature,
    LivekitJwt,
    BlandSignature,
    StandardWebhooks,
    UrlToken,
    IpAllowlist,
}

impl WebhookAuthType {
    pub const ALL: [WebhookAuthType; 11] = [
        WebhookAuthType::TwilioSignature,
        WebhookAuthType::RetellSignature,
        WebhookAuthType::VapiSecret,
        WebhookAuthType::HeaderToken,
        WebhookAuthType::Hmac,
        WebhookAuthType::ElevenlabsSignature,
        WebhookAuthType::LivekitJwt,
        WebhookAuthType::BlandSignature,
        WebhookAuthType::StandardWebhooks,
        WebhookAuthType::UrlToken,
        WebhookAuthType::IpAllowlist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookAuthType::TwilioSignature => "twilio_signature",
            WebhookAuthType::RetellSignature => "retell_signature",
            WebhookAuthType::VapiSecret => "vapi_secret",
            WebhookAuthType::HeaderToken => "header_token",
            WebhookAuthType::Hmac => "hmac",
            WebhookAuthType::ElevenlabsSignature => "elevenlabs_signature",
            WebhookAuthType::LivekitJwt => "livekit_jwt",
            WebhookAuthType::BlandSignature => "bland_signature",
            WebhookAuthType::StandardWebhooks => "standard_webhooks",
            WebhookAuthType::UrlToken => "url_token",
            WebhookAuthType::IpAllowlist => "ip_allowlist",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|auth_type| auth_type.as_str() == name)
    }

    /// The secrets this auth type needs, all required.
    pub fn secret_names(self) -> &'static [&'static str] {
        match self {
            WebhookAuthType::TwilioSignature => &["auth_token"],
            WebhookAuthType::RetellSignature => &["api_key"],
            WebhookAuthType::VapiSecret | WebhookAuthType::Hmac => &["secret"],
            WebhookAuthType::HeaderToken | WebhookAuthType::UrlToken => &["token"],
            WebhookAuthType::ElevenlabsSignature | WebhookAuthType::BlandSignature => {
                &["webhook_secret"]
            }
            WebhookAuthType::LivekitJwt => &["api_key", "api_secret"],
            WebhookAuthType::StandardWebhooks => &["signing_secret"],
            WebhookAuthType::IpAllowlist => &[],
        }
    }
}

/// The most bytes a secret value may have.
const MAX_SECRET_BYTES: usize = 4096;

/// Checks a complete set of secrets for `auth_type` offline: names, then each value's format.
/// `secret_is_base64` comes from the HMAC options.
pub fn check_secrets<'a>(
    auth_type: WebhookAuthType,
    secrets: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret_is_base64: bool,
    violations: &mut Violations,
) {
    let secrets: Vec<(&str, &str)> = secrets.into_iter().collect();
    let expected = auth_type.secret_names();
    for &(name, value) in &secrets {
        let field = format!("secrets[{name}]");
        if !expected.contains(&name) {
            let description = if expected.is_empty() {
                format!("{} takes no secrets", auth_type.as_str())
            } else {
                format!(
                    "unknown secret for {}; expected {}",
                    auth_type.as_str(),
                    expected.join(", ")
                )
            };
            violations.add(field, description);
            continue;
        }
        if let Err(description) = check_value(auth_type, name, value, secret_is_base64) {
            violations.add(field, description);
        }
    }
    for name in expected {
        if !secrets.iter().any(|(given, _)| given == name) {
            violations
                .add(format!("secrets[{name}]"), format!("required for {}", auth_type.as_str()));
        }
    }
}

fn check_value(
    auth_type: WebhookAuthType,
    name: &str,
    value: &str,
    secret_is_base64: bool,
) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(format!("must be at most {MAX_SECRET_BYTES} bytes"));
    }
    if value.trim() != value {
        return Err("must not start or end with whitespace".to_owned());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    match (auth_type, name) {
        (WebhookAuthType::TwilioSignature, "auth_token") => check_twilio_auth_token(value),
        (WebhookAuthType::ElevenlabsSignature, "webhook_secret") if value.chars().count() < 16 => {
            Err("must be at least 16 characters (ElevenLabs webhook secret)".to_owned())
        }
        (WebhookAuthType::StandardWebhooks, "signing_secret") => {
            check_standard_webhooks_secret(value)
        }
        (WebhookAuthType::UrlToken, "token") => check_url_token(value),
        (WebhookAuthType::Hmac, "secret") if secret_is_base64 => decode_base64_lenient(value)
            .map(drop)
            .ok_or_else(|| "must be base64, as options.hmac.secret_is_base64 says".to_owned()),
        _ => Ok(()),
    }
}

fn check_twilio_auth_token(value: &str) -> Result<(), String> {
    if value.len() == 32 && value.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err("must be a Twilio auth token: 32 hex characters".to_owned())
    }
}

fn check_url_token(value: &str) -> Result<(), String> {
    if value.chars().count() < 16 {
        return Err("must be at least 16 characters, to be unguessable".to_owned());
    }
    if !value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte)) {
        return Err("must be URL-safe: letters, digits, - _ . ~".to_owned());
    }
    Ok(())
}

/// `whsec_` followed by base64 of 24 to 64 bytes (the Standard Webhooks spec; padding optional,
/// as the reference libraries accept).
fn check_standard_webhooks_secret(value: &str) -> Result<(), String> {
    let encoded = value
        .strip_prefix("whsec_")
        .ok_or_else(|| "must start with whsec_ (Standard Webhooks secret)".to_owned())?;
    let bytes = decode_base64_lenient(encoded)
        .ok_or_else(|| "must be whsec_ followed by base64".to_owned())?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(format!("must encode 24 to 64 bytes, found {}", bytes.len()));
    }
    Ok(())
}

/// Standard base64 with or without padding.
pub fn decode_base64_lenient(value: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64_NOPAD.decode(value.trim_end_matches('=').as_bytes()).ok()
}

/// `AC` followed by 32 hex characters.
pub fn is_twilio_account_sid(value: &str) -> bool {
    value.len() == 34
        && value.starts_with("AC")
        && value[2..].bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations_of(
        auth_type: WebhookAuthType,
        secrets: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut violations = Violations::new();
        check_secrets(auth_type, secrets.iter().copied(), false, &mut violations);
        match violations.into_result() {
            Ok(()) => Vec::new(),
            Err(error) => error
                .field_violations()
                .iter()
                .map(|violation| (violation.field.clone(), violation.description.clone()))
                .collect(),
        }
    }

    fn assert_rejected(
        auth_type: WebhookAuthType,
        secrets: &[(&str, &str)],
        field: &str,
        needle: &str,
    ) {
        let violations = violations_of(auth_type, secrets);
        assert!(
            violations
                .iter()
                .any(|(name, description)| name == field && description.contains(needle)),
            "{auth_type:?} {secrets:?}: expected {field} containing {needle:?}, got {violations:?}"
        );
    }

    #[test]
    fn every_provider_default_auth_type_is_among_its_types() {
        for provider in Provider::ALL {
            assert!(provider.auth_types().contains(&provider.default_auth_type()));
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
        for auth_type in WebhookAuthType::ALL {
            assert_eq!(WebhookAuthType::parse(auth_type.as_str()), Some(auth_type));
        }
    }

    #[test]
    fn twilio_auth_token_must_be_32_hex_characters() {
        let good = [("auth_token", "0123456789abcdef0123456789abcdef")];
        assert!(violations_of(WebhookAuthType::TwilioSignature, &good).is_empty());
        for bad in ["0123456789abcdef", "0123456789abcdef0123456789abcdeg", "x".repeat(32).as_str()]
        {
            assert_rejected(
                WebhookAuthType::TwilioSignature,
                &[("auth_token", bad)],
                "secrets[auth_token]",
                "32 hex",
            );
        }
        assert_rejected(WebhookAuthType::TwilioSignature, &[], "secrets[auth_token]", "required");
    }

    #[test]
    fn twilio_account_sid_format() {
        assert!(is_twilio_account_sid("AC11111111111111111111111111111111"));
        assert!(is_twilio_account_sid("ACabcdefABCDEF0123456789abcdef0123"));
        assert!(!is_twilio_account_sid("CA11111111111111111111111111111111"));
        assert!(!is_twilio_account_sid("AC1111111111111111111111111111111"));
        assert!(!is_twilio_account_sid("AC1111111111111111111111111111111z"));
    }

    #[test]
    fn standard_webhooks_secret_must_be_whsec_and_24_to_64_bytes() {
        // The official test key of the Standard Webhooks python library (24 bytes).
        let good = [("signing_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        assert!(violations_of(WebhookAuthType::StandardWebhooks, &good).is_empty());
        let field = "secrets[signing_secret]";
        assert_rejected(
            WebhookAuthType::StandardWebhooks,
            &[("signing_secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            field,
            "whsec_",
        );
        assert_rejected(
            WebhookAuthType::StandardWebhooks,
            &[("signing_secret", "whsec_not*base64")],
            field,
            "base64",
        );
        let short = format!("whsec_{}", data_encoding::BASE64.encode(&[7u8; 16]));
        assert_rejected(
            WebhookAuthType::StandardWebhooks,
            &[("signing_secret", short.as_str())],
            field,
            "24 to 64 bytes",
        );
        let long = format!("whsec_{}", data_encoding::BASE64.encode(&[7u8; 65]));
        assert_rejected(
            WebhookAuthType::StandardWebhooks,
            &[("signing_secret", long.as_str())],
            field,
            "24 to 64 bytes",
        );
    }

    #[test]
    fn elevenlabs_secret_needs_16_characters() {
        let good = [("webhook_secret", "wsec_0123456789abcdef")];
        assert!(violations_of(WebhookAuthType::ElevenlabsSignature, &good).is_empty());
        assert_rejected(
            WebhookAuthType::ElevenlabsSignature,
            &[("webhook_secret", "short")],
            "secrets[webhook_secret]",
            "16 characters",
        );
    }

    #[test]
    fn livekit_needs_api_key_and_secret() {
        let good = [("api_key", "APIabc"), ("api_secret", "s3cr3t-value")];
        assert!(violations_of(WebhookAuthType::LivekitJwt, &good).is_empty());
        assert_rejected(
            WebhookAuthType::LivekitJwt,
            &[("api_key", "APIabc")],
            "secrets[api_secret]",
            "required",
        );
        assert_rejected(
            WebhookAuthType::LivekitJwt,
            &[("api_secret", "s3cr3t")],
            "secrets[api_key]",
            "required",
        );
        assert_rejected(
            WebhookAuthType::LivekitJwt,
            &[("api_key", ""), ("api_secret", "s3cr3t")],
            "secrets[api_key]",
            "empty",
        );
    }

    #[test]
    fn unknown_names_whitespace_and_url_tokens_are_rejected() {
        assert_rejected(
            WebhookAuthType::RetellSignature,
            &[("api_key", "key_abc"), ("apikey", "key_abc")],
            "secrets[apikey]",
            "expected api_key",
        );
        assert_rejected(
            WebhookAuthType::RetellSignature,
            &[("api_key", " key_abc")],
            "secrets[api_key]",
            "whitespace",
        );
        assert_rejected(
            WebhookAuthType::IpAllowlist,
            &[("token", "x")],
            "secrets[token]",
            "takes no secrets",
        );
        assert_rejected(WebhookAuthType::UrlToken, &[("token", "short")], "secrets[token]", "16");
        assert_rejected(
            WebhookAuthType::UrlToken,
            &[("token", "has spaces in the middle")],
            "secrets[token]",
            "URL-safe",
        );
    }

    #[test]
    fn base64_hmac_secret_must_decode() {
        let mut violations = Violations::new();
        check_secrets(WebhookAuthType::Hmac, [("secret", "not base64!")], true, &mut violations);
        assert!(!violations.is_empty());
        let mut violations = Violations::new();
        check_secrets(WebhookAuthType::Hmac, [("secret", "c2VjcmV0")], true, &mut violations);
        assert!(violations.is_empty());
    }
}
