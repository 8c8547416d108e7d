//! HTTP listeners: the admin port (metrics, liveness, readiness).

pub mod admin;
