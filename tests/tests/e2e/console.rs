//! The console over plain HTTP against an `earshot` process (its browser tests are issue 20's
//! next step): sign-in turns an API key into an `HttpOnly`, `SameSite=Strict` session cookie,
//! a form from another site is refused, the calls list shows a call the test ingested and
//! escapes what the call says, the call page has every turn and a player whose recording is
//! served in byte ranges, a key that cannot read opens no session, and sign-out needs the
//! session's CSRF token.

use std::time::Duration;

use earshot::{Audio, Client, Conversation, Turn};
use earshot_e2e::Server;
use earshot_e2e::audio::wav;
use earshot_e2e::client::try_http_raw;
use earshot_e2e::process::ServerProcess;

/// A request to the console: (status, headers, body as text).
pub(crate) async fn request(
    server: &impl Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, String) {
    let (status, headers, bytes) =
        try_http_raw(&server.url(), method, path, headers, body.as_bytes().to_vec()).await.unwrap();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

pub(crate) fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
}

pub(crate) const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn the_console_signs_in_lists_calls_plays_them_and_signs_out() {
    let server = ServerProcess::start(&[]).await;
    let client = Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap();
    let recording = wav(1, 8000, 800, 21);
    client
        .ingest_conversations(vec![
            Conversation::new("console-call-1")
                .audio(Audio::from_bytes(recording.clone()))
                .tag("vip")
                .turn(Turn::user("Hi, <script>alert(1)</script> is my name.").at_ms(0).end_ms(300))
                .turn(Turn::assistant("Welcome back.").at_ms(400).end_ms(800)),
        ])
        .await
        .unwrap();
    let datapoint =
        client.wait_for_datapoint("console-call-1", Duration::from_secs(30)).await.unwrap();

    // Signed out: pages send to the sign-in form.
    let (status, headers, _) = request(&server, "GET", "/console/calls", &[], "").await;
    assert_eq!((status, header(&headers, "location")), (303, "/console/sign-in"));
    let (status, _, page) = request(&server, "GET", "/console/sign-in", &[], "").await;
    assert!(status == 200 && page.contains("name=\"api_key\""), "{page}");
    // A wrong key, or a form posted from another site, opens nothing.
    let (status, headers, page) =
        request(&server, "POST", "/console/sign-in", &[FORM], "api_key=es_wrong").await;
    assert_eq!(status, 401);
    assert!(page.contains("not valid") && headers.get("set-cookie").is_none(), "{page}");
    let body = format!("api_key={}", server.admin_key);
    let cross_site = [FORM, ("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")];
    let (status, headers, _) =
        request(&server, "POST", "/console/sign-in", &cross_site, &body).await;
    assert!(status == 403 && headers.get("set-cookie").is_none());

    let (status, headers, _) = request(&server, "POST", "/console/sign-in", &[FORM], &body).await;
    assert_eq!((status, header(&headers, "location")), (303, "/console/calls"));
    let set_cookie = header(&headers, "set-cookie").to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=43200"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    let session = set_cookie.split(';').next().unwrap().to_owned();
    let signed_in = [("cookie", session.as_str())];

    // The list: the call, its tag, no failed check; what the call said is escaped.
    let (status, headers, page) = request(&server, "GET", "/console/calls", &signed_in, "").await;
    assert_eq!(status, 200, "{page}");
    assert!(header(&headers, "content-security-policy").contains("default-src 'self'"));
    assert!(page.contains(&format!("/console/calls/{}", datapoint.id)), "{page}");
    assert!(page.contains("console-call-1") && page.contains("vip"));
    let (_, _, filtered) =
        request(&server, "GET", "/console/calls?provider=nobody", &signed_in, "").await;
    assert!(filtered.contains("No calls match."), "{filtered}");
    // Project, source, day range and metadata filter as a search does; a bad day is named.
    // A day either side of now, so a run across midnight (UTC) finds the call too.
    let day =
        |offset: i64| (chrono::Utc::now() + chrono::Duration::days(offset)).format("%Y-%m-%d");
    let (yesterday, tomorrow) = (day(-1), day(1));
    let project = &server.project_id;
    for (query, found) in [
        (format!("project={project}&source=sdk&from={yesterday}&to={tomorrow}"), true),
        ("source=webhook".to_owned(), false),
        ("from=2001-01-01&to=2001-01-31".to_owned(), false),
        ("metadata=queue%3Dbilling".to_owned(), false),
        ("tag=vip".to_owned(), true),
    ] {
        let (status, _, page) =
            request(&server, "GET", &format!("/console/calls?{query}"), &signed_in, "").await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(page.contains("console-call-1"), found, "{query}: {page}");
    }
    let (status, _, page) =
        request(&server, "GET", "/console/calls?from=yesterday", &signed_in, "").await;
    assert!(status == 400 && page.contains("from: must be a day"), "{page}");

    // The call: every turn with its times, the player, the recording in ranges.
    let path = format!("/console/calls/{}", datapoint.id);
    let (status, _, call_page) = request(&server, "GET", &path, &signed_in, "").await;
    let page = &call_page;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-start=\"0\" data-end=\"300\"") && page.contains("Welcome back."));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script>alert")
    );
    assert!(page.contains(&format!("src=\"{path}/audio\"")), "{page}");
    let audio = format!("{path}/audio");
    let (status, headers, _) = request(&server, "GET", &audio, &signed_in, "").await;
    assert_eq!((status, header(&headers, "accept-ranges")), (200, "bytes"));
    let (status, headers, bytes) = try_http_raw(
        &server.url(),
        "GET",
        &audio,
        &[("cookie", session.as_str()), ("range", "bytes=10-19")],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, 206);
    assert_eq!(header(&headers, "content-range"), format!("bytes 10-19/{}", recording.len()));
    assert_eq!(&bytes[..], &recording[10..20]);
    let (status, _, _) = request(&server, "GET", &audio, &[("range", "bytes=0-")], "").await;
    assert_eq!(status, 401, "no session, no recording");
    // The call as JSON, to download.
    let (status, headers, json) =
        request(&server, "GET", &format!("{path}/json"), &signed_in, "").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-disposition").starts_with("attachment"));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["call_id"], "console-call-1");
    assert_eq!(json["turns"].as_array().unwrap().len(), 2);

    // A key that cannot read calls opens no session.
    let (_, created) = earshot_e2e::client::http_request(
        &server,
        "POST",
        "/earshot.v1.ProjectService/CreateApiKey",
        &[("content-type", "application/json"), ("api-key", &server.admin_key)],
        br#"{"name": "dialer", "scopes": ["API_KEY_SCOPE_INGEST"]}"#.to_vec(),
    )
    .await;
    let ingest_only = format!("api_key={}", created["secret"].as_str().unwrap());
    let (status, headers, page) =
        request(&server, "POST", "/console/sign-in", &[FORM], &ingest_only).await;
    assert!(status == 401 && headers.get("set-cookie").is_none(), "{page}");
    assert!(page.contains("cannot read calls"), "{page}");

    // Sign-out needs the session's CSRF token, then the session is over.
    let csrf = csrf_of(&call_page);
    let (status, _, _) = request(
        &server,
        "POST",
        "/console/sign-out",
        &[FORM, ("cookie", session.as_str())],
        "csrf=forged",
    )
    .await;
    assert_eq!(status, 403);
    let (status, headers, _) = request(
        &server,
        "POST",
        "/console/sign-out",
        &[FORM, ("cookie", session.as_str())],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!((status, header(&headers, "location")), (303, "/console/sign-in"));
    assert!(header(&headers, "set-cookie").contains("Max-Age=0"));
    let (status, _, _) = request(&server, "GET", "/console/calls", &signed_in, "").await;
    assert_eq!(status, 303, "the session ended");
    server.stop().await;
}

/// The monitors pages: a monitor's calls, issues and issue rate with its chart, its checks with
/// their figures, and the calls with open issues linking to their pages.
#[tokio::test]
async fn monitors_show_their_issue_rate_and_failing_calls() {
    use earshot::{CheckRule, MonitorDefinition};
    let server = ServerProcess::start(&[]).await;
    let client = Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap();
    let slow = client
        .create_check(
            "slow answers",
            "",
            CheckRule::new("p95_response_latency_ms", "greater_than", "1500"),
        )
        .await
        .unwrap();
    let monitor = client
        .create_monitor(MonitorDefinition::new("Support <quality>").check(&slow.id))
        .await
        .unwrap();
    let answered_after = |call_id: &str, latency_ms: i64| {
        Conversation::new(call_id)
            .turn(Turn::user("Where is my order?").at_ms(0).end_ms(1_000))
            .turn(
                Turn::assistant("Let me check.")
                    .at_ms(1_000 + latency_ms)
                    .end_ms(2_000 + latency_ms),
            )
    };
    client
        .ingest_conversations(vec![
            answered_after("monitored-slow", 2_500),
            answered_after("monitored-quick", 200),
        ])
        .await
        .unwrap();
    let slow_call =
        client.wait_for_datapoint("monitored-slow", Duration::from_secs(30)).await.unwrap();
    client.wait_for_datapoint("monitored-quick", Duration::from_secs(30)).await.unwrap();

    let body = format!("api_key={}", server.admin_key);
    let (_, headers, _) = request(&server, "POST", "/console/sign-in", &[FORM], &body).await;
    let session = header(&headers, "set-cookie").split(';').next().unwrap().to_owned();
    let signed_in = [("cookie", session.as_str())];
    let (status, _, page) = request(&server, "GET", "/console/monitors", &signed_in, "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Support &lt;quality&gt;"), "{page}");
    assert!(page.contains("1 (50.0 %)"), "{page}");
    assert!(
        page.contains("<svg")
            && page.contains("role=\"img\"")
            && page.contains("1 of 2 calls with issues"),
        "{page}"
    );
    let (status, _, page) =
        request(&server, "GET", &format!("/console/monitors/{}", monitor.id), &signed_in, "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("p95_response_latency_ms greater than 1500"), "{page}");
    assert!(page.contains("1 of 2"), "{page}");
    assert!(
        page.contains(&format!("/console/calls/{}", slow_call.id))
            && page.contains("monitored-slow")
    );
    assert!(!page.contains("monitored-quick"), "only the call with an issue: {page}");
    let (status, _, _) = request(
        &server,
        "GET",
        &format!("/console/monitors/{}", uuid::Uuid::now_v7()),
        &signed_in,
        "",
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// The integrations pages: the list with status and use, one integration with the webhook URL
/// to paste and its refused delivery with the reason, disabling it by the page's form (the
/// CSRF token required), and a read-only key that sees no such form.
#[tokio::test]
async fn integrations_show_their_webhook_url_deliveries_and_can_be_disabled() {
    use earshot_e2e::client::{create_integration, http_request};
    use earshot_proto::v1 as pb;
    let server = ServerProcess::start(&[]).await;
    let integration = create_integration(
        &server,
        pb::Provider::Retell,
        pb::WebhookAuthType::Unspecified,
        &[("api_key", "key_0f1e2d3c4b5a69788796a5b4c3d2e1f0")],
        None,
    )
    .await;
    let webhook = format!("/v0/voice/retell/monitor/{}", integration.public_id);
    let forged = [("content-type", "application/json"), ("x-retell-signature", "v=1,d=00")];
    let (status, _) =
        http_request(&server, "POST", &webhook, &forged, br#"{"event":"call_analyzed"}"#.to_vec())
            .await;
    assert_eq!(status, 401);

    let admin = session_of(&server, &server.admin_key).await;
    let (status, _, page) =
        request(&server, "GET", "/console/integrations", &[("cookie", admin.as_str())], "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("retell") && page.contains("● active"), "{page}");
    let path = format!("/console/integrations/{}", integration.id);
    let (status, _, page) = request(&server, "GET", &path, &[("cookie", admin.as_str())], "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&integration.webhook_url), "{page}");
    assert!(page.contains("rejected (401)"), "{page}");
    let csrf = csrf_of(&page);

    // A read-only key sees the page but no form that changes it.
    let reader = reader_session(&server).await;
    let (_, _, page) = request(&server, "GET", &path, &[("cookie", reader.as_str())], "").await;
    assert!(page.contains(&integration.webhook_url) && !page.contains("Disable"), "{page}");

    let status_path = format!("{path}/status");
    let with_session = [FORM, ("cookie", admin.as_str())];
    let (status, _, _) =
        request(&server, "POST", &status_path, &with_session, "csrf=forged&status=disabled").await;
    assert_eq!(status, 403);
    let (status, headers, _) = request(
        &server,
        "POST",
        &status_path,
        &with_session,
        &format!("csrf={csrf}&status=disabled"),
    )
    .await;
    assert_eq!((status, header(&headers, "location")), (303, path.as_str()));
    let (_, _, page) = request(&server, "GET", &path, &[("cookie", admin.as_str())], "").await;
    assert!(page.contains("○ disabled") && page.contains("Enable"), "{page}");
    server.stop().await;
}

/// The operations page: a call whose recording cannot be fetched is listed dead with the
/// reason, and its Retry form (the CSRF token required) queues it again.
#[tokio::test]
async fn operations_list_failed_calls_and_retry_them() {
    let server = ServerProcess::start(&[("EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS", "true")]).await;
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = gone.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(gone, axum::Router::new().fallback(|| async { http::StatusCode::NOT_FOUND }))
            .await
            .unwrap();
    });
    let client = Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap();
    let accepted = client
        .ingest_conversations(vec![
            Conversation::new("never-fetched")
                .audio(Audio::from_url(format!("http://{address}/gone.wav"))),
        ])
        .await
        .unwrap();
    let ingest_id = accepted.conversations[0].ingest_id.clone();
    let dead = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let status = client.ingest_status(&ingest_id).await.unwrap();
            if status.state == earshot::IngestState::Dead as i32 {
                return status;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("dead within 30 s");
    assert!(dead.error.contains("404"), "{}", dead.error);

    let body = format!("api_key={}", server.admin_key);
    let (_, headers, _) = request(&server, "POST", "/console/sign-in", &[FORM], &body).await;
    let session = header(&headers, "set-cookie").split(';').next().unwrap().to_owned();
    let (status, _, page) =
        request(&server, "GET", "/console/operations", &[("cookie", session.as_str())], "").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("never-fetched") && page.contains("dead") && page.contains("404"),
        "{page}"
    );
    let retry = format!("/console/ingests/{ingest_id}/retry");
    assert!(page.contains(&retry), "{page}");
    let csrf = csrf_of(&page);
    let with_session = [FORM, ("cookie", session.as_str())];
    let (status, _, _) = request(&server, "POST", &retry, &with_session, "csrf=forged").await;
    assert_eq!(status, 403);
    let (status, headers, _) =
        request(&server, "POST", &retry, &with_session, &format!("csrf={csrf}")).await;
    assert_eq!((status, header(&headers, "location")), (303, "/console/operations"));
    // Queued again: it runs once more (the file is still missing) and is dead again, later.
    let first_death = dead.update_time.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let status = client.ingest_status(&ingest_id).await.unwrap();
            let later = status.update_time.as_ref().is_some_and(|time| {
                (time.seconds, time.nanos) > (first_death.seconds, first_death.nanos)
            });
            if later && status.state == earshot::IngestState::Dead as i32 {
                return status;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the retried call runs again within 30 s");
    assert!(again.error.contains("404"), "{}", again.error);
    server.stop().await;
}

/// The CSRF token of a console page's forms.
pub(crate) fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form") + marker.len();
    page[start..start + 64].to_owned()
}

/// A console session of `key`: the `cookie` header's value.
pub(crate) async fn session_of(server: &impl Server, key: &str) -> String {
    let (_, headers, _) =
        request(server, "POST", "/console/sign-in", &[FORM], &format!("api_key={key}")).await;
    header(&headers, "set-cookie").split(';').next().unwrap().to_owned()
}

/// A console session of a new key with the read scope alone.
async fn reader_session(server: &impl Server) -> String {
    let (_, created) = earshot_e2e::client::http_request(
        server,
        "POST",
        "/earshot.v1.ProjectService/CreateApiKey",
        &[("content-type", "application/json"), ("api-key", server.admin_key())],
        br#"{"name": "viewer", "scopes": ["API_KEY_SCOPE_READ"]}"#.to_vec(),
    )
    .await;
    session_of(server, created["secret"].as_str().unwrap()).await
}

/// The first `href` on the page that starts with `prefix`, whole.
fn link_of(page: &str, prefix: &str) -> String {
    let start = page.find(&format!("href=\"{prefix}")).expect("the link") + "href=\"".len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

/// An integration made, fed, replayed, rotated and deleted through the console's forms; the
/// call it brought shows the delivery behind it; a read key reaches none of these forms.
#[tokio::test]
async fn integrations_are_created_replayed_rotated_and_deleted_in_the_console() {
    use earshot_e2e::client::http_request;
    let server = ServerProcess::start(&[]).await;
    let admin = session_of(&server, &server.admin_key).await;
    let as_admin = [("cookie", admin.as_str())];
    let posting = [FORM, ("cookie", admin.as_str())];

    let (status, _, page) =
        request(&server, "GET", "/console/integrations/new?provider=bland", &as_admin, "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"secret.webhook_secret\"") && page.contains("signing secret"));
    let csrf = csrf_of(&page);
    let project = &server.project_id;
    let form = |secret: &str| {
        format!(
            "csrf={csrf}&provider=bland&auth_type=bland_signature&project={project}\
             &display_name=Bland+prod&options=&secret.webhook_secret={secret}"
        )
    };
    // A missing secret is named on the form, which keeps what was typed.
    let (status, _, page) =
        request(&server, "POST", "/console/integrations", &posting, &form("")).await;
    assert_eq!(status, 400);
    assert!(page.contains("secrets[webhook_secret]") && page.contains("Bland prod"), "{page}");
    let forged = form("bland-console-secret").replace(&csrf, "forged");
    let (status, _, _) = request(&server, "POST", "/console/integrations", &posting, &forged).await;
    assert_eq!(status, 403);
    let (status, headers, _) =
        request(&server, "POST", "/console/integrations", &posting, &form("bland-console-secret"))
            .await;
    assert_eq!(status, 303);
    let created = header(&headers, "location").to_owned();
    assert!(created.ends_with("?created=1"), "{created}");
    let path = created.trim_end_matches("?created=1").to_owned();
    let (_, _, page) = request(&server, "GET", &created, &as_admin, "").await;
    assert!(page.contains("Created") && page.contains("data-copy=\"webhook-url\""), "{page}");
    let url_start = page.find("/v0/voice/bland/monitor/").unwrap();
    let url_end = url_start + page[url_start..].find('"').unwrap();
    let webhook = page[url_start..url_end].to_owned();

    // A delivery refused after it authenticated is kept, and replayed from its log (the
    // newest row, first on the page).
    let post = |body: Vec<u8>| {
        let server = &server;
        let webhook = webhook.clone();
        async move {
            let signature = earshot_server::providers::bland::sign("bland-console-secret", &body);
            let headers =
                [("content-type", "application/json"), ("x-webhook-signature", signature.as_str())];
            http_request(server, "POST", &webhook, &headers, body).await
        }
    };
    let call = serde_json::json!({
        "call_id": "console-bland-1", "corrected_duration": "12",
        "transcripts": [{"id": 1, "created_at": "2026-11-20T23:51:26+00:00", "text": "Hello?", "user": "user"}]
    });
    let (status, accepted) = post(call.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{accepted}");
    let (status, refused) = post(br#"{"summary": "no call id"}"#.to_vec()).await;
    assert_eq!(status, 400, "{refused}");
    let (_, _, page) = request(&server, "GET", &path, &as_admin, "").await;
    assert!(page.contains("rejected (400)") && page.contains("accepted (202)"), "{page}");
    let replay = link_of(&page.replace("action=\"", "href=\""), &format!("{path}/deliveries/"));
    let (status, _, _) = request(&server, "POST", &replay, &posting, "csrf=forged").await;
    assert_eq!(status, 403);
    let (status, headers, _) =
        request(&server, "POST", &replay, &posting, &format!("csrf={csrf}")).await;
    assert_eq!(status, 303);
    assert!(header(&headers, "location").contains("?replayed="));
    let (_, _, page) = request(&server, "GET", header(&headers, "location"), &as_admin, "").await;
    assert!(page.contains("Replayed"), "{page}");

    // The call's page shows the delivery that brought it.
    let (_, _, page) =
        request(&server, "GET", "/console/calls?call_id=console-bland-1", &as_admin, "").await;
    let call_page = link_of(&page, "/console/calls/");
    let (_, _, page) = request(&server, "GET", &call_page, &as_admin, "").await;
    assert!(page.contains("How it arrived") && page.contains("accepted (202)"), "{page}");
    assert!(page.contains(&format!("href=\"{path}\"")), "{page}");

    // Rotation keeps the old secret for its grace, and names a bad grace.
    let secrets = format!("{path}/secrets");
    let (status, _, page) = request(
        &server,
        "POST",
        &secrets,
        &posting,
        &format!("csrf={csrf}&secret.webhook_secret=bland-rotated-key1&grace_hours=1000"),
    )
    .await;
    assert!(status == 400 && page.contains("grace_hours"), "{page}");
    let (status, headers, _) = request(
        &server,
        "POST",
        &secrets,
        &posting,
        &format!("csrf={csrf}&secret.webhook_secret=bland-rotated-key1&grace_hours=2"),
    )
    .await;
    assert_eq!((status, header(&headers, "location")), (303, format!("{path}?rotated=1").as_str()));
    let (_, _, page) = request(&server, "GET", &path, &as_admin, "").await;
    assert!(
        page.contains("ending <code>key1</code> · current") && page.contains("valid until"),
        "{page}"
    );

    // A read key reaches none of the managing forms.
    let reader = reader_session(&server).await;
    let (_, _, page) =
        request(&server, "GET", "/console/integrations", &[("cookie", reader.as_str())], "").await;
    let reader_csrf = csrf_of(&page);
    let (status, _, _) =
        request(&server, "GET", "/console/integrations/new", &[("cookie", reader.as_str())], "")
            .await;
    assert_eq!(status, 403);
    let (_, _, page) = request(&server, "GET", &path, &[("cookie", reader.as_str())], "").await;
    assert!(!page.contains("/replay") && !page.contains("Rotate"), "{page}");
    let as_reader = [FORM, ("cookie", reader.as_str())];
    let reader_form = form("bland-reader-secret").replace(&csrf, &reader_csrf);
    let (status, _, _) =
        request(&server, "POST", "/console/integrations", &as_reader, &reader_form).await;
    assert_eq!(status, 403);
    let delete = format!("{path}/delete");
    let (status, _, _) =
        request(&server, "POST", &delete, &as_reader, &format!("csrf={reader_csrf}&confirm=1"))
            .await;
    assert_eq!(status, 403);

    // Deleting needs the box ticked.
    let (status, _, page) =
        request(&server, "POST", &delete, &posting, &format!("csrf={csrf}")).await;
    assert!(status == 400 && page.contains("confirm"), "{page}");
    let (status, headers, _) =
        request(&server, "POST", &delete, &posting, &format!("csrf={csrf}&confirm=1")).await;
    assert_eq!((status, header(&headers, "location")), (303, "/console/integrations"));
    let (status, _, _) = request(&server, "GET", &path, &as_admin, "").await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// Behind https (the server's public address says so), the session cookie is `Secure`; the
/// pages forbid framing and scripts from elsewhere.
#[tokio::test]
async fn behind_https_the_session_cookie_is_secure() {
    let server =
        ServerProcess::start(&[("EARSHOT_PUBLIC_BASE_URL", "https://earshot.example.com")]).await;
    let body = format!("api_key={}", server.admin_key);
    let (status, headers, _) = request(&server, "POST", "/console/sign-in", &[FORM], &body).await;
    assert_eq!(status, 303);
    let cookie = header(&headers, "set-cookie");
    assert!(cookie.ends_with("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let (_, headers, _) = request(&server, "GET", "/console/sign-in", &[], "").await;
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert!(header(&headers, "content-security-policy").starts_with("default-src 'self'"));
    server.stop().await;
}

/// Another organization's session sees none of this one's calls, recordings, integrations or
/// monitors, and its forms cannot change them: every page and form answers as if they did not
/// exist.
#[tokio::test]
async fn another_organizations_session_sees_and_changes_nothing_here() {
    use earshot_e2e::client::create_integration;
    use earshot_e2e::in_process::TestServer;
    use earshot_proto::v1 as pb;
    let server = TestServer::start().await;
    let client = Client::builder(server.url())
        .api_key(&server.admin_key)
        .project_id(&server.project_id)
        .connect()
        .await
        .unwrap();
    client
        .ingest_conversations(vec![
            Conversation::new("private-call")
                .audio(Audio::from_bytes(wav(1, 8000, 800, 5)))
                .turn(Turn::user("My account number is 4417.").at_ms(0).end_ms(500)),
        ])
        .await
        .unwrap();
    let datapoint =
        client.wait_for_datapoint("private-call", Duration::from_secs(30)).await.unwrap();
    let integration = create_integration(
        &server,
        pb::Provider::Bland,
        pb::WebhookAuthType::Unspecified,
        &[("webhook_secret", "bland-private-secret")],
        None,
    )
    .await;
    let other = server.app_domain.bootstrap(false).await.unwrap().unwrap();
    let intruder = session_of(&server, other.api_key_value.expose()).await;
    let as_intruder = [("cookie", intruder.as_str())];

    let (status, _, page) = request(&server, "GET", "/console/calls", &as_intruder, "").await;
    assert!(status == 200 && !page.contains("private-call"), "{page}");
    let (_, _, page) =
        request(&server, "GET", "/console/calls?call_id=private-call", &as_intruder, "").await;
    assert!(page.contains("No calls match."), "{page}");
    let (_, _, page) = request(&server, "GET", "/console/integrations", &as_intruder, "").await;
    assert!(!page.contains(&integration.public_id), "{page}");
    let call = format!("/console/calls/{}", datapoint.id);
    let integration_page = format!("/console/integrations/{}", integration.id);
    for path in
        [call.clone(), format!("{call}/audio"), format!("{call}/json"), integration_page.clone()]
    {
        let (status, _, body) = request(&server, "GET", &path, &as_intruder, "").await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("4417"), "{path}: {body}");
    }
    let (_, _, page) = request(&server, "GET", "/console/operations", &as_intruder, "").await;
    let csrf = csrf_of(&page);
    let posting = [FORM, ("cookie", intruder.as_str())];
    for (path, form) in [
        (format!("{integration_page}/status"), format!("csrf={csrf}&status=disabled")),
        (format!("{integration_page}/delete"), format!("csrf={csrf}&confirm=1")),
    ] {
        let (status, _, _) = request(&server, "POST", &path, &posting, &form).await;
        assert_eq!(status, 404, "{path}");
    }
    // Still there, still active, for its own organization.
    let admin = session_of(&server, &server.admin_key).await;
    let (status, _, page) =
        request(&server, "GET", &integration_page, &[("cookie", admin.as_str())], "").await;
    assert!(status == 200 && page.contains("● active"), "{page}");
    server.stop().await;
}
