#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

//! Integration tests of the earshot server: the real server on a loopback port with real gRPC
//! and gRPC-web clients (`grpc_api`), and the `earshot` binary as a process (`process`).

mod grpc_api;
mod ingest_api;
mod process;
mod support;
mod webhook_admission;
mod webhook_providers;
mod webhooks;
