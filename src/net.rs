//! Socket-level pieces the gRPC and HTTP listeners share: accepting with a back-off on errors,
//! and a deadline for a new connection's first byte (hyper's own timers start only after it).

use std::{net::SocketAddr, time::Duration};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a new connection may stay silent; the HTTP front ends also give a client this long
/// to finish its request headers.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);

/// The next connection on `listener`, with `TCP_NODELAY` set. Accept errors (EMFILE and friends)
/// are logged and retried after a short back-off instead of spinning; the listener stays open.
pub async fn accept(listener: &TcpListener, what: &'static str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                return (tcp, peer);
            }
            Err(e) => {
                tracing::warn!(listener = what, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// True once the client has sent at least one byte within `timeout`; false when it stays silent
/// that long, closes, fails, or `stop` is cancelled first (a connection that has sent nothing has
/// nothing in flight). `peek`, not `readable`: a fresh socket may report readiness before data.
pub async fn first_byte(tcp: &TcpStream, timeout: Duration, stop: &CancellationToken) -> bool {
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout(timeout, tcp.peek(&mut first)) => {
            matches!(peeked, Ok(Ok(n)) if n > 0)
        }
        () = stop.cancelled() => false,
    }
}
