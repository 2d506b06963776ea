//! Monitors against an `earshot` process: checks and a monitor created through the Rust SDK,
//! Retell webhooks of good and bad calls signed the provider's way, the bad ones found by their
//! issues and counted by the monitor's summary, and a verdict attached from outside, then
//! resolved; a backfill over calls stored before the monitor, killed with SIGKILL part-way.

use std::collections::BTreeSet;

use earshot::{
    CheckRule, Client, Code, Conversation, DatapointQuery, ExternalResult, MonitorDefinition, Turn,
};
use earshot_e2e::client::{create_integration, http_request};
use earshot_e2e::process::ServerProcess;
use earshot_proto::v1 as pb;
use serde_json::json;

const RETELL_KEY: &str = "key_0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A Retell `call_analyzed` event: the agent answers `latency_ms` after the user's last word,
/// and Retell's analysis says whether the call was `successful`.
fn retell_call(call_id: &str, latency_ms: i64, successful: bool) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_millis();
    let answer = 2.0 + latency_ms as f64 / 1000.0;
    json!({"event": "call_analyzed", "call": {
        "call_id": call_id, "agent_id": "agent_d4e5f6", "call_type": "phone_call",
        "direction": "inbound", "start_timestamp": now - 20_000, "end_timestamp": now,
        "transcript_object": [
            {"role": "user", "content": "I was charged twice this month.",
             "words": [{"word": "I", "start": 0.5, "end": 0.6}, {"word": "month.", "start": 1.6, "end": 2.0}]},
            {"role": "agent", "content": "Let me look at your account.",
             "words": [{"word": "Let", "start": answer, "end": answer + 0.2},
                       {"word": "account.", "start": answer + 1.0, "end": answer + 1.5}]}
        ],
        "call_analysis": {"call_summary": "Billing question.", "user_sentiment": "Neutral",
                          "call_successful": successful}
    }})
    .to_string()
    .into_bytes()
}

fn retell_signature(body: &[u8]) -> String {
    let timestamp = chrono::Utc::now().timestamp_millis().to_string();
    let digest = earshot_server::providers::retell::sign(RETELL_KEY, body, &timestamp);
    format!("v={timestamp},d={digest}")
}

async fn call_ids(client: &Client, query: DatapointQuery) -> BTreeSet<String> {
    let page = client.search_datapoints(query.page_size(100)).await.unwrap();
    page.datapoints.into_iter().map(|datapoint| datapoint.call_id).collect()
}

fn set(calls: &[&str]) -> BTreeSet<String> {
    calls.iter().map(|call| (*call).to_owned()).collect()
}

/// A monitor of Retell calls with `p95_response_latency_ms > 1500` and
/// `provider_call_successful = false`: of four Retell calls and one sent through the SDK,
/// exactly the slow and the failed Retell calls are issues, each failing its own check, with
/// its value and explanation on the datapoint.
#[tokio::test]
async fn a_monitor_flags_exactly_the_bad_retell_calls() {
    let server = ServerProcess::start(&[]).await;
    let client = Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap();
    let slow = client
        .create_check(
            "slow responses",
            "The assistant takes over 1.5 s to answer",
            CheckRule::new("p95_response_latency_ms", "greater_than", "1500"),
        )
        .await
        .unwrap();
    let failed = client
        .create_check(
            "provider says failed",
            "",
            CheckRule::new("provider_call_successful", "equal", "false"),
        )
        .await
        .unwrap();
    // Refused rules name the field.
    let refused = client
        .create_check("broken", "", CheckRule::new("provider_call_successful", "greater_than", "1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<&str> = refused.field_violations().iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["rule.comparator", "rule.threshold"]);
    let monitor = client
        .create_monitor(
            MonitorDefinition::new("retell quality")
                .provider("retell")
                .check(&slow.id)
                .check(&failed.id),
        )
        .await
        .unwrap();
    assert_eq!(monitor.checks.len(), 2);
    let taken = client.create_monitor(MonitorDefinition::new("retell quality").check(&slow.id));
    assert_eq!(taken.await.unwrap_err().code(), Code::AlreadyExists);
    // A monitor of the calls Retell itself judged unsuccessful (its filter on the verdict).
    let unsuccessful = client
        .create_monitor(MonitorDefinition::new("judged failed").successful(false).check(&slow.id))
        .await
        .unwrap();
    assert_eq!(unsuccessful.filter.as_ref().unwrap().successful, Some(false));

    let integration = create_integration(
        &server,
        pb::Provider::Retell,
        pb::WebhookAuthType::Unspecified,
        &[("api_key", RETELL_KEY)],
        None,
    )
    .await;
    let path = format!("/v0/voice/retell/monitor/{}", integration.public_id);
    for (call_id, latency_ms, successful) in [
        ("retell-good", 400, true),
        ("retell-quick", 900, true),
        ("retell-slow", 2_500, true),
        ("retell-failed", 300, false),
    ] {
        let body = retell_call(call_id, latency_ms, successful);
        let signature = retell_signature(&body);
        let headers = [("content-type", "application/json"), ("x-retell-signature", &signature)];
        let (status, answer) = http_request(&server, "POST", &path, &headers, body).await;
        assert!(status == 200 || status == 202, "{status} {answer}");
    }
    // Slow and failed, but not Retell: the monitor does not look at it.
    client
        .ingest_conversations(vec![
            Conversation::new("sdk-slow")
                .turn(Turn::user("Hello?").at_ms(0).end_ms(1_000))
                .turn(Turn::assistant("Hi.").at_ms(5_000).end_ms(6_000)),
        ])
        .await
        .unwrap();
    client.wait_for_datapoint("sdk-slow", std::time::Duration::from_secs(30)).await.unwrap();

    assert_eq!(
        call_ids(&client, DatapointQuery::new().issues_only()).await,
        set(&["retell-slow", "retell-failed"])
    );
    assert_eq!(
        call_ids(&client, DatapointQuery::new().failed_check("slow responses")).await,
        set(&["retell-slow"])
    );
    assert_eq!(
        call_ids(&client, DatapointQuery::new().failed_check("provider says failed")).await,
        set(&["retell-failed"])
    );
    assert_eq!(
        call_ids(&client, DatapointQuery::new().monitor_id(&monitor.id)).await,
        set(&["retell-good", "retell-quick", "retell-slow", "retell-failed"])
    );
    assert_eq!(
        call_ids(&client, DatapointQuery::new().monitor_id(&unsuccessful.id)).await,
        set(&["retell-failed"])
    );
    // The provider's own verdicts are searchable too (the SDK call has none).
    assert_eq!(
        call_ids(&client, DatapointQuery::new().successful(false)).await,
        set(&["retell-failed"])
    );
    assert_eq!(
        call_ids(&client, DatapointQuery::new().sentiment("NEUTRAL")).await,
        set(&["retell-good", "retell-quick", "retell-slow", "retell-failed"])
    );
    // The summary counts the same calls: four matched, two issues, and per check its issues
    // and mean value (the latency; the share of calls the provider calls successful).
    let summary = client
        .monitor_summary(&monitor.id, earshot::SummaryGranularity::Day, None, None)
        .await
        .unwrap();
    let total = summary.total.unwrap();
    assert_eq!((total.datapoints, total.issues, total.issue_rate), (4, 2, 0.5));
    let figures: Vec<(&str, u64, u64, Option<f64>)> = total
        .checks
        .iter()
        .map(|check| (check.name.as_str(), check.datapoints, check.issues, check.mean))
        .collect();
    assert_eq!(
        figures,
        [
            ("slow responses", 4, 1, Some((400.0 + 900.0 + 2_500.0 + 300.0) / 4.0)),
            ("provider says failed", 4, 1, Some(0.75)),
        ]
    );
    assert_eq!(total.failed_checks, ["slow responses", "provider says failed"]);
    let days: u64 = summary.buckets.iter().map(|bucket| bucket.datapoints).sum();
    assert_eq!(days, 4, "the calls of today, in one or two UTC days");

    // The JSON mirror existing clients call, with Okareo's names for the same filters.
    let find = |body: serde_json::Value| {
        let server = &server;
        async move {
            let headers =
                [("content-type", "application/json"), ("api-key", server.admin_key.as_str())];
            let (status, found) = http_request(
                server,
                "POST",
                "/v0/find_datapoints",
                &headers,
                body.to_string().into_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{found}");
            found.as_array().unwrap().clone()
        }
    };
    let issues = find(json!({"issues_only": true})).await;
    let mut flagged: Vec<(String, Vec<String>)> = issues
        .iter()
        .map(|datapoint| {
            let failed = datapoint["failed_checks"].as_array().unwrap();
            (
                datapoint["model_metadata"]["call_id"].as_str().unwrap().to_owned(),
                failed.iter().map(|name| name.as_str().unwrap().to_owned()).collect(),
            )
        })
        .collect();
    flagged.sort();
    assert_eq!(
        flagged,
        [
            ("retell-failed".to_owned(), vec!["provider says failed".to_owned()]),
            ("retell-slow".to_owned(), vec!["slow responses".to_owned()])
        ]
    );
    let slow_json =
        issues.iter().find(|datapoint| datapoint["failed_checks"][0] == "slow responses");
    let latency = slow_json.unwrap()["check_values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|value| value["name"] == "slow responses")
        .unwrap()
        .clone();
    assert_eq!(
        (latency["value"].as_f64(), latency["value_type"].as_str(), latency["is_issue"].as_bool()),
        (Some(2_500.0), Some("number"), Some(true))
    );
    assert_eq!(find(json!({"filter_group_id": monitor.id})).await.len(), 4);
    assert_eq!(find(json!({"failed_check": "provider says failed"})).await.len(), 1);
    assert_eq!(find(json!({"successful": true, "sentiment": "neutral"})).await.len(), 3);

    let slow_call = client.search_datapoints(DatapointQuery::new().call_id("retell-slow")).await;
    let slow_call = slow_call.unwrap().datapoints.remove(0);
    assert_eq!(slow_call.failed_checks, ["slow responses"]);
    let latency = slow_call.check_values.iter().find(|value| value.name == "slow responses");
    let latency = latency.unwrap();
    assert_eq!(latency.value, Some(pb::check_value::Value::NumberValue(2_500.0)));
    assert_eq!((latency.check_id.as_str(), latency.check_version), (slow.id.as_str(), 1));
    assert!(latency.is_issue);
    assert_eq!(
        latency.explanation,
        "p95_response_latency_ms is 2500 ms, greater than 1500 ms: an issue"
    );
    let verdict = slow_call.check_values.iter().find(|value| value.name == "provider says failed");
    assert_eq!(verdict.unwrap().value, Some(pb::check_value::Value::BoolValue(true)));

    // A judge run outside earshot attaches its verdict to a good call; it becomes an issue
    // until a reviewer resolves it.
    let judge = client
        .create_check(
            "judge: problem solved",
            "An LLM judge's verdict, attached from outside",
            CheckRule::new("provider_call_successful", "equal", "false"),
        )
        .await
        .unwrap();
    let good = client.search_datapoints(DatapointQuery::new().call_id("retell-good")).await;
    let good = good.unwrap().datapoints.remove(0);
    let unknown = client
        .attach_check_results(&good.id, vec![ExternalResult::new(&monitor.id, true)])
        .await
        .unwrap_err();
    let fields: Vec<&str> = unknown.field_violations().iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["results[0].check_id"]);
    let verdict = ExternalResult::new(&judge.id, true)
        .bool_value(false)
        .explanation("The agent never confirmed the refund.");
    let judged = client.attach_check_results(&good.id, vec![verdict.clone()]).await.unwrap();
    let judged_again = client.attach_check_results(&good.id, vec![verdict]).await.unwrap();
    assert_eq!(judged.check_values, judged_again.check_values, "attaching again replaces");
    assert_eq!(judged.failed_checks, ["judge: problem solved"]);
    let attached = judged.check_values.iter().find(|value| value.check_id == judge.id).unwrap();
    assert_eq!(
        (attached.origin.as_str(), attached.explanation.as_str(), attached.is_issue),
        ("external", "The agent never confirmed the refund.", true)
    );
    assert_eq!(judged.check_values.len(), 3, "the monitor's two results stay");
    assert_eq!(
        call_ids(&client, DatapointQuery::new().issues_only()).await,
        set(&["retell-good", "retell-slow", "retell-failed"])
    );
    assert_eq!(
        call_ids(&client, DatapointQuery::new().failed_check("judge: problem solved")).await,
        set(&["retell-good"])
    );
    let resolved = client.resolve_issues(&good.id, &[&judge.id], false).await.unwrap();
    assert!(resolved.failed_checks.is_empty());
    let kept = resolved.check_values.iter().find(|value| value.check_id == judge.id).unwrap();
    assert!(kept.is_issue && kept.resolve_time.is_some(), "{kept:?}");
    assert_eq!(
        call_ids(&client, DatapointQuery::new().issues_only()).await,
        set(&["retell-slow", "retell-failed"])
    );
    let reopened = client.resolve_issues(&good.id, &[&judge.id], true).await.unwrap();
    assert_eq!(reopened.failed_checks, ["judge: problem solved"]);
    client.resolve_issues(&good.id, &[&judge.id], false).await.unwrap();

    // A check in use is not deleted; a monitor's removal leaves its calls' results.
    let in_use = client.delete_check(&slow.id).await.unwrap_err();
    assert_eq!(in_use.code(), Code::InvalidArgument);
    client.delete_monitor(&monitor.id).await.unwrap();
    client.delete_monitor(&unsuccessful.id).await.unwrap();
    assert!(client.list_monitors().await.unwrap().is_empty());
    assert_eq!(
        call_ids(&client, DatapointQuery::new().issues_only()).await,
        set(&["retell-slow", "retell-failed"])
    );
    client.delete_check(&slow.id).await.unwrap();
    assert_eq!(client.list_checks().await.unwrap().len(), 2);
}

/// A call whose assistant answers `latency_ms` after the user, saying `words`.
fn sdk_call(call_id: &str, latency_ms: i64, words: &str) -> Conversation {
    Conversation::new(call_id)
        .turn(Turn::user(words).at_ms(0).end_ms(1_000))
        .turn(Turn::assistant("Let me see.").at_ms(1_000 + latency_ms).end_ms(2_000 + latency_ms))
}

/// What the checks found on a call: (check id, value, is_issue) by check.
fn verdicts(datapoint: &pb::Datapoint) -> Vec<(String, Option<pb::check_value::Value>, bool)> {
    let mut verdicts: Vec<_> = datapoint
        .check_values
        .iter()
        .map(|value| (value.check_id.clone(), value.value.clone(), value.is_issue))
        .collect();
    verdicts.sort_by(|a, b| a.0.cmp(&b.0));
    verdicts
}

/// A backfill over 300 calls stored before the monitor existed, in batches of 10, is killed
/// with SIGKILL part-way and resumes after the restart: every call evaluated once (its counts
/// and the monitor's summary equal the calls), each old call with the results a live twin
/// stored after the monitor got, and the issues found exactly the bad calls.
#[tokio::test]
async fn a_backfill_matches_live_evaluation_and_resumes_after_kill_9() {
    const OLD_CALLS: usize = 300;
    const TWINS: usize = 15;
    let env = [
        ("EARSHOT_MONITORS__BACKFILL_BATCH_SIZE", "10"),
        ("EARSHOT_MONITORS__BACKFILL_PAUSE_MS", "20"),
        // A job left running by the killed process is claimed again after this on PostgreSQL
        // (at once on SQLite).
        ("EARSHOT_JOBS__LEASE_SECONDS", "5"),
    ];
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let mut server = ServerProcess::start_in(&data_dir, &env).await;
    let key = server.printed_key.clone().unwrap();
    let project_id = server.printed_project_id.clone().unwrap();
    let connect = |url: String| {
        let (key, project_id) = (key.clone(), project_id.clone());
        async move { Client::builder(url).api_key(key).project_id(project_id).connect().await.unwrap() }
    };
    let client = connect(server.url()).await;
    let slow = client
        .create_check("slow", "", CheckRule::new("p95_response_latency_ms", "greater_than", "1500"))
        .await
        .unwrap();
    let human = client
        .create_check(
            "asks for a human",
            "",
            CheckRule::new("transcript_contains", "equal", "true").phrase("speak to a human"),
        )
        .await
        .unwrap();
    // Call i is slow when i is a multiple of 3 and asks for a human when of 5.
    let call = |prefix: &str, index: usize| {
        let latency = if index.is_multiple_of(3) { 2_500 } else { 300 };
        let words = if index.is_multiple_of(5) {
            "I want to speak to a human."
        } else {
            "What is my balance?"
        };
        sdk_call(&format!("{prefix}-{index}"), latency, words)
    };
    let bad = |index: usize| index.is_multiple_of(3) || index.is_multiple_of(5);
    for chunk in (0..OLD_CALLS).collect::<Vec<_>>().chunks(100) {
        let calls: Vec<Conversation> = chunk.iter().map(|index| call("old", *index)).collect();
        client.ingest_conversations(calls).await.unwrap();
    }
    let timeout = std::time::Duration::from_secs(60);
    client.wait_for_datapoint(&format!("old-{}", OLD_CALLS - 1), timeout).await.unwrap();
    let monitor = client
        .create_monitor(MonitorDefinition::new("quality").check(&slow.id).check(&human.id))
        .await
        .unwrap();
    let twins: Vec<Conversation> = (0..TWINS).map(|index| call("live", index)).collect();
    client.ingest_conversations(twins).await.unwrap();
    client.wait_for_datapoint(&format!("live-{}", TWINS - 1), timeout).await.unwrap();
    let summary = |client: Client| {
        let monitor_id = monitor.id.clone();
        async move {
            let day = earshot::SummaryGranularity::Day;
            client.monitor_summary(&monitor_id, day, None, None).await.unwrap().total.unwrap()
        }
    };
    let live_issues = (0..TWINS).filter(|index| bad(*index)).count() as u64;
    let before = summary(client.clone()).await;
    assert_eq!((before.datapoints, before.issues), (TWINS as u64, live_issues));

    let started = client.backfill_monitor(&monitor.id, None, None).await.unwrap();
    let total = (OLD_CALLS + TWINS) as u64;
    assert_eq!((started.state.as_str(), started.total), ("running", total));
    // Kill the server once some batches are committed and most are not (a bounded wait).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let part_way = loop {
        let backfill = client.get_backfill(&started.id).await.unwrap();
        assert_eq!(backfill.state, "running", "the backfill ended before the kill");
        if backfill.processed >= 50 {
            break backfill;
        }
        assert!(tokio::time::Instant::now() < deadline, "no batch committed: {backfill:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    server.kill().await;
    assert!(part_way.processed < total);

    let restarted = ServerProcess::start_in(&data_dir, &env).await;
    let client = connect(restarted.url()).await;
    let done = client.wait_for_backfill(&started.id, std::time::Duration::from_secs(120)).await;
    let done = done.unwrap();
    let all_issues = (0..OLD_CALLS).filter(|index| bad(*index)).count() as u64 + live_issues;
    assert_eq!(
        (done.state.as_str(), done.processed, done.matched, done.issues),
        ("succeeded", total, total, all_issues),
        "every call evaluated once: {done:?}"
    );
    assert!(done.finish_time.is_some());
    let after = summary(client.clone()).await;
    assert_eq!((after.datapoints, after.issues), (total, all_issues), "counted once");
    let listed = client.list_backfills(&monitor.id).await.unwrap();
    assert_eq!(listed, [done]);

    for index in 0..TWINS {
        let find = |prefix: &str| {
            let client = client.clone();
            let call_id = format!("{prefix}-{index}");
            async move {
                let query = DatapointQuery::new().call_id(&call_id);
                client.search_datapoints(query).await.unwrap().datapoints.remove(0)
            }
        };
        let (old, live) = (find("old").await, find("live").await);
        assert_eq!(verdicts(&old), verdicts(&live), "call {index}: backfilled as live");
        assert_eq!(old.failed_checks, live.failed_checks);
        assert_eq!(old.failed_checks.is_empty(), !bad(index));
    }
    let mut flagged = 0;
    let mut query = DatapointQuery::new().issues_only().page_size(100);
    loop {
        let page = client.search_datapoints(query.clone()).await.unwrap();
        flagged += page.datapoints.len() as u64;
        if page.next_page_token.is_empty() {
            break;
        }
        query = query.page_token(page.next_page_token);
    }
    assert_eq!(flagged, all_issues);
    restarted.stop().await;
}
