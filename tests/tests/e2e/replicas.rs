//! Several `earshot` processes on one PostgreSQL database and one audio store, as a team runs
//! them behind a load balancer: nothing acknowledged is lost when one dies, integration changes
//! reach every replica within a second, and a rate limit holds across them. On the embedded
//! SQLite default one process owns the file, so each test runs its one process there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use earshot_e2e::client::{
    authed, create_integration, download_audio, metrics_sample, metrics_text, try_http_exchange,
};
use earshot_e2e::process::ServerProcess;
use earshot_e2e::storage_env;
use earshot_proto::v1 as pb;
use earshot_proto::v1::datapoint_service_client::DatapointServiceClient;
use earshot_proto::v1::ingest_service_client::IngestServiceClient;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use tonic::transport::Channel;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `count` processes sharing the first one's database and audio store (one on SQLite), each in
/// a data directory of its own, all with one master key.
struct Replicas {
    processes: Vec<ServerProcess>,
    /// What every replica is started with: the shared storage, the master key and the test's own.
    env: Vec<(String, String)>,
    args: Vec<String>,
    on_postgres: bool,
    directory: tempfile::TempDir,
}

impl Replicas {
    async fn start(count: usize, args: &[&str], env: &[(&str, &str)]) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let mut shared = storage_env(&Self::data_dir_in(&directory, 0)).await;
        let on_postgres = shared.iter().any(|(name, _)| name == "EARSHOT_DATABASE_URL");
        let master_key = earshot_server::crypto::MasterKey::generate().to_base64();
        shared.push(("EARSHOT_MASTER_KEY".to_owned(), master_key));
        shared.extend(env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        let mut replicas = Self {
            processes: Vec::new(),
            env: shared,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            on_postgres,
            directory,
        };
        let count = if on_postgres { count } else { 1 };
        for index in 0..count {
            let process = replicas.start_one(index).await;
            replicas.processes.push(process);
        }
        replicas
    }

    fn data_dir_in(directory: &tempfile::TempDir, index: usize) -> PathBuf {
        directory.path().join(format!("replica-{index}"))
    }

    /// Starts (or restarts) replica `index` in its data directory.
    async fn start_one(&self, index: usize) -> ServerProcess {
        let env: Vec<(&str, &str)> =
            self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        ServerProcess::start_in_with_args(&Self::data_dir_in(&self.directory, index), &args, &env)
            .await
    }

    fn first(&self) -> &ServerProcess {
        &self.processes[0]
    }

    fn urls(&self) -> Vec<String> {
        self.processes.iter().map(ServerProcess::url).collect()
    }

    /// Waits until every replica counts `count` processes serving the API (a bounded wait on
    /// their heartbeats and announcements).
    async fn wait_until_counted(&self) {
        let count = self.processes.len() as f64;
        let deadline = Instant::now() + Duration::from_secs(30);
        for replica in &self.processes {
            while metrics_sample(&metrics_text(replica).await, "earshot_api_replicas")
                != Some(count)
            {
                assert!(Instant::now() < deadline, "replicas did not count each other");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn stop(self) {
        for process in self.processes {
            process.stop().await;
        }
    }
}

/// A signed Standard Webhooks delivery of a one-turn call to `path` at `url`: its status, or
/// the failure of a request that got no answer.
async fn try_post_signed(url: &str, path: &str, call_id: &str) -> Result<u16, String> {
    let body = serde_json::json!({
        "call_id": call_id, "source_platform": "acme-dialer",
        "transcript": [{"role": "user", "content": format!("Hello from {call_id}."), "timestamp_ms": 0}],
    })
    .to_string();
    let now = chrono::Utc::now().timestamp().to_string();
    let signature =
        earshot_server::providers::standard_webhooks::sign(SECRET, call_id, &now, body.as_bytes())
            .unwrap();
    let signature = format!("v1,{signature}");
    let headers = [
        ("content-type", "application/json"),
        ("webhook-id", call_id),
        ("webhook-timestamp", now.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    let (status, _, _) = try_http_exchange(url, "POST", path, &headers, body.into_bytes()).await?;
    Ok(status)
}

async fn post_signed(server: &ServerProcess, path: &str, call_id: &str) -> u16 {
    try_post_signed(&server.url(), path, call_id).await.unwrap()
}

/// A Standard Webhooks integration allowing `per_minute` deliveries: its id and webhook path.
async fn webhook_integration(server: &ServerProcess, per_minute: u32) -> (String, String) {
    let options =
        pb::IntegrationOptions { rate_limit_per_minute: Some(per_minute), ..Default::default() };
    let integration = create_integration(
        server,
        pb::Provider::Webhook,
        pb::WebhookAuthType::StandardWebhooks,
        &[("signing_secret", SECRET)],
        Some(options),
    )
    .await;
    (integration.id, format!("/v0/voice/webhook/monitor/{}", integration.public_id))
}

/// What the load of [`replicas_lose_nothing_when_one_is_killed_mid_load`] sends: a signed
/// webhook delivery of a transcript, or a gRPC batch of three calls (audio inline, audio
/// uploaded beforehand to some replica, and a transcript alone).
#[derive(Clone, Copy)]
enum Work {
    Webhook(usize),
    Batch(usize),
}

impl Work {
    fn call_ids(self) -> Vec<String> {
        match self {
            Self::Webhook(index) => vec![format!("hook-{index}")],
            Self::Batch(index) => ["inline", "uploaded", "text"]
                .iter()
                .map(|kind| format!("grpc-{kind}-{index}"))
                .collect(),
        }
    }
}

/// The recordings of batch `index`: inline, uploaded (distinct bytes, so distinct objects).
fn batch_audio(index: usize) -> (Vec<u8>, Vec<u8>) {
    let seed = u8::try_from(index % 200).unwrap();
    let length = u32::try_from(index).unwrap();
    (
        earshot_e2e::audio::wav(1, 8_000, 400 + length, seed),
        earshot_e2e::audio::wav(2, 8_000, 400 + length, seed),
    )
}

/// Whether a gRPC failure is the replica going away (retried elsewhere, as a load balancer or
/// the sender does) rather than an answer.
fn is_unavailable(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal)
}

/// Sends `work` once to the replica at `url`: how many of its calls were acknowledged as
/// repeats of calls already stored, or `Err` when the replica failed to answer.
async fn send(
    work: Work,
    url: &str,
    key: &str,
    project_id: &str,
    path: &str,
) -> Result<usize, String> {
    let call_ids = work.call_ids();
    let Work::Batch(index) = work else {
        return match try_post_signed(url, path, &call_ids[0]).await? {
            // 200: a repeat of a delivery already stored (the dead replica committed it but
            // its answer was lost).
            200 => Ok(1),
            202 => Ok(0),
            status if status >= 500 => Err(format!("status {status}")),
            status => panic!("{}: status {status}", call_ids[0]),
        };
    };
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .map_err(|error| error.to_string())?;
    let mut ingest = IngestServiceClient::new(channel);
    let (inline, uploaded) = batch_audio(index);
    let messages = vec![
        pb::UploadAudioRequest {
            part: Some(pb::upload_audio_request::Part::Metadata(pb::UploadAudioMetadata {
                project_id: project_id.to_owned(),
                filename: "call.wav".into(),
                sha256: earshot_server::crypto::sha256_hex(&uploaded),
                size_bytes: uploaded.len() as u64,
                ..Default::default()
            })),
        },
        pb::UploadAudioRequest { part: Some(pb::upload_audio_request::Part::Chunk(uploaded)) },
    ];
    let upload = ingest.upload_audio(authed(futures_util::stream::iter(messages), key)).await;
    let audio_id = match upload {
        Ok(answer) => answer.into_inner().audio_id,
        Err(status) if is_unavailable(&status) => return Err(status.to_string()),
        Err(status) => panic!("upload of batch {index}: {status:?}"),
    };
    let call = |call_id: &String, audio: Option<pb::audio::Source>| pb::Conversation {
        call_id: call_id.clone(),
        audio: audio.map(|source| pb::Audio { source: Some(source) }),
        transcript: vec![pb::Turn {
            role: pb::Role::Assistant as i32,
            content: format!("This is {call_id}."),
            timestamp_ms: 0,
            end_ms: Some(300),
        }],
        ..Default::default()
    };
    let inline = pb::audio::Source::InlineB64(data_encoding::BASE64.encode(&inline));
    let request = pb::IngestConversationsRequest {
        project_id: project_id.to_owned(),
        conversations: vec![
            call(&call_ids[0], Some(inline)),
            call(&call_ids[1], Some(pb::audio::Source::AudioId(audio_id))),
            call(&call_ids[2], None),
        ],
        mut_id: String::new(),
    };
    match ingest.ingest_conversations(authed(request, key)).await {
        Ok(answer) => {
            Ok(answer.into_inner().conversations.iter().filter(|call| call.duplicate).count())
        }
        Err(status) if is_unavailable(&status) => Err(status.to_string()),
        Err(status) => panic!("batch {index}: {status:?}"),
    }
}

/// The load balancer's view: the replicas' URLs, one replaced when it restarts.
type Rotation = Arc<RwLock<Vec<String>>>;

/// Sends `work` until a replica acknowledges it, starting with `first` and moving to the next
/// replica after each failure, as a load balancer (or the sender's retry) does; returns how
/// many of its calls were acknowledged as repeats.
async fn deliver(
    work: Work,
    first: usize,
    rotation: &Rotation,
    key: &str,
    project: &str,
    path: &str,
) -> usize {
    for attempt in 0..400 {
        let url = {
            let urls = rotation.read().unwrap();
            urls[(first + attempt) % urls.len()].clone()
        };
        if let Ok(repeats) = send(work, &url, key, project, path).await {
            return repeats;
        }
        // A dead replica refuses at once; the pause keeps the retries from spinning while it
        // restarts (a retry backoff, not a synchronization).
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no replica acknowledged {:?}", work.call_ids());
}

/// Three replicas on PostgreSQL and the audio store (S3 when EARSHOT_TEST_BLOB_URL is set)
/// take webhook deliveries and gRPC batches with inline and uploaded audio, round-robin, from
/// concurrent clients; one is killed with SIGKILL part-way and restarted. What the dead one did
/// not answer is sent again to the next replica, as a load balancer or the sender would. In the
/// end every call is exactly one datapoint, every recording is in the store and downloads
/// byte-identical through every replica, and no job is left queued, running or dead (the killed
/// replica's claims are taken again after the lease, 5 s here). On SQLite the one process is
/// killed and restarted.
#[tokio::test]
async fn replicas_lose_nothing_when_one_is_killed_mid_load() {
    const WEBHOOKS: usize = 120;
    const BATCHES: usize = 40;
    const CLIENTS: usize = 8;
    let env = [("EARSHOT_JOBS__LEASE_SECONDS", "5"), ("EARSHOT_ASR__ENABLED", "false")];
    let mut replicas = Replicas::start(3, &[], &env).await;
    replicas.wait_until_counted().await;
    let key = replicas.first().admin_key.clone();
    let project_id = replicas.first().project_id.clone();
    let (_, path) = webhook_integration(replicas.first(), 100_000).await;

    let mut work: Vec<Work> = (0..WEBHOOKS).map(Work::Webhook).collect();
    work.extend((0..BATCHES).map(Work::Batch));
    // Interleaved, so that both kinds are in flight when the replica dies.
    work.sort_by_key(|item| match item {
        Work::Webhook(index) => index * BATCHES,
        Work::Batch(index) => index * WEBHOOKS,
    });
    let total = work.len();
    let rotation: Rotation = Arc::new(RwLock::new(replicas.urls()));
    let queue = Arc::new(std::sync::Mutex::new(work.into_iter().enumerate()));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let repeats = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (queue, done, repeats) = (queue.clone(), done.clone(), repeats.clone());
        let rotation = rotation.clone();
        let (key, project_id, path) = (key.clone(), project_id.clone(), path.clone());
        clients.spawn(async move {
            loop {
                let next = queue.lock().unwrap().next();
                let Some((index, work)) = next else { return };
                let repeated = deliver(work, index, &rotation, &key, &project_id, &path).await;
                repeats.fetch_add(repeated, std::sync::atomic::Ordering::SeqCst);
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }

    // Kill a replica a third of the way in, while the clients send (a condition, polled).
    let victim = replicas.processes.len() - 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.load(std::sync::atomic::Ordering::SeqCst) < total / 3 {
        assert!(Instant::now() < deadline, "too little acknowledged before the deadline");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    replicas.processes[victim].kill().await;
    let at_kill = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(at_kill < total, "the kill must land part-way ({at_kill} of {total} done)");
    replicas.processes[victim] = replicas.start_one(victim).await;
    rotation.write().unwrap()[victim] = replicas.processes[victim].url();
    while let Some(finished) = clients.join_next().await {
        finished.unwrap();
    }

    // Every ingest done: nothing queued, processing, failed or dead (a bounded wait on the
    // lease of the killed replica's jobs and the drain).
    let load_ended = Instant::now();
    let channel = replicas.first().channel().await;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    let states = [
        pb::IngestState::Queued,
        pb::IngestState::Processing,
        pb::IngestState::Failed,
        pb::IngestState::Dead,
    ];
    loop {
        let mut pending = Vec::new();
        for state in states {
            let request = pb::ListIngestsRequest {
                project_id: project_id.clone(),
                state: state as i32,
                page_size: 10,
                page_token: String::new(),
            };
            pending.extend(
                ingest.list_ingests(authed(request, &key)).await.unwrap().into_inner().ingests,
            );
        }
        if pending.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "ingests left unfinished: {pending:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished_after = load_ended.elapsed();
    for replica in &replicas.processes {
        let text = metrics_text(replica).await;
        for status in ["queued", "running", "dead"] {
            let series = format!("earshot_queue_jobs{{status=\"{status}\"}}");
            assert_eq!(metrics_sample(&text, &series).unwrap_or(0.0), 0.0, "{series}");
        }
    }

    // Exactly one datapoint per call sent, and nothing else.
    let mut datapoints = DatapointServiceClient::new(channel);
    let mut per_call: HashMap<String, Vec<String>> = HashMap::new();
    let mut page_token = String::new();
    loop {
        let request = pb::SearchDatapointsRequest {
            project_id: project_id.clone(),
            page_size: 500,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = datapoints.search_datapoints(authed(request, &key)).await.unwrap().into_inner();
        for datapoint in page.datapoints {
            per_call.entry(datapoint.call_id).or_default().push(datapoint.id);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected = WEBHOOKS + 3 * BATCHES;
    assert_eq!(per_call.len(), expected, "one datapoint per call sent");
    assert!(per_call.values().all(|ids| ids.len() == 1), "no call has two datapoints");

    // Every recording is in the store and downloads byte-identical through every replica.
    let stored =
        earshot_e2e::audio_store(&Replicas::data_dir_in(&replicas.directory, 0)).keys().await;
    let mut clients = Vec::new();
    for replica in &replicas.processes {
        clients.push(DatapointServiceClient::new(replica.channel().await));
    }
    for index in 0..BATCHES {
        let (inline, uploaded) = batch_audio(index);
        for (kind, audio) in [("inline", inline), ("uploaded", uploaded)] {
            let sha256 = earshot_server::crypto::sha256_hex(&audio);
            let object = earshot_server::blob::BlobStore::key_for(&sha256);
            assert!(stored.contains(&object), "{object} of batch {index} is in the store");
            let id = &per_call[&format!("grpc-{kind}-{index}")][0];
            let client = &mut clients[index % replicas.processes.len()];
            let (_, downloaded) = download_audio(client, &key, id).await;
            assert!(downloaded == audio, "the {kind} audio of batch {index} differs");
        }
    }
    for client in &mut clients {
        let id = &per_call["grpc-uploaded-0"][0];
        assert_eq!(download_audio(client, &key, id).await.1, batch_audio(0).1);
    }
    eprintln!(
        "replicas: {} processes, {total} sends, {at_kill} acknowledged when one was killed, \
         {expected} datapoints, {} calls acknowledged as repeats when sent again, every ingest \
         done {:.1} s after the last acknowledgement",
        replicas.processes.len(),
        repeats.load(std::sync::atomic::Ordering::SeqCst),
        finished_after.as_secs_f64()
    );
    assert!(replicas.on_postgres || replicas.processes.len() == 1);
    replicas.stop().await;
}

/// An integration disabled through one replica is refused by another within a second, not
/// after its webhook cache's 30 s TTL: the change is announced through PostgreSQL (NOTIFY). On
/// SQLite, where one process serves, the process that made the change refuses at once.
#[tokio::test]
async fn a_disabled_integration_is_refused_by_every_replica_within_a_second() {
    let replicas = Replicas::start(2, &[], &[]).await;
    let first = replicas.first();
    let other = replicas.processes.last().unwrap();
    let (integration_id, path) = webhook_integration(first, 1_000).await;
    // The other replica caches the integration as it answers.
    assert_eq!(post_signed(other, &path, "replica-1").await, 202);

    IntegrationServiceClient::new(first.channel().await)
        .update_status(authed(
            pb::UpdateStatusRequest {
                id: integration_id,
                status: pb::IntegrationStatus::Disabled as i32,
            },
            &first.admin_key,
        ))
        .await
        .unwrap();
    let disabled_at = Instant::now();
    let mut index = 2;
    while post_signed(other, &path, &format!("replica-{index}")).await != 404 {
        assert!(
            disabled_at.elapsed() < Duration::from_secs(1),
            "the other replica still accepts the disabled integration"
        );
        index += 1;
    }
    replicas.stop().await;
}

/// An integration's rate limit holds across replicas: each process serving the API takes its
/// share of the budget (the budget divided by how many serve it, counted through heartbeats
/// and announcements). With three replicas on PostgreSQL and deliveries sent round-robin, no
/// more than the budget plus one refill per replica during the run gets through; on SQLite the
/// one process takes the whole budget. Afterwards the integration's request and refusal counts
/// and its delivery log match what was sent, whichever replica answered.
#[tokio::test]
async fn a_rate_limit_holds_across_replicas() {
    const BUDGET: u32 = 30;
    let replicas = Replicas::start(3, &[], &[]).await;
    replicas.wait_until_counted().await;
    let count = u32::try_from(replicas.processes.len()).unwrap();
    let (integration_id, path) = webhook_integration(replicas.first(), BUDGET).await;
    let started = Instant::now();
    let (mut accepted, mut limited) = (0_u32, 0_u32);
    for index in 0..3 * BUDGET {
        let replica = &replicas.processes[index as usize % replicas.processes.len()];
        match post_signed(replica, &path, &format!("limited-{index}")).await {
            202 => accepted += 1,
            429 => limited += 1,
            status => panic!("delivery {index}: {status}"),
        }
    }
    // A share refills at BUDGET / count a minute: one more each per 60 / (BUDGET / count) s.
    let refills = u32::try_from(started.elapsed().as_secs()).unwrap() * BUDGET / count / 60 + 1;
    assert!(accepted >= BUDGET - count, "{accepted} accepted");
    assert!(accepted <= BUDGET + count * refills, "{accepted} accepted, {limited} limited");
    assert_eq!(accepted + limited, 3 * BUDGET);

    // The usage counters and the delivery log are exact across replicas: each replica adds
    // what it counted to the database's counters (flushed at the latest when it stops), and
    // logs each delivery it answered once.
    let mut processes = replicas.processes.into_iter();
    let first = processes.next().unwrap();
    for other in processes {
        other.stop().await;
    }
    let mut integrations = IntegrationServiceClient::new(first.channel().await);
    let request = pb::GetIntegrationRequest { id: integration_id.clone() };
    let integration = integrations
        .get_integration(authed(request, &first.admin_key))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    assert_eq!(integration.request_count, i64::from(3 * BUDGET));
    assert_eq!(integration.rate_limited_count, i64::from(limited));
    let mut logged = HashMap::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListWebhookDeliveriesRequest {
            integration_id: integration_id.clone(),
            page_size: 100,
            page_token,
            verdict: 0,
        };
        let page = integrations
            .list_webhook_deliveries(authed(request, &first.admin_key))
            .await
            .unwrap()
            .into_inner();
        for delivery in page.deliveries {
            *logged.entry(delivery.call_id).or_insert(0) += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(logged.len(), accepted as usize, "one logged delivery per accepted one");
    assert!(logged.values().all(|count| *count == 1), "{logged:?}");
    first.stop().await;
}
