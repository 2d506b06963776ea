//! The connection, its configuration, and the calls of `IngestService` and `DatapointService`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use earshot_proto::v1 as pb;
use earshot_proto::v1::datapoint_service_client::DatapointServiceClient;
use earshot_proto::v1::event_endpoint_service_client::EventEndpointServiceClient;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use earshot_proto::v1::monitor_service_client::MonitorServiceClient;
use earshot_proto::v1::project_service_client::ProjectServiceClient;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::conversation::IngestBatch;
use crate::datapoints::DatapointQuery;
use crate::error::{Error, Result};

/// The server a client talks to when none is configured.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Inline audio makes large messages; the server's default limit is 64 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// Adds the API key and the SDK's name to every call; the server records calls that name an
/// SDK with source `sdk` rather than `api`.
#[derive(Debug, Clone)]
pub(crate) struct CallHeaders {
    api_key: Option<MetadataValue<Ascii>>,
    sdk: MetadataValue<Ascii>,
}

impl Interceptor for CallHeaders {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(key) = &self.api_key {
            request.metadata_mut().insert("api-key", key.clone());
        }
        request.metadata_mut().insert("x-earshot-sdk", self.sdk.clone());
        Ok(request)
    }
}

pub(crate) type Transport = InterceptedService<Channel, CallHeaders>;

/// Configures a [`Client`]; made by [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    api_key: Option<String>,
    project_id: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    sdk_name: String,
}

impl ClientBuilder {
    /// The API key (`es_...`), sent in the `api-key` header of every call.
    #[must_use]
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The project calls default to when they name none (ingest, upload, search, integrations).
    #[must_use]
    pub fn project_id(mut self, project_id: impl Into<String>) -> Self {
        self.project_id = Some(project_id.into());
        self
    }

    /// How long one call may take, from sending to the whole answer (default 30 s). Uploads and
    /// downloads stream without this limit.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long opening the connection may take (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The SDK named to the server and in the user agent, for SDKs built on this one
    /// (`python/0.1.0`).
    #[doc(hidden)]
    #[must_use]
    pub fn sdk_name(mut self, sdk_name: impl Into<String>) -> Self {
        self.sdk_name = sdk_name.into();
        self
    }

    fn endpoint(&self) -> Result<(Endpoint, CallHeaders)> {
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|error| Error::Config(format!("url {:?}: {error}", self.url)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false)
            .user_agent(format!("earshot-{}", self.sdk_name))
            .map_err(|error| Error::Config(format!("user agent: {error}")))?;
        if self.url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_webpki_roots())
                .map_err(|error| Error::Config(format!("tls: {error}")))?;
        }
        let api_key = match &self.api_key {
            Some(key) => Some(key.trim().parse::<MetadataValue<Ascii>>().map_err(|_| {
                Error::Config("the API key has characters a header cannot carry".into())
            })?),
            None => None,
        };
        let sdk = self
            .sdk_name
            .parse::<MetadataValue<Ascii>>()
            .map_err(|_| Error::Config(format!("sdk name {:?}", self.sdk_name)))?;
        Ok((endpoint, CallHeaders { api_key, sdk }))
    }

    /// Opens the connection now, so an unreachable server fails here.
    pub async fn connect(self) -> Result<Client> {
        let (endpoint, api_key) = self.endpoint()?;
        let channel = endpoint.connect().await?;
        Ok(self.client(channel, api_key))
    }

    /// Connects on the first call instead. Must be called inside a tokio runtime.
    pub fn connect_lazy(self) -> Result<Client> {
        let (endpoint, api_key) = self.endpoint()?;
        let channel = endpoint.connect_lazy();
        Ok(self.client(channel, api_key))
    }

    fn client(self, channel: Channel, headers: CallHeaders) -> Client {
        let transport = InterceptedService::new(channel, headers);
        Client {
            ingest: IngestServiceClient::new(transport.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            datapoints: DatapointServiceClient::new(transport.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            integrations: IntegrationServiceClient::new(transport.clone()),
            monitors: MonitorServiceClient::new(transport.clone()),
            event_endpoints: EventEndpointServiceClient::new(transport.clone()),
            projects: ProjectServiceClient::new(transport),
            project_id: self.project_id,
            timeout: self.timeout,
        }
    }
}

/// A client of one earshot server. Cheap to clone; clones share the connection, and calls may
/// run concurrently.
///
/// ```no_run
/// use earshot::{Client, Conversation, Turn};
///
/// # async fn run() -> earshot::Result<()> {
/// let client = Client::builder("http://127.0.0.1:8080")
///     .api_key(std::env::var("EARSHOT_API_KEY").unwrap_or_default())
///     .connect()
///     .await?;
/// let receipt = client
///     .ingest_conversations(vec![
///         Conversation::new("call-123")
///             .turn(Turn::assistant("Thanks for calling, how can I help?").at_ms(0))
///             .turn(Turn::user("What are your hours?").at_ms(2400)),
///     ])
///     .await?;
/// let datapoint = client
///     .wait_for_datapoint(&receipt.conversations[0].context_token, std::time::Duration::from_secs(30))
///     .await?;
/// println!("{} turns", datapoint.turns.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) ingest: IngestServiceClient<Transport>,
    pub(crate) datapoints: DatapointServiceClient<Transport>,
    pub(crate) integrations: IntegrationServiceClient<Transport>,
    pub(crate) monitors: MonitorServiceClient<Transport>,
    pub(crate) event_endpoints: EventEndpointServiceClient<Transport>,
    pub(crate) projects: ProjectServiceClient<Transport>,
    pub(crate) project_id: Option<String>,
    pub(crate) timeout: Duration,
}

/// A downloaded recording.
#[derive(Debug, Clone)]
pub struct DownloadedAudio {
    pub info: pb::AudioInfo,
    pub bytes: Bytes,
}

impl Client {
    /// Starts configuring a client of the server at `url` (`http://host:port` or `https://...`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            api_key: None,
            project_id: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            sdk_name: concat!("rust/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// A builder from `EARSHOT_BASE_URL` (default [`DEFAULT_URL`]), `EARSHOT_API_KEY` and
    /// `EARSHOT_PROJECT_ID`.
    pub fn builder_from_env() -> ClientBuilder {
        let mut builder =
            Self::builder(std::env::var("EARSHOT_BASE_URL").unwrap_or_else(|_| DEFAULT_URL.into()));
        if let Ok(key) = std::env::var("EARSHOT_API_KEY") {
            builder = builder.api_key(key);
        }
        if let Ok(project_id) = std::env::var("EARSHOT_PROJECT_ID") {
            builder = builder.project_id(project_id);
        }
        builder
    }

    /// The project calls default to, when one was configured.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    pub(crate) fn project_or_default(&self, project_id: Option<String>) -> String {
        project_id.or_else(|| self.project_id.clone()).unwrap_or_default()
    }

    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Runs one unary call within the client's timeout.
    pub(crate) async fn unary<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(Error::deadline_exceeded(self.timeout)),
        }
    }

    /// Stores a batch of conversations. Answers only after every conversation (and its inline
    /// audio) is durably stored; the same call sent again is reported as `duplicate` and creates
    /// nothing. One invalid conversation refuses the whole batch with `InvalidArgument`, naming
    /// each bad field (`conversations[2].transcript[0].role`), and nothing is stored.
    pub async fn ingest_conversations(
        &self,
        batch: impl Into<IngestBatch>,
    ) -> Result<pb::IngestConversationsResponse> {
        let batch = batch.into();
        let mut conversations = Vec::with_capacity(batch.conversations.len());
        for conversation in batch.conversations {
            conversations.push(conversation.into_proto().await?);
        }
        let request = pb::IngestConversationsRequest {
            project_id: self.project_or_default(batch.project_id),
            conversations,
            mut_id: batch.mut_id.unwrap_or_default(),
        };
        let mut client = self.ingest.clone();
        self.unary(client.ingest_conversations(self.request(request))).await
    }

    /// Streams a local file to the server in chunks and returns its `audio_id`, for
    /// [`Audio::uploaded`](crate::Audio::uploaded). The client hashes what it sends and fails if
    /// the server stored different bytes.
    pub async fn upload_audio(&self, path: impl AsRef<Path>) -> Result<pb::UploadAudioResponse> {
        self.upload_audio_to(None, path).await
    }

    /// [`Client::upload_audio`] into a given project.
    pub async fn upload_audio_to(
        &self,
        project_id: Option<String>,
        path: impl AsRef<Path>,
    ) -> Result<pb::UploadAudioResponse> {
        let path = path.as_ref().to_owned();
        let file = tokio::fs::File::open(&path).await.map_err(|error| Error::file(&path, error))?;
        let size_bytes = file.metadata().await.map_err(|error| Error::file(&path, error))?.len();
        let metadata = pb::UploadAudioMetadata {
            project_id: self.project_or_default(project_id),
            filename: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            content_type: String::new(),
            sha256: String::new(),
            size_bytes,
        };
        let progress = Arc::new(Mutex::new(UploadProgress::default()));
        let chunks = file_chunks(file, Arc::clone(&progress));
        let response = self.upload(metadata, chunks).await;
        let progress = std::mem::take(&mut *lock(&progress));
        if let Some(error) = progress.read_error {
            return Err(Error::file(path, error));
        }
        let response = response?;
        verify_upload(&response, &hex(&progress.hasher.finalize()), &path)?;
        Ok(response)
    }

    /// Uploads bytes already in memory (see [`Client::upload_audio`]).
    pub async fn upload_audio_bytes(
        &self,
        project_id: Option<String>,
        filename: impl Into<String>,
        bytes: impl Into<Bytes>,
    ) -> Result<pb::UploadAudioResponse> {
        let bytes: Bytes = bytes.into();
        let filename = filename.into();
        let sha256 = hex(&Sha256::digest(&bytes));
        let metadata = pb::UploadAudioMetadata {
            project_id: self.project_or_default(project_id),
            filename: filename.clone(),
            content_type: String::new(),
            sha256: sha256.clone(),
            size_bytes: bytes.len() as u64,
        };
        let mut pieces = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            let end = (offset + UPLOAD_CHUNK_BYTES).min(bytes.len());
            pieces.push(bytes.slice(offset..end));
            offset = end;
        }
        let response = self.upload(metadata, futures_util::stream::iter(pieces)).await?;
        verify_upload(&response, &sha256, Path::new(&filename))?;
        Ok(response)
    }

    async fn upload(
        &self,
        metadata: pb::UploadAudioMetadata,
        chunks: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    ) -> Result<pb::UploadAudioResponse> {
        use pb::upload_audio_request::Part;
        let first = pb::UploadAudioRequest { part: Some(Part::Metadata(metadata)) };
        let messages = futures_util::stream::once(async move { first }).chain(
            chunks.map(|chunk| pb::UploadAudioRequest { part: Some(Part::Chunk(chunk.to_vec())) }),
        );
        let mut client = self.ingest.clone();
        Ok(client.upload_audio(messages).await?.into_inner())
    }

    /// Where one ingest stands: queued, processing, awaiting transcription, done (with its
    /// datapoint), failed (with the next attempt) or dead.
    pub async fn ingest_status(&self, ingest_id: &str) -> Result<pb::IngestStatus> {
        let mut client = self.ingest.clone();
        let request = pb::GetIngestStatusRequest { ingest_id: ingest_id.to_owned() };
        let response = self.unary(client.get_ingest_status(self.request(request))).await?;
        response.status.ok_or_else(|| missing("status"))
    }

    /// Ingests of a project, newest first, optionally in one state; one page.
    pub async fn list_ingests(
        &self,
        project_id: Option<String>,
        state: Option<pb::IngestState>,
        page_token: Option<String>,
    ) -> Result<pb::ListIngestsResponse> {
        let mut client = self.ingest.clone();
        let request = pb::ListIngestsRequest {
            project_id: self.project_or_default(project_id),
            state: state.unwrap_or(pb::IngestState::Unspecified) as i32,
            page_size: 0,
            page_token: page_token.unwrap_or_default(),
        };
        self.unary(client.list_ingests(self.request(request))).await
    }

    /// Queues a failed or dead ingest again.
    pub async fn retry_ingest(&self, ingest_id: &str) -> Result<pb::IngestStatus> {
        let mut client = self.ingest.clone();
        let request = pb::RetryIngestRequest { ingest_id: ingest_id.to_owned() };
        let response = self.unary(client.retry_ingest(self.request(request))).await?;
        response.status.ok_or_else(|| missing("status"))
    }

    /// Waits until the datapoint of `context_token` exists (in the client's project) and returns
    /// it. Ingest is acknowledged when stored; the datapoint follows once a worker has processed
    /// the call, usually within milliseconds. Fails with `DeadlineExceeded` after `timeout`.
    pub async fn wait_for_datapoint(
        &self,
        context_token: &str,
        timeout: Duration,
    ) -> Result<pb::Datapoint> {
        let query = DatapointQuery::new().context_token(context_token).page_size(1);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let page = self.search_datapoints(query.clone()).await?;
            if let Some(datapoint) = page.datapoints.into_iter().next() {
                return Ok(datapoint);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Status {
                    code: tonic::Code::DeadlineExceeded,
                    message: format!(
                        "no datapoint with context_token {context_token:?} within {timeout:?}"
                    ),
                    field_violations: Vec::new(),
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Datapoints matching every filter of the query, newest first, one page.
    pub async fn search_datapoints(
        &self,
        query: DatapointQuery,
    ) -> Result<pb::SearchDatapointsResponse> {
        let mut request = query.into_proto();
        if request.project_id.is_empty() {
            request.project_id = self.project_or_default(None);
        }
        let mut client = self.datapoints.clone();
        self.unary(client.search_datapoints(self.request(request))).await
    }

    pub async fn get_datapoint(&self, id: &str) -> Result<pb::Datapoint> {
        let mut client = self.datapoints.clone();
        let request = pb::GetDatapointRequest { id: id.to_owned() };
        let response = self.unary(client.get_datapoint(self.request(request))).await?;
        response.datapoint.ok_or_else(|| missing("datapoint"))
    }

    /// The stored recording of a datapoint, in memory.
    pub async fn download_audio(&self, datapoint_id: &str) -> Result<DownloadedAudio> {
        let mut bytes = Vec::new();
        let info = self
            .stream_audio(datapoint_id, |chunk| {
                bytes.extend_from_slice(&chunk);
                std::future::ready(Ok(()))
            })
            .await?;
        Ok(DownloadedAudio { info, bytes: Bytes::from(bytes) })
    }

    /// Streams the stored recording of a datapoint into a file (created or replaced).
    pub async fn download_audio_to_file(
        &self,
        datapoint_id: &str,
        path: impl AsRef<Path>,
    ) -> Result<pb::AudioInfo> {
        use tokio::io::AsyncWriteExt;
        let path: PathBuf = path.as_ref().to_owned();
        let file =
            tokio::fs::File::create(&path).await.map_err(|error| Error::file(&path, error))?;
        let writer = Arc::new(tokio::sync::Mutex::new(tokio::io::BufWriter::new(file)));
        let info = self
            .stream_audio(datapoint_id, |chunk| {
                let writer = Arc::clone(&writer);
                let path = path.clone();
                async move {
                    writer
                        .lock()
                        .await
                        .write_all(&chunk)
                        .await
                        .map_err(|error| Error::file(path, error))
                }
            })
            .await?;
        writer.lock().await.flush().await.map_err(|error| Error::file(&path, error))?;
        Ok(info)
    }

    async fn stream_audio<F, Fut>(&self, datapoint_id: &str, mut sink: F) -> Result<pb::AudioInfo>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        use pb::get_datapoint_audio_response::Part;
        let mut client = self.datapoints.clone();
        let request = pb::GetDatapointAudioRequest { datapoint_id: datapoint_id.to_owned() };
        let mut stream = client.get_datapoint_audio(request).await?.into_inner();
        let mut info = None;
        while let Some(message) = stream.message().await? {
            match message.part {
                Some(Part::Info(received)) => info = Some(received),
                Some(Part::Chunk(chunk)) => sink(chunk).await?,
                None => {}
            }
        }
        info.ok_or_else(|| missing("info"))
    }
}

#[derive(Debug, Default)]
struct UploadProgress {
    hasher: Sha256,
    read_error: Option<std::io::Error>,
}

/// The file's chunks; a read error ends the stream early (the server then refuses the short
/// upload) and is kept for the caller.
fn file_chunks(
    file: tokio::fs::File,
    progress: Arc<Mutex<UploadProgress>>,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::unfold(Some(file), move |file| {
        let progress = Arc::clone(&progress);
        async move {
            let mut file = file?;
            let mut buffer = vec![0_u8; UPLOAD_CHUNK_BYTES];
            let mut filled = 0;
            while filled < buffer.len() {
                match file.read(&mut buffer[filled..]).await {
                    Ok(0) => break,
                    Ok(read) => filled += read,
                    Err(error) => {
                        lock(&progress).read_error = Some(error);
                        return None;
                    }
                }
            }
            if filled == 0 {
                return None;
            }
            buffer.truncate(filled);
            lock(&progress).hasher.update(&buffer);
            Some((Bytes::from(buffer), Some(file)))
        }
    })
}

fn lock(progress: &Mutex<UploadProgress>) -> std::sync::MutexGuard<'_, UploadProgress> {
    progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn verify_upload(response: &pb::UploadAudioResponse, sent_sha256: &str, path: &Path) -> Result<()> {
    if response.sha256.eq_ignore_ascii_case(sent_sha256) {
        Ok(())
    } else {
        Err(Error::Status {
            code: tonic::Code::DataLoss,
            message: format!(
                "{}: the server stored sha256 {} but the client sent {sent_sha256}",
                path.display(),
                response.sha256
            ),
            field_violations: Vec::new(),
        })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// A response lacked a field the server always sets.
pub(crate) fn missing(field: &str) -> Error {
    Error::Status {
        code: tonic::Code::Internal,
        message: format!("the server's answer lacks {field}"),
        field_violations: Vec::new(),
    }
}
