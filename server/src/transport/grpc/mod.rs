//! The gRPC services, each behind the gRPC-web layer, with health and reflection, and every
//! unary method in JSON (`json`).

pub mod auth;
pub mod convert;
pub mod datapoints;
pub mod events;
pub mod ingest;
pub mod integrations;
pub mod json;
pub mod monitors;
pub mod projects;
pub mod status;

use earshot_proto::v1::datapoint_service_server::DatapointServiceServer;
use earshot_proto::v1::event_endpoint_service_server::EventEndpointServiceServer;
use earshot_proto::v1::ingest_service_server::IngestServiceServer;
use earshot_proto::v1::integration_service_server::IntegrationServiceServer;
use earshot_proto::v1::monitor_service_server::MonitorServiceServer;
use earshot_proto::v1::project_service_server::ProjectServiceServer;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower::Layer;

use crate::domain::Domain;

/// Names of the served earshot services, for health reporting.
pub const SERVICE_NAMES: [&str; 6] = [
    "earshot.v1.ProjectService",
    "earshot.v1.IntegrationService",
    "earshot.v1.IngestService",
    "earshot.v1.DatapointService",
    "earshot.v1.MonitorService",
    "earshot.v1.EventEndpointService",
];

/// Every gRPC service as routes of one axum router. Returns the health reporter so the caller
/// can mark services not serving during shutdown.
pub async fn routes(
    domain: &Domain,
    max_message_bytes: usize,
) -> Result<
    (axum::Router, tonic_health::server::HealthReporter),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let web = GrpcWebLayer::new();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in SERVICE_NAMES {
        health_reporter.set_service_status(name, tonic_health::ServingStatus::Serving).await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(earshot_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(earshot_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let routes = Routes::new(
        web.layer(
            ProjectServiceServer::new(projects::ProjectApi { domain: domain.clone() })
                .max_decoding_message_size(max_message_bytes),
        ),
    )
    .add_service(
        web.layer(
            IntegrationServiceServer::new(integrations::IntegrationApi { domain: domain.clone() })
                .max_decoding_message_size(max_message_bytes),
        ),
    )
    .add_service(
        web.layer(
            IngestServiceServer::new(ingest::IngestApi { domain: domain.clone() })
                .max_decoding_message_size(max_message_bytes),
        ),
    )
    .add_service(
        web.layer(
            DatapointServiceServer::new(datapoints::DatapointApi { domain: domain.clone() })
                .max_decoding_message_size(max_message_bytes),
        ),
    )
    .add_service(
        web.layer(
            MonitorServiceServer::new(monitors::MonitorApi { domain: domain.clone() })
                .max_decoding_message_size(max_message_bytes),
        ),
    )
    .add_service(
        web.layer(
            EventEndpointServiceServer::new(events::EventEndpointApi { domain: domain.clone() })
                .max_decoding_message_size(max_message_bytes),
        ),
    )
    .add_service(web.layer(health_service))
    .add_service(web.layer(reflection_v1))
    .add_service(web.layer(reflection_v1alpha));
    // Every call is authenticated from its headers before its message is read; the services
    // take the principal this puts in the request. A JSON call is transcoded inside that.
    let router = routes
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(max_message_bytes, json::transcode))
        .layer(axum::middleware::from_fn_with_state(domain.clone(), auth::authenticate_first));
    Ok((router, health_reporter))
}
