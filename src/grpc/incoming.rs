//! Accepted TCP connections for the gRPC server, handed to tonic only once the client has sent
//! its first byte. tonic (hyper's HTTP/2 server) waits for a client's connection preface without
//! a deadline, so a client that connects and stays silent would hold a socket for ever; here it
//! is closed after [`crate::net::FIRST_BYTE_TIMEOUT`], as the HTTP front ends do (`http::server`).

use std::{io, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Accepts on `listener` until `stop` is cancelled; yields each connection whose client has sent
/// something within `timeout` ([`crate::net::first_byte`]).
pub fn first_byte_within(
    listener: TcpListener,
    timeout: Duration,
    stop: CancellationToken,
) -> ReceiverStream<io::Result<TcpStream>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, _peer) = tokio::select! {
                accepted = crate::net::accept(&listener, "grpc") => accepted,
                () = stop.cancelled() => return,
                () = tx.closed() => return,
            };
            let (tx, stop) = (tx.clone(), stop.clone());
            tokio::spawn(async move {
                if crate::net::first_byte(&tcp, timeout, &stop).await {
                    let _ = tx.send(Ok(tcp)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    use super::*;
    use crate::net::FIRST_BYTE_TIMEOUT;

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_closed_and_a_talking_one_is_yielded() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming =
            first_byte_within(listener, FIRST_BYTE_TIMEOUT, CancellationToken::new());

        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut talking = TcpStream::connect(addr).await.unwrap();
        talking.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let yielded = tokio::time::timeout(Duration::from_secs(1), incoming.next())
            .await
            .expect("the talking client is yielded at once")
            .expect("stream open")
            .expect("accepted");
        assert_eq!(yielded.peer_addr().unwrap(), talking.local_addr().unwrap());

        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(FIRST_BYTE_TIMEOUT * 4, silent.read_to_end(&mut rest))
            .await
            .expect("a silent client was kept open");
        assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
        assert!(
            started.elapsed() >= FIRST_BYTE_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        // It never reached the server.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), incoming.next())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn stopping_ends_the_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stop = CancellationToken::new();
        let mut incoming = first_byte_within(listener, FIRST_BYTE_TIMEOUT, stop.clone());
        stop.cancel();
        let end = tokio::time::timeout(Duration::from_secs(5), incoming.next())
            .await
            .expect("the stream ends when stopped");
        assert!(end.is_none());
    }
}
