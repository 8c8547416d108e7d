//! gRPC front end: ext_authz `Check`, `grpc.health.v1` (NOT_SERVING until every issuer has keys,
//! and again while draining) and server reflection built from the protos in `proto/`.

pub mod ext_authz;
pub mod incoming;

pub use ext_authz::{AuthorizationService, ExtAuthz};

/// FileDescriptorSet of `envoy/service/auth/v3/external_auth.proto` and its imports (build.rs).
pub const EXT_AUTHZ_DESCRIPTOR: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ext_authz_descriptor.bin"));

/// The fully-qualified service name, as registered for health checks.
pub const EXT_AUTHZ_SERVICE: &str = <AuthorizationService as tonic::server::NamedService>::NAME;
