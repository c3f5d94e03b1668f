//! The TCP acceptor: poem's, with Nagle's algorithm turned off on every socket.
//!
//! The gateway batches its own writes (one flush per batch of frames), so a small
//! frame written right after another one, such as the message a sender receives just
//! after its `ack`, must go out at once instead of waiting for the client's delayed
//! ACK (up to 40 ms on Linux).

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpStream;

pub struct NoDelayAcceptor(pub TcpAcceptor);

impl Acceptor for NoDelayAcceptor {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        // A socket that refuses the option still works, only with Nagle's delays.
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        Ok((io, local, remote, scheme))
    }
}

#[cfg(test)]
mod tests {
    use poem::listener::{Listener, TcpListener};

    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let inner = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind");
        let addr = inner.local_addr()[0]
            .as_socket_addr()
            .copied()
            .expect("address");
        let mut acceptor = NoDelayAcceptor(inner);
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (io, ..) = acceptor.accept().await.expect("accept");
        assert!(io.nodelay().expect("read TCP_NODELAY"));
    }
}
