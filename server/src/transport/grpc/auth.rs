//! API keys on gRPC calls: checked from the headers before the message is read, so an
//! anonymous call costs no body read or decode (rule for which header in
//! `domain::auth::presented_key`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::status::to_status;
use crate::domain::Domain;
use crate::error::Error;
use crate::model::auth::Principal;

/// Services that answer without a key: health checks and reflection.
const OPEN_SERVICES: [&str; 2] = ["/grpc.health.", "/grpc.reflection."];

/// Middleware in front of the gRPC services: authenticates the call from its headers and hands
/// the principal on in the request's extensions, or answers the error as a trailers-only gRPC
/// response (in the caller's content type, so gRPC-web clients read it too) without reading
/// the body.
pub async fn authenticate_first(
    State(domain): State<Domain>,
    mut request: Request,
    next: Next,
) -> Response {
    let open = OPEN_SERVICES.iter().any(|prefix| request.uri().path().starts_with(prefix));
    if open {
        return next.run(request).await;
    }
    // Owned, so the request (whose body is not Sync) is not borrowed across the await.
    let key = crate::transport::rest::presented_key(request.headers()).to_owned();
    match domain.authenticate(&key).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            let mut response = next.run(request).await;
            super::status::blame_undecodable_messages_on_the_caller(&mut response);
            response
        }
        Err(error) if super::json::is_json(request.headers()) => {
            super::json::status_response(&to_status(&error))
        }
        Err(error) => {
            let content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
            let mut response = to_status(&error).into_http::<Body>().into_response();
            if let Some(content_type) = content_type {
                response.headers_mut().insert(http::header::CONTENT_TYPE, content_type);
            }
            response
        }
    }
}

/// The caller of a service method: the principal `authenticate_first` put in the request (the
/// services are only reachable behind it, see `routes`).
pub fn authenticate<T>(request: &tonic::Request<T>) -> Result<Principal, Error> {
    request.extensions().get::<Principal>().cloned().ok_or_else(|| {
        Error::internal("authenticating a call", "the authentication middleware did not run")
    })
}
