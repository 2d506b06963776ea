//! Plain-HTTP routes: health, readiness, and the JSON mirrors of the gRPC API.

pub mod compat;
pub mod datapoints;
pub mod error;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::domain::Domain;
use error::ApiError;

#[derive(Clone, Debug)]
pub struct RestState {
    pub domain: Arc<Domain>,
    /// False once shutdown has begun, so load balancers stop sending traffic.
    pub accepting: Arc<AtomicBool>,
    /// What non-loopback scrapers of `/metrics` present as a Bearer token; None: loopback only.
    pub metrics_token: Option<Arc<str>>,
}

/// The REST routes: every route when the process `serves_api`, else (a worker) its health and
/// metrics.
pub fn router(serves_api: bool, state: RestState, max_request_bytes: usize) -> Router {
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if !serves_api {
        return probes.with_state(state);
    }
    // Webhook bodies are read with their own limits (see `webhooks`).
    let webhooks = Router::new()
        .route("/v0/voice/vapi/monitor", post(webhooks::receive_vapi))
        .route("/v0/voice/{provider}/monitor/{public_id}", post(webhooks::receive))
        .layer(axum::extract::DefaultBodyLimit::disable());
    probes
        .route("/openapi.json", get(openapi))
        .route("/v0/projects", get(list_projects))
        .route("/v0/conversations/ingest", post(compat::ingest))
        .route("/v0/find_datapoints", post(compat::find_datapoints))
        .route("/v0/datapoints/export", post(datapoints::export))
        .route("/v0/datapoints/delete", post(datapoints::delete))
        .route("/v0/datapoints/{id}", get(datapoints::get))
        .route("/v0/datapoints/{id}/audio", get(datapoints::audio))
        .layer(axum::extract::DefaultBodyLimit::max(max_request_bytes))
        .merge(webhooks)
        .with_state(state)
}

/// The OpenAPI 3.1 document of these routes (checked against the router by a test).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// `GET /metrics`: the OpenMetrics exposition, for loopback peers or the metrics token. The
/// queue's gauges are read from the database at each scrape.
async fn metrics(
    State(state): State<RestState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use subtle::ConstantTimeEq;
    let loopback = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|info| info.0.ip().is_loopback());
    let bearer = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let token_matches = match (&state.metrics_token, bearer) {
        (Some(expected), Some(given)) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    if !loopback && !token_matches {
        return ApiError(crate::Error::PermissionDenied(
            "metrics are served to loopback peers, or with server.metrics_token as a Bearer token"
                .to_owned(),
        ))
        .into_response();
    }
    let domain = &state.domain;
    match domain.storage.backlog(domain.clock.now()).await {
        Ok(queue) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            domain.metrics.render(&queue),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "reading the queue for /metrics failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<RestState>) -> impl IntoResponse {
    if !state.accepting.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.domain.storage.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// The API key the request presents (rule in `domain::auth::presented_key`).
pub fn presented_key(headers: &HeaderMap) -> &str {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    crate::domain::auth::presented_key(header("api-key"), header("authorization"))
}

/// `GET /v0/projects`: the JSON shape existing clients expect, answered with 201 as the hosted
/// API does (its SDK checks for 201 when validating a key).
async fn list_projects(
    State(state): State<RestState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let principal = state.domain.authenticate(presented_key(&headers)).await?;
    let projects = state.domain.list_projects(&principal).await?;
    let body: Vec<_> = projects
        .iter()
        .map(|project| {
            serde_json::json!({
                "id": project.id,
                "name": project.name,
                "onboarding_status": "complete",
                "tags": [],
            })
        })
        .collect();
    Ok((StatusCode::CREATED, Json(body)))
}

/// Unknown paths: a JSON 404 (gRPC clients read an HTTP 404 as UNIMPLEMENTED).
/// The answer to a request whose handler panicked (see `CatchPanicLayer` in `app`): a 500 with
/// the usual error body, and the panic in the log.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let message = match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => panic.downcast::<&str>().map(|text| (*text).to_owned()).unwrap_or_default(),
    };
    tracing::error!(panic = %message.escape_debug(), "a request handler panicked");
    ApiError(crate::Error::internal("handling a request", "the handler panicked")).into_response()
}

pub async fn not_found() -> impl IntoResponse {
    ApiError(crate::Error::not_found("no such route"))
}

/// The fallback of a worker (`server.role = worker`): gRPC calls get `UNIMPLEMENTED` as gRPC
/// clients read it, other requests a 404, each saying that this process serves no API.
pub async fn not_served_by_workers(request: axum::extract::Request) -> axum::response::Response {
    const REASON: &str = "this earshot process is a worker (server.role = worker): it serves \
                          /healthz, /readyz and /metrics only; send API calls to an api replica";
    let grpc = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        tonic::Status::unimplemented(REASON).into_http()
    } else {
        ApiError(crate::Error::not_found(REASON)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tower::ServiceExt;

    /// (method, path) of every operation the OpenAPI document describes.
    fn documented() -> BTreeSet<(String, String)> {
        let document: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let mut operations = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
        operations
    }

    /// (method, path) of every `.route(...)` in the router's source.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let router = &source[source.find("pub fn router(").unwrap()..];
        let router = &router[..router.find("\n}\n").unwrap()];
        router
            .split(".route(\"")
            .skip(1)
            .map(|route| {
                let (path, rest) = route.split_once('"').unwrap();
                let method = rest.trim_start_matches([',', ' ']).split('(').next().unwrap();
                (method.to_uppercase(), path.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes() {
        assert_eq!(documented(), routed());
    }

    /// Each documented operation reaches a handler of the real router (not axum's empty 404 or
    /// 405), with its path parameters filled in.
    #[tokio::test]
    async fn every_documented_operation_reaches_a_handler() {
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(chrono::Utc::now()));
        let (domain, _audio) = crate::domain::test_support::domain(clock).await;
        let state = super::RestState {
            domain: domain.into(),
            accepting: std::sync::Arc::default(),
            metrics_token: None,
        };
        let router = super::router(true, state, 1 << 20);
        for (method, path) in documented() {
            let uri = path.replace("{provider}", "bland").replace("{public_id}", "pub_missing");
            let request = axum::http::Request::builder()
                .method(method.as_str())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            assert!(
                status != 405 && !(status == 404 && body.is_empty()),
                "{method} {uri}: {status}"
            );
        }
    }

    async fn boom() -> &'static str {
        panic!("bug on this input")
    }

    #[tokio::test]
    async fn a_handler_that_panics_answers_500_with_the_error_body() {
        let router = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(super::panic_response));
        let request = axum::http::Request::get("/boom").body(axum::body::Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "internal", "{json}");
    }
}
