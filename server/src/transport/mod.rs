//! gRPC and REST adapters, and the console's pages: decode, call one domain function, encode.

pub mod console;
pub mod grpc;
pub mod rest;
pub mod serve;
