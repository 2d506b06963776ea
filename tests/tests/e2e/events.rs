//! Outbound events against an `earshot` process and receivers on loopback (allowed by the
//! test's configuration): a `call.processed` arrives signed, verifies, and is retried with one
//! `webhook-id` until the receiver takes it; a receiver answering 410 is disabled and the other
//! endpoints hear of it; a rotated secret signs beside the earlier one; a filter narrows what an
//! endpoint gets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use earshot::{Client, Conversation, Turn};
use earshot_e2e::client::authed;
use earshot_e2e::process::ServerProcess;
use earshot_proto::v1 as pb;
use earshot_proto::v1::event_endpoint_service_client::EventEndpointServiceClient;
use tokio::sync::mpsc;

/// Retries 20 ms apart instead of the Standard Webhooks schedule, so the whole schedule runs
/// within the test.
const FAST_RETRIES: [(&str, &str); 3] = [
    ("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true"),
    ("EARSHOT_EVENTS__RETRY_SCHEDULE_MS", "[20, 20, 20, 20, 20, 20, 20]"),
    ("EARSHOT_EVENTS__POLL_INTERVAL_MS", "10"),
];

/// What a receiver got: its headers and body, and when.
#[derive(Clone, Debug)]
struct Received {
    headers: http::HeaderMap,
    body: String,
    at: std::time::Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether the event verifies with `secret`, as a receiver checks it with the SDK.
    fn verifies(&self, secret: &str) -> bool {
        let headers = self
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        earshot::verify_webhook(headers, self.body.as_bytes(), &[secret]).is_ok()
    }
}

/// A receiver on a loopback port that answers each request with the next of `statuses` (the
/// last one once they run out) and sends what it got on the channel.
async fn receiver(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (sender, received) = mpsc::unbounded_channel();
    let answers = Arc::new(Mutex::new(statuses));
    let app = axum::Router::new().fallback(move |headers: http::HeaderMap, body: String| {
        let sender = sender.clone();
        let answers = answers.clone();
        async move {
            let status = {
                let mut answers = answers.lock().unwrap();
                if answers.len() > 1 { answers.remove(0) } else { answers[0] }
            };
            let at = std::time::Instant::now();
            let _ = sender.send(Received { headers, body, at });
            (http::StatusCode::from_u16(status).unwrap(), "receiver says hi")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hooks"), received)
}

async fn next(received: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("no event within 30 s")
        .unwrap()
}

async fn endpoints(
    server: &ServerProcess,
) -> EventEndpointServiceClient<tonic::transport::Channel> {
    EventEndpointServiceClient::new(server.channel().await)
}

async fn create(
    server: &ServerProcess,
    request: pb::CreateEventEndpointRequest,
) -> pb::CreateEventEndpointResponse {
    endpoints(server)
        .await
        .create_event_endpoint(authed(request, &server.admin_key))
        .await
        .unwrap()
        .into_inner()
}

async fn get(server: &ServerProcess, id: &str) -> pb::EventEndpoint {
    let request = pb::GetEventEndpointRequest { id: id.to_owned() };
    endpoints(server)
        .await
        .get_event_endpoint(authed(request, &server.admin_key))
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap()
}

async fn client(server: &ServerProcess) -> Client {
    Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap()
}

fn call(call_id: &str) -> Conversation {
    Conversation::new(call_id)
        .turn(Turn::user("I was charged twice.").at_ms(0).end_ms(1_500))
        .turn(Turn::assistant("Let me fix that.").at_ms(2_000).end_ms(3_000))
}

#[tokio::test]
async fn a_processed_call_arrives_signed_and_is_retried_under_one_id() {
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let (url, mut received) = receiver(vec![500, 500, 500, 200]).await;
    let created = create(
        &server,
        pb::CreateEventEndpointRequest {
            url,
            event_types: vec!["call.processed".into()],
            include_transcript: true,
            headers: [("X-Receiver-Token".to_owned(), "tok_123".to_owned())].into(),
            ..Default::default()
        },
    )
    .await;
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
    let endpoint = created.endpoint.unwrap();
    assert_eq!(endpoint.header_names, ["x-receiver-token"]);

    client(&server).await.ingest_conversations(vec![call("evt-1")]).await.unwrap();
    let attempts = [
        next(&mut received).await,
        next(&mut received).await,
        next(&mut received).await,
        next(&mut received).await,
    ];
    let id = attempts[0].header("webhook-id").to_owned();
    assert!(id.starts_with("msg_"), "{id}");
    for attempt in &attempts {
        assert_eq!(attempt.header("webhook-id"), id, "one id across retries");
        assert!(attempt.verifies(&created.secret));
        assert!(!attempt.verifies("whsec_b3RoZXJzZWNyZXRvdGhlcnNlY3JldA=="));
        assert_eq!(attempt.header("x-receiver-token"), "tok_123");
        assert_eq!(attempt.header("content-type"), "application/json");
        let event = attempt.json();
        assert_eq!(event["type"], "call.processed");
        assert_eq!(event["data"]["call_id"], "evt-1");
        assert_eq!(event["data"]["project_id"], server.project_id.as_str());
        assert_eq!(event["data"]["transcript"][0]["content"], "I was charged twice.");
        assert_eq!(event["data"]["transcript"].as_array().unwrap().len(), 2);
    }

    // The log has every attempt, newest first; the counters agree.
    let request =
        pb::ListEventAttemptsRequest { endpoint_id: endpoint.id.clone(), ..Default::default() };
    // The fourth attempt's record commits just after the receiver answered it.
    let logged = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let attempts = endpoints(&server)
                .await
                .list_event_attempts(authed(request.clone(), &server.admin_key))
                .await
                .unwrap()
                .into_inner()
                .attempts;
            if attempts.len() == 4 {
                return attempts;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("four attempts logged within 30 s");
    let statuses: Vec<u32> = logged.iter().map(|attempt| attempt.http_status).collect();
    assert_eq!(statuses, [200, 500, 500, 500]);
    assert!(
        logged
            .iter()
            .all(|attempt| attempt.event_id == id && attempt.event_type == "call.processed")
    );
    assert_eq!(logged[1].error, "answered 500");
    assert_eq!(logged[0].response_excerpt, "receiver says hi");
    let endpoint = get(&server, &endpoint.id).await;
    assert_eq!((endpoint.sent, endpoint.failed), (1, 3));
    // The event links the call's datapoint, which an API key reads over plain HTTP.
    let data = &attempts[0].json()["data"];
    let link = data["links"]["datapoint"].as_str().unwrap().to_owned();
    let datapoint_id = data["datapoint_id"].as_str().unwrap();
    assert!(link.ends_with(&format!("/v0/datapoints/{datapoint_id}")), "{link}");
    let path = &link[link.find("/v0/").unwrap()..];
    let (status, stored) = earshot_e2e::client::http_request(
        &server,
        "GET",
        path,
        &[("api-key", &server.admin_key)],
        Vec::new(),
    )
    .await;
    assert_eq!((status, stored["call_id"].as_str()), (200, Some("evt-1")), "{stored}");
    assert_eq!(stored["turns"].as_array().map(Vec::len), Some(2), "{stored}");
    let (status, _) =
        earshot_e2e::client::http_request(&server, "GET", path, &[], Vec::new()).await;
    assert_eq!(status, 401);
    assert!(endpoint.enabled);
    assert!(received.try_recv().is_err(), "nothing sent after the success");
}

#[tokio::test]
async fn a_gone_endpoint_is_disabled_and_the_others_hear_of_it() {
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let (gone_url, mut gone) = receiver(vec![410]).await;
    let (url, mut other) = receiver(vec![200]).await;
    let gone_endpoint =
        create(&server, pb::CreateEventEndpointRequest { url: gone_url, ..Default::default() })
            .await
            .endpoint
            .unwrap();
    let other_secret =
        create(&server, pb::CreateEventEndpointRequest { url, ..Default::default() }).await.secret;

    client(&server).await.ingest_conversations(vec![call("evt-gone")]).await.unwrap();
    assert_eq!(next(&mut gone).await.json()["data"]["call_id"], "evt-gone");
    let mut types = Vec::new();
    for _ in 0..2 {
        let event = next(&mut other).await;
        assert!(event.verifies(&other_secret));
        let json = event.json();
        if json["type"] == "endpoint.disabled" {
            assert_eq!(json["data"]["endpoint_id"], gone_endpoint.id.as_str());
            assert_eq!(json["data"]["reason"], "gone");
        }
        types.push(json["type"].as_str().unwrap().to_owned());
    }
    types.sort();
    assert_eq!(types, ["call.processed", "endpoint.disabled"]);
    let disabled = get(&server, &gone_endpoint.id).await;
    assert!(!disabled.enabled);
    assert_eq!(disabled.disabled_reason, "gone");

    // A disabled endpoint gets nothing more.
    client(&server).await.ingest_conversations(vec![call("evt-after")]).await.unwrap();
    assert_eq!(next(&mut other).await.json()["data"]["call_id"], "evt-after");
    assert!(gone.try_recv().is_err());
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_earlier_one_and_filters_narrow() {
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let (url, mut received) = receiver(vec![200]).await;
    let created = create(
        &server,
        pb::CreateEventEndpointRequest {
            url,
            filter: Some(pb::EventFilter { tags: vec!["vip".into()], ..Default::default() }),
            ..Default::default()
        },
    )
    .await;
    let id = created.endpoint.unwrap().id;
    let rotated = endpoints(&server)
        .await
        .rotate_event_endpoint_secret(authed(
            pb::RotateEventEndpointSecretRequest { id: id.clone(), grace_seconds: 3_600 },
            &server.admin_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.secret, created.secret);
    assert_eq!(rotated.endpoint.unwrap().active_secrets, 2);

    let client = client(&server).await;
    client.ingest_conversations(vec![call("evt-plain"), call("evt-vip").tag("vip")]).await.unwrap();
    let event = next(&mut received).await;
    assert_eq!(event.json()["data"]["call_id"], "evt-vip");
    assert_eq!(event.header("webhook-signature").split(' ').count(), 2);
    assert!(event.verifies(&created.secret));
    assert!(event.verifies(&rotated.secret));
    client.wait_for_datapoint("evt-plain", Duration::from_secs(30)).await.unwrap();
    client.ingest_conversations(vec![call("evt-vip-2").tag("vip")]).await.unwrap();
    // Events go in the order their calls were stored: the untagged call sent nothing before.
    assert_eq!(next(&mut received).await.json()["data"]["call_id"], "evt-vip-2");

    // Refused precisely: a bad URL, an unknown type, a header earshot sets.
    let refused = endpoints(&server)
        .await
        .create_event_endpoint(authed(
            pb::CreateEventEndpointRequest {
                url: "ftp://example.com".into(),
                event_types: vec!["call.finished".into()],
                headers: [("webhook-id".to_owned(), "x".to_owned())].into(),
                ..Default::default()
            },
            &server.admin_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    for field in ["url", "event_types[0]", "headers[webhook-id]"] {
        assert!(refused.message().contains(field), "{field}: {}", refused.message());
    }
}

/// A call whose assistant answers `latency_ms` after the user.
fn answered_after(call_id: &str, latency_ms: i64) -> Conversation {
    Conversation::new(call_id)
        .turn(Turn::user("Where is my order?").at_ms(0).end_ms(1_000))
        .turn(Turn::assistant("Let me look.").at_ms(1_000 + latency_ms).end_ms(2_000 + latency_ms))
}

#[tokio::test]
async fn an_endpoint_for_one_monitor_gets_only_its_failed_checks() {
    use earshot::{CheckRule, MonitorDefinition};
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let client = client(&server).await;
    let slow = client
        .create_check("slow", "", CheckRule::new("p95_response_latency_ms", "greater_than", "1500"))
        .await
        .unwrap();
    let short = client
        .create_check("few turns", "", CheckRule::new("total_turn_count", "less_than", "4"))
        .await
        .unwrap();
    let latency =
        client.create_monitor(MonitorDefinition::new("latency").check(&slow.id)).await.unwrap();
    client.create_monitor(MonitorDefinition::new("length").check(&short.id)).await.unwrap();
    let (url, mut received) = receiver(vec![200]).await;
    let created = create(
        &server,
        pb::CreateEventEndpointRequest {
            url,
            event_types: vec!["check.failed".into()],
            filter: Some(pb::EventFilter { monitor_id: latency.id.clone(), ..Default::default() }),
            ..Default::default()
        },
    )
    .await;

    // Both monitors find an issue on the slow call; the endpoint hears only of the latency one.
    client.ingest_conversations(vec![answered_after("slow-call", 2_500)]).await.unwrap();
    let event = next(&mut received).await;
    assert!(event.verifies(&created.secret));
    let json = event.json();
    assert_eq!(json["type"], "check.failed");
    let data = &json["data"];
    assert_eq!(data["call_id"], "slow-call");
    assert_eq!(data["monitor"]["id"], latency.id.as_str());
    assert_eq!(data["monitor"]["name"], "latency");
    assert_eq!(data["check"]["name"], "slow");
    assert_eq!(data["check"]["comparator"], "greater_than");
    assert_eq!(data["check"]["threshold"], 1500.0);
    assert_eq!(data["value"], 2500.0);
    assert!(data["explanation"].as_str().unwrap().contains("1500"), "{data}");
    // A quick call fails only the length monitor's check: nothing is sent for it, so the next
    // event is the next slow call's.
    client.ingest_conversations(vec![answered_after("quick-call", 300)]).await.unwrap();
    client.wait_for_datapoint("quick-call", Duration::from_secs(30)).await.unwrap();
    client.ingest_conversations(vec![answered_after("slow-again", 3_000)]).await.unwrap();
    assert_eq!(next(&mut received).await.json()["data"]["call_id"], "slow-again");
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn events_pending_at_kill_9_are_delivered_after_restart() {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU16, Ordering};
    // Short attempts and leases: a delivery taken by the killed process is due again 2 s later.
    let env = [
        ("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true"),
        ("EARSHOT_EVENTS__RETRY_SCHEDULE_MS", "[200, 200, 200, 200, 200, 200, 200]"),
        ("EARSHOT_EVENTS__POLL_INTERVAL_MS", "10"),
        ("EARSHOT_EVENTS__TIMEOUT_SECONDS", "1"),
        ("EARSHOT_EVENTS__LEASE_SECONDS", "2"),
    ];
    // The receiver fails everything until the restart, then takes everything, and records
    // which calls it took.
    let answer = Arc::new(AtomicU16::new(500));
    let taken: Arc<Mutex<Vec<String>>> = Arc::default();
    let (seen_sender, mut seen) = mpsc::unbounded_channel::<()>();
    let app = axum::Router::new().fallback({
        let (answer, taken) = (answer.clone(), taken.clone());
        move |body: String| {
            let (answer, taken, seen_sender) = (answer.clone(), taken.clone(), seen_sender.clone());
            async move {
                let status = answer.load(Ordering::SeqCst);
                if status == 200 {
                    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
                    taken
                        .lock()
                        .unwrap()
                        .push(event["data"]["call_id"].as_str().unwrap().to_owned());
                }
                let _ = seen_sender.send(());
                http::StatusCode::from_u16(status).unwrap()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let mut server = ServerProcess::start_in(&data_dir, &env).await;
    create(&server, pb::CreateEventEndpointRequest { url, ..Default::default() }).await;
    let client = client(&server).await;
    let mut acknowledged = BTreeSet::new();
    for batch in 0..4 {
        let calls: Vec<Conversation> =
            (0..10).map(|index| call(&format!("kill-{batch}-{index}"))).collect();
        client.ingest_conversations(calls).await.unwrap();
        acknowledged.extend((0..10).map(|index| format!("kill-{batch}-{index}")));
    }
    // Attempts are failing: kill the process with its deliveries pending.
    tokio::time::timeout(Duration::from_secs(30), seen.recv()).await.unwrap().unwrap();
    server.kill().await;
    answer.store(200, Ordering::SeqCst);

    let restarted = ServerProcess::start_in(&data_dir, &env).await;
    let delivered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let delivered: BTreeSet<String> = taken.lock().unwrap().iter().cloned().collect();
            if delivered.len() >= acknowledged.len() {
                return delivered;
            }
            seen.recv().await.unwrap();
        }
    })
    .await
    .expect("every acknowledged call's event within 60 s of the restart");
    // Every acknowledged call's event came, and only events of stored calls.
    assert_eq!(delivered, acknowledged);
    // The restarted process prints no key: the first one's still holds.
    let client = Client::builder(restarted.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap();
    for call_id in &delivered {
        client.wait_for_datapoint(call_id, Duration::from_secs(5)).await.unwrap();
    }
}

/// `POST /earshot.v1.EventEndpointService/<method>` with a JSON body, as a plain-HTTP client.
async fn json_call(
    server: &ServerProcess,
    method: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    earshot_e2e::client::http_request(
        server,
        "POST",
        &format!("/earshot.v1.EventEndpointService/{method}"),
        &[("content-type", "application/json"), ("api-key", &server.admin_key)],
        body.to_string().into_bytes(),
    )
    .await
}

/// The endpoint's attempts with `outcome` once there are `count` of them (each attempt's
/// record commits just after the receiver answered it).
async fn attempts_once(
    server: &ServerProcess,
    endpoint_id: &str,
    outcome: &str,
    count: usize,
) -> Vec<serde_json::Value> {
    let body = serde_json::json!({"endpoint_id": endpoint_id, "outcome": outcome});
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (status, listed) = json_call(server, "ListEventAttempts", body.clone()).await;
            assert_eq!(status, 200, "{listed}");
            let attempts = listed["attempts"].as_array().unwrap().clone();
            if attempts.len() >= count {
                return attempts;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} {outcome} attempts logged within 30 s"))
}

/// An endpoint's rate limit spaces what it receives: of eight events at four a second, the k-th
/// to arrive arrives at least k × 250 ms after the first was sent (each delivery waits for its
/// slot, the first slot no sooner than the first event), each once, and those held back for
/// their turn are not counted as attempts.
#[tokio::test]
async fn a_rate_limited_endpoint_gets_its_events_spaced() {
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let (url, mut received) = receiver(vec![200]).await;
    let (status, created) = json_call(
        &server,
        "CreateEventEndpoint",
        serde_json::json!({"url": url, "rate_limit_per_second": 4}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let sent_from = std::time::Instant::now();
    for _ in 0..8 {
        let (status, sent) =
            json_call(&server, "SendTestEvent", serde_json::json!({"endpoint_id": id})).await;
        assert_eq!(status, 200, "{sent}");
    }
    let mut arrivals = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let event = next(&mut received).await;
        arrivals.push(event.at);
        ids.insert(event.header("webhook-id").to_owned());
    }
    assert_eq!(ids.len(), 8);
    arrivals.sort();
    // Measured from the first send, not the first arrival: the first delivery's own latency (a
    // new connection on a busy machine) may take up to its whole gap. Slots are kept to the
    // millisecond, hence the 5 ms.
    for (k, arrived) in (0u32..).zip(&arrivals) {
        let after = *arrived - sent_from;
        let slot = Duration::from_millis(250) * k;
        assert!(
            after + Duration::from_millis(5) >= slot,
            "event {k} arrived {after:?} after the first send"
        );
    }
    attempts_once(&server, &id, "ATTEMPT_OUTCOME_FILTER_SUCCEEDED", 8).await;
    let endpoint = get(&server, &id).await;
    assert_eq!((endpoint.sent, endpoint.failed), (8, 0));
}

/// Over the JSON form: a test event reaches only its endpoint, fails the whole (fast)
/// schedule, and a replay of the failed window delivers it under the same webhook-id; a
/// delivered event replays by its id; a disabled endpoint takes no test event until enabled
/// again; an update names what it changes and refuses fields it does not know.
#[tokio::test]
async fn test_events_replays_and_updates_over_json() {
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let (url, mut received) = receiver([vec![500; 8], vec![200]].concat()).await;
    let (status, created) = json_call(
        &server,
        "CreateEventEndpoint",
        serde_json::json!({"url": url, "event_types": ["check.failed"]}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();

    let (status, sent) =
        json_call(&server, "SendTestEvent", serde_json::json!({"endpoint_id": id})).await;
    assert_eq!(status, 200, "{sent}");
    let event_id = sent["event_id"].as_str().unwrap().to_owned();
    for _ in 0..8 {
        let attempt = next(&mut received).await;
        assert_eq!(attempt.header("webhook-id"), event_id);
        assert!(attempt.verifies(&secret));
        assert_eq!(attempt.json()["type"], "endpoint.test");
        assert_eq!(attempt.json()["data"]["endpoint_id"], id.as_str());
    }
    let failed = attempts_once(&server, &id, "ATTEMPT_OUTCOME_FILTER_FAILED", 8).await;
    assert!(failed.iter().all(|attempt| attempt["http_status"] == 500), "{failed:?}");
    assert_eq!(get(&server, &id).await.failed, 8);

    // The failed window (the last hour) replayed: delivered on the fresh schedule's first try.
    let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, replayed) = json_call(
        &server,
        "ReplayEvents",
        serde_json::json!({"endpoint_id": id, "failed_from": from}),
    )
    .await;
    assert_eq!((status, &replayed["replayed"]), (200, &serde_json::json!(1)), "{replayed}");
    let again = next(&mut received).await;
    assert_eq!(again.header("webhook-id"), event_id);
    assert!(again.verifies(&secret));
    let delivered = attempts_once(&server, &id, "ATTEMPT_OUTCOME_FILTER_SUCCEEDED", 1).await;
    assert_eq!(delivered[0]["event_id"], event_id.as_str());
    // Delivered, so the window has nothing failed left; the event itself replays by its id.
    let (_, none) = json_call(
        &server,
        "ReplayEvents",
        serde_json::json!({"endpoint_id": id, "failed_from": from}),
    )
    .await;
    assert_eq!(none["replayed"], 0, "{none}");
    let (status, one) = json_call(
        &server,
        "ReplayEvents",
        serde_json::json!({"endpoint_id": id, "event_id": event_id}),
    )
    .await;
    assert_eq!((status, &one["replayed"]), (200, &serde_json::json!(1)), "{one}");
    assert_eq!(next(&mut received).await.header("webhook-id"), event_id);
    let (status, unknown) = json_call(
        &server,
        "ReplayEvents",
        serde_json::json!({"endpoint_id": id, "event_id": "msg_0000"}),
    )
    .await;
    assert_eq!((status, unknown["code"].as_str()), (404, Some("not_found")), "{unknown}");

    // Disabled: no test event; enabled again, the reason is cleared.
    let (status, updated) = json_call(
        &server,
        "UpdateEventEndpoint",
        serde_json::json!({"id": id, "endpoint": {"enabled": false, "description": "paused"},
                           "update_mask": "enabled,description"}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["endpoint"]["enabled"], false);
    assert_eq!(updated["endpoint"]["disabled_reason"], "disabled");
    assert_eq!(updated["endpoint"]["description"], "paused");
    assert_eq!(updated["endpoint"]["event_types"], serde_json::json!(["check.failed"]));
    let (status, refused) =
        json_call(&server, "SendTestEvent", serde_json::json!({"endpoint_id": id})).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"][0]["debug"]["field_violations"][0]["field"], "endpoint_id");
    let (status, enabled) = json_call(
        &server,
        "UpdateEventEndpoint",
        serde_json::json!({"id": id, "endpoint": {"enabled": true}, "update_mask": "enabled"}),
    )
    .await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(
        (&enabled["endpoint"]["enabled"], &enabled["endpoint"]["disabled_reason"]),
        (&serde_json::json!(true), &serde_json::json!(""))
    );
    let (status, refused) = json_call(
        &server,
        "UpdateEventEndpoint",
        serde_json::json!({"id": id, "endpoint": {"url": ""}, "update_mask": "url,secret"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let fields: Vec<&str> = refused["details"][0]["debug"]["field_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|violation| violation["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["update_mask.paths[1]"]);
    let (status, refused) = json_call(
        &server,
        "UpdateEventEndpoint",
        serde_json::json!({"id": id, "endpoint": {"url": ""}, "update_mask": "url"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"][0]["debug"]["field_violations"][0]["field"], "url");
    server.stop().await;
}

/// A call whose recording cannot be fetched (its URL answers 404, a permanent failure) ends
/// dead, and the endpoints subscribed to `call.failed` hear why, at which stage, after how many
/// attempts.
#[tokio::test]
async fn a_call_that_cannot_be_processed_sends_call_failed() {
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let (url, mut received) = receiver(vec![200]).await;
    let (audio_host, _requests) = receiver(vec![404]).await;
    let created = create(
        &server,
        pb::CreateEventEndpointRequest {
            url,
            event_types: vec!["call.failed".into()],
            ..Default::default()
        },
    )
    .await;
    let call = Conversation::new("evt-dead")
        .tag("vip")
        .audio(earshot::Audio::from_url(format!("{audio_host}/missing.wav")));
    client(&server).await.ingest_conversations(vec![call]).await.unwrap();
    let event = next(&mut received).await;
    assert!(event.verifies(&created.secret));
    let event = event.json();
    assert_eq!(event["type"], "call.failed");
    let data = &event["data"];
    assert_eq!(data["call_id"], "evt-dead");
    assert_eq!(data["project_id"], server.project_id.as_str());
    assert_eq!(data["stage"], "fetch");
    assert!(data["reason"].as_str().unwrap().contains("404"), "{data}");
    assert_eq!(data["attempts"], 1);
    assert_eq!(data["tags"], serde_json::json!(["vip"]));
    server.stop().await;
}

/// The Rust SDK's endpoint calls against a real server: create with a filter and a header,
/// list, pause and resume, rotate, a test event that verifies under both secrets, its attempt
/// in the log, a replay by id, and deletion.
#[tokio::test]
async fn the_rust_sdk_manages_endpoints() {
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let (url, mut received) = receiver(vec![200]).await;
    let client = client(&server).await;
    let endpoints = client.event_endpoints();
    let (created, first_secret) = endpoints
        .create(
            earshot::NewEventEndpoint::new(url)
                .description("crm")
                .event_type("call.processed")
                .tag("vip")
                .header("x-team-token", "t0k3n"),
        )
        .await
        .unwrap();
    assert_eq!(created.filter.as_ref().unwrap().tags, ["vip"]);
    assert_eq!(created.header_names, ["x-team-token"]);
    let listed = endpoints.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|endpoint| endpoint.id.as_str()).collect::<Vec<_>>(),
        [created.id.as_str()]
    );

    let paused = endpoints
        .update(&created.id, earshot::EventEndpointChange::default().enabled(false))
        .await
        .unwrap();
    assert_eq!((paused.enabled, paused.disabled_reason.as_str()), (false, "disabled"));
    let refused = endpoints.send_test_event(&created.id).await.unwrap_err();
    assert_eq!(refused.code(), earshot::Code::InvalidArgument);
    let resumed = endpoints
        .update(
            &created.id,
            earshot::EventEndpointChange::default().enabled(true).description("crm, resumed"),
        )
        .await
        .unwrap();
    assert!(resumed.enabled);
    assert_eq!(
        (resumed.description.as_str(), resumed.event_types.as_slice()),
        ("crm, resumed", &["call.processed".to_owned()][..])
    );

    let (rotated, second_secret) = endpoints.rotate_secret(&created.id, None).await.unwrap();
    assert_eq!(rotated.active_secrets, 2);
    let event_id = endpoints.send_test_event(&created.id).await.unwrap();
    let test = next(&mut received).await;
    assert_eq!(test.header("webhook-id"), event_id);
    assert!(test.verifies(&first_secret) && test.verifies(&second_secret));
    assert_eq!(test.header("x-team-token"), "t0k3n");
    let logged = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let page = endpoints
                .attempts(
                    &created.id,
                    Some(&event_id),
                    Some(earshot::AttemptOutcomeFilter::Succeeded),
                    None,
                )
                .await
                .unwrap();
            if !page.attempts.is_empty() {
                return page.attempts;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the test event's attempt logged within 30 s");
    assert_eq!((logged[0].http_status, logged[0].event_type.as_str()), (200, "endpoint.test"));
    assert_eq!(endpoints.replay_event(&created.id, &event_id).await.unwrap(), 1);
    assert_eq!(next(&mut received).await.header("webhook-id"), event_id);
    assert_eq!(
        endpoints
            .replay_failed(
                &created.id,
                std::time::SystemTime::now() - Duration::from_secs(3600),
                None
            )
            .await
            .unwrap(),
        0
    );

    endpoints.delete(&created.id).await.unwrap();
    assert!(endpoints.list().await.unwrap().is_empty());
    assert_eq!(endpoints.get(&created.id).await.unwrap_err().code(), earshot::Code::NotFound);
    server.stop().await;
}

/// A Slack endpoint (made with the Rust SDK) gets a failed check as a readable message, and a
/// burst of bad calls as one alert: the monitor's cooldown holds the rest back.
#[tokio::test]
async fn a_slack_endpoint_gets_one_readable_alert_per_monitor_and_cooldown() {
    use earshot::{CheckRule, MonitorDefinition};
    let server = ServerProcess::start(&FAST_RETRIES).await;
    let client = client(&server).await;
    let slow = client
        .create_check(
            "slow answers",
            "",
            CheckRule::new("p95_response_latency_ms", "greater_than", "1500"),
        )
        .await
        .unwrap();
    client.create_monitor(MonitorDefinition::new("Support quality").check(&slow.id)).await.unwrap();
    let (url, mut received) = receiver(vec![200]).await;
    let (alerts, _) =
        client.event_endpoints().create(earshot::NewEventEndpoint::new(url).slack()).await.unwrap();
    assert_eq!(alerts.kind, pb::EventEndpointKind::Slack as i32);
    assert_eq!(
        (alerts.event_types.as_slice(), alerts.alert_cooldown_seconds),
        (&["check.failed".to_owned()][..], 3600)
    );

    for call_id in ["slow-1", "slow-2", "slow-3"] {
        client.ingest_conversations(vec![answered_after(call_id, 2_500)]).await.unwrap();
    }
    let message = next(&mut received).await;
    let text = message.json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("*Support quality*: check *slow answers* failed on call `slow-1`"),
        "{text}"
    );
    assert!(text.contains("Value 2500.0 (p95_response_latency_ms greater than 1500.0)"), "{text}");
    assert!(text.contains("held back for 60 min"), "{text}");
    assert!(text.contains("/console/calls/") && text.contains("|Open the call>"), "{text}");
    // The other two were stored (and judged) without an alert.
    client.wait_for_datapoint("slow-3", Duration::from_secs(30)).await.unwrap();
    let event_id = client.event_endpoints().send_test_event(&alerts.id).await.unwrap();
    let test = next(&mut received).await;
    assert_eq!(test.header("webhook-id"), event_id, "the next message is the test, no other alert");
    assert!(test.json()["text"].as_str().unwrap().starts_with(":white_check_mark:"));
    // Deliveries are taken in due order and a batch's attempts logged together: once the test
    // event's attempt is logged, any alert due before it would be too. There are two.
    let endpoints = client.event_endpoints();
    let logged = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let page = endpoints.attempts(&alerts.id, None, None, None).await.unwrap();
            if page.attempts.iter().any(|attempt| attempt.event_id == event_id) {
                return page.attempts;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the test event's attempt logged within 30 s");
    let types: Vec<&str> = logged.iter().map(|attempt| attempt.event_type.as_str()).collect();
    assert_eq!(types, ["endpoint.test", "check.failed"]);
    server.stop().await;
}

/// The console's page of an endpoint lists its attempts; a failed event is replayed from it
/// (the CSRF token required) and arrives again under its `webhook-id`.
#[tokio::test]
async fn the_console_lists_attempts_and_replays_a_failed_event() {
    use crate::console::{FORM, csrf_of, header, request, session_of};
    let server = ServerProcess::start(&FAST_RETRIES).await;
    // The whole schedule (8 attempts) fails; the replay's attempt succeeds.
    let (url, mut received) = receiver([vec![500; 8], vec![200]].concat()).await;
    let endpoint = create(&server, pb::CreateEventEndpointRequest { url, ..Default::default() })
        .await
        .endpoint
        .unwrap();
    client(&server).await.ingest_conversations(vec![call("evt-console")]).await.unwrap();
    let first = next(&mut received).await;
    let webhook_id = first.header("webhook-id").to_owned();
    let request_attempts =
        pb::ListEventAttemptsRequest { endpoint_id: endpoint.id.clone(), ..Default::default() };
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let attempts = endpoints(&server)
                .await
                .list_event_attempts(authed(request_attempts.clone(), &server.admin_key))
                .await
                .unwrap()
                .into_inner()
                .attempts;
            if attempts.len() == 8 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the schedule ran out within 30 s");

    let session = session_of(&server, &server.admin_key).await;
    let (status, _, page) =
        request(&server, "GET", "/console/operations", &[("cookie", session.as_str())], "").await;
    assert_eq!(status, 200, "{page}");
    let path = format!("/console/endpoints/{}", endpoint.id);
    assert!(page.contains(&format!("href=\"{path}\"")), "{page}");
    let (status, _, page) =
        request(&server, "GET", &path, &[("cookie", session.as_str())], "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("✗ 500").count(), 8, "{page}");
    let replay = format!("{path}/events/{webhook_id}/replay");
    assert_eq!(page.matches(&replay).count(), 1, "offered once per event: {page}");
    let posting = [FORM, ("cookie", session.as_str())];
    let (status, _, _) = request(&server, "POST", &replay, &posting, "csrf=forged").await;
    assert_eq!(status, 403);
    let csrf = csrf_of(&page);
    let (status, headers, _) =
        request(&server, "POST", &replay, &posting, &format!("csrf={csrf}")).await;
    assert_eq!((status, header(&headers, "location")), (303, path.as_str()));
    // The schedule's other seven attempts came before; the ninth request is the replay.
    for _ in 0..7 {
        assert_eq!(next(&mut received).await.header("webhook-id"), webhook_id);
    }
    let replayed = next(&mut received).await;
    assert_eq!(replayed.header("webhook-id"), webhook_id);
    assert_eq!(replayed.json()["data"]["call_id"], "evt-console");
    // Its success is logged (just after the receiver answered), newest first on the page.
    let page = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (_, _, page) =
                request(&server, "GET", &path, &[("cookie", session.as_str())], "").await;
            if page.contains("✓ 200") {
                return page;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the replay logged within 30 s");
    assert!(page.find("✓ 200") < page.find("✗ 500"), "{page}");
    server.stop().await;
}
