//! Layered configuration: the embedded, commented `config.default.toml` < an optional file <
//! `EARSHOT_*` environment variables, validated at start with the offending key named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

pub const DEFAULT_CONFIG_TOML: &str = include_str!("config.default.toml");

/// Top-level keys and sections; environment variables outside them are not configuration.
const KNOWN_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "blob_url",
    "public_base_url",
    "master_key",
    "previous_master_keys",
    "log",
    "server",
    "integrations",
    "ingest",
    "jobs",
    "fetch",
    "asr",
    "retention",
    "monitors",
    "events",
];

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub blob_url: String,
    pub public_base_url: String,
    pub master_key: String,
    pub previous_master_keys: Vec<String>,
    pub log: LogConfig,
    pub server: ServerConfig,
    pub integrations: IntegrationsConfig,
    pub ingest: IngestConfig,
    pub jobs: JobsConfig,
    pub fetch: FetchConfig,
    pub asr: AsrConfig,
    pub retention: RetentionConfig,
    pub monitors: MonitorsConfig,
    pub events: EventsConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub timeout_seconds: u64,
    pub poll_interval_ms: u64,
    pub batch_size: usize,
    pub lease_seconds: u64,
    pub retry_schedule_ms: Vec<u64>,
    pub retention_days: u32,
    pub secret_expiry_notice_hours: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorsConfig {
    pub backfill_batch_size: usize,
    pub backfill_pause_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub sweep_interval_seconds: u64,
    pub batch_size: usize,
    pub audio_grace_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsrConfig {
    pub enabled: bool,
    pub model: String,
    pub model_dir: String,
    pub model_index_url: String,
    pub threads: usize,
    pub concurrent_jobs: usize,
    pub max_audio_seconds: u32,
    pub telephone_beam_size: u32,
    pub telephone_warp: f32,
    pub telephone_model: String,
    pub isolate: bool,
    pub worker_binary: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub max_batch_conversations: usize,
    pub max_inline_audio_bytes: usize,
    pub max_upload_bytes: usize,
    pub max_request_bytes: usize,
    pub max_group_commit: usize,
    pub transcripts_at_intake: bool,
    pub intake_log: crate::jobs::IntakeLogging,
    pub intake_log_above_per_second: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub workers: usize,
    pub max_attempts: i32,
    pub lease_seconds: u64,
    pub retry_base_seconds: u64,
    pub retry_max_seconds: u64,
    pub poll_interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    pub timeout_seconds: u64,
    pub max_audio_bytes: usize,
    pub max_redirects: usize,
    pub allow_private_networks: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url_password(&self.database_url))
            .field("blob_url", &self.blob_url)
            .field("public_base_url", &self.public_base_url)
            .field("master_key", &if self.master_key.is_empty() { "" } else { "[redacted]" })
            .field("log", &self.log)
            .field("server", &self.server)
            .field("integrations", &self.integrations)
            .field("ingest", &self.ingest)
            .field("jobs", &self.jobs)
            .field("fetch", &self.fetch)
            .field("asr", &self.asr)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// What a process does (`server.role`, `earshot serve --role`): intake and processing scale
/// apart on PostgreSQL.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The API and the workers.
    #[default]
    All,
    /// The API only: it never claims a job.
    Api,
    /// The workers only, serving `/healthz`, `/readyz` and `/metrics`.
    Worker,
}

impl Role {
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    pub fn runs_workers(self) -> bool {
        self != Role::Api
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub role: Role,
    pub shutdown_grace_seconds: u64,
    pub cors_allowed_origins: Vec<String>,
    pub max_grpc_message_bytes: usize,
    pub trusted_proxies: Vec<String>,
    pub api_key_rate_limit_per_minute: u32,
    pub metrics_token: String,
    pub header_read_timeout_seconds: u64,
    pub body_idle_timeout_seconds: u64,
    pub request_timeout_seconds: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_concurrent_large_bodies: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationsConfig {
    pub rotation_grace_default_hours: u32,
    pub rotation_grace_max_hours: u32,
    pub rate_limit_per_minute_default: u32,
    pub rate_limit_per_minute_max: u32,
    pub unauthenticated_per_minute_per_address: u32,
    pub max_webhook_body_bytes: usize,
    pub max_elevenlabs_body_bytes: usize,
    pub cache_ttl_seconds: u64,
    pub usage_flush_seconds: u64,
    pub delivery_body_retention_days: u32,
    pub delivery_retention_days: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Values given on the command line, which win over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub role: Option<Role>,
}

impl Config {
    /// Loads defaults, then `file`, then the process environment, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_env(file, overrides, std::env::vars())
    }

    /// Like `load`, with the environment given (tests use this instead of mutating the
    /// process environment).
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG_TOML));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    reason: format!("{} is not a readable file", file.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix("EARSHOT_")?.to_ascii_lowercase();
                let top_level = key.split("__").next().unwrap_or_default().to_owned();
                KNOWN_KEYS.contains(&top_level.as_str()).then_some((key, value))
            })
            .collect();
        for (key, value) in env {
            // Values are typed the way figment's own Env provider types them ("5" is a number).
            let Ok(value) = value.parse::<figment::value::Value>();
            figment = figment.merge((key.replace("__", "."), value));
        }
        if let Some(listen) = &overrides.listen {
            figment = figment.merge(("listen", listen));
        }
        if let Some(data_dir) = &overrides.data_dir {
            figment = figment.merge(("data_dir", data_dir));
        }
        if let Some(role) = overrides.role {
            figment = figment.merge(("server.role", role.as_str()));
        }
        if let Some(format) = overrides.log_format {
            let name = if format == LogFormat::Json { "json" } else { "text" };
            figment = figment.merge(("log.format", name));
        }
        let config: Config =
            figment.extract().map_err(|error| ConfigError::Load(Box::new(error)))?;
        config.validate()?;
        Ok(config)
    }

    /// Where audio is stored (`blob_url`).
    pub fn blob_location(&self) -> Result<crate::blob::BlobLocation, String> {
        crate::blob::BlobLocation::parse(&self.blob_url, &self.data_dir)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.into() });
        if !(1..=10_000).contains(&self.retention.batch_size) {
            return invalid("retention.batch_size", "must be between 1 and 10000");
        }
        if !(1..=10_000).contains(&self.monitors.backfill_batch_size) {
            return invalid("monitors.backfill_batch_size", "must be between 1 and 10000");
        }
        if !(1..=1_000).contains(&self.events.batch_size) {
            return invalid("events.batch_size", "must be between 1 and 1000");
        }
        if self.events.timeout_seconds == 0
            || self.events.lease_seconds <= self.events.timeout_seconds
        {
            return invalid(
                "events.lease_seconds",
                "must be longer than events.timeout_seconds (at least 1)",
            );
        }
        if self.events.secret_expiry_notice_hours > 24 * 7 {
            return invalid("events.secret_expiry_notice_hours", "at most 168 (a week)");
        }
        if self.events.retry_schedule_ms.len() > 20 {
            return invalid("events.retry_schedule_ms", "at most 20 retries");
        }
        if self.retention.sweep_interval_seconds == 0 {
            return invalid("retention.sweep_interval_seconds", "must be at least 1");
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            return invalid("listen", "must be an address and port such as 127.0.0.1:8080");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if !self.database_url.is_empty()
            && !self.database_url.starts_with("sqlite:")
            && !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        let embedded = self.database_url.is_empty() || self.database_url.starts_with("sqlite:");
        if self.server.role != Role::All && embedded {
            return invalid(
                "server.role",
                "api and worker need PostgreSQL (database_url): an SQLite file belongs to one \
                 process, which serves and works (role all)",
            );
        }
        if let Err(reason) = self.blob_location() {
            return invalid("blob_url", &reason);
        }
        let names: Vec<&str> =
            crate::speech_models::WHISPER_MODELS.iter().map(|(name, _)| *name).collect();
        if crate::speech_models::whisper_model(&self.asr.model).is_none() {
            return invalid("asr.model", &format!("must be one of {}", names.join(", ")));
        }
        let telephone = &self.asr.telephone_model;
        if !telephone.is_empty() && crate::speech_models::whisper_model(telephone).is_none() {
            let reason = format!("must be empty (asr.model) or one of {}", names.join(", "));
            return invalid("asr.telephone_model", &reason);
        }
        if self.asr.telephone_beam_size > crate::asr::MAX_BEAM_SIZE {
            // whisper.cpp runs a decoder per beam and fails every recognition past its limit.
            let reason = format!("at most {} (whisper.cpp's decoders)", crate::asr::MAX_BEAM_SIZE);
            return invalid("asr.telephone_beam_size", &reason);
        }
        if !(0.5..=1.0).contains(&self.asr.telephone_warp) {
            return invalid("asr.telephone_warp", "must be from 0.5 to 1 (1: heard as recorded)");
        }
        if !self.public_base_url.is_empty() {
            let url = &self.public_base_url;
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.ends_with('/') || url.contains('?') || url.contains('#') {
                return invalid(
                    "public_base_url",
                    "must be an http(s) URL without a trailing slash, query or fragment",
                );
            }
        }
        if !self.master_key.is_empty()
            && crate::crypto::MasterKey::from_base64(&self.master_key).is_err()
        {
            return invalid("master_key", "must be base64 of exactly 32 bytes");
        }
        if self
            .previous_master_keys
            .iter()
            .any(|key| crate::crypto::MasterKey::from_base64(key).is_err())
        {
            return invalid("previous_master_keys", "each must be base64 of exactly 32 bytes");
        }
        if !(1..=3600).contains(&self.server.shutdown_grace_seconds) {
            return invalid("server.shutdown_grace_seconds", "must be between 1 and 3600");
        }
        for (key, seconds) in [
            ("server.header_read_timeout_seconds", self.server.header_read_timeout_seconds),
            ("server.body_idle_timeout_seconds", self.server.body_idle_timeout_seconds),
            ("server.request_timeout_seconds", self.server.request_timeout_seconds),
        ] {
            if !(1..=86_400).contains(&seconds) {
                return invalid(key, "must be between 1 and 86400");
            }
        }
        for (key, count) in [
            ("server.max_connections", self.server.max_connections),
            ("server.max_connections_per_address", self.server.max_connections_per_address),
            ("server.max_concurrent_large_bodies", self.server.max_concurrent_large_bodies),
        ] {
            if count == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if !(1024..=1 << 30).contains(&self.server.max_grpc_message_bytes) {
            return invalid("server.max_grpc_message_bytes", "must be between 1024 and 1073741824");
        }
        for origin in &self.server.cors_allowed_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                return invalid("server.cors_allowed_origins", "each must be \"*\" or an origin");
            }
        }
        if let Some(entry) = self
            .server
            .trusted_proxies
            .iter()
            .find(|entry| crate::model::integrations::parse_cidr(entry).is_none())
        {
            return Err(ConfigError::Invalid {
                key: "server.trusted_proxies",
                reason: format!("{entry:?} is not an IP address or CIDR"),
            });
        }
        let integrations = &self.integrations;
        if !(1024..=1 << 30).contains(&integrations.max_webhook_body_bytes) {
            return invalid(
                "integrations.max_webhook_body_bytes",
                "must be between 1024 and 1073741824",
            );
        }
        if !(1024..=1 << 30).contains(&integrations.max_elevenlabs_body_bytes) {
            return invalid(
                "integrations.max_elevenlabs_body_bytes",
                "must be between 1024 and 1073741824",
            );
        }
        if integrations.cache_ttl_seconds > 3600 {
            return invalid("integrations.cache_ttl_seconds", "must be at most 3600");
        }
        if !(1..=3600).contains(&integrations.usage_flush_seconds) {
            return invalid("integrations.usage_flush_seconds", "must be between 1 and 3600");
        }
        if integrations.delivery_body_retention_days > integrations.delivery_retention_days {
            return invalid(
                "integrations.delivery_body_retention_days",
                "must not exceed integrations.delivery_retention_days",
            );
        }
        if !(1..=3650).contains(&integrations.delivery_retention_days) {
            return invalid("integrations.delivery_retention_days", "must be between 1 and 3650");
        }
        if !(1..=168).contains(&integrations.rotation_grace_max_hours) {
            return invalid("integrations.rotation_grace_max_hours", "must be between 1 and 168");
        }
        if integrations.rotation_grace_default_hours > integrations.rotation_grace_max_hours {
            return invalid(
                "integrations.rotation_grace_default_hours",
                "must not exceed integrations.rotation_grace_max_hours",
            );
        }
        if integrations.rate_limit_per_minute_max == 0 {
            return invalid("integrations.rate_limit_per_minute_max", "must be at least 1");
        }
        if !(1..=integrations.rate_limit_per_minute_max)
            .contains(&integrations.rate_limit_per_minute_default)
        {
            return invalid(
                "integrations.rate_limit_per_minute_default",
                "must be between 1 and integrations.rate_limit_per_minute_max",
            );
        }
        if integrations.unauthenticated_per_minute_per_address == 0 {
            return invalid(
                "integrations.unauthenticated_per_minute_per_address",
                "must be at least 1",
            );
        }
        let ingest = &self.ingest;
        if !(1..=100_000).contains(&ingest.max_batch_conversations) {
            return invalid("ingest.max_batch_conversations", "must be between 1 and 100000");
        }
        if ingest.max_inline_audio_bytes == 0
            || ingest.max_inline_audio_bytes > ingest.max_request_bytes
        {
            return invalid(
                "ingest.max_inline_audio_bytes",
                "must be between 1 and ingest.max_request_bytes",
            );
        }
        if ingest.max_upload_bytes == 0 {
            return invalid("ingest.max_upload_bytes", "must be at least 1");
        }
        if ingest.max_request_bytes > self.server.max_grpc_message_bytes.max(1 << 30) {
            return invalid("ingest.max_request_bytes", "must be at most 1073741824");
        }
        if !(1..=10_000).contains(&ingest.max_group_commit) {
            return invalid("ingest.max_group_commit", "must be between 1 and 10000");
        }
        if !(ingest.intake_log_above_per_second.is_finite()
            && ingest.intake_log_above_per_second >= 1.0)
        {
            return invalid("ingest.intake_log_above_per_second", "must be at least 1");
        }
        let jobs = &self.jobs;
        if !(1..=256).contains(&jobs.workers) {
            return invalid("jobs.workers", "must be between 1 and 256");
        }
        if !(1..=100).contains(&jobs.max_attempts) {
            return invalid("jobs.max_attempts", "must be between 1 and 100");
        }
        if !(5..=86_400).contains(&jobs.lease_seconds) {
            return invalid("jobs.lease_seconds", "must be between 5 and 86400");
        }
        if jobs.retry_base_seconds == 0 || jobs.retry_base_seconds > jobs.retry_max_seconds {
            return invalid(
                "jobs.retry_base_seconds",
                "must be at least 1 and at most jobs.retry_max_seconds",
            );
        }
        if !(10..=60_000).contains(&jobs.poll_interval_ms) {
            return invalid("jobs.poll_interval_ms", "must be between 10 and 60000");
        }
        if !(1..=3600).contains(&self.fetch.timeout_seconds) {
            return invalid("fetch.timeout_seconds", "must be between 1 and 3600");
        }
        if self.fetch.max_audio_bytes == 0 {
            return invalid("fetch.max_audio_bytes", "must be at least 1");
        }
        if self.fetch.max_redirects > 20 {
            return invalid("fetch.max_redirects", "must be at most 20");
        }
        if !(1..=64).contains(&self.asr.threads) {
            return invalid("asr.threads", "must be between 1 and 64");
        }
        if !(1..=16).contains(&self.asr.concurrent_jobs) {
            return invalid("asr.concurrent_jobs", "must be between 1 and 16");
        }
        if !(1..=86_400).contains(&self.asr.max_audio_seconds) {
            return invalid("asr.max_audio_seconds", "must be between 1 and 86400");
        }
        if !self.asr.model_index_url.starts_with("http://")
            && !self.asr.model_index_url.starts_with("https://")
        {
            return invalid("asr.model_index_url", "must be an http(s) URL");
        }
        Ok(())
    }

    /// The settings of the domain's rules; `public_base_url` is what providers call.
    pub fn domain_settings(&self, public_base_url: String) -> crate::domain::Settings {
        let integrations = &self.integrations;
        crate::domain::Settings {
            public_base_url,
            rotation_grace_default: chrono::Duration::hours(
                integrations.rotation_grace_default_hours.into(),
            ),
            rotation_grace_max: chrono::Duration::hours(
                integrations.rotation_grace_max_hours.into(),
            ),
            rate_limit_per_minute_default: integrations.rate_limit_per_minute_default,
            rate_limit_per_minute_max: integrations.rate_limit_per_minute_max,
            ingest_limits: crate::model::conversation::IngestLimits {
                max_batch_conversations: self.ingest.max_batch_conversations,
                max_inline_audio_bytes: self.ingest.max_inline_audio_bytes,
            },
            max_upload_bytes: self.ingest.max_upload_bytes,
            allow_private_networks: self.fetch.allow_private_networks,
            webhooks: crate::domain::WebhookSettings {
                max_body_bytes: integrations.max_webhook_body_bytes,
                max_elevenlabs_body_bytes: integrations.max_elevenlabs_body_bytes,
                unauthenticated_per_minute_per_address: integrations
                    .unauthenticated_per_minute_per_address,
                trusted_proxies: self
                    .server
                    .trusted_proxies
                    .iter()
                    .filter_map(|entry| crate::model::integrations::parse_cidr(entry))
                    .collect(),
                cache_ttl: std::time::Duration::from_secs(integrations.cache_ttl_seconds),
                body_retention: chrono::Duration::days(
                    integrations.delivery_body_retention_days.into(),
                ),
                delivery_retention: chrono::Duration::days(
                    integrations.delivery_retention_days.into(),
                ),
            },
            lifecycle: crate::domain::LifecycleSettings {
                batch_size: self.retention.batch_size,
                audio_grace: chrono::Duration::seconds(
                    i64::try_from(self.retention.audio_grace_seconds).unwrap_or(i64::MAX / 1000),
                ),
            },
            monitors: crate::domain::MonitorSettings {
                backfill_batch_size: self.monitors.backfill_batch_size,
                backfill_pause: std::time::Duration::from_millis(self.monitors.backfill_pause_ms),
                backfill_max_attempts: self.jobs.max_attempts,
            },
            events: crate::domain::events::EventSettings {
                timeout: std::time::Duration::from_secs(self.events.timeout_seconds),
                poll_interval: std::time::Duration::from_millis(self.events.poll_interval_ms),
                batch_size: self.events.batch_size,
                lease: std::time::Duration::from_secs(self.events.lease_seconds),
                retry_schedule: self
                    .events
                    .retry_schedule_ms
                    .iter()
                    .map(|ms| std::time::Duration::from_millis(*ms))
                    .collect(),
                rotation_grace_default: chrono::Duration::hours(24),
                rotation_grace_max: chrono::Duration::days(7),
                retention: chrono::Duration::days(self.events.retention_days.into()),
                secret_expiry_notice: chrono::Duration::hours(
                    self.events.secret_expiry_notice_hours.into(),
                ),
            },
        }
    }

    pub fn job_settings(&self) -> crate::jobs::JobSettings {
        let jobs = &self.jobs;
        crate::jobs::JobSettings {
            workers: jobs.workers,
            max_attempts: jobs.max_attempts,
            lease: std::time::Duration::from_secs(jobs.lease_seconds),
            retry_base: std::time::Duration::from_secs(jobs.retry_base_seconds),
            retry_max: std::time::Duration::from_secs(jobs.retry_max_seconds),
            poll_interval: std::time::Duration::from_millis(jobs.poll_interval_ms),
        }
    }

    pub fn fetch_settings(&self) -> crate::pipeline::fetch::FetchSettings {
        crate::pipeline::fetch::FetchSettings {
            timeout: std::time::Duration::from_secs(self.fetch.timeout_seconds),
            max_bytes: self.fetch.max_audio_bytes,
            max_redirects: self.fetch.max_redirects,
            allow_private_networks: self.fetch.allow_private_networks,
        }
    }

    pub fn asr_settings(&self) -> crate::asr::AsrSettings {
        crate::asr::AsrSettings {
            model_path: self.models_dir().join(self.whisper_model().file_name),
            telephone_model_path: Some(self.models_dir().join(self.telephone_model().file_name)),
            speaker_model_path: self
                .models_dir()
                .join(crate::speech_models::SPEAKER_ENCODER.file_name),
            segmentation_model_path: self
                .models_dir()
                .join(crate::speech_models::SEGMENTATION.file_name),
            threads: self.asr.threads,
            concurrent_jobs: self.asr.concurrent_jobs,
            max_audio_seconds: self.asr.max_audio_seconds,
            telephone_beam_size: self.asr.telephone_beam_size,
            telephone_warp: self.asr.telephone_warp,
            worker_binary: self.asr.isolate.then(|| {
                if self.asr.worker_binary.is_empty() {
                    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("earshot"))
                } else {
                    PathBuf::from(&self.asr.worker_binary)
                }
            }),
        }
    }

    /// The Whisper model `asr.model` names (checked when the configuration loads).
    pub fn whisper_model(&self) -> &'static crate::speech_models::Artifact {
        crate::speech_models::whisper_model(&self.asr.model)
            .unwrap_or(&crate::speech_models::WHISPER_TINY_EN)
    }

    /// The Whisper model for audio recorded at 8 kHz or less: `asr.telephone_model`, or when
    /// that is empty, `asr.model`'s.
    pub fn telephone_model(&self) -> &'static crate::speech_models::Artifact {
        crate::speech_models::whisper_model(&self.asr.telephone_model)
            .unwrap_or_else(|| self.whisper_model())
    }

    /// Where the speech models are: asr.model_dir, else <data_dir>/models.
    pub fn models_dir(&self) -> PathBuf {
        if self.asr.model_dir.is_empty() {
            crate::speech_models::models_dir(&self.data_dir)
        } else {
            PathBuf::from(&self.asr.model_dir)
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // Validated in `validate`.
        self.listen.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// The database URL, defaulting to SQLite inside the data directory.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("earshot.db").display())
        } else {
            self.database_url.clone()
        }
    }

    /// The public base URL, defaulting to the address actually bound.
    pub fn effective_public_base_url(&self, bound: SocketAddr) -> String {
        if self.public_base_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.public_base_url.clone()
        }
    }
}

fn redact_url_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:[redacted]{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned()));
        Config::load_with_env(None, &Overrides::default(), env)
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let config = load(&[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./earshot-data"));
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.integrations.rotation_grace_default_hours, 24);
        assert!(config.effective_database_url().starts_with("sqlite://./earshot-data/earshot.db"));
    }

    #[test]
    fn environment_overrides_defaults_including_sections() {
        let config = load(&[
            ("EARSHOT_LISTEN", "127.0.0.1:9999"),
            ("EARSHOT_LOG__FORMAT", "json"),
            ("EARSHOT_INTEGRATIONS__ROTATION_GRACE_DEFAULT_HOURS", "2"),
            ("EARSHOT_TEST_POSTGRES_URL", "postgres://ignored"),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.integrations.rotation_grace_default_hours, 2);
    }

    #[test]
    fn previous_master_keys_parse_from_the_environment() {
        let old = crate::crypto::MasterKey::generate().to_base64();
        let list = format!("[\"{old}\"]");
        let config = load(&[("EARSHOT_PREVIOUS_MASTER_KEYS", list.as_str())]).unwrap();
        assert_eq!(config.previous_master_keys, [old]);
        let error = load(&[("EARSHOT_PREVIOUS_MASTER_KEYS", "[\"bad\"]")]).unwrap_err();
        assert!(error.to_string().contains("`previous_master_keys`"), "{error}");
    }

    #[test]
    fn file_overrides_defaults_and_unknown_keys_are_rejected() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("earshot.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\n[server]\nshutdown_grace_seconds = 5\n",
        )
        .unwrap();
        let config = Config::load_with_env(Some(&path), &Overrides::default(), Vec::new()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7000");
        assert_eq!(config.server.shutdown_grace_seconds, 5);

        std::fs::write(&path, "[server]\nshutdown_grace_secs = 5\n").unwrap();
        let error = Config::load_with_env(Some(&path), &Overrides::default(), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("shutdown_grace_secs"), "{error}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("EARSHOT_LISTEN", "not-an-address", "`listen`"),
            ("EARSHOT_MASTER_KEY", "c2hvcnQ=", "`master_key`"),
            ("EARSHOT_PUBLIC_BASE_URL", "https://hooks.example.com/", "`public_base_url`"),
            ("EARSHOT_DATABASE_URL", "mysql://x", "`database_url`"),
            ("EARSHOT_BLOB_URL", "gs://calls", "`blob_url`"),
            ("EARSHOT_SERVER__ROLE", "api", "`server.role`"),
            ("EARSHOT_SERVER__ROLE", "everything", "role"),
            ("EARSHOT_BLOB_URL", "s3://Calls/prefix", "`blob_url`"),
            ("EARSHOT_ASR__MODEL", "large-v3", "`asr.model`"),
            ("EARSHOT_ASR__TELEPHONE_BEAM_SIZE", "10", "`asr.telephone_beam_size`"),
            ("EARSHOT_ASR__TELEPHONE_WARP", "1.2", "`asr.telephone_warp`"),
            ("EARSHOT_ASR__TELEPHONE_WARP", "0", "`asr.telephone_warp`"),
            ("EARSHOT_ASR__TELEPHONE_MODEL", "small", "`asr.telephone_model`"),
            ("EARSHOT_SERVER__SHUTDOWN_GRACE_SECONDS", "0", "`server.shutdown_grace_seconds`"),
            (
                "EARSHOT_INTEGRATIONS__ROTATION_GRACE_MAX_HOURS",
                "500",
                "`integrations.rotation_grace_max_hours`",
            ),
        ];
        for (name, value, expected) in cases {
            let error = load(&[(name, value)]).unwrap_err().to_string();
            assert!(error.contains(expected), "{name}={value}: {error}");
        }
        let error = load(&[("EARSHOT_SERVER__SHUTDOWN_GRACE_SECONDS", "soon")]).unwrap_err();
        assert!(error.to_string().contains("shutdown_grace_seconds"), "{error}");
        let base = load(&[("EARSHOT_ASR__MODEL", "base")]).unwrap();
        assert!(base.asr_settings().model_path.ends_with("ggml-base-q8_0.bin"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let key = crate::crypto::MasterKey::generate().to_base64();
        let config = load(&[
            ("EARSHOT_MASTER_KEY", key.as_str()),
            ("EARSHOT_DATABASE_URL", "postgres://earshot:pa55word@db/earshot"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains(&key));
        assert!(!printed.contains("pa55word"));
        assert!(printed.contains("postgres://earshot:[redacted]@db/earshot"));
    }
}
