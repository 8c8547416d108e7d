//! Builds the running service from a validated configuration: key stores and their refresh
//! loops, the authorizer, the gRPC and admin listeners, readiness, and graceful drain.

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

use crate::{
    authz::Authorizer,
    config::{Config, ConfigError},
    grpc::{self, ExtAuthz},
    http::{
        admin,
        forward_auth::{self, ForwardAuthConfig},
        proxy::{self, ProxyConfig},
    },
    metrics::Metrics,
    reload::{self, ConfigLoader, Issuers},
};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the HTTP client for issuer {issuer}: {source}")]
    Client {
        issuer: String,
        source: reqwest::Error,
    },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on unix socket {path}: {source}")]
    BindUds {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// State shared by every front end.
pub struct Shared {
    authorizer: ArcSwap<Authorizer>,
    pub metrics: Arc<Metrics>,
    draining: AtomicBool,
}

impl Shared {
    /// The current authorizer (a lock-free atomic load). Held for a whole check, so a reload
    /// never changes the rules under a request in flight.
    pub fn authorizer(&self) -> Arc<Authorizer> {
        self.authorizer.load_full()
    }

    /// Swaps in a new authorizer (hot reload).
    pub fn install(&self, authorizer: Authorizer) {
        self.authorizer.store(Arc::new(authorizer));
    }

    /// True once a shutdown signal arrived.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Ready to take traffic: every issuer has keys and the process is not draining.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.authorizer.load().is_ready()
    }
}

/// A configured, bound, not yet running service.
pub struct App {
    shared: Arc<Shared>,
    grpc: TcpListener,
    admin: TcpListener,
    #[cfg(unix)]
    grpc_uds: Option<(tokio::net::UnixListener, PathBuf)>,
    forward_auth: Option<(TcpListener, ForwardAuthConfig)>,
    proxy: Option<(TcpListener, ProxyConfig)>,
    drain_timeout: Duration,
    issuers: Arc<Issuers>,
    reload: Option<(ConfigLoader, Option<PathBuf>)>,
}

impl App {
    /// Validates `config` and binds the listeners (nothing is bound if the config is invalid).
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new());
        let issuers = Arc::new(Issuers::new(metrics.clone()));
        let (authorizer, keys) = issuers.build(&config)?;
        issuers.commit(keys);
        reload::started_with(&issuers, &config);
        metrics.config_reload(true);
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { what, addr, source })
        };
        let grpc = bind("gRPC", config.listen.grpc).await?;
        let admin = bind("admin", config.listen.admin).await?;
        #[cfg(unix)]
        let grpc_uds = match &config.listen.grpc_uds {
            Some(path) => Some((bind_uds(path)?, path.clone())),
            None => None,
        };
        let forward_auth = match &config.forward_auth {
            Some(f) => Some((bind("forward-auth", f.listen).await?, f.clone())),
            None => None,
        };
        let proxy = match &config.proxy {
            Some(p) => Some((bind("proxy", p.listen).await?, p.clone())),
            None => None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                authorizer: ArcSwap::from_pointee(authorizer),
                metrics,
                draining: AtomicBool::new(false),
            }),
            issuers,
            reload: None,
            grpc,
            admin,
            #[cfg(unix)]
            grpc_uds,
            forward_auth,
            proxy,
            drain_timeout: config.drain_timeout,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The forward-auth listener's address, when configured.
    pub fn forward_auth_addr(&self) -> Option<SocketAddr> {
        self.forward_auth
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
    }

    /// The reverse proxy's listen address, when configured.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Enables hot reload: `loader` is called on SIGHUP and whenever `file` changes.
    pub fn with_reload(mut self, loader: ConfigLoader, file: Option<PathBuf>) -> Self {
        self.reload = Some((loader, file));
        self
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes, then drains: readiness drops at once, in-flight checks
    /// finish, and the call returns within the drain timeout.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let stop = CancellationToken::new();
        let background = CancellationToken::new();
        self.issuers.start(background.clone());
        let mut http_tasks = Vec::new();
        if let Some((loader, file)) = self.reload.take() {
            tokio::spawn(reload::watch(
                loader,
                file,
                self.shared.clone(),
                self.issuers.clone(),
                background.clone(),
            ));
        }

        let (reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(track_readiness(
            self.shared.clone(),
            reporter,
            background.clone(),
        ));

        let grpc_stop = stop.clone();
        let grpc = grpc_server(&self.shared, health.clone()).serve_with_incoming_shutdown(
            grpc::incoming::first_byte_within(
                self.grpc,
                crate::net::FIRST_BYTE_TIMEOUT,
                stop.clone(),
            ),
            async move { grpc_stop.cancelled().await },
        );
        #[cfg(unix)]
        if let Some((listener, path)) = self.grpc_uds.take() {
            let uds_stop = stop.clone();
            let server = grpc_server(&self.shared, health).serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async move { uds_stop.cancelled().await },
            );
            http_tasks.push(tokio::spawn(async move {
                let result = server.await;
                let _ = std::fs::remove_file(&path);
                result.map_err(std::io::Error::other)
            }));
        }
        // The admin port outlives the drain, so /readyz can answer 503 "draining" meanwhile.
        let admin_stop = CancellationToken::new();
        let admin_stop_signal = admin_stop.clone();
        let admin = admin::serve(self.admin, self.shared.clone(), async move {
            admin_stop_signal.cancelled().await
        });
        let grpc_task = tokio::spawn(grpc);
        let admin_task = tokio::spawn(admin);
        if let Some((listener, config)) = self.forward_auth {
            let stop = stop.clone();
            http_tasks.push(tokio::spawn(forward_auth::serve(
                listener,
                config,
                self.shared.clone(),
                async move { stop.cancelled().await },
            )));
        }
        if let Some((listener, config)) = self.proxy {
            let stop = stop.clone();
            http_tasks.push(tokio::spawn(proxy::serve(
                listener,
                config,
                self.shared.clone(),
                async move { stop.cancelled().await },
            )));
        }

        shutdown.await;
        tracing::info!(drain_timeout = ?self.drain_timeout, "shutting down: draining in-flight checks");
        self.shared.draining.store(true, Ordering::Relaxed);
        stop.cancel();
        let drained = tokio::time::timeout(self.drain_timeout, async {
            for task in http_tasks {
                let _ = task.await;
            }
            grpc_task.await
        })
        .await;
        admin_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), admin_task).await;
        background.cancel();
        match drained {
            Ok(Ok(result)) => result.map_err(StartError::from),
            Ok(Err(_join)) => Ok(()),
            Err(_) => {
                tracing::warn!("drain timeout reached; exiting with checks still in flight");
                Ok(())
            }
        }
    }
}

/// Binds a Unix domain socket, replacing a stale socket file left by an earlier run.
#[cfg(unix)]
fn bind_uds(path: &std::path::Path) -> Result<tokio::net::UnixListener, StartError> {
    use std::os::unix::fs::FileTypeExt as _;
    let err = |source| StartError::BindUds {
        path: path.to_owned(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).map_err(err)?;
        }
    }
    tokio::net::UnixListener::bind(path).map_err(err)
}

/// The gRPC services: ext_authz Check, health, reflection (v1 and v1alpha).
fn grpc_server(
    shared: &Arc<Shared>,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> tonic::transport::server::Router {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(grpc::EXT_AUTHZ_DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("embedded descriptor sets are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(grpc::EXT_AUTHZ_DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("embedded descriptor sets are valid");
    // A CheckRequest is headers and attributes (Envoy sends no body unless with_request_body is
    // set): 1 MiB is ample, and bounds what one stream can make us buffer.
    let ext_authz = grpc::AuthorizationService::new(ExtAuthz::new(shared.clone()), 1 << 20);
    tonic::transport::Server::builder()
        // A check never needs this long (a key fetch waits at most `max_wait`); a stuck
        // request is cut rather than held forever.
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(1024))
        .add_service(ext_authz)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
}

/// Publishes readiness to gRPC health (overall "" and the ext_authz service).
async fn track_readiness(
    shared: Arc<Shared>,
    reporter: tonic_health::server::HealthReporter,
    stop: CancellationToken,
) {
    let mut last = None;
    loop {
        let ready = shared.is_ready();
        if last != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for service in ["", grpc::EXT_AUTHZ_SERVICE] {
                reporter.set_service_status(service, status).await;
            }
            if ready {
                tracing::info!("ready: every issuer has usable keys");
            }
            last = Some(ready);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.cancelled() => {
                for service in ["", grpc::EXT_AUTHZ_SERVICE] {
                    reporter.set_service_status(service, ServingStatus::NotServing).await;
                }
                return;
            }
        }
    }
}
