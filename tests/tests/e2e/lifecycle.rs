//! Deletion and export against an `earshot` process through the Rust SDK and plain HTTP: on
//! SQLite with audio in the data directory, or PostgreSQL with S3 when the test environment
//! names them (`scripts/test` runs both).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use earshot::{Audio, Client, Conversation, DatapointQuery, IngestBatch, Turn};
use earshot_e2e::audio::wav;
use earshot_e2e::client::try_http_raw;
use earshot_e2e::process::ServerProcess;
use futures_util::TryStreamExt;

const WAIT: Duration = Duration::from_secs(30);

async fn client_of(server: &ServerProcess) -> Client {
    Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap()
}

/// The server's audio store, as key list.
async fn stored_blobs(server: &ServerProcess) -> Vec<String> {
    earshot_e2e::audio_store(server.data_dir()).keys().await
}

/// `GET path` with the admin key: status and body.
async fn get(server: &ServerProcess, path: &str) -> (u16, bytes::Bytes) {
    let authorization = format!("Bearer {}", server.admin_key);
    let (status, _, body) =
        try_http_raw(&server.url(), "GET", path, &[("authorization", &authorization)], Vec::new())
            .await
            .unwrap();
    (status, body)
}

/// Deleting by call id, by datapoint id and by context token takes each call's recording out
/// of the audio store once no call names it (no grace here), keeps a recording another call
/// still names (it still downloads), and a call sent again afterwards is stored as new.
#[tokio::test]
async fn deleted_calls_take_their_recordings_unless_shared() {
    let server = ServerProcess::start(&[("EARSHOT_RETENTION__AUDIO_GRACE_SECONDS", "0")]).await;
    let client = client_of(&server).await;
    let shared = wav(1, 8000, 800, 11);
    let own = wav(1, 8000, 600, 12);
    let call = |id: &str, audio: &[u8]| {
        Conversation::new(id)
            .audio(Audio::from_bytes(audio.to_vec()))
            .turn(Turn::user(format!("hello from {id}")).at_ms(0))
    };
    let uploaded = client.upload_audio_bytes(None, "own.wav", own.clone()).await.unwrap();
    client
        .ingest_conversations(vec![
            call("del-a", &shared),
            call("del-b", &shared).context_token("ctx-del-b"),
            Conversation::new("del-c")
                .audio(Audio::uploaded(uploaded.audio_id.clone()))
                .turn(Turn::user("hello from c").at_ms(0)),
        ])
        .await
        .unwrap();
    let a = client.wait_for_datapoint("del-a", WAIT).await.unwrap();
    let b = client.wait_for_datapoint("ctx-del-b", WAIT).await.unwrap();
    let c = client.wait_for_datapoint("del-c", WAIT).await.unwrap();
    assert_eq!(stored_blobs(&server).await.len(), 2);

    let deletion = client.delete_matching(DatapointQuery::new().call_id("del-a")).await.unwrap();
    let removed = deletion.removed.unwrap();
    assert_eq!((removed.datapoints, removed.ingests, removed.recordings), (1, 1, 0));
    assert_eq!(get(&server, &format!("/v0/datapoints/{}/audio", a.id)).await.0, 404);
    let (status, bytes) = get(&server, &format!("/v0/datapoints/{}/audio", b.id)).await;
    assert_eq!((status, &bytes[..]), (200, &shared[..]), "b still names the shared recording");
    assert_eq!(stored_blobs(&server).await.len(), 2);

    let deletion = client.delete_datapoints([c.id.clone()]).await.unwrap();
    assert_eq!(deletion.removed.unwrap().recordings, 1);
    let deletion =
        client.delete_matching(DatapointQuery::new().context_token("ctx-del-b")).await.unwrap();
    assert_eq!(deletion.removed.unwrap().recordings, 1);
    assert!(stored_blobs(&server).await.is_empty(), "no call names either recording");
    let left = client.search_datapoints(DatapointQuery::new()).await.unwrap();
    assert!(left.datapoints.is_empty());

    // Sent again, a deleted call is new.
    let receipt = client.ingest_conversations(vec![call("del-a", &shared)]).await.unwrap();
    assert!(!receipt.conversations[0].duplicate);
    let again = client.wait_for_datapoint("del-a", WAIT).await.unwrap();
    assert_ne!(again.id, a.id);
    let (status, bytes) = get(&server, &format!("/v0/datapoints/{}/audio", again.id)).await;
    assert_eq!((status, &bytes[..]), (200, &shared[..]));

    // Audited, newest first.
    let log = client.list_deletions(10, "").await.unwrap().deletions;
    let actors: HashSet<&str> = log.iter().map(|deletion| deletion.actor.as_str()).collect();
    assert_eq!(log.len(), 3);
    assert_eq!(actors.len(), 1);
    assert!(log.iter().all(|deletion| deletion.finish_time.is_some()));
    server.stop().await;
}

/// An export streams every matching call exactly once, page after page, while calls are being
/// written between the pages (older and newer than the ones it has reached); the JSON Lines
/// download of the same filter afterwards gives every call.
#[tokio::test]
async fn an_export_gives_every_call_once_while_calls_are_written() {
    let server = ServerProcess::start(&[]).await;
    let client = client_of(&server).await;
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let batch = |from: i64, count: i64| {
        IngestBatch::new((from..from + count).map(|index| {
            // Times scattered over a day or so, so that each batch interleaves with the others.
            Conversation::new(format!("export-{index}"))
                .started_at(base + chrono::Duration::seconds(index * 7_919 % 100_003))
                .turn(Turn::user(format!("call number {index}")).at_ms(0))
                .tag("export")
        }))
    };
    for start in (0..1_500).step_by(500) {
        client.ingest_conversations(batch(start, 500)).await.unwrap();
    }

    let mut exported =
        client.export_datapoints(DatapointQuery::new().tags_all(["export"]), false).await.unwrap();
    let mut seen = HashSet::new();
    let mut written = 1_500;
    while let Some(item) = exported.try_next().await.unwrap() {
        let datapoint = item.datapoint.unwrap();
        assert!(seen.insert(datapoint.call_id.clone()), "{} twice", datapoint.call_id);
        // While the export runs, more calls arrive, at times all over the range.
        if seen.len() % 300 == 0 && written < 2_500 {
            client.ingest_conversations(batch(written, 250)).await.unwrap();
            written += 250;
        }
    }
    assert_eq!(written, 2_500, "the writes happened during the export");
    let first: HashSet<String> = (0..1_500).map(|index| format!("export-{index}")).collect();
    assert!(first.is_subset(&seen), "every call stored before the export is in it");
    assert!(seen.iter().all(|call| call.starts_with("export-")));

    // The HTTP download: JSON Lines, every call of the filter, once.
    let authorization = format!("Bearer {}", server.admin_key);
    let (status, headers, body) = try_http_raw(
        &server.url(),
        "POST",
        "/v0/datapoints/export",
        &[("authorization", &authorization), ("content-type", "application/json")],
        br#"{"filter": {"tags_all": ["export"]}, "include_audio_links": true}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = body
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    let calls: HashSet<&str> = lines.iter().map(|line| line["call_id"].as_str().unwrap()).collect();
    assert_eq!((lines.len(), calls.len()), (2_500, 2_500));
    assert!(lines.iter().all(|line| line.get("audio_url").is_none()), "no call has audio");
    let times: Vec<&str> = lines.iter().map(|line| line["start_time"].as_str().unwrap()).collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first, "newest call first");

    // A bad filter is an error before any line, naming the field.
    let (status, _, body) = try_http_raw(
        &server.url(),
        "POST",
        "/v0/datapoints/export",
        &[("authorization", &authorization), ("content-type", "application/json")],
        br#"{"filter": {"text_contains": "!!!"}}"#.to_vec(),
    )
    .await
    .unwrap();
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["field_violations"][0]["field"], "filter.text_contains");
    server.stop().await;
}
