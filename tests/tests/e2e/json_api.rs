//! The JSON form of the gRPC services (Connect's unary protocol) over plain HTTP/1.1: a check,
//! a monitor and an event endpoint made with JSON bodies are the ones gRPC reads back; errors
//! come as JSON with the right HTTP status and name the field; keys and scopes hold as on gRPC.

use earshot_e2e::client::{authed, http_request};
use earshot_e2e::in_process::TestServer;
use earshot_proto::v1 as pb;
use serde_json::{Value, json};

/// `POST /earshot.v1.<method>` with a JSON body and, when given, an API key.
async fn call(server: &TestServer, method: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(key) = key {
        headers.push(("api-key", key));
    }
    http_request(
        server,
        "POST",
        &format!("/earshot.v1.{method}"),
        &headers,
        body.to_string().into_bytes(),
    )
    .await
}

fn violations(error: &Value) -> Vec<String> {
    error["details"][0]["debug"]["field_violations"]
        .as_array()
        .map(|list| list.iter().map(|item| item["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_unary_method_answers_json() {
    // Loopback endpoints allowed: this machine resolves no public names.
    let server =
        TestServer::start_with_env(&[("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true")]).await;
    let admin = server.admin_key.clone();

    // A check and a monitor made in JSON, read back over gRPC.
    let (status, created) = call(
        &server,
        "MonitorService/CreateCheck",
        Some(&admin),
        json!({"name": "slow answers", "rule": {
            "measure": "p95_response_latency_ms", "comparator": "greater_than", "threshold": "1500"}}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let check = &created["check"];
    assert_eq!(check["name"], "slow answers");
    assert_eq!(check["version"], 1);
    assert_eq!(check["rule"]["comparator"], "greater_than");
    assert!(check["create_time"].as_str().unwrap().ends_with('Z'), "{check}");
    let check_id = check["id"].as_str().unwrap().to_owned();
    let (status, created) = call(
        &server,
        "MonitorService/CreateMonitor",
        Some(&admin),
        json!({"name": "billing", "filter": {"tagsAll": ["billing"]}, "checkIds": [check_id]}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let monitor_id = created["monitor"]["id"].as_str().unwrap().to_owned();
    let mut monitors =
        pb::monitor_service_client::MonitorServiceClient::new(server.channel().await);
    let read = monitors
        .get_monitor(authed(pb::GetMonitorRequest { id: monitor_id.clone() }, &admin))
        .await
        .unwrap()
        .into_inner()
        .monitor
        .unwrap();
    assert_eq!(read.name, "billing");
    assert_eq!(
        read.checks.iter().map(|check| check.id.as_str()).collect::<Vec<_>>(),
        [check_id.as_str()]
    );
    // An empty body is the empty request; fields left at their defaults are written out.
    let (status, listed) =
        call(&server, "MonitorService/ListChecks", Some(&admin), json!({})).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["checks"][0]["id"], check_id.as_str());
    assert_eq!(listed["checks"][0]["description"], "");

    // An event endpoint: its secret is in the answer, the sealed headers are not.
    let (status, created) = call(
        &server,
        "EventEndpointService/CreateEventEndpoint",
        Some(&admin),
        json!({"url": "http://127.0.0.1:9/earshot", "event_types": ["check.failed"],
               "headers": {"x-team-token": "t0k3n"}}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["endpoint"]["header_names"], json!(["x-team-token"]));
    assert!(!created.to_string().contains("t0k3n"));

    // Refusals: each a JSON error with the HTTP status of its code, naming the field.
    let (status, error) = call(
        &server,
        "EventEndpointService/CreateEventEndpoint",
        Some(&admin),
        json!({"url": "", "event_types": ["call.nope"]}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "invalid_argument");
    assert_eq!(violations(&error), ["url", "event_types[0]"]);
    let (status, error) = call(
        &server,
        "MonitorService/GetMonitor",
        Some(&admin),
        json!({"id": uuid::Uuid::now_v7().to_string()}),
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")), "{error}");
    let (status, error) =
        call(&server, "MonitorService/CreateCheck", Some(&admin), json!({"nmae": "typo"})).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_argument")), "{error}");
    assert!(error["message"].as_str().unwrap().contains("nmae"), "{error}");
    let (status, error) =
        call(&server, "MonitorService/CreateCheck", Some(&admin), json!(["not", "an object"]))
            .await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_argument")), "{error}");
    // Nested past what the parser follows: refused, not a crash.
    let deep = format!("{}{}", "{\"filter\":".repeat(300), "}".repeat(300));
    let (status, error) = http_request(
        &server,
        "POST",
        "/earshot.v1.MonitorService/CreateMonitor",
        &[("content-type", "application/json"), ("api-key", &admin)],
        deep.into_bytes(),
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_argument")), "{error}");
    let (status, error) = call(&server, "MonitorService/Nothing", Some(&admin), json!({})).await;
    assert_eq!((status, error["code"].as_str()), (501, Some("unimplemented")), "{error}");
    let (status, error) =
        call(&server, "DatapointService/ExportDatapoints", Some(&admin), json!({})).await;
    assert_eq!((status, error["code"].as_str()), (501, Some("unimplemented")), "{error}");

    // Keys and scopes as on gRPC: none, or a read key changing something, is refused.
    let (status, error) = call(&server, "MonitorService/ListChecks", None, json!({})).await;
    assert_eq!((status, error["code"].as_str()), (401, Some("unauthenticated")), "{error}");
    let (status, reader) = call(
        &server,
        "ProjectService/CreateApiKey",
        Some(&admin),
        json!({"name": "dashboard", "scopes": ["API_KEY_SCOPE_READ"]}),
    )
    .await;
    assert_eq!(status, 200, "{reader}");
    let reader = reader["secret"].as_str().unwrap().to_owned();
    let (status, listed) =
        call(&server, "MonitorService/ListMonitors", Some(&reader), json!({})).await;
    assert_eq!((status, listed["monitors"][0]["name"].as_str()), (200, Some("billing")));
    let (status, error) =
        call(&server, "MonitorService/DeleteMonitor", Some(&reader), json!({"id": monitor_id}))
            .await;
    assert_eq!((status, error["code"].as_str()), (403, Some("permission_denied")), "{error}");
    server.stop().await;
}
