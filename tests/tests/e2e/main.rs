#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

//! earshot end to end: real servers on loopback ports with real gRPC, gRPC-web and HTTP clients.
//! In this process (`earshot_e2e::in_process::TestServer`): the APIs, webhook admission and every
//! provider's flow (`grpc_api`, `ingest_api`, `webhook_admission`, `webhook_providers`,
//! `webhooks`), and the services' JSON form (`json_api`). As `earshot` processes built from the workspace
//! (`earshot_e2e::process::ServerProcess`): the binary's commands, restarts and key rotation
//! (`process`), exactly-once after kill -9 (`crash`), replicas sharing PostgreSQL and the
//! audio store (`replicas`), recognition in worker children and a Twilio
//! recording transcribed (`recognition`), the Rust SDK (`sdk_rust`), deletion and export
//! (`lifecycle`), and outbound events to loopback receivers (`events`).

mod console;
mod crash;
mod events;
mod grpc_api;
mod hostile;
mod ingest_api;
mod json_api;
mod lifecycle;
mod limits;
mod metrics;
mod monitors;
mod process;
mod recognition;
mod replicas;
mod sdk_rust;
mod webhook_admission;
mod webhook_providers;
mod webhooks;
