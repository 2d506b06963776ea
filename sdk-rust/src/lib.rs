//! Rust client for [earshot](https://github.com/earshot-dev/earshot): send completed voice-AI
//! calls, wait for and search their datapoints, download recordings, and manage provider
//! integrations, projects and API keys, over gRPC.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use earshot::{Audio, Client, Conversation, DatapointQuery, Turn};
//!
//! # async fn run() -> earshot::Result<()> {
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .api_key("es_...")
//!     .project_id("01a206b5-833c-77ac-bb18-12736f55bb1d")
//!     .timeout(Duration::from_secs(10))
//!     .connect()
//!     .await?;
//!
//! // A call with a transcript, and one with only a recording streamed up first.
//! let uploaded = client.upload_audio("call-124.wav").await?;
//! client
//!     .ingest_conversations(vec![
//!         Conversation::new("call-123")
//!             .turn(Turn::assistant("Thanks for calling, how can I help?").at_ms(0))
//!             .turn(Turn::user("What are your hours?").at_ms(2400))
//!             .tag("support"),
//!         Conversation::new("call-124").audio(Audio::uploaded(uploaded.audio_id)),
//!     ])
//!     .await?;
//!
//! let datapoint = client.wait_for_datapoint("call-123", Duration::from_secs(30)).await?;
//! let support_calls = client.search_datapoints(DatapointQuery::new().tags_any(["support"])).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Every call returns [`Result`]; an [`Error`] keeps the gRPC [`Code`], the message, and for
//! `InvalidArgument` each invalid field by its path.

mod client;
mod conversation;
mod datapoints;
mod error;
mod events;
mod integrations;
mod lifecycle;
mod monitors;
mod projects;
mod webhooks;

pub use client::{Client, ClientBuilder, DEFAULT_URL, DownloadedAudio};
pub use conversation::{Audio, Conversation, IngestBatch, Role, Turn, parse_time};
pub use datapoints::DatapointQuery;
pub use earshot_proto::json::{json_to_struct, struct_to_json};
/// The generated messages of the `earshot.v1` contract, which the calls return.
pub use earshot_proto::v1 as proto;
pub use earshot_proto::v1::{
    ApiKeyScope, AttemptOutcomeFilter, DeliveryVerdict, IngestState, IntegrationStatus, Provider,
    Source, WebhookAuthType,
};
pub use error::{Code, Error, FieldViolation, Result, code_name};
pub use events::{EventEndpointChange, EventEndpoints, NewEventEndpoint};
pub use integrations::{Integrations, NewIntegration};
pub use monitors::{CheckRule, ExternalResult, MonitorDefinition, SummaryGranularity};
pub use projects::CreatedApiKey;
pub use webhooks::{VerifyError, WebhookError, verify_webhook, verify_webhook_at};
