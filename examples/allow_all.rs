//! The do-nothing ext_authz server: answers every `Check` with OK and verifies nothing. It is the
//! benchmark baseline — the ceiling of the ext_authz architecture — that jwt-authz is measured
//! against (`scripts/bench-grpc`, `scripts/bench-envoy`). Never deploy it.
//!
//! ```text
//! cargo run --release --example allow_all -- 127.0.0.1:9292
//! ```
//!
//! Its gRPC server and runtime are set up like jwt-authz's (multi-thread runtime, TCP_NODELAY,
//! 1024 concurrent streams), so the difference between the two is jwt-authz's own work.

use std::net::SocketAddr;

use envoy_types::{
    ext_authz::v3::pb::{
        Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpResponse,
        OkHttpResponse,
    },
    pb::google::rpc,
};
use tonic::{Request, Response, Status};

struct AllowAll;

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        // The request is decoded (tonic does that before we get here) and dropped unread.
        drop(request);
        Ok(Response::new(CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..Default::default()
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:9292")
        .parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("allow_all: listening on {}", listener.local_addr()?);
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .max_concurrent_streams(Some(1024))
            .add_service(AuthorizationServer::new(AllowAll))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await?;
        Ok(())
    })
}
