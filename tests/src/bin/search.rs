//! The search benchmark: each documented filter of `DatapointService.SearchDatapoints` timed
//! against a real `earshot serve` whose database holds `rows` datapoints, beside the same
//! searches on a database of `baseline` datapoints measured in the same run, so the ratio shows
//! whether a search's cost grows with the data.
//!
//!     cargo run --release -p earshot-e2e --bin search -- [rows] [baseline]
//!
//! (defaults 1,000,000 and 10,000; PostgreSQL when EARSHOT_TEST_POSTGRES_URL is set;
//! EARSHOT_SEARCH_KEEP_DIRECTORY keeps the servers' data directories there). Each
//! database is filled in minutes with bulk SQL, not the API: two calls are ingested through
//! gRPC and one through a signed webhook, and their rows copied (with tag and metadata rows, and
//! on SQLite their words in the full-text index) with generated ids, call ids and times, 30
//! days of calls; the calls from source `webhook` each with a copy of the webhook's delivery and
//! a document written against its kept body (m0033), as the server stores a webhook's call; half with a
//! context token of their own, the rest with their call id's (stored empty, m0030); 1 % from
//! provider `bland`, 10 % through the SDK, every call tagged `billing`, one in a thousand
//! `vip`, metadata `queue` (half `sales`) and a unique `account`, the word "zebra" in one
//! transcript in 100,000; 1 % judged failed by the provider, 5 % of negative sentiment, 0.1 %
//! with an open issue of a check, and the `bland` calls matched by a monitor. On PostgreSQL the
//! fill ends with `ANALYZE`, as autovacuum would; SQLite is left without statistics, as the server leaves it.
//! Figures go to docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use earshot_e2e::client::authed;
use earshot_e2e::process::ServerProcess;
use earshot_proto::v1 as pb;
use earshot_proto::v1::datapoint_service_client::DatapointServiceClient;

/// Thirty days, in milliseconds, over which the calls are spread.
const SPAN_MS: i64 = 30 * 24 * 3600 * 1000;
/// The start of the first call: 2026-10-01T00:00:00Z.
const FIRST_MS: i64 = 1_790_812_800_000;
/// The check whose issues the filled calls have, and the monitor that matched the `bland` calls
/// (rows written by the fill, not through the API: searches read only these rows).
const CHECK_ID: &str = "01900000-0000-7000-9000-00000000c0c0";
const MONITOR_ID: &str = "01900000-0000-7000-9000-00000000b0b0";
/// Runs of each search; the median and the slowest are reported.
const RUNS: usize = 20;

/// The call copied into every filled call, and the one copied into one in 100,000 (its words
/// hold "zebra").
const TEMPLATE: &str = "template";
const ZEBRA_TEMPLATE: &str = "zebra-template";
/// The call, with `TEMPLATE`'s words, delivered by a signed webhook: its delivery and its
/// document, written against the delivery's kept body (m0033), are copied into every call
/// from source `webhook`, each with a delivery of its own.
const WEBHOOK_TEMPLATE: &str = "webhook-template";
/// The Standard Webhooks signing secret of the integration that delivers `WEBHOOK_TEMPLATE`.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A template call, with its words as the server indexes them.
fn template_call(call_id: &str, content: &str) -> (pb::Conversation, String) {
    let mut call = earshot_e2e::client::transcript_call(call_id);
    call.transcript[0].content = content.to_owned();
    call.tags = vec!["billing".into()];
    (call, earshot_server::model::datapoints::search_line(content))
}

/// The statements that copy the two stored templates into `rows` calls (`n(i)` counts from
/// 0); `words` and `zebra_words` are theirs, which SQLite's contentless full-text index cannot
/// read back.
fn fill_sql(rows: usize, postgres: bool, words: &str, zebra_words: &str) -> String {
    let numbers = if postgres {
        format!("generate_series(0, {}) AS n(i)", rows - 1)
    } else {
        format!(
            "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {}) \
             SELECT i FROM s) AS n",
            rows - 1
        )
    };
    // Ids as the server stores them: `uuid` on PostgreSQL, 16 bytes on SQLite (m0029).
    let (id, last_digit) = if postgres {
        (
            "('01900000-0000-7000-8000-' || lpad(to_hex(n.i), 12, '0'))::uuid",
            "substr(d.id::text, 36, 1)",
        )
    } else {
        ("unhex(printf('01900000000070008000%012x', n.i))", "lower(substr(hex(d.id), 32, 1))")
    };
    // A webhook call's delivery has the call's id, as the server gives a webhook call's
    // delivery, ingest and datapoint one id; each is received when the template was, so that
    // the server's pruning of the delivery log leaves it. The call's document is the
    // template's, written against the body of the delivery of its own id (version 4, m0039),
    // which the copies share.
    let delivery_id = id;
    let document = "CASE WHEN n.i % 100000 = 7 THEN z.document WHEN n.i % 10 = 0 THEN t.document \
                    ELSE w.document END";
    let at = format!("{FIRST_MS} + n.i * ({SPAN_MS} / {rows})");
    // On PostgreSQL the words are the rows' `transcript_search`, copied above. On SQLite they
    // go in by rowid, as the server writes them: read in another order (SQLite picks the index
    // by call id for the `LIKE`), FTS5 stores them in a shape whose lookups by rowid read whole
    // doclists, and a search that checks each call took 5-10 times as long.
    // How tag and metadata rows name their call: by id on PostgreSQL, by the datapoint's rowid
    // on SQLite (m0038).
    let (call, call_value) =
        if postgres { ("datapoint_id", "d.id") } else { ("datapoint_rowid", "d.rowid") };
    // And their organization: by id on PostgreSQL, by its rowid on SQLite (m0041), where
    // `organizations` holds the id as text and the datapoints as 16 bytes.
    let (organization, organization_value) = if postgres {
        ("organization_id", "d.organization_id")
    } else {
        (
            "organization_rowid",
            "(SELECT o.rowid FROM organizations o \
             WHERE unhex(replace(o.id, '-', '')) = d.organization_id)",
        )
    };
    let words_sql = if postgres {
        String::new()
    } else {
        let quoted = |words: &str| format!("'{}'", words.replace('\'', "''"));
        format!(
            "INSERT INTO datapoint_text (rowid, transcript_search) \
             SELECT rowid, CASE WHEN CAST(substr(call_id, 6) AS INTEGER) % 100000 = 7 \
             THEN {} ELSE {} END FROM datapoints WHERE call_id LIKE 'call-%' ORDER BY rowid;\n",
            quoted(zebra_words),
            quoted(words)
        )
    };
    // Each call as it was created: its update time stored as 0 (m0043).
    format!(
        "INSERT INTO datapoints (id, organization_id, project_id, provider, call_id, \
         context_token, source, transcript_source, speaker_labels_estimated, turns_json, \
         transcript_search, audio_id, started_at_ms, ended_at_ms, duration_ms, occurred_at_ms, \
         from_number, to_number, direction, analysis_json, cost_usd, tags_json, metadata_json, \
         metrics_json, created_at_ms, updated_at_ms, verdict_successful, verdict_sentiment, \
         open_issues, integration_id, document) \
         SELECT {id}, t.organization_id, t.project_id, \
         CASE WHEN n.i % 100 = 0 THEN 'bland' ELSE 'retell' END, 'call-' || n.i, \
         CASE WHEN n.i % 2 = 0 THEN 'ctx-' || n.i ELSE '' END, \
         CASE WHEN n.i % 10 = 0 THEN 'sdk' ELSE 'webhook' END, t.transcript_source, \
         t.speaker_labels_estimated, t.turns_json, \
         CASE WHEN n.i % 100000 = 7 THEN z.transcript_search ELSE t.transcript_search END, \
         NULL, {at}, {at} + 60000, 60000, {at}, t.from_number, t.to_number, t.direction, \
         t.analysis_json, t.cost_usd, t.tags_json, t.metadata_json, t.metrics_json, {at}, 0, \
         n.i % 100 <> 3, CASE WHEN n.i % 20 = 5 THEN 'negative' ELSE 'neutral' END, \
         CASE WHEN n.i % 1000 = 11 THEN 1 ELSE 0 END, \
         CASE WHEN n.i % 100 = 1 THEN w.integration_id END, {document} \
         FROM {numbers} \
         CROSS JOIN (SELECT * FROM datapoints WHERE call_id = '{TEMPLATE}') AS t \
         CROSS JOIN (SELECT * FROM datapoints WHERE call_id = '{ZEBRA_TEMPLATE}') AS z \
         CROSS JOIN (SELECT * FROM datapoints WHERE call_id = '{WEBHOOK_TEMPLATE}') AS w;\n\
         INSERT INTO webhook_deliveries (id, integration_id, \
         received_at_ms, verdict, http_status, event_type, call_id, body_sha256, error, \
         error_message, ingest_id, authenticated, request_json, body, body_encoding) \
         SELECT {delivery_id}, w.integration_id, w.received_at_ms, \
         w.verdict, w.http_status, w.event_type, 'call-' || n.i, w.body_sha256, w.error, \
         w.error_message, NULL, w.authenticated, w.request_json, w.body, w.body_encoding \
         FROM {numbers} \
         CROSS JOIN (SELECT * FROM webhook_deliveries WHERE call_id = '{WEBHOOK_TEMPLATE}') AS w \
         WHERE n.i % 10 <> 0 AND n.i % 100000 <> 7;\n{words_sql}\
         INSERT INTO check_issues (datapoint_id, check_id, organization_id, name, occurred_at_ms) \
         SELECT d.id, '{CHECK_ID}', d.organization_id, 'slow responses', d.occurred_at_ms \
         FROM datapoints d WHERE d.open_issues > 0;\n\
         INSERT INTO monitor_datapoints (datapoint_id, monitor_id, \
         occurred_at_ms, is_issue, monitor_version) \
         SELECT d.id, '{MONITOR_ID}', d.occurred_at_ms, d.open_issues > 0, 1 \
         FROM datapoints d WHERE d.provider = 'bland';\n\
         INSERT INTO datapoint_tags ({call}, tag, {organization}, occurred_at_ms) \
         SELECT {call_value}, 'billing', {organization_value}, d.occurred_at_ms \
         FROM datapoints d WHERE d.call_id LIKE 'call-%';\n\
         INSERT INTO datapoint_tags ({call}, tag, {organization}, occurred_at_ms) \
         SELECT {call_value}, 'vip', {organization_value}, d.occurred_at_ms \
         FROM datapoints d WHERE d.call_id LIKE 'call-%' AND d.call_id LIKE '%000';\n\
         INSERT INTO datapoint_metadata ({call}, key, value, {organization}, \
         occurred_at_ms) \
         SELECT {call_value}, 'queue', \
         CASE WHEN {last_digit} IN ('0', '2', '4', '6', '8', 'a', 'c', 'e') \
         THEN 'sales' ELSE 'billing' END, {organization_value}, d.occurred_at_ms \
         FROM datapoints d WHERE d.call_id LIKE 'call-%';\n\
         INSERT INTO datapoint_metadata ({call}, key, value, {organization}, \
         occurred_at_ms) \
         SELECT {call_value}, 'account', 'acct-' || d.call_id, {organization_value}, \
         d.occurred_at_ms FROM datapoints d WHERE d.call_id LIKE 'call-%';\n"
    ) + if postgres {
        // What autovacuum does after a bulk load; the SQLite server keeps no statistics.
        "ANALYZE;"
    } else {
        ""
    }
}

/// The searches timed, by name, on a database of `rows` calls.
fn searches(rows: usize, integration_id: &str) -> Vec<(&'static str, pb::SearchDatapointsRequest)> {
    let page = pb::SearchDatapointsRequest { page_size: 100, ..Default::default() };
    let middle = FIRST_MS + SPAN_MS / 2;
    let time = |ms: i64| prost_types::Timestamp { seconds: ms / 1000, nanos: 0 };
    // The page after the call in the middle (the time and id the fill gave it).
    let middle_call = rows / 2;
    let after_middle = earshot_server::model::datapoints::DatapointCursor {
        occurred_at_ms: FIRST_MS + middle_call as i64 * (SPAN_MS / rows as i64),
        id: format!("01900000-0000-7000-8000-{middle_call:012x}").parse().unwrap(),
    }
    .to_token();
    vec![
        ("newest first, no filter", page.clone()),
        (
            "newest first, the page after the middle call",
            pb::SearchDatapointsRequest { page_token: after_middle.clone(), ..page.clone() },
        ),
        (
            "context token of its own",
            pb::SearchDatapointsRequest {
                context_token: format!("ctx-{}", rows / 4 * 2),
                ..page.clone()
            },
        ),
        (
            "context token that is the call id",
            pb::SearchDatapointsRequest {
                context_token: format!("call-{}", rows / 4 * 2 + 1),
                ..page.clone()
            },
        ),
        (
            "call id",
            pb::SearchDatapointsRequest { call_id: format!("call-{}", rows / 3), ..page.clone() },
        ),
        (
            "provider (1 % of calls)",
            pb::SearchDatapointsRequest { provider: "bland".into(), ..page.clone() },
        ),
        (
            "provider (1 %), the page after the middle call",
            pb::SearchDatapointsRequest {
                provider: "bland".into(),
                page_token: after_middle.clone(),
                ..page.clone()
            },
        ),
        (
            "integration (1 %)",
            pb::SearchDatapointsRequest { integration_id: integration_id.into(), ..page.clone() },
        ),
        (
            "integration (1 %), the page after the middle call",
            pb::SearchDatapointsRequest {
                integration_id: integration_id.into(),
                page_token: after_middle,
                ..page.clone()
            },
        ),
        (
            "source (10 %)",
            pb::SearchDatapointsRequest { source: pb::Source::Sdk as i32, ..page.clone() },
        ),
        (
            "one hour of calls",
            pb::SearchDatapointsRequest {
                start_time: Some(time(middle)),
                end_time: Some(time(middle + 3_600_000)),
                ..page.clone()
            },
        ),
        (
            "tag on every call",
            pb::SearchDatapointsRequest { tags_any: vec!["billing".into()], ..page.clone() },
        ),
        (
            "tag on 0.1 %",
            pb::SearchDatapointsRequest { tags_all: vec!["vip".into()], ..page.clone() },
        ),
        (
            "metadata pair on half",
            pb::SearchDatapointsRequest {
                metadata_equals: [("queue".to_owned(), "sales".to_owned())].into(),
                ..page.clone()
            },
        ),
        (
            "metadata pair on one call",
            pb::SearchDatapointsRequest {
                metadata_equals: [("account".to_owned(), format!("acct-call-{}", rows / 2))].into(),
                ..page.clone()
            },
        ),
        (
            "any of two tags, one on every call",
            pb::SearchDatapointsRequest {
                tags_any: vec!["billing".into(), "vip".into()],
                ..page.clone()
            },
        ),
        (
            "any of two tags on 0.1 %",
            pb::SearchDatapointsRequest {
                tags_any: vec!["vip".into(), "nowhere".into()],
                ..page.clone()
            },
        ),
        (
            "unresolved issues (0.1 %)",
            pb::SearchDatapointsRequest { issues_only: true, ..page.clone() },
        ),
        (
            "failed check (0.1 %)",
            pb::SearchDatapointsRequest { failed_check: "slow responses".into(), ..page.clone() },
        ),
        (
            "a monitor's calls (1 %)",
            pb::SearchDatapointsRequest { monitor_id: MONITOR_ID.into(), ..page.clone() },
        ),
        (
            "provider says failed (1 %)",
            pb::SearchDatapointsRequest { successful: Some(false), ..page.clone() },
        ),
        (
            "negative sentiment (5 %)",
            pb::SearchDatapointsRequest { sentiment: "Negative".into(), ..page.clone() },
        ),
        (
            "transcript word in every call",
            pb::SearchDatapointsRequest { text_contains: "hello".into(), ..page.clone() },
        ),
        (
            "transcript word in 1 of 100,000",
            pb::SearchDatapointsRequest { text_contains: "zebra".into(), ..page.clone() },
        ),
        (
            "word in every call, by relevance",
            pb::SearchDatapointsRequest {
                text_contains: "hello".into(),
                order: pb::SearchOrder::Relevance as i32,
                ..page.clone()
            },
        ),
        (
            "word in 1 of 100,000, by relevance",
            pb::SearchDatapointsRequest {
                text_contains: "zebra".into(),
                order: pb::SearchOrder::Relevance as i32,
                ..page
            },
        ),
    ]
}

/// The data directory of the server with `rows` calls.
fn server_dir(directory: &Path, rows: usize) -> std::path::PathBuf {
    directory.join(format!("rows-{rows}"))
}

/// Drops the PostgreSQL database of a data directory, if it has one: a million calls take
/// gigabytes.
async fn drop_postgres_database(data_dir: &Path) {
    let Ok(admin_url) = std::env::var("EARSHOT_TEST_POSTGRES_URL") else { return };
    let url = earshot_e2e::storage_env(data_dir)
        .await
        .into_iter()
        .find_map(|(name, value)| (name == "EARSHOT_DATABASE_URL").then_some(value))
        .unwrap();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    earshot_server::storage::testing::execute_script(&admin_url, &format!("DROP DATABASE {name}"))
        .await;
}

/// A server whose database holds `rows` calls, the integration that delivered the webhook
/// template (and names 1 % of the calls), and how long filling it took.
async fn filled_server(directory: &Path, rows: usize) -> (ServerProcess, String, String, Duration) {
    let data_dir = server_dir(directory, rows);
    let env = [("EARSHOT_ASR__ENABLED", "false")];
    let first = ServerProcess::start_in(&data_dir, &env).await;
    let (key, project_id) = (first.admin_key.clone(), first.project_id.clone());
    let (template, words) = template_call(TEMPLATE, "Hello");
    let (zebra, zebra_words) = template_call(ZEBRA_TEMPLATE, "Hello, zebra");
    pb::ingest_service_client::IngestServiceClient::new(first.channel().await)
        .ingest_conversations(authed(
            earshot_e2e::client::ingest_request(&first, vec![template, zebra]),
            &key,
        ))
        .await
        .unwrap();
    let integration_id = deliver_webhook_template(&first, &key).await;
    first.stop().await;

    let url = earshot_e2e::storage_env(&data_dir)
        .await
        .into_iter()
        .find_map(|(name, value)| (name == "EARSHOT_DATABASE_URL").then_some(value))
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("earshot.db").display()));
    let postgres = url.starts_with("postgres");
    let started = Instant::now();
    let fill = fill_sql(rows, postgres, &words, &zebra_words);
    earshot_server::storage::testing::execute_script(&url, &fill).await;
    let filled_in = started.elapsed();
    let mut server = ServerProcess::start_in(&data_dir, &env).await;
    server.admin_key = key.clone();
    server.project_id = project_id;
    (server, key, integration_id, filled_in)
}

/// Delivers `WEBHOOK_TEMPLATE` (`TEMPLATE`'s one turn and tag) to a new Standard Webhooks
/// integration of `server`, signed, waits until its datapoint is found, and returns the
/// integration's id.
async fn deliver_webhook_template(server: &ServerProcess, key: &str) -> String {
    let integration = earshot_e2e::client::create_integration(
        server,
        pb::Provider::Webhook,
        pb::WebhookAuthType::StandardWebhooks,
        &[("signing_secret", SECRET)],
        None,
    )
    .await;
    let body = serde_json::json!({
        "call_id": WEBHOOK_TEMPLATE,
        "transcript": [{"role": "user", "content": "Hello", "timestamp_ms": 0}],
        "tags": ["billing"],
    })
    .to_string();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = earshot_server::providers::standard_webhooks::sign(
        SECRET,
        "msg_template",
        &timestamp,
        body.as_bytes(),
    )
    .unwrap();
    let signature = format!("v1,{signature}");
    let headers = [
        ("content-type", "application/json"),
        ("webhook-id", "msg_template"),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    let path = format!("/v0/voice/webhook/monitor/{}", integration.public_id);
    let (status, answer) =
        earshot_e2e::client::http_request(server, "POST", &path, &headers, body.into_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    let mut client = DatapointServiceClient::new(server.channel().await);
    let request = pb::SearchDatapointsRequest {
        call_id: WEBHOOK_TEMPLATE.to_owned(),
        page_size: 1,
        ..Default::default()
    };
    let mut tries = 0;
    while client
        .search_datapoints(authed(request.clone(), key))
        .await
        .unwrap()
        .into_inner()
        .datapoints
        .is_empty()
    {
        tries += 1;
        assert!(tries < 100, "the webhook template was not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    integration.id
}

/// The median and the slowest of `RUNS` runs of `request`, and how many it found.
async fn time_search(
    client: &mut DatapointServiceClient<tonic::transport::Channel>,
    key: &str,
    request: &pb::SearchDatapointsRequest,
) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(RUNS);
    let mut found = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let page = client.search_datapoints(authed(request.clone(), key)).await.unwrap();
        times.push(started.elapsed());
        found = page.into_inner().datapoints.len();
    }
    times.sort();
    (times[RUNS / 2], times[RUNS - 1], found)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).map_or(1_000_000, |value| value.parse().unwrap());
    let baseline: usize = args.get(2).map_or(10_000, |value| value.parse().unwrap());
    // EARSHOT_SEARCH_KEEP_DIRECTORY keeps the databases there, to look into afterwards.
    let kept = std::env::var_os("EARSHOT_SEARCH_KEEP_DIRECTORY").map(std::path::PathBuf::from);
    let temporary = tempfile::tempdir().unwrap();
    let directory = kept.as_deref().unwrap_or(temporary.path());
    let mut results = Vec::new();
    for count in [baseline, rows] {
        let (server, key, integration_id, filled_in) = filled_server(directory, count).await;
        println!("{count} calls stored by bulk SQL in {:.1} s", filled_in.as_secs_f64());
        let mut client = DatapointServiceClient::new(server.channel().await);
        let mut timings = Vec::new();
        for (name, request) in searches(count, &integration_id) {
            timings.push((name, time_search(&mut client, &key, &request).await));
        }
        results.push(timings);
        server.stop().await;
        if kept.is_none() {
            drop_postgres_database(&server_dir(directory, count)).await;
        }
    }
    let database = if std::env::var_os("EARSHOT_TEST_POSTGRES_URL").is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "SearchDatapoints over gRPC, page of 100, median and slowest of {RUNS} runs, {database}:"
    );
    println!("| search | {baseline} calls | {rows} calls | ratio | found |");
    for ((name, (small, _, _)), (_, (median, slowest, found))) in results[0].iter().zip(&results[1])
    {
        println!(
            "| {name} | {:.1} ms | {:.1} ms (slowest {:.1}) | {:.1}x | {found} |",
            small.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3,
            median.as_secs_f64() / small.as_secs_f64()
        );
    }
}
