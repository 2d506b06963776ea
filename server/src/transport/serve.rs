//! The accept loop of the one port: HTTP/1 and HTTP/2 (gRPC, gRPC-web, REST) with the limits a
//! public endpoint needs. A connection must send each request's headers within a timeout (slow
//! senders are closed); a body may not pause longer than an idle timeout; a request must be
//! answered within a request timeout (408); open connections are capped over all senders and per
//! address (past either, a new connection is closed at once, so `/healthz` keeps answering); and
//! requests with large declared bodies are read a few at a time (503 past that, which senders
//! retry).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::rest::error::ApiError;
use crate::error::Error;

/// A body larger than this (by its content-length) needs one of the large-body permits.
pub const LARGE_BODY_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_concurrent_large_bodies: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections finish
/// their requests (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(AddressCounts::default());
    let large_bodies = Arc::new(Semaphore::new(limits.max_concurrent_large_bodies));
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait a moment, not a busy loop.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(connection_permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "connection refused: server.max_connections reached");
            continue;
        };
        let Some(address_slot) = per_address.take(remote.ip(), limits.max_connections_per_address)
        else {
            tracing::debug!(%remote, "connection refused: server.max_connections_per_address reached");
            continue;
        };
        // gRPC answers in several HTTP/2 frames; without TCP_NODELAY, Nagle's algorithm holds
        // the last of them until the client's delayed ACK (about 40 ms on Linux).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let service = RequestService {
            router: router.clone(),
            remote,
            limits: limits.clone(),
            large_bodies: large_bodies.clone(),
        };
        let service = hyper::service::service_fn(move |request| service.clone().call(request));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop((connection_permit, address_slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[derive(Clone)]
struct RequestService {
    router: Router,
    remote: SocketAddr,
    limits: Limits,
    large_bodies: Arc<Semaphore>,
}

impl RequestService {
    async fn call(self, request: http::Request<Incoming>) -> Result<Response, Infallible> {
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0);
        let _permit = if declared > LARGE_BODY_BYTES {
            match self.large_bodies.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let busy = Error::Unavailable(
                        "too many large request bodies are being read; retry shortly".into(),
                    );
                    return Ok(ApiError(busy).into_response());
                }
            }
        } else {
            None
        };
        let idle = self.limits.body_idle_timeout;
        let mut request =
            request.map(|body| Body::new(tower_http::timeout::TimeoutBody::new(idle, body)));
        request.extensions_mut().insert(ConnectInfo(self.remote));
        let answered =
            tokio::time::timeout(self.limits.request_timeout, self.router.oneshot(request));
        Ok(match answered.await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => (
                http::StatusCode::REQUEST_TIMEOUT,
                axum::Json(serde_json::json!({"error": {
                    "code": "request_timeout",
                    "message": "the request was not answered within server.request_timeout_seconds",
                }})),
            )
                .into_response(),
        })
    }
}

/// Open connections per sender address.
#[derive(Debug, Default)]
struct AddressCounts(Mutex<HashMap<IpAddr, usize>>);

/// One connection of an address, given back when dropped.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    address: IpAddr,
}

impl AddressCounts {
    fn take(self: &Arc<Self>, address: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(address).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counts: self.clone(), address })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_gets_slots_back() {
        let counts = Arc::new(AddressCounts::default());
        let address: IpAddr = "198.51.100.7".parse().unwrap();
        let first = counts.take(address, 2).unwrap();
        let _second = counts.take(address, 2).unwrap();
        assert!(counts.take(address, 2).is_none());
        assert!(counts.take("198.51.100.8".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(counts.take(address, 2).is_some());
    }
}
