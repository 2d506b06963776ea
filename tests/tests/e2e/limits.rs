//! The limits of the one port, over raw TCP: slow headers are cut off, idle bodies time out,
//! connections are capped per address while other senders are still served, and large bodies
//! are read a few at a time.

use std::time::Duration;

use earshot_e2e::in_process::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An upper bound for what the server must do on its own, not a pause.
const BOUND: Duration = Duration::from_secs(15);

/// A connection from `local` (any 127.0.0.0/8 address is this host) to the server.
async fn connect_from(server: &TestServer, local: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(server.address).await.unwrap()
}

/// Reads until the server answers or closes; the answer's status line, or None when it closed
/// without one.
async fn answer(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = vec![0u8; 1024];
    let read = tokio::time::timeout(BOUND, stream.read(&mut bytes))
        .await
        .expect("the server neither answered nor closed")
        .unwrap_or(0);
    String::from_utf8_lossy(&bytes[..read]).lines().next().map(str::to_owned)
}

async fn healthz(stream: &mut TcpStream) -> Option<String> {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: earshot\r\n\r\n").await.ok()?;
    answer(stream).await
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_an_idle_body_times_out() {
    let server = TestServer::start_with_env(&[
        ("EARSHOT_SERVER__HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("EARSHOT_SERVER__BODY_IDLE_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    // Headers that never end: the connection is closed without an answer.
    let mut slow = connect_from(&server, "127.0.0.1").await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: earshot\r\nx-slow: ").await.unwrap();
    assert_eq!(answer(&mut slow).await, None);
    // A body that stops halfway: answered with an error instead of waiting for ever.
    let mut idle = connect_from(&server, "127.0.0.1").await;
    let head = format!(
        "POST /v0/conversations/ingest HTTP/1.1\r\nhost: earshot\r\ncontent-type: application/json\r\n\
         api-key: {}\r\ncontent-length: 1000\r\n\r\n{{\"conversations\": [",
        server.admin_key
    );
    idle.write_all(head.as_bytes()).await.unwrap();
    let status = answer(&mut idle).await.expect("an answer");
    assert!(status.starts_with("HTTP/1.1 4"), "{status}");
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let server = TestServer::start_with_env(&[
        ("EARSHOT_SERVER__MAX_CONNECTIONS", "6"),
        ("EARSHOT_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "3"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(&server, "127.0.0.2").await;
        assert_eq!(healthz(&mut stream).await.as_deref(), Some("HTTP/1.1 200 OK"));
        held.push(stream);
    }
    // The fourth from the same address is closed at once...
    let mut refused = connect_from(&server, "127.0.0.2").await;
    assert_eq!(healthz(&mut refused).await, None);
    // ...while another address is served.
    let mut other = connect_from(&server, "127.0.0.3").await;
    assert_eq!(healthz(&mut other).await.as_deref(), Some("HTTP/1.1 200 OK"));
    // A connection given back makes room again.
    drop(held.pop());
    let mut again = connect_from(&server, "127.0.0.2").await;
    let deadline = tokio::time::Instant::now() + BOUND;
    while healthz(&mut again).await.as_deref() != Some("HTTP/1.1 200 OK") {
        assert!(tokio::time::Instant::now() < deadline, "the slot did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
        again = connect_from(&server, "127.0.0.2").await;
    }
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn large_bodies_are_read_a_few_at_a_time() {
    let server =
        TestServer::start_with_env(&[("EARSHOT_SERVER__MAX_CONCURRENT_LARGE_BODIES", "1")]).await;
    let head = format!(
        "POST /v0/conversations/ingest HTTP/1.1\r\nhost: earshot\r\ncontent-type: application/json\r\n\
         api-key: {}\r\ncontent-length: 2000000\r\n\r\n",
        server.admin_key
    );
    // The first holds the one permit while its body arrives...
    let mut first = connect_from(&server, "127.0.0.1").await;
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(b"{\"conversations\": [").await.unwrap();
    // ...so the second is turned away at once, and small requests still pass.
    let mut second = connect_from(&server, "127.0.0.1").await;
    second.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(answer(&mut second).await.as_deref(), Some("HTTP/1.1 503 Service Unavailable"));
    let mut small = connect_from(&server, "127.0.0.1").await;
    assert_eq!(healthz(&mut small).await.as_deref(), Some("HTTP/1.1 200 OK"));
    drop(first);
    server.stop().await;
}
