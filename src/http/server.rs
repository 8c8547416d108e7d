//! The accept loop the HTTP front ends share: HTTP/1.1 and h2c (prior knowledge) on one port,
//! HTTP upgrades, a header-read timeout against slow clients, and a graceful drain. It knows
//! nothing about authorization; a front end hands it a function from request to response.

use std::{convert::Infallible, future::Future, net::SocketAddr, time::Duration};

use axum::body::Body;
use http::{Request, Response};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A client must send its first byte, and then its request headers, within this long (slowloris).
const HEADER_READ_TIMEOUT: Duration = crate::net::FIRST_BYTE_TIMEOUT;
/// h2 PING interval on otherwise idle connections; a peer that stops answering is dropped.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);

/// Serves `handle` on `listener` until `shutdown` completes, then stops accepting and waits for
/// open connections to finish their in-flight requests (the caller bounds that wait).
pub(super) async fn serve<H, F>(
    listener: TcpListener,
    what: &'static str,
    handle: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE);
    let graceful = GracefulShutdown::new();
    // Ends the wait for a connection's first byte when the server shuts down.
    let stopping = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = crate::net::accept(&listener, what) => accepted,
            _ = &mut shutdown => break,
        };
        let handle = handle.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            // hyper's header-read timer starts with the first byte (the auto builder reads that
            // to tell HTTP/1.1 from h2c); a client that connects and sends nothing is dropped here.
            if !crate::net::first_byte(&tcp, HEADER_READ_TIMEOUT, &stopping).await {
                return;
            }
            let service = service_fn(move |req| {
                let response = handle(req, peer);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(listener = what, %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    stopping.cancel();
    graceful.shutdown().await;
    Ok(())
}

/// A JSON error answered by a front end itself (not a denial, which carries a challenge).
pub(super) fn json_error(
    status: http::StatusCode,
    error: &str,
    description: &str,
) -> Response<Body> {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server answering "ok", running until `shutdown` completes.
    async fn start_until(
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = |_req, _peer| async { Response::new(Body::from("ok")) };
        (
            addr,
            tokio::spawn(serve(listener, "test", handle, shutdown)),
        )
    }

    async fn start() -> SocketAddr {
        start_until(std::future::pending()).await.0
    }

    /// A client that connects and never sends a byte is disconnected after HEADER_READ_TIMEOUT.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_dropped() {
        let addr = start().await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(HEADER_READ_TIMEOUT * 4, silent.read_to_end(&mut rest))
            .await
            .expect("the server kept a silent connection open");
        assert!(read.is_ok() || rest.is_empty(), "{read:?}");
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        assert!(
            started.elapsed() >= HEADER_READ_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    /// Shutting down does not wait for a client that connected and sent nothing.
    #[tokio::test(start_paused = true)]
    async fn shutdown_does_not_wait_for_a_silent_client() {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, server) = start_until(async {
            let _ = stopped.await;
        })
        .await;
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.send(()).unwrap();
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("shutdown waited for a client that never sent a byte")
            .unwrap()
            .unwrap();
        assert!(started.elapsed() < HEADER_READ_TIMEOUT);
    }

    /// A client that never finishes its request headers is disconnected after
    /// HEADER_READ_TIMEOUT (virtual time: the runtime is paused and advances when idle).
    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_finishes_its_headers_is_dropped() {
        let addr = start().await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(HEADER_READ_TIMEOUT * 4, slow.read_to_end(&mut rest))
            .await
            .expect("the server kept a connection with unfinished headers open");
        // hyper answers 408 or just closes; either way the connection ends, and not before
        // the timeout.
        assert!(read.is_ok() || rest.is_empty(), "{read:?}");
        assert!(
            started.elapsed() >= HEADER_READ_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        let text = String::from_utf8_lossy(&rest);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_request_is_answered() {
        let addr = start().await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut response))
            .await
            .expect("no answer")
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("ok"), "{response}");
    }
}
