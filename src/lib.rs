//! jwt-authz: an OAuth 2.0 resource-server adapter. It validates JWT access tokens (RFC 9068)
//! locally, against the issuer's JWKS found by discovery and kept current in the background, and
//! answers Envoy's ext_authz `Check` (and the admin/HTTP front ends) with allow or a standard denial.
//!
//! The crate never logs a token, never allows on an unknown or failed state, and never awaits the
//! network on the hot path for a key it already holds.

#![forbid(unsafe_code)]

pub mod app;
pub mod authz;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dev;
pub mod explain;
pub mod grpc;
pub mod http;
pub mod jwks;
pub mod metrics;
pub mod net;
pub mod reload;
pub mod telemetry;
