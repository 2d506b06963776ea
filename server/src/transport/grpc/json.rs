//! Every unary method of the earshot services in JSON, for callers without a gRPC stack (curl,
//! a shell script, a browser's fetch): the Connect protocol's unary form. `POST
//! /earshot.v1.<Service>/<Method>` with `content-type: application/json` and the request message
//! in the protobuf JSON mapping answers the response message in JSON (field names as in the
//! .proto files; either spelling accepted), or an error `{"code", "message", "details"}` with the
//! matching HTTP status, its field violations readable under `details[].debug`.
//!
//! The body is turned into the method's protobuf message by its descriptor (the one reflection
//! serves) and passed to the same tonic service as a gRPC call, so JSON callers meet the same
//! authentication, validation and errors as gRPC ones, and a new method is served in JSON as
//! soon as it is in the contract.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MethodDescriptor, SerializeOptions,
};
use tonic::Code;
use tonic_types::StatusExt;

/// The earshot services' descriptors (those of the messages they import come with them).
static POOL: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(earshot_proto::FILE_DESCRIPTOR_SET).ok());

/// Whether `headers` say the body is JSON (`application/json`, with or without parameters).
pub fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Middleware in front of the gRPC services (inside authentication): a JSON call is transcoded
/// to and from protobuf around the service; every other call passes through.
pub async fn transcode(
    State(max_message_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    if !is_json(request.headers()) {
        return next.run(request).await;
    }
    let Some(method) = method_of(request.uri().path()) else {
        return error(Code::Unimplemented, "no such method", None);
    };
    if request.method() != http::Method::POST {
        return error(Code::Unimplemented, "JSON calls are POST requests", None);
    }
    if method.is_client_streaming() || method.is_server_streaming() {
        return error(Code::Unimplemented, "a streaming method has no JSON form; use gRPC", None);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, max_message_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                Code::ResourceExhausted,
                &format!("the body is larger than {max_message_bytes} bytes"),
                None,
            );
        }
    };
    let input = if bytes.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { &bytes[..] };
    let mut deserializer = serde_json::Deserializer::from_slice(input);
    let message = match DynamicMessage::deserialize_with_options(
        method.input(),
        &mut deserializer,
        &DeserializeOptions::new(),
    )
    .and_then(|message| deserializer.end().map(|()| message))
    {
        Ok(message) => message,
        Err(cause) => {
            return error(
                Code::InvalidArgument,
                &format!("the body is not a {} in JSON: {cause}", method.input().name()),
                None,
            );
        }
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
    parts.headers.remove(header::CONTENT_LENGTH);
    // The gRPC-web layer turns away plain gRPC over HTTP/1.1, which a JSON caller may use; the
    // transcoded call is handed to the service as native gRPC, which rides on HTTP/2.
    parts.version = http::Version::HTTP_2;
    let response = next.run(Request::from_parts(parts, Body::from(frame(&message)))).await;
    answer(&method, response).await
}

/// The unary method at `path` (`/earshot.v1.Service/Method`), if the contract has it.
fn method_of(path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    POOL.as_ref()?.get_service_by_name(service)?.methods().find(|known| known.name() == method)
}

/// A message as one gRPC frame: uncompressed flag, big-endian length, the message.
fn frame(message: &DynamicMessage) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut framed = Vec::with_capacity(encoded.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(encoded.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&encoded);
    framed
}

/// The service's gRPC answer in JSON: its message, or its status as an error.
async fn answer(method: &MethodDescriptor, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    // A trailers-only answer (refused before the service ran) carries its status in the headers.
    if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
        return status_response(&status);
    }
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(cause) => return error(Code::Internal, &format!("reading the answer: {cause}"), None),
    };
    let status = collected.trailers().and_then(tonic::Status::from_header_map);
    if let Some(status) = status.filter(|status| status.code() != Code::Ok) {
        return status_response(&status);
    }
    let bytes = collected.to_bytes();
    let Some(encoded) = bytes.get(5..) else {
        return error(Code::Internal, "the service answered no message", None);
    };
    let message = match DynamicMessage::decode(method.output(), encoded) {
        Ok(message) => message,
        Err(cause) => {
            return error(Code::Internal, &format!("decoding the answer: {cause}"), None);
        }
    };
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    let mut json = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut json);
    if let Err(cause) = message.serialize_with_options(&mut serializer, &options) {
        return error(Code::Internal, &format!("encoding the answer: {cause}"), None);
    }
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// A gRPC status as a JSON error, its field violations (`google.rpc.BadRequest`) as a detail.
pub fn status_response(status: &tonic::Status) -> Response {
    let details = status.get_error_details();
    let violations = details.bad_request().map(|bad_request| {
        let violations: Vec<serde_json::Value> = bad_request
            .field_violations
            .iter()
            .map(|violation| {
                serde_json::json!({
                    "field": violation.field,
                    "description": violation.description,
                })
            })
            .collect();
        // The detail as the status carries it (an `Any` in an encoded `google.rpc.Status`).
        let encoded = tonic_types::pb::Status::decode(status.details())
            .ok()
            .and_then(|rpc| {
                rpc.details.into_iter().find(|any| any.type_url.ends_with("google.rpc.BadRequest"))
            })
            .map(|any| any.value)
            .unwrap_or_default();
        serde_json::json!({
            "type": "google.rpc.BadRequest",
            "value": data_encoding::BASE64_NOPAD.encode(&encoded),
            "debug": { "field_violations": violations },
        })
    });
    error(status.code(), status.message(), violations)
}

fn error(code: Code, message: &str, detail: Option<serde_json::Value>) -> Response {
    let mut body = serde_json::json!({ "code": code_name(code), "message": message });
    if let Some(detail) = detail {
        body["details"] = serde_json::json!([detail]);
    }
    (http_status(code), axum::Json(body)).into_response()
}

/// The Connect protocol's name of a code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The Connect protocol's HTTP status of a code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_method_is_found_by_its_path() {
        for service in super::super::SERVICE_NAMES {
            let descriptor = POOL.as_ref().unwrap().get_service_by_name(service).unwrap();
            for method in descriptor.methods() {
                let found = method_of(&format!("/{service}/{}", method.name())).unwrap();
                assert_eq!(found.full_name(), method.full_name());
            }
        }
        assert!(method_of("/earshot.v1.MonitorService/NoSuchMethod").is_none());
        assert!(method_of("/earshot.v1.NoService/CreateCheck").is_none());
        assert!(method_of("/v0/projects").is_none());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("application/grpc"));
        assert!(!with("application/grpc-web+proto"));
        assert!(!is_json(&http::HeaderMap::new()));
    }

    #[tokio::test]
    async fn field_violations_are_named_in_the_json_error() {
        let error = crate::error::Error::InvalidArgument(vec![
            crate::error::FieldViolation::new("url", "required"),
            crate::error::FieldViolation::new("event_types[0]", "unknown"),
        ]);
        let response = status_response(&super::super::status::to_status(&error));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "invalid_argument");
        assert_eq!(json["details"][0]["type"], "google.rpc.BadRequest");
        let value = json["details"][0]["value"].as_str().unwrap();
        let decoded = data_encoding::BASE64_NOPAD.decode(value.as_bytes()).unwrap();
        assert_eq!(
            tonic_types::pb::BadRequest::decode(&decoded[..]).unwrap().field_violations.len(),
            2
        );
        assert_eq!(
            json["details"][0]["debug"]["field_violations"],
            serde_json::json!([
                {"field": "url", "description": "required"},
                {"field": "event_types[0]", "description": "unknown"},
            ])
        );
    }

    #[test]
    fn codes_map_to_their_http_statuses() {
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::Internal), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(code_name(Code::Cancelled), "canceled");
    }
}
