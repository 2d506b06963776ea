//! The load benchmark: a client process driving a real `earshot serve` (built by this workspace
//! in the profile this runs in; use `--release`) over loopback, beside a storage-free server that
//! verifies, parses and answers 202 (the CPU ceiling), measured in the same invocation so their
//! ratio holds on a noisy machine.
//!
//!     cargo run --release -p earshot-e2e --bin load -- [deliveries] [connections] [backlogs] [offered]
//!
//! (defaults 20000, 64, "1000,10000"; `EARSHOT_LOAD_KEEP_DATABASE=<dir>` keeps a copy of the
//! database and the server's log after the webhook load; `EARSHOT_LOAD_TURNS=<n>` sends calls of
//! `n` turns instead of six, the lines after the sixth drawn from a support call's words). It reports, for signed Standard
//! Webhooks deliveries of a six-turn canonical conversation with unique call ids: acks/s,
//! p50/p99 ack latency, earshot's share of the ceiling, datapoints the workers wrote meanwhile;
//! with `offered` as `<rate>x<seconds>` (e.g. 2000x60), an open-loop run at that rate: ack
//! latencies, the most jobs pending, and the time from a 202 until the call is searchable; then,
//! for gRPC `IngestConversations` backlogs of each size, the ingest rate (the transcripts stored
//! as they are acknowledged), and again on a server that leaves them to the workers
//! (`ingest.transcripts_at_intake = false`), the drain rate with no load. Figures go to
//! docs/BENCHMARKS.md. With EARSHOT_TEST_POSTGRES_URL set, the server runs on PostgreSQL.
//!
//!     load replicas [deliveries] [most replicas] [backlog]
//!
//!     load events [backlog]
//!
//! (issue 19) the workers' drain of a gRPC backlog with no event endpoint and with one
//! subscribed to `call.processed`, and the rate the events reach a receiver on loopback.
//!
//! (PostgreSQL only) runs 1, 2, … `most` `earshot serve` processes on one database, sends the
//! deliveries round-robin over them (64 connections), and reports acks/s for each count; the
//! transcripts are left to the workers (`ingest.transcripts_at_intake = false`), so the jobs
//! left when the load ends are then drained by the workers of every replica. Then, for each
//! count, an `--role api` process queues `backlog` (default 50,000) jobs and that many
//! `--role worker` processes drain them: datapoints/s.
//!
//!     load backfill [calls] [monitors]
//!
//! stores `calls` (default 100,000) through gRPC, creates `monitors` (default 5) monitors of 5
//! checks each, and backfills one of them over every call (each call evaluated by all of
//! them): calls/s overall and per tenth, to show the rate does not fall as the cursor moves.
//!
//!     load monitors [deliveries] [backlog] [counts] [rounds]
//!
//! with 0, 5 and 20 monitors (or the comma-separated `counts`) of 5 checks each, all matching every call: acks/s of the
//! saturating webhook load (each call evaluated in the commit that stores it), the rate at which
//! a gRPC `backlog` is stored at intake, and the workers' drain of the same backlog
//! (`ingest.transcripts_at_intake = false`) with the workers' server's CPU per call and the
//! share of the drain its one writer's turn was held (`earshot_write_turn_seconds`);
//! `EARSHOT_LOAD_KEEP_DATABASE=<dir>` keeps each workers' database in `<dir>/monitors-<count>`.
//! With `rounds` above 1 the counts are measured that many times in turn, and a summary gives
//! each count's drains, their mean, its mean CPU per call, and its cost against the first count
//! in each round (measured seconds apart, so a shared machine's changes of speed weigh on both
//! alike) and on average.
//!
//!     load interleaved [backlog] [count] [slice_ms]
//!
//! the workers' drain with no monitor and with `count` (default 5) monitors of 5 checks each,
//! measured in turns: two servers each hold a gRPC `backlog` (default 200,000;
//! `ingest.transcripts_at_intake = false`), and while one drains for `slice_ms` (default 1,000)
//! the other is paused (SIGSTOP), in the order ABBA, until either has a tenth of its backlog
//! left. A change of the shared machine's speed then weighs on both drains alike, which
//! `load monitors` (drains measured ten seconds apart) cannot promise. It prints each pair of
//! turns' cost and the drains and CPU per call over all turns, and stops with an error when a
//! server drains nothing in ten turns in a row (its workers stuck).
//!
//!     load delete [backlog] [offered]
//!
//! stores `backlog` (default 100,000) calls through gRPC, then offers signed deliveries at
//! `offered` (`<rate>x<seconds>`, default 1000x20) twice: alone, and while `DeleteDatapoints`
//! removes the whole backlog by a filter (its source). It reports both runs' ack latencies and
//! their ratio, and how long the deletion took.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use earshot_e2e::Server;
use earshot_e2e::client::{authed, create_integration};
use earshot_e2e::process::{ServerProcess, cpu_seconds_of};
use earshot_proto::v1 as pb;
use http_body_util::{BodyExt, Full};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn conversation(call_id: &str) -> serde_json::Value {
    let turn = |role: &str, content: &str, at: i64| serde_json::json!({"role": role, "content": content, "timestamp_ms": at, "end_ms": at + 1500});
    let mut transcript = vec![
        turn("assistant", "Thank you for calling Acme support, this is Ava. How can I help?", 0),
        turn("user", "Hi, I was charged twice for my subscription this month.", 2000),
        turn("assistant", "I'm sorry about that. Can you confirm the email on the account?", 4000),
        turn("user", "Sure, it's sam.lee at example dot com.", 6000),
        turn("assistant", "Thanks. I see the duplicate charge and have refunded it.", 8000),
        turn("user", "Great, thank you so much. That's all I needed.", 10000),
    ];
    // Longer calls (`EARSHOT_LOAD_TURNS`): more lines of words drawn for this call.
    let mut words = Words::seeded(call_id);
    for index in transcript.len()..turns_per_call() {
        let role = if index % 2 == 0 { "assistant" } else { "user" };
        transcript.push(turn(role, &words.sentence(), index as i64 * 2000));
    }
    serde_json::json!({
        "call_id": call_id, "source_platform": "acme-dialer",
        "conversation_start_at": "2026-11-20T08:00:00Z",
        "transcript": transcript,
        "tags": ["billing", "refund"], "metadata": {"queue": "billing", "tier": "pro"}
    })
}

/// Turns in each call the webhook load sends: `EARSHOT_LOAD_TURNS`, at least the six of the
/// short support call every figure in docs/BENCHMARKS.md uses unless it says otherwise.
fn turns_per_call() -> usize {
    std::env::var("EARSHOT_LOAD_TURNS").ok().and_then(|turns| turns.parse().ok()).unwrap_or(6)
}

/// Lines of a support call's words, drawn by a generator seeded with the call id: each call's
/// lines differ, so a long body compresses as a transcript does, not as one line repeated.
struct Words(u64);

impl Words {
    const VOCABULARY: [&'static str; 64] = [
        "the",
        "account",
        "charge",
        "refund",
        "order",
        "delivery",
        "week",
        "card",
        "payment",
        "address",
        "email",
        "number",
        "plan",
        "upgrade",
        "cancel",
        "subscription",
        "invoice",
        "yesterday",
        "today",
        "tomorrow",
        "morning",
        "please",
        "thanks",
        "sorry",
        "sure",
        "okay",
        "I",
        "you",
        "we",
        "it",
        "was",
        "is",
        "can",
        "could",
        "would",
        "will",
        "not",
        "just",
        "still",
        "again",
        "check",
        "confirm",
        "send",
        "see",
        "need",
        "help",
        "wait",
        "call",
        "back",
        "second",
        "minute",
        "and",
        "but",
        "so",
        "for",
        "on",
        "with",
        "my",
        "your",
        "that",
        "this",
        "there",
        "a",
        "to",
    ];

    fn seeded(call_id: &str) -> Self {
        // FNV-1a of the call id.
        let seed = call_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Six to sixteen words, a capital and a full stop.
    fn sentence(&mut self) -> String {
        let count = 6 + (self.next() % 11) as usize;
        let words: Vec<&str> = (0..count)
            .map(|_| Self::VOCABULARY[(self.next() % Self::VOCABULARY.len() as u64) as usize])
            .collect();
        let mut sentence = words.join(" ");
        if let Some(first) = sentence.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        sentence.push('.');
        sentence
    }
}

fn signed_request(url: &str, index: usize) -> http::Request<Full<Bytes>> {
    let body = conversation(&format!("load-{}-{index}", std::process::id())).to_string();
    let id = format!("msg_{index}");
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = earshot_server::providers::standard_webhooks::sign(
        SECRET,
        &id,
        &timestamp,
        body.as_bytes(),
    )
    .unwrap();
    http::Request::post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", format!("v1,{signature}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Acks/s and ack latencies of `deliveries` signed posts to `url` over `connections`
/// keep-alive connections.
struct Run {
    acks: usize,
    other: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.acks as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, percent: usize) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        sorted[(sorted.len() * percent / 100).min(sorted.len() - 1)]
    }
}

/// A Standard Webhooks integration signed with `SECRET` whose rate limit the load never meets.
async fn unlimited_integration(server: &ServerProcess) -> pb::Integration {
    create_integration(
        server,
        pb::Provider::Webhook,
        pb::WebhookAuthType::StandardWebhooks,
        &[("signing_secret", SECRET)],
        Some(pb::IntegrationOptions {
            rate_limit_per_minute: Some(10_000_000),
            ..Default::default()
        }),
    )
    .await
}

/// `deliver_to` with one URL.
async fn deliver(url: &str, deliveries: usize, connections: usize) -> Run {
    deliver_to(&[url.to_owned()], deliveries, connections).await
}

/// Signed deliveries over `connections` keep-alive connections, each sent to the next of `urls`
/// in turn (round-robin, as a load balancer would).
async fn deliver_to(urls: &[String], deliveries: usize, connections: usize) -> Run {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http::<Full<Bytes>>();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, next, urls) = (client.clone(), next.clone(), urls.to_vec());
        tasks.spawn(async move {
            let (mut acks, mut other, mut latencies) = (0, 0, Vec::new());
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= deliveries {
                    return (acks, other, latencies);
                }
                let sent = Instant::now();
                let url = &urls[index % urls.len()];
                let response = client.request(signed_request(url, index)).await.unwrap();
                let status = response.status().as_u16();
                response.into_body().collect().await.unwrap();
                latencies.push(sent.elapsed());
                if status == 202 { acks += 1 } else { other += 1 }
            }
        });
    }
    let mut run = Run { acks: 0, other: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    while let Some(done) = tasks.join_next().await {
        let (acks, other, latencies) = done.unwrap();
        run.acks += acks;
        run.other += other;
        run.latencies.extend(latencies);
    }
    run.elapsed = started.elapsed();
    run
}

/// CPU microseconds an ack cost a server and this client, over one run of deliveries.
struct CpuPerAck {
    server: f64,
    client: f64,
}

/// The CPU seconds a server and this client had used when a run began.
struct CpuAtStart {
    pid: u32,
    server: f64,
    client: f64,
}

impl CpuAtStart {
    fn now(pid: u32) -> Self {
        Self { pid, server: cpu_seconds_of(pid), client: cpu_seconds_of(std::process::id()) }
    }

    fn per_ack(self, acks: usize) -> CpuPerAck {
        let per_ack = |seconds: f64| seconds * 1e6 / acks.max(1) as f64;
        CpuPerAck {
            server: per_ack(cpu_seconds_of(self.pid) - self.server),
            client: per_ack(cpu_seconds_of(std::process::id()) - self.client),
        }
    }
}

/// What an open-loop run at a fixed offered rate saw.
struct Offered {
    acks: usize,
    other: usize,
    latencies: Vec<Duration>,
    /// From a 202 until `find_datapoints` returns the call, for a sample of the calls.
    searchable: Vec<Duration>,
    /// The most jobs queued or running at any of the once-a-second looks.
    max_pending: f64,
    started: Instant,
    /// When each delivery of `latencies` was due, from `started`.
    due: Vec<Duration>,
}

impl Offered {
    /// The latencies of the deliveries due between `from` and `to`.
    fn latencies_between(&self, from: Instant, to: Instant) -> Vec<Duration> {
        let (from, to) = (from - self.started, to.saturating_duration_since(self.started));
        self.latencies
            .iter()
            .zip(&self.due)
            .filter(|(_, due)| (from..=to).contains(*due))
            .map(|(latency, _)| *latency)
            .collect()
    }
}

/// Offers `rate` signed deliveries a second for `seconds` seconds, each due at its time whatever
/// the answers before it (an open loop, as providers send), and follows every 100th acknowledged
/// call until `find_datapoints` finds it (looking every 10 ms). At most 80 deliveries and 32
/// lookups are in flight; a delivery's latency counts from when it was due, so waiting for a
/// connection is not hidden.
async fn offer(server: &ServerProcess, url: &str, rate: usize, seconds: usize) -> Offered {
    offer_from(server, url, rate, seconds, 10_000_000).await
}

/// `offer` with call ids numbered from `first` (a second run must not repeat the first's).
async fn offer_from(
    server: &ServerProcess,
    url: &str,
    rate: usize,
    seconds: usize,
    first: usize,
) -> Offered {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build_http::<Full<Bytes>>();
    let total = rate * seconds;
    let sending = Arc::new(tokio::sync::Semaphore::new(80));
    let looking = Arc::new(tokio::sync::Semaphore::new(32));
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (watching, metrics_url) = (watching.clone(), format!("{}/metrics", server.url()));
        tokio::spawn(async move {
            let mut max_pending: f64 = 0.0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                max_pending = max_pending.max(pending_in(&reqwest_free_get(&metrics_url).await));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            max_pending
        })
    };
    for index in 0..total {
        let due = started + Duration::from_secs_f64(index as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        let (client, url) = (client.clone(), url.to_owned());
        let (sending, looking) = (sending.clone(), looking.clone());
        let find = (index % 100 == 0).then(|| {
            (
                format!("{}/v0/find_datapoints", server.url()),
                server.admin_key().to_owned(),
                server.project_id().to_owned(),
            )
        });
        tasks.spawn(async move {
            let offset = first + index;
            let request = signed_request(&url, offset);
            let permit = sending.acquire_owned().await.unwrap();
            let response = client.request(request).await.unwrap();
            let status = response.status().as_u16();
            response.into_body().collect().await.unwrap();
            drop(permit);
            let acked = tokio::time::Instant::now();
            let searchable = match find {
                Some((find_url, key, project_id)) if status == 202 => {
                    let call_id = format!("load-{}-{offset}", std::process::id());
                    let query =
                        serde_json::json!({"project_id": project_id, "context_token": call_id})
                            .to_string();
                    loop {
                        let permit = looking.acquire().await.unwrap();
                        let request = http::Request::post(&find_url)
                            .header("content-type", "application/json")
                            .header("api-key", &key)
                            .body(Full::new(Bytes::from(query.clone())))
                            .unwrap();
                        let response = client.request(request).await.unwrap();
                        let body = response.into_body().collect().await.unwrap().to_bytes();
                        drop(permit);
                        if body.len() > 2 {
                            break Some(acked.elapsed());
                        }
                        assert!(acked.elapsed() < Duration::from_secs(120), "never searchable");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                _ => None,
            };
            (status, acked - due, searchable, due - started)
        });
    }
    let mut offered = Offered {
        acks: 0,
        other: 0,
        latencies: Vec::new(),
        searchable: Vec::new(),
        max_pending: 0.0,
        started: started.into_std(),
        due: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        let (status, latency, searchable, due) = done.unwrap();
        offered.due.push(due);
        if status == 202 {
            offered.acks += 1;
        } else {
            offered.other += 1;
        }
        offered.latencies.push(latency);
        offered.searchable.extend(searchable);
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    offered.max_pending = watcher.await.unwrap();
    offered
}

fn percentile(values: &[Duration], percent: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted
        .get((sorted.len() * percent / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The storage-free ceiling: Standard Webhooks verification, the JSON conversation parsed, 202.
async fn ceiling() {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/hook",
        post(|headers: http::HeaderMap, body: Bytes| async move {
            let request = earshot_server::providers::WebhookRequest {
                url: "http://ceiling/hook",
                headers: &headers,
                body: &body,
                now: chrono::Utc::now(),
            };
            if earshot_server::providers::standard_webhooks::verify(SECRET, &request).is_err() {
                return (http::StatusCode::UNAUTHORIZED, String::new());
            }
            match earshot_server::model::conversation_json::parse::<
                earshot_server::model::conversation_json::JsonConversation,
            >(&body)
            {
                Ok(conversation) => (
                    http::StatusCode::ACCEPTED,
                    serde_json::json!({"status": "accepted", "call_id": conversation.call_id})
                        .to_string(),
                ),
                Err(_) => (http::StatusCode::BAD_REQUEST, String::new()),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("ceiling listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}

/// Jobs queued or running, from the server's /metrics.
async fn pending_jobs(server: &ServerProcess) -> f64 {
    pending_in(&reqwest_free_get(&format!("{}/metrics", server.url())).await)
}

/// Seconds `server`'s one writer has held its turns so far (`earshot_write_turn_seconds`).
async fn write_turn_seconds(server: &ServerProcess) -> f64 {
    let text = reqwest_free_get(&format!("{}/metrics", server.url())).await;
    text.lines()
        .find_map(|line| line.strip_prefix("earshot_write_turn_seconds_total ")?.parse().ok())
        .unwrap_or(0.0)
}

/// Calls not stored yet in a /metrics text: jobs queued or running, and requests in the intake
/// log.
fn pending_in(response: &str) -> f64 {
    ["earshot_queue_jobs{status=\"queued\"} ", "earshot_queue_jobs{status=\"running\"} "]
        .into_iter()
        .chain(["earshot_intake_log_requests "])
        .map(|series| {
            response
                .lines()
                .find_map(|line| line.strip_prefix(series)?.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum()
}

async fn reqwest_free_get(url: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

/// The SQLite database's bytes (the file and its write-ahead log) in `data_dir`.
/// The sizes of the SQLite database file and of its write-ahead log (0 and 0 on PostgreSQL).
/// The server checkpoints the log into the file in the background (at most 100 ms behind), so
/// the file holds the stored calls; the log is reused from its start, and bounded (64 MiB)
/// whatever the database holds.
fn database_bytes(data_dir: &std::path::Path) -> (u64, u64) {
    let size = |name: &str| std::fs::metadata(data_dir.join(name)).map_or(0, |file| file.len());
    (size("earshot.db"), size("earshot.db-wal"))
}

/// The bytes of the SQLite file's pages in use: its pages less those on its free list, read from
/// the file's header (the page size at offset 16, the page count at 28, the free pages at 36).
/// Rows deleted after they are stored (the burst's jobs and intake-log rows) leave free pages,
/// which later writes reuse, so these are what the stored calls take. None on PostgreSQL.
fn pages_in_use(data_dir: &std::path::Path) -> Option<u64> {
    let mut header = [0u8; 40];
    let mut file = std::fs::File::open(data_dir.join("earshot.db")).ok()?;
    std::io::Read::read_exact(&mut file, &mut header).ok()?;
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        size => u64::from(size),
    };
    let number = |at: usize| u64::from(u32::from_be_bytes(header[at..at + 4].try_into().unwrap()));
    Some(number(28).saturating_sub(number(36)) * page_size)
}

/// Seconds until the queue is empty, polling /metrics (`poll_interval`; a measurement, with a
/// bound).
async fn drain(server: &ServerProcess, bound: Duration) -> Duration {
    let started = Instant::now();
    while pending_jobs(server).await > 0.0 {
        assert!(started.elapsed() < bound, "the queue did not drain within {bound:?}");
        tokio::time::sleep(poll_interval(started.elapsed())).await;
    }
    started.elapsed()
}

/// How long `drain` waits between two looks at the queue after `elapsed`: a twentieth of the
/// time so far, from 5 ms to 100 ms. A drain of a tenth of a second is timed to within a few
/// percent (a fixed 100 ms made every 1,000-job drain take at least that, ~9,700/s whatever
/// the rate), and a long one scrapes `/metrics` at most ten times a second.
fn poll_interval(elapsed: Duration) -> Duration {
    (elapsed / 20).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("ceiling") {
        return ceiling().await;
    }
    if args.get(1).map(String::as_str) == Some("delete") {
        let backlog = args.get(2).map_or(100_000, |value| value.parse().unwrap());
        let (rate, seconds) = args.get(3).map_or((1000, 20), |value| {
            let (rate, seconds) = value.split_once('x').expect("offered load as <rate>x<seconds>");
            (rate.parse().unwrap(), seconds.parse().unwrap())
        });
        return delete_under_load(backlog, rate, seconds).await;
    }
    if args.get(1).map(String::as_str) == Some("monitors") {
        let deliveries = args.get(2).map_or(20_000, |value| value.parse().unwrap());
        let backlog = args.get(3).map_or(20_000, |value| value.parse().unwrap());
        let counts: Vec<usize> = args.get(4).map_or(vec![0, 5, 20], |value| {
            value.split(',').map(|count| count.parse().unwrap()).collect()
        });
        let rounds = args.get(5).map_or(1, |value| value.parse().unwrap());
        return with_monitors(deliveries, backlog, &counts, rounds).await;
    }
    if args.get(1).map(String::as_str) == Some("interleaved") {
        let backlog = args.get(2).map_or(200_000, |value| value.parse().unwrap());
        let count = args.get(3).map_or(5, |value| value.parse().unwrap());
        let slice = args.get(4).map_or(1_000, |value| value.parse().unwrap());
        return interleaved(backlog, count, Duration::from_millis(slice)).await;
    }
    if args.get(1).map(String::as_str) == Some("events") {
        let backlog = args.get(2).map_or(20_000, |value| value.parse().unwrap());
        return with_events(backlog).await;
    }
    if args.get(1).map(String::as_str) == Some("backfill") {
        let calls = args.get(2).map_or(100_000, |value| value.parse().unwrap());
        let monitors = args.get(3).map_or(5, |value| value.parse().unwrap());
        return backfill(calls, monitors).await;
    }
    if args.get(1).map(String::as_str) == Some("replicas") {
        let deliveries = args.get(2).map_or(20_000, |value| value.parse().unwrap());
        let most = args.get(3).map_or(3, |value| value.parse().unwrap());
        let backlog = args.get(4).map_or(50_000, |value| value.parse().unwrap());
        return replicas(deliveries, 64, most, backlog).await;
    }
    let deliveries: usize = args.get(1).map_or(20_000, |value| value.parse().unwrap());
    let connections: usize = args.get(2).map_or(64, |value| value.parse().unwrap());
    let backlogs: Vec<usize> = args
        .get(3)
        .map_or("1000,10000", String::as_str)
        .split(',')
        .map(|size| size.parse().unwrap())
        .collect();
    let offered_load: Option<(usize, usize)> = args.get(4).map(|value| {
        let (rate, seconds) = value.split_once('x').expect("offered load as <rate>x<seconds>");
        (rate.parse().unwrap(), seconds.parse().unwrap())
    });

    // The ceiling, in a process of its own.
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg("ceiling")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let line = lines.next_line().await.unwrap().unwrap();
    let ceiling_url = format!("{}/hook", line.trim_start_matches("ceiling listening on "));
    let ceiling_cpu = CpuAtStart::now(child.id().unwrap());
    let ceiling_run = deliver(&ceiling_url, deliveries, connections).await;
    let ceiling_cpu = ceiling_cpu.per_ack(ceiling_run.acks);
    child.kill().await.unwrap();

    // One loopback address and one integration stand for the many senders and integrations of
    // a real deployment.
    let server = ServerProcess::start(&[
        ("EARSHOT_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "1000"),
        ("EARSHOT_INTEGRATIONS__RATE_LIMIT_PER_MINUTE_MAX", "10000000"),
    ])
    .await;
    let integration = unlimited_integration(&server).await;
    let url = format!("{}/v0/voice/webhook/monitor/{}", server.url(), integration.public_id);
    let earshot_cpu = CpuAtStart::now(server.pid());
    let run = deliver(&url, deliveries, connections).await;
    let earshot_cpu = earshot_cpu.per_ack(run.acks);
    let after_load = pending_jobs(&server).await;
    let drained_in = drain(&server, Duration::from_secs(3600)).await;
    let drain_rate = after_load / drained_in.as_secs_f64().max(0.001);

    println!("load: {deliveries} signed Standard Webhooks deliveries, {connections} connections");
    println!(
        "ceiling (verify + parse + 202, no storage): {:.0} acks/s, p50 {:?}, p99 {:?}",
        ceiling_run.per_second(),
        ceiling_run.percentile(50),
        ceiling_run.percentile(99)
    );
    println!(
        "earshot: {:.0} acks/s ({} other answers), p50 {:?}, p99 {:?}; {:.0} % of the ceiling",
        run.per_second(),
        run.other,
        run.percentile(50),
        run.percentile(99),
        100.0 * run.per_second() / ceiling_run.per_second()
    );
    println!(
        "CPU per ack: ceiling server {:.0} µs, client {:.0} µs; earshot {:.0} µs, client {:.0} µs",
        ceiling_cpu.server, ceiling_cpu.client, earshot_cpu.server, earshot_cpu.client
    );
    println!(
        "during the load {:.0} datapoints/s were stored; the {after_load} jobs left drained in \
         {:.1} s ({drain_rate:.0}/s)",
        (deliveries as f64 - after_load) / run.elapsed.as_secs_f64(),
        drained_in.as_secs_f64()
    );
    let (database_bytes, log_bytes) = database_bytes(server.data_dir());
    let body_bytes = conversation("load-0000000-00000").to_string().len();
    // On PostgreSQL there is no file of the server's own to measure.
    if database_bytes > 0 {
        println!(
            "database: {:.1} KB per stored call ({} bytes over {} calls) for a {body_bytes}-byte body, \
         {:.1}x; write-ahead log {:.1} MB",
            database_bytes as f64 / run.acks as f64 / 1000.0,
            database_bytes,
            run.acks,
            database_bytes as f64 / run.acks as f64 / body_bytes as f64,
            log_bytes as f64 / 1e6
        );
        if let Some(in_use) = pages_in_use(server.data_dir()) {
            println!(
                "pages in use: {:.0} bytes per stored call, {:.1}x the body (the file's other \
                 pages are free, for later writes)",
                in_use as f64 / run.acks as f64,
                in_use as f64 / run.acks as f64 / body_bytes as f64,
            );
        }
    }

    // A copy of the database as the load left it, for a closer look (tables, indexes).
    if let Ok(keep) = std::env::var("EARSHOT_LOAD_KEEP_DATABASE") {
        keep_database(&server, std::path::Path::new(&keep));
    }

    // An offered rate, open loop: acks, backlog and the time until a call is searchable.
    if let Some((rate, seconds)) = offered_load {
        let offered = offer(&server, &url, rate, seconds).await;
        println!(
            "offered {rate}/s for {seconds} s: {} acks ({} other answers), p50 {:?}, p99 {:?}; \
             at most {:.0} jobs pending ({:.2} s of the offered rate); ack to searchable \
             p50 {:?}, p99 {:?} ({} calls followed)",
            offered.acks,
            offered.other,
            percentile(&offered.latencies, 50),
            percentile(&offered.latencies, 99),
            offered.max_pending,
            offered.max_pending / rate as f64,
            percentile(&offered.searchable, 50),
            percentile(&offered.searchable, 99),
            offered.searchable.len()
        );
    }

    // Backlogs through gRPC batches: stored as they are acknowledged (transcripts at intake, the
    // default), then left to the workers and drained with no load.
    backlogs_through_grpc(&server, &backlogs).await;
    server.stop().await;
    let workers_only =
        ServerProcess::start(&[("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false")]).await;
    println!("with ingest.transcripts_at_intake = false:");
    backlogs_through_grpc(&workers_only, &backlogs).await;
    workers_only.stop().await;
}

/// Ingests each backlog through gRPC batches of 1,000, then waits for the queue to drain:
/// prints the rate of each.
async fn backlogs_through_grpc(server: &ServerProcess, backlogs: &[usize]) {
    for &backlog in backlogs {
        let ingested_in = ingest_backlog(server, backlog).await;
        let queued = pending_jobs(server).await;
        let drained_in = drain(server, Duration::from_secs(3600)).await;
        println!(
            "backlog {backlog}: ingested in {:.1} s ({:.0}/s), {queued} still queued, drained in \
             {:.1} s: {:.0} datapoints/s",
            ingested_in.as_secs_f64(),
            backlog as f64 / ingested_in.as_secs_f64(),
            drained_in.as_secs_f64(),
            queued / drained_in.as_secs_f64().max(0.001)
        );
    }
}

/// Ingests `backlog` six-turn calls through gRPC batches of 1,000; returns the time it took.
async fn ingest_backlog(server: &ServerProcess, backlog: usize) -> Duration {
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(server.channel().await);
    let started = Instant::now();
    for batch in 0..backlog.div_ceil(1000) {
        let conversations = (0..1000.min(backlog - batch * 1000))
            .map(|index| {
                let json = conversation(&format!("backlog-{backlog}-{batch}-{index}"));
                pb::Conversation {
                    call_id: json["call_id"].as_str().unwrap().to_owned(),
                    transcript: json["transcript"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|turn| pb::Turn {
                            role: if turn["role"] == "user" {
                                pb::Role::User
                            } else {
                                pb::Role::Assistant
                            } as i32,
                            content: turn["content"].as_str().unwrap().to_owned(),
                            timestamp_ms: turn["timestamp_ms"].as_i64().unwrap(),
                            end_ms: turn["end_ms"].as_i64(),
                        })
                        .collect(),
                    ..Default::default()
                }
            })
            .collect();
        ingest
            .ingest_conversations(authed(
                pb::IngestConversationsRequest {
                    project_id: server.project_id().to_owned(),
                    conversations,
                    mut_id: String::new(),
                },
                server.admin_key(),
            ))
            .await
            .unwrap();
    }
    started.elapsed()
}

/// Acks/s with 1..=`most` replicas on one PostgreSQL database, and the drain of what their
/// workers had left when the load ended; then the drain of a `backlog` by as many worker
/// replicas.
async fn replicas(deliveries: usize, connections: usize, most: usize, backlog: usize) {
    assert!(
        std::env::var("EARSHOT_TEST_POSTGRES_URL").is_ok(),
        "replicas share a PostgreSQL database: set EARSHOT_TEST_POSTGRES_URL"
    );
    println!("replicas: {deliveries} signed deliveries round-robin, {connections} connections");
    for count in 1..=most {
        let directory = tempfile::tempdir().unwrap();
        let first_dir = directory.path().join("replica-0");
        let shared = earshot_e2e::storage_env(&first_dir).await;
        let master_key = earshot_server::crypto::MasterKey::generate().to_base64();
        let mut env: Vec<(&str, &str)> = vec![
            ("EARSHOT_MASTER_KEY", master_key.as_str()),
            ("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false"),
            ("EARSHOT_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "1000"),
            ("EARSHOT_INTEGRATIONS__RATE_LIMIT_PER_MINUTE_MAX", "10000000"),
        ];
        let mut servers = vec![ServerProcess::start_in(&first_dir, &env).await];
        env.extend(shared.iter().map(|(name, value)| (name.as_str(), value.as_str())));
        for index in 1..count {
            let data_dir = directory.path().join(format!("replica-{index}"));
            servers.push(ServerProcess::start_in(&data_dir, &env).await);
        }
        let integration = unlimited_integration(&servers[0]).await;
        let urls: Vec<String> = servers
            .iter()
            .map(|server| {
                format!("{}/v0/voice/webhook/monitor/{}", server.url(), integration.public_id)
            })
            .collect();
        let run = deliver_to(&urls, deliveries, connections).await;
        let left = pending_jobs(&servers[0]).await;
        let drained_in = drain(&servers[0], Duration::from_secs(3600)).await;
        println!(
            "{count} replica(s): {:.0} acks/s ({} other answers; {:.0} per replica), p50 {:?}, \
             p99 {:?}; workers processed {:.0}/s during the load; {left} jobs left, drained in \
             {:.1} s ({:.0}/s)",
            run.per_second(),
            run.other,
            run.per_second() / count as f64,
            run.percentile(50),
            run.percentile(99),
            (deliveries as f64 - left) / run.elapsed.as_secs_f64(),
            drained_in.as_secs_f64(),
            left / drained_in.as_secs_f64().max(0.001)
        );
        for server in servers {
            server.stop().await;
        }
        drain_by_workers(count, backlog).await;
    }
}

/// The drain of `backlog` queued jobs by `count` worker replicas on one PostgreSQL database: an
/// `api` replica (which claims nothing) queues them through gRPC, then the workers start; the
/// rate counts what was left when the last of them listened, until the queue is empty.
async fn drain_by_workers(count: usize, backlog: usize) {
    let directory = tempfile::tempdir().unwrap();
    let api_dir = directory.path().join("api");
    let shared = earshot_e2e::storage_env(&api_dir).await;
    let master_key = earshot_server::crypto::MasterKey::generate().to_base64();
    let mut env: Vec<(&str, &str)> = vec![
        ("EARSHOT_MASTER_KEY", master_key.as_str()),
        ("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false"),
    ];
    let api = ServerProcess::start_in_with_args(&api_dir, &["--role", "api"], &env).await;
    let ingested_in = ingest_backlog(&api, backlog).await;
    env.extend(shared.iter().map(|(name, value)| (name.as_str(), value.as_str())));
    let mut workers = Vec::new();
    for index in 0..count {
        let data_dir = directory.path().join(format!("worker-{index}"));
        workers
            .push(ServerProcess::start_in_with_args(&data_dir, &["--role", "worker"], &env).await);
    }
    let left = pending_jobs(&api).await;
    let drained_in = drain(&api, Duration::from_secs(3600)).await;
    let rate = left / drained_in.as_secs_f64().max(0.001);
    println!(
        "{count} worker replica(s): {backlog} jobs queued by an api replica in {:.1} s; {left} \
         left when the last worker listened, drained in {:.1} s: {rate:.0} datapoints/s \
         ({:.0} per worker)",
        ingested_in.as_secs_f64(),
        drained_in.as_secs_f64(),
        rate / count as f64
    );
    for worker in workers {
        worker.stop().await;
    }
    api.stop().await;
}

/// Intake's ack latencies at an offered rate, alone and while a deletion by filter removes a
/// backlog of `backlog` calls.
async fn delete_under_load(backlog: usize, rate: usize, seconds: usize) {
    let server = ServerProcess::start(&[
        ("EARSHOT_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "1000"),
        ("EARSHOT_INTEGRATIONS__RATE_LIMIT_PER_MINUTE_MAX", "10000000"),
    ])
    .await;
    let integration = unlimited_integration(&server).await;
    let url = format!("{}/v0/voice/webhook/monitor/{}", server.url(), integration.public_id);
    let filled = ingest_backlog(&server, backlog).await;
    println!(
        "delete: {backlog} calls stored through gRPC in {:.1} s; offered {rate}/s for {seconds} s",
        filled.as_secs_f64()
    );
    let alone = offer(&server, &url, rate, seconds).await;

    let mut datapoints =
        pb::datapoint_service_client::DatapointServiceClient::new(server.channel().await);
    let request = authed(
        pb::DeleteDatapointsRequest {
            datapoint_ids: Vec::new(),
            // The backlog came through the gRPC API; the deliveries are webhooks.
            filter: Some(pb::SearchDatapointsRequest {
                project_id: server.project_id().to_owned(),
                source: pb::Source::Api as i32,
                ..Default::default()
            }),
        },
        server.admin_key(),
    );
    // The deletion starts a second into the offered run.
    let deleting = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let deletion = datapoints.delete_datapoints(request).await.unwrap().into_inner();
        (deletion.deletion.unwrap().removed.unwrap(), started, Instant::now())
    });
    let during = offer_from(&server, &url, rate, seconds, 20_000_000).await;
    let (removed, from, to) = deleting.await.unwrap();
    assert_eq!(removed.datapoints, backlog as i64, "the whole backlog was deleted");
    let overlapping = during.latencies_between(from, to);
    for (name, acks, other, latencies) in [
        ("alone", alone.acks, alone.other, &alone.latencies),
        ("run with the deletion", during.acks, during.other, &during.latencies),
    ] {
        println!(
            "{name}: {acks} acks ({other} other answers), p50 {:?}, p99 {:?}",
            percentile(latencies, 50),
            percentile(latencies, 99)
        );
    }
    let took = to - from;
    println!(
        "deleted {} calls in {:.1} s ({:.0}/s); the {} deliveries due meanwhile: p50 {:?}, \
         p99 {:?}, {:.2}x the p99 alone{}",
        removed.datapoints,
        took.as_secs_f64(),
        removed.datapoints as f64 / took.as_secs_f64(),
        overlapping.len(),
        percentile(&overlapping, 50),
        percentile(&overlapping, 99),
        percentile(&overlapping, 99).as_secs_f64()
            / percentile(&alone.latencies, 99).as_secs_f64().max(1e-6),
        if took.as_secs_f64() + 1.0 > seconds as f64 {
            " (the deletion outlasted the offered run: offer longer)"
        } else {
            ""
        }
    );
    server.stop().await;
}

/// A backfill of one of `monitors` monitors (five checks each, every call matched) over
/// `calls` stored calls: the calls evaluated per second, and the time of each tenth.
async fn backfill(calls: usize, monitors: usize) {
    let server = ServerProcess::start(&[]).await;
    let stored_in = ingest_backlog(&server, calls).await;
    println!("{calls} calls stored in {:.1} s", stored_in.as_secs_f64());
    create_monitors(&server, monitors).await;
    let mut service = pb::monitor_service_client::MonitorServiceClient::new(server.channel().await);
    let monitor = service
        .list_monitors(authed(pb::ListMonitorsRequest {}, server.admin_key()))
        .await
        .unwrap()
        .into_inner()
        .monitors
        .remove(0);
    let started = Instant::now();
    let backfill = service
        .backfill_monitor(authed(
            pb::BackfillMonitorRequest { monitor_id: monitor.id, ..Default::default() },
            server.admin_key(),
        ))
        .await
        .unwrap()
        .into_inner()
        .backfill
        .unwrap();
    let mut tenths = Vec::new();
    let done = loop {
        let now = service
            .get_backfill(authed(
                pb::GetBackfillRequest { id: backfill.id.clone() },
                server.admin_key(),
            ))
            .await
            .unwrap()
            .into_inner()
            .backfill
            .unwrap();
        while (tenths.len() as u64 + 1) * now.total / 10 <= now.processed && tenths.len() < 10 {
            tenths.push(started.elapsed());
        }
        if now.state != "running" {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    assert_eq!((done.state.as_str(), done.processed), ("succeeded", calls as u64));
    let rates: Vec<String> = tenths
        .windows(2)
        .map(|pair| format!("{:.0}", calls as f64 / 10.0 / (pair[1] - pair[0]).as_secs_f64()))
        .collect();
    println!(
        "backfill of {calls} calls with {monitors} monitors: {:.1} s, {:.0} calls/s; per tenth after the first: {}",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        rates.join(", ")
    );
    server.stop().await;
}

/// Creates `count` monitors of five checks each, with no filter: each matches every call.
async fn create_monitors(server: &ServerProcess, count: usize) {
    let mut monitors =
        pb::monitor_service_client::MonitorServiceClient::new(server.channel().await);
    let rules = [
        ("p95_response_latency_ms", "greater_than", "1500", ""),
        ("provider_call_successful", "equal", "false", ""),
        ("silence_ratio", "greater_than", "0.5", ""),
        ("avg_words_per_minute", "less_than", "90", ""),
        ("transcript_contains", "equal", "true", "speak to a human"),
    ];
    for monitor in 0..count {
        let mut check_ids = Vec::new();
        for (index, (measure, comparator, threshold, phrase)) in rules.iter().enumerate() {
            let check = monitors
                .create_check(authed(
                    pb::CreateCheckRequest {
                        name: format!("monitor {monitor} check {index}"),
                        description: String::new(),
                        rule: Some(pb::CheckRule {
                            measure: (*measure).to_owned(),
                            comparator: (*comparator).to_owned(),
                            threshold: (*threshold).to_owned(),
                            phrase: (*phrase).to_owned(),
                        }),
                    },
                    server.admin_key(),
                ))
                .await
                .unwrap()
                .into_inner()
                .check
                .unwrap();
            check_ids.push(check.id);
        }
        monitors
            .create_monitor(authed(
                pb::CreateMonitorRequest {
                    name: format!("monitor {monitor}"),
                    description: String::new(),
                    filter: None,
                    check_ids,
                },
                server.admin_key(),
            ))
            .await
            .unwrap();
    }
}

/// Copies `server`'s database files and its log into `keep`, for a closer look (tables,
/// indexes).
fn keep_database(server: &ServerProcess, keep: &std::path::Path) {
    std::fs::create_dir_all(keep).unwrap();
    for entry in std::fs::read_dir(server.data_dir()).unwrap().filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with("earshot.db") {
            std::fs::copy(entry.path(), keep.join(entry.file_name())).unwrap();
        }
    }
    std::fs::copy(server.data_dir().with_extension("log"), keep.join("earshot.log")).unwrap();
    println!("database and log copied to {}", keep.display());
}

/// Acks/s, the intake rate of a gRPC backlog and the workers' drain with each count of monitors,
/// `rounds` times in turn; with more than one round, a summary of the drains and their costs.
async fn with_monitors(deliveries: usize, backlog: usize, counts: &[usize], rounds: usize) {
    println!(
        "monitors | webhook acks/s (p99) | backlog stored at intake, /s | workers' drain, /s | \
         workers' CPU ms per 1,000 calls drained | writer's turn held, % of the drain"
    );
    // Per count, each round's drain (calls/s) and CPU per call (µs).
    let mut measured: Vec<Vec<(f64, f64)>> = vec![Vec::new(); counts.len()];
    for _ in 0..rounds {
        for (index, &count) in counts.iter().enumerate() {
            measured[index].push(monitors_round(deliveries, backlog, count).await);
        }
    }
    if rounds > 1 {
        println!("{}", drain_summary(counts, &measured));
    }
}

/// The drains of each count over the rounds (`measured`, as `with_monitors` keeps them), and
/// each count's cost against the first count of the same round.
fn drain_summary(counts: &[usize], measured: &[Vec<(f64, f64)>]) -> String {
    use std::fmt::Write;
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let mut summary = format!(
        "monitors | drained /s per round | mean | CPU µs a call (mean) | cost against {} \
         monitors per round | mean cost",
        counts[0]
    );
    for (index, &count) in counts.iter().enumerate() {
        let drains: Vec<f64> = measured[index].iter().map(|(drain, _)| *drain).collect();
        let cpu: Vec<f64> = measured[index].iter().map(|(_, cpu)| *cpu).collect();
        let costs: Vec<f64> = drains
            .iter()
            .zip(&measured[0])
            .map(|(drain, (first, _))| cost(*drain, *first))
            .collect();
        let listed = |values: &[f64], unit: &str| {
            values.iter().map(|value| format!("{value:.0}{unit}")).collect::<Vec<_>>().join(", ")
        };
        let _infallible = write!(
            summary,
            "\n{count} | {} | {:.0} | {:.0} | {} | {:.1} %",
            listed(&drains, ""),
            mean(&drains),
            mean(&cpu),
            listed(&costs, " %"),
            mean(&costs),
        );
    }
    summary
}

/// One count's line of `with_monitors`: the drain (calls/s) and the CPU per call (µs).
async fn monitors_round(deliveries: usize, backlog: usize, count: usize) -> (f64, f64) {
    let server = ServerProcess::start(&[
        ("EARSHOT_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "1000"),
        ("EARSHOT_INTEGRATIONS__RATE_LIMIT_PER_MINUTE_MAX", "10000000"),
    ])
    .await;
    create_monitors(&server, count).await;
    let integration = unlimited_integration(&server).await;
    let url = format!("{}/v0/voice/webhook/monitor/{}", server.url(), integration.public_id);
    let run = deliver(&url, deliveries, 64).await;
    let stored_in = ingest_backlog(&server, backlog).await;
    server.stop().await;

    let workers_only = backlog_for_workers(count, backlog).await;
    let queued = pending_jobs(&workers_only).await;
    let cpu_before = workers_only.cpu_seconds();
    let turns_before = write_turn_seconds(&workers_only).await;
    let drained_in = drain(&workers_only, Duration::from_secs(3600)).await;
    // The server's CPU time over the drain, which the machine's other load moves less than
    // the drain's wall time, and the share of it the one writer's turn was held.
    let cpu = workers_only.cpu_seconds() - cpu_before;
    let writer_busy = (write_turn_seconds(&workers_only).await - turns_before)
        / drained_in.as_secs_f64().max(0.001);
    if let Ok(keep) = std::env::var("EARSHOT_LOAD_KEEP_DATABASE") {
        keep_database(
            &workers_only,
            &std::path::Path::new(&keep).join(format!("monitors-{count}")),
        );
    }
    workers_only.stop().await;
    let drained = queued / drained_in.as_secs_f64().max(0.001);
    let cpu_per_call = cpu * 1e6 / queued.max(1.0);
    println!(
        "{count} | {:.0} ({:?}) | {:.0} | {drained:.0} ({queued} left after ingestion) | \
         {cpu_per_call:.0} | {:.0} %",
        run.per_second(),
        run.percentile(99),
        backlog as f64 / stored_in.as_secs_f64(),
        writer_busy * 100.0,
    );
    (drained, cpu_per_call)
}

/// A server with `count` monitors whose workers are given a gRPC backlog of `backlog` calls
/// (`ingest.transcripts_at_intake = false`); they drain it from its first calls on.
async fn backlog_for_workers(count: usize, backlog: usize) -> ServerProcess {
    let server = ServerProcess::start(&[("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false")]).await;
    create_monitors(&server, count).await;
    ingest_backlog(&server, backlog).await;
    server
}

/// What one server drained in its turns: calls, seconds and CPU seconds, per turn.
#[derive(Default)]
struct Turns {
    calls: Vec<f64>,
    seconds: Vec<f64>,
    cpu: Vec<f64>,
}

impl Turns {
    fn drain(&self) -> f64 {
        self.calls.iter().sum::<f64>() / self.seconds.iter().sum::<f64>().max(0.001)
    }

    fn cpu_per_call(&self) -> f64 {
        self.cpu.iter().sum::<f64>() * 1e6 / self.calls.iter().sum::<f64>().max(1.0)
    }
}

/// Lets `server` drain alone for `slice`: resumed, its pending calls read before and after,
/// paused again.
async fn drain_turn(server: &ServerProcess, slice: Duration, turns: &mut Turns) -> f64 {
    server.resume();
    let before = pending_jobs(server).await;
    let (started, cpu) = (Instant::now(), server.cpu_seconds());
    tokio::time::sleep(slice).await;
    let after = pending_jobs(server).await;
    turns.seconds.push(started.elapsed().as_secs_f64());
    turns.cpu.push(server.cpu_seconds() - cpu);
    server.pause();
    turns.calls.push(before - after);
    after
}

/// `load interleaved`: the drains with no monitor and with `count`, in alternating turns.
async fn interleaved(backlog: usize, count: usize, slice: Duration) {
    let mut servers = Vec::new();
    for monitors in [0, count] {
        let server = backlog_for_workers(monitors, backlog).await;
        server.pause();
        servers.push(server);
    }
    let floor = backlog as f64 / 10.0;
    let mut turns = [Turns::default(), Turns::default()];
    let mut pairs = Vec::new();
    'turns: for round in 0.. {
        // ABBA: a drift of the machine's speed within a round weighs on both alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let left = drain_turn(&servers[index], slice, &mut turns[index]).await;
            // A server whose workers stopped would otherwise keep this loop going for ever.
            let stalled = turns[index].calls.iter().rev().take_while(|calls| **calls <= 0.0);
            assert!(
                stalled.count() < 10,
                "the server with {} monitors drained nothing in ten turns in a row",
                [0, count][index]
            );
            if left < floor {
                break 'turns;
            }
        }
        let last = |turns: &Turns| {
            turns.calls.last().copied().unwrap_or(0.0)
                / turns.seconds.last().copied().unwrap_or(1.0)
        };
        pairs.push(cost(last(&turns[1]), last(&turns[0])));
    }
    // What is left of the backlogs is not waited for.
    for mut server in servers {
        server.resume();
        server.kill().await;
    }
    pairs.sort_by(f64::total_cmp);
    let listed: Vec<String> = pairs.iter().map(|cost| format!("{cost:.0}")).collect();
    println!(
        "turns of {slice:?}, {} pairs; cost of {count} monitors per pair, sorted: {} %",
        pairs.len(),
        listed.join(", ")
    );
    println!("monitors | drained in the turns, /s | CPU µs a call | calls drained in the turns");
    for (monitors, turns) in [0, count].into_iter().zip(&turns) {
        println!(
            "{monitors} | {:.0} | {:.0} | {:.0}",
            turns.drain(),
            turns.cpu_per_call(),
            turns.calls.iter().sum::<f64>()
        );
    }
    let median = pairs.get(pairs.len() / 2).copied().unwrap_or(0.0);
    println!(
        "cost of {count} monitors: {:.1} % over all turns, median pair {median:.0} %",
        cost(turns[1].drain(), turns[0].drain())
    );
}

/// The cost of monitors to a drain, in percent: `drained` against `without` them (a drain of
/// under one call a second counts as one).
fn cost(drained: f64, without: f64) -> f64 {
    100.0 * (drained / without.max(1.0) - 1.0)
}

/// A receiver of outbound events on a loopback port that answers 204 to each and records when
/// each arrived.
async fn event_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Instant>>>) {
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = arrivals.clone();
    let app = axum::Router::new().fallback(move || {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(Instant::now());
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/events"), arrivals)
}

/// The workers' drain of a gRPC backlog with no event endpoint and with one subscribed to
/// `call.processed` (a receiver in this process answering 204), and the rate its events arrive.
async fn with_events(backlog: usize) {
    println!("endpoints | workers' drain, /s | events delivered, /s (first to last arrival)");
    for endpoints in [0, 1] {
        let server = ServerProcess::start(&[
            ("EARSHOT_INGEST__TRANSCRIPTS_AT_INTAKE", "false"),
            ("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true"),
        ])
        .await;
        let (url, arrivals) = event_receiver().await;
        if endpoints == 1 {
            let mut client = pb::event_endpoint_service_client::EventEndpointServiceClient::new(
                server.channel().await,
            );
            let request = pb::CreateEventEndpointRequest {
                url,
                event_types: vec!["call.processed".into()],
                ..Default::default()
            };
            client.create_event_endpoint(authed(request, server.admin_key())).await.unwrap();
        }
        ingest_backlog(&server, backlog).await;
        let queued = pending_jobs(&server).await;
        let drained_in = drain(&server, Duration::from_secs(3600)).await;
        let delivered = if endpoints == 1 {
            let started = Instant::now();
            while arrivals.lock().unwrap().len() < backlog {
                assert!(started.elapsed() < Duration::from_secs(3600), "events did not arrive");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let arrivals = arrivals.lock().unwrap();
            let span = *arrivals.last().unwrap() - arrivals[0];
            format!(
                "{:.0} ({} events in {:.1} s)",
                backlog as f64 / span.as_secs_f64(),
                backlog,
                span.as_secs_f64()
            )
        } else {
            "-".to_owned()
        };
        server.stop().await;
        println!(
            "{endpoints} | {:.0} ({queued} left after ingestion) | {delivered}",
            queued / drained_in.as_secs_f64().max(0.001),
        );
    }
}

#[cfg(test)]
mod tests {
    /// A short drain is looked at every few milliseconds, a long one ten times a second.
    #[test]
    fn drains_are_looked_at_more_often_the_shorter_they_are() {
        use super::{Duration, poll_interval};
        assert_eq!(poll_interval(Duration::ZERO), Duration::from_millis(5));
        assert_eq!(poll_interval(Duration::from_millis(400)), Duration::from_millis(20));
        assert_eq!(poll_interval(Duration::from_secs(60)), Duration::from_millis(100));
    }

    /// A server's drain is the calls of all its turns over their whole time (a short turn
    /// weighs less), and its CPU per call the CPU of all its turns over those calls.
    #[test]
    fn turns_drain_over_their_whole_time() {
        let turns = super::Turns {
            calls: vec![10_000.0, 2_000.0],
            seconds: vec![1.0, 0.5],
            cpu: vec![1.0, 0.2],
        };
        assert_eq!(turns.drain(), 8_000.0);
        assert_eq!(turns.cpu_per_call(), 100.0);
    }

    /// Each count's cost is against the first count of its own round, and the means are of the
    /// rounds' figures.
    #[test]
    fn a_drain_summary_sets_each_round_against_its_own_first_count() {
        let measured =
            [vec![(10_000.0, 100.0), (8_000.0, 110.0)], vec![(8_000.0, 140.0), (7_200.0, 150.0)]];
        let summary = super::drain_summary(&[0, 5], &measured);
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines.len(), 3, "{summary}");
        assert!(lines[0].contains("cost against 0 monitors"), "{summary}");
        assert_eq!(lines[1], "0 | 10000, 8000 | 9000 | 105 | 0 %, 0 % | 0.0 %");
        assert_eq!(lines[2], "5 | 8000, 7200 | 7600 | 145 | -20 %, -10 % | -15.0 %");
    }
}
