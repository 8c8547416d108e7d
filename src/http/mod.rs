//! HTTP listeners: the admin port (metrics, liveness, readiness), the forward-auth endpoint and
//! the reverse proxy. The last two are thin adapters over the same authorizer as gRPC.

pub mod admin;
pub mod forward_auth;
pub mod proxy;
mod server;
