//! gRPC and REST adapters: decode, call one domain function, encode.

pub mod grpc;
pub mod rest;
pub mod serve;
