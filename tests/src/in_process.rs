//! A real earshot server on 127.0.0.1:0 inside the test process, built from the library as
//! `earshot serve` builds it, for suites that also reach into its domain or its logs.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use earshot_server::app::App;
use earshot_server::config::{Config, Overrides};

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
    pub app_domain: earshot_server::domain::Domain,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), earshot_server::Error>>>,
    data_dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// A server with transcription on, reading the installed models.
    pub async fn start_with_asr(env: &[(&str, &str)]) -> Self {
        Self::start_with(crate::with_transcription(env)).await
    }

    /// Transcription is off (audio-only calls park) unless `env` turns it on; see
    /// `start_with_asr`.
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        Self::start_with(crate::transcription_off_unless_named(env)).await
    }

    async fn start_with(mut env: Vec<(String, String)>) -> Self {
        captured_logs();
        let data_dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".to_owned()),
            data_dir: Some(data_dir.path().to_owned()),
            log_format: None,
            role: None,
        };
        // This process is a test binary, not earshot: recognition runs on threads. Suites of
        // isolated recognition run the binary (`process::ServerProcess`).
        if !env.iter().any(|(name, _)| name == "EARSHOT_ASR__ISOLATE") {
            env.push(("EARSHOT_ASR__ISOLATE".to_owned(), "false".to_owned()));
        }
        env.extend(crate::storage_env(data_dir.path()).await);
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
            data_dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// A native gRPC (HTTP/2) channel.
    pub async fn channel(&self) -> tonic::transport::Channel {
        crate::Server::channel(self).await
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

impl crate::Server for TestServer {
    fn url(&self) -> String {
        TestServer::url(self)
    }

    fn admin_key(&self) -> &str {
        &self.admin_key
    }

    fn project_id(&self) -> &str {
        &self.project_id
    }
}
