//! The harness of earshot's end-to-end suites (`tests/e2e`): a real server on a free loopback
//! port, either inside the test process ([`in_process::TestServer`]) or as an `earshot` process
//! built from this workspace ([`process::ServerProcess`]), each with a temporary data directory
//! and the admin key it bootstrapped; gRPC and HTTP requests to it ([`client`]); a loopback host
//! for recordings ([`media`]); and audio to send it ([`audio`], the server library's `testing`
//! feature). Failures panic, as test setup should.
//!
//! Every server uses SQLite in its data directory, or, when EARSHOT_TEST_POSTGRES_URL is set, a
//! PostgreSQL database of its own on that server, and keeps audio in its data directory, or,
//! when EARSHOT_TEST_BLOB_URL is set, under a prefix of its own in that S3 bucket
//! ([`storage_env`]), so each suite runs on both.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

pub mod client;
pub mod in_process;
pub mod media;
pub mod process;

/// Audio generators (tones, G.711, Ogg/Opus, sox conversions, two-voice calls spoken by
/// espeak-ng), word error rates and the installed speech models.
pub use earshot_server::testing as audio;

use tonic::transport::Channel;

/// What the request helpers need of a running server, in this process or not.
pub trait Server {
    /// `http://127.0.0.1:<port>`.
    fn url(&self) -> String;
    /// The admin API key the first start printed (or bootstrapped).
    fn admin_key(&self) -> &str;
    /// The project the first start created.
    fn project_id(&self) -> &str;

    /// A native gRPC (HTTP/2) channel.
    fn channel(&self) -> impl Future<Output = Channel> {
        let url = self.url();
        async move { Channel::from_shared(url).unwrap().connect().await.unwrap() }
    }
}

/// The database and audio store a server with this data directory uses: SQLite and audio
/// inside the directory, or, when EARSHOT_TEST_POSTGRES_URL is set, a PostgreSQL database named
/// after the directory, and when EARSHOT_TEST_BLOB_URL is set (with the AWS variables of its
/// server), a prefix of that bucket named the same way: every suite runs on both, and a
/// restarted server finds its data again.
pub async fn storage_env(data_dir: &std::path::Path) -> Vec<(String, String)> {
    let suffix = storage_suffix(data_dir);
    let mut env = Vec::new();
    if let Some(url) = earshot_server::storage::testing::postgres_database(&suffix).await {
        env.push(("EARSHOT_DATABASE_URL".to_owned(), url));
    }
    if let Some(url) = blob_url(data_dir) {
        env.push(("EARSHOT_BLOB_URL".to_owned(), url));
    }
    env
}

/// The audio store of a server with this data directory (see [`storage_env`]), to look at what
/// it stored.
pub fn audio_store(data_dir: &std::path::Path) -> earshot_server::blob::BlobStore {
    let url = blob_url(data_dir).unwrap_or_default();
    let location = earshot_server::blob::BlobLocation::parse(&url, data_dir).unwrap();
    earshot_server::blob::BlobStore::open(&location).unwrap()
}

/// The name of a data directory's own database and bucket prefix.
fn storage_suffix(data_dir: &std::path::Path) -> String {
    let path = data_dir.to_string_lossy();
    earshot_server::crypto::sha256_hex(path.as_bytes())[..24].to_owned()
}

/// The prefix of EARSHOT_TEST_BLOB_URL's bucket a server with this data directory uses.
fn blob_url(data_dir: &std::path::Path) -> Option<String> {
    let bucket = std::env::var(earshot_server::blob::TEST_BLOB_URL_VARIABLE).ok()?;
    Some(format!("{}/{}", bucket.trim_end_matches('/'), storage_suffix(data_dir)))
}

/// `env` with EARSHOT_ASR__ENABLED=false added unless it names that variable: a test server
/// transcribes only when a test asks.
fn transcription_off_unless_named(env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    if !env.iter().any(|(name, _)| name == "EARSHOT_ASR__ENABLED") {
        env.push(("EARSHOT_ASR__ENABLED".to_owned(), "false".to_owned()));
    }
    env
}

/// `env` with transcription on, reading the models [`audio::model_dir`] finds, on one thread.
///
/// Tests run two at a time, so two servers can transcribe at once. Whisper's threads wait for
/// each other by spinning: two jobs of two threads on two cores took a 25 s telephone call
/// from 18 s to over 60 s, where one thread each took 26 s.
fn with_transcription(env: &[(&str, &str)]) -> Vec<(String, String)> {
    let models = audio::model_dir().to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> =
        env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    env.push(("EARSHOT_ASR__ENABLED".to_owned(), "true".to_owned()));
    env.push(("EARSHOT_ASR__MODEL_DIR".to_owned(), models));
    env.push(("EARSHOT_ASR__THREADS".to_owned(), "1".to_owned()));
    env
}
