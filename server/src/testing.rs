//! A real earshot server on 127.0.0.1:0 inside a test process, and audio to send it; shared by
//! the server's end-to-end suite and the SDK suites. Not part of the API; failures panic, as test
//! setup should.

#![allow(missing_debug_implementations)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use tonic::transport::Channel;

use crate::app::App;
use crate::config::{Config, Overrides};

/// Every log line any in-process server writes, at debug level, for secret-leak checks.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once for the whole test binary.
pub fn captured_logs() -> CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}

pub struct TestServer {
    pub address: SocketAddr,
    pub admin_key: String,
    pub project_id: String,
    pub app_domain: crate::domain::Domain,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), crate::Error>>>,
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        captured_logs();
        let data_dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".to_owned()),
            data_dir: Some(data_dir.path().to_owned()),
            log_format: None,
        };
        let mut env: Vec<(String, String)> =
            env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        env.extend(database_env(data_dir.path()).await);
        let config = Config::load_with_env(None, &overrides, env).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = App::build(config, address).await.unwrap();
        let bootstrap = app.domain.bootstrap(true).await.unwrap().unwrap();
        let app_domain = app.domain.clone();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = stop.await;
        }));
        Self {
            address,
            admin_key: bootstrap.api_key_value.expose().to_owned(),
            project_id: bootstrap.project.id.to_string(),
            app_domain,
            shutdown: Some(shutdown),
            task: Some(task),
            _data_dir: data_dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// A native gRPC (HTTP/2) channel.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.unwrap()
    }

    /// Begins shutdown and waits for the server to return.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.wait().await;
    }

    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    pub async fn wait(&mut self) {
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// The database a server with this data directory uses: SQLite inside the directory, or, when
/// EARSHOT_TEST_POSTGRES_URL is set, a PostgreSQL database named after the directory, so that
/// every suite runs on both engines and a restarted server finds its data again.
pub async fn database_env(data_dir: &std::path::Path) -> Option<(String, String)> {
    let path = data_dir.to_string_lossy();
    let suffix = &crate::crypto::sha256_hex(path.as_bytes())[..24];
    let url = crate::storage::testing::postgres_database(suffix).await?;
    Some(("EARSHOT_DATABASE_URL".to_owned(), url))
}

/// A 16-bit PCM WAV of a quiet tone, so content differs by `seed`.
pub fn wav(channels: u16, sample_rate_hz: u32, duration_ms: u32, seed: u8) -> Vec<u8> {
    let frames = sample_rate_hz * duration_ms / 1000;
    let data_len = frames * u32::from(channels) * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&sample_rate_hz.to_le_bytes());
    wav.extend_from_slice(&(sample_rate_hz * u32::from(channels) * 2).to_le_bytes());
    wav.extend_from_slice(&(channels * 2).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for frame in 0..frames {
        let sample = ((frame % 64) as i16 - 32) * (i16::from(seed) + 1);
        for _ in 0..channels {
            wav.extend_from_slice(&sample.to_le_bytes());
        }
    }
    wav
}
