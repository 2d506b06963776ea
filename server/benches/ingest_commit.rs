//! Ingest acknowledgement throughput, with and without group commit.
//!
//! Concurrent clients each submit one-conversation batches through the same domain function the
//! gRPC and JSON endpoints call; a call counts once its commit is durable (SQLite WAL with
//! synchronous=FULL on a file in a temporary directory, or PostgreSQL when
//! EARSHOT_TEST_POSTGRES_URL is set). Configurations run interleaved in one process so their
//! ratios are comparable on a noisy machine.
//!
//! Run: cargo bench -p earshot-server --features testing --bench ingest_commit [-- <calls per run>]

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use earshot_server::app::App;
use earshot_server::config::{Config, Overrides};
use earshot_server::domain::ingest::IngestRequest;
use earshot_server::model::auth::Principal;
use earshot_server::model::conversation::{ConversationInput, Source, TurnInput};

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const GROUP_LIMITS: [usize; 2] = [1, 512];
const ROUNDS: usize = 3;

struct Bench {
    app: App,
    principal: Principal,
    project_id: uuid::Uuid,
    _data_dir: tempfile::TempDir,
}

async fn start(max_group: usize) -> Bench {
    let data_dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".to_owned()),
        data_dir: Some(data_dir.path().to_owned()),
        log_format: None,
        role: None,
    };
    let mut env = vec![("EARSHOT_INGEST__MAX_GROUP_COMMIT".to_owned(), max_group.to_string())];
    let suffix = format!("bench_{}", uuid::Uuid::new_v4().simple());
    if let Some(url) = earshot_server::storage::testing::postgres_database(&suffix).await {
        env.push(("EARSHOT_DATABASE_URL".to_owned(), url));
    }
    let config = Config::load_with_env(None, &overrides, env).unwrap();
    let app = App::build(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let bootstrap = app.domain.bootstrap(true).await.unwrap().unwrap();
    let principal = app.domain.authenticate(bootstrap.api_key_value.expose()).await.unwrap();
    Bench { app, principal, project_id: bootstrap.project.id, _data_dir: data_dir }
}

fn conversation(client: usize, index: usize) -> ConversationInput {
    ConversationInput {
        call_id: format!("bench-{client}-{index}"),
        transcript: vec![
            TurnInput {
                role: "assistant".to_owned(),
                content: "Thanks for calling, how can I help?".to_owned(),
                timestamp_ms: 0,
                end_ms: Some(2_000),
            },
            TurnInput {
                role: "user".to_owned(),
                content: "I would like to move my appointment to Friday.".to_owned(),
                timestamp_ms: 2_500,
                end_ms: Some(5_000),
            },
        ],
        tags: vec!["bench".to_owned()],
        ..ConversationInput::default()
    }
}

/// Calls acknowledged per second with `concurrency` clients sending `calls` in all.
async fn run(bench: &Bench, concurrency: usize, calls: usize) -> f64 {
    let domain = Arc::new(bench.app.domain.clone());
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..concurrency {
        let (domain, principal, project_id) =
            (domain.clone(), bench.principal.clone(), bench.project_id);
        let share = calls / concurrency + usize::from(client < calls % concurrency);
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        clients.spawn(async move {
            for index in 0..share {
                let mut conversation = conversation(client, index);
                conversation.call_id = format!("{prefix}-{}", conversation.call_id);
                let request = IngestRequest {
                    project_id: Some(project_id),
                    conversations: vec![conversation],
                    mut_id: None,
                    source: Source::Sdk,
                };
                domain.ingest_conversations(&principal, request).await.unwrap();
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let calls: usize =
        std::env::args().skip(1).find_map(|argument| argument.parse().ok()).unwrap_or(2_000);
    let engine = if std::env::var(earshot_server::storage::testing::POSTGRES_URL_VARIABLE).is_ok() {
        "postgres"
    } else {
        "sqlite (WAL, synchronous=FULL)"
    };
    println!("ingest_commit: {calls} one-conversation calls per run, {engine}, best of {ROUNDS}");
    let mut benches = Vec::new();
    for max_group in GROUP_LIMITS {
        benches.push((max_group, start(max_group).await));
    }
    println!("| clients | calls/s, max_group_commit=1 | calls/s, max_group_commit=512 | ratio |");
    println!("|---:|---:|---:|---:|");
    for concurrency in CONCURRENCY {
        let mut best = [0.0_f64; GROUP_LIMITS.len()];
        for _ in 0..ROUNDS {
            for (slot, (_, bench)) in benches.iter().enumerate() {
                best[slot] = best[slot].max(run(bench, concurrency, calls).await);
            }
        }
        println!("| {concurrency} | {:.0} | {:.0} | {:.1}x |", best[0], best[1], best[1] / best[0]);
    }
}
