//! The TCP acceptor: Nagle's algorithm off on every socket, and the WebSocket upgrades
//! taken off poem's path.
//!
//! - Nagle: the gateway batches its own writes (one flush per batch of frames), so a
//!   small frame written right after another one, such as the message a sender
//!   receives just after its `ack`, must go out at once instead of waiting for the
//!   client's delayed ACK (up to 40 ms on Linux).
//! - A connection whose first bytes are `GET /ws` followed by `?` or a space is handed
//!   to [`crate::ws::direct`], which does the handshake itself and serves the socket on
//!   this `TcpStream`. Below poem, hyper would hand the upgraded socket over as its
//!   boxed stream on poem's boxed and split one: two dynamic calls and a lock on every
//!   write. Every other connection goes to poem, with the bytes read so far in front
//!   (an upgrade on a kept-alive connection still works there, only slower).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a direct WebSocket connection starts with.
const WS_PREFIX: &[u8] = b"GET /ws";
/// The first read: a whole upgrade request head fits in it most of the time.
const FIRST_READ_BYTES: usize = 1024;
/// How long the accept loop rests after a failed `accept` (out of file descriptors,
/// say) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves a direct upgrade: the connection, the bytes read from it so far (the start
/// of its request head), the peer.
pub type DirectUpgrade =
    Arc<dyn Fn(TcpStream, Vec<u8>, SocketAddr) -> BoxFuture<'static, ()> + Send + Sync>;

/// A listener on `addr` that holds up to `backlog` connections waiting to be accepted.
/// `TcpListener::bind` leaves std's backlog of 128: a reconnect storm of a few hundred
/// sockets overflows it, and the kernel drops their SYNs until the clients retry a
/// second later.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std's `bind` does: a restarted gateway listens while its old connections
    // linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// poem's side of the acceptor: the connections that are not direct upgrades.
pub struct GatewayAcceptor {
    local: LocalAddr,
    incoming: mpsc::Receiver<(Prefixed, SocketAddr)>,
    accept_loop: JoinHandle<()>,
}

impl GatewayAcceptor {
    /// Starts accepting on `listener`. The loop stops (and the listener closes) when
    /// poem drops the acceptor at shutdown.
    pub fn start(listener: TcpListener, direct: DirectUpgrade) -> std::io::Result<Self> {
        let local = LocalAddr(listener.local_addr()?.into());
        let (tx, incoming) = mpsc::channel(256);
        let accept_loop = tokio::spawn(accept_loop(listener, tx, direct));
        Ok(Self {
            local,
            incoming,
            accept_loop,
        })
    }
}

impl Drop for GatewayAcceptor {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl Acceptor for GatewayAcceptor {
    type Io = Prefixed;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> std::io::Result<(Prefixed, LocalAddr, RemoteAddr, Scheme)> {
        match self.incoming.recv().await {
            Some((io, peer)) => Ok((
                io,
                self.local.clone(),
                RemoteAddr(peer.into()),
                Scheme::HTTP,
            )),
            // The loop holds a sender for as long as this acceptor exists.
            None => std::future::pending().await,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    to_poem: mpsc::Sender<(Prefixed, SocketAddr)>,
    direct: DirectUpgrade,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // A socket that refuses the option still works, only with Nagle's delays.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        tokio::spawn(route(tcp, peer, to_poem.clone(), direct.clone()));
    }
}

/// Reads until the first bytes say whether this is a direct upgrade, then hands the
/// connection on. A client that sends nothing waits here as it would in hyper.
async fn route(
    mut tcp: TcpStream,
    peer: SocketAddr,
    to_poem: mpsc::Sender<(Prefixed, SocketAddr)>,
    direct: DirectUpgrade,
) {
    let mut read = Vec::with_capacity(FIRST_READ_BYTES);
    let is_direct = loop {
        match is_direct_upgrade(&read) {
            Some(is_direct) => break is_direct,
            None => match tcp.read_buf(&mut read).await {
                Ok(0) | Err(_) => break false,
                Ok(_) => {}
            },
        }
    };
    if is_direct {
        direct(tcp, read, peer).await;
    } else {
        let _ = to_poem.send((Prefixed::new(read, tcp), peer)).await;
    }
}

/// `Some(true)`: a request line `GET /ws?...` or `GET /ws ...`; `Some(false)`:
/// anything else; `None`: too few bytes to tell.
fn is_direct_upgrade(read: &[u8]) -> Option<bool> {
    let n = read.len().min(WS_PREFIX.len());
    if read[..n] != WS_PREFIX[..n] {
        return Some(false);
    }
    match read.get(WS_PREFIX.len()) {
        Some(b'?' | b' ') => Some(true),
        Some(_) => Some(false),
        None => None,
    }
}

/// A connection with the bytes already read from it in front.
pub struct Prefixed {
    read: Vec<u8>,
    consumed: usize,
    tcp: TcpStream,
}

impl Prefixed {
    fn new(read: Vec<u8>, tcp: TcpStream) -> Self {
        Self {
            read,
            consumed: 0,
            tcp,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.consumed < this.read.len() {
            let rest = &this.read[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.read.len() {
                this.read = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[test]
    fn only_a_ws_request_line_is_a_direct_upgrade() {
        for (bytes, expected) in [
            (&b""[..], None),
            (b"G", None),
            (b"GET /w", None),
            (b"GET /ws", None),
            (b"GET /ws?token=x HTTP/1.1\r\n", Some(true)),
            (b"GET /ws HTTP/1.1\r\n", Some(true)),
            (b"GET /wsx HTTP/1.1\r\n", Some(false)),
            (b"GET /ws/ HTTP/1.1\r\n", Some(false)),
            (b"GET /api/rooms HTTP/1.1\r\n", Some(false)),
            (b"POST /ws HTTP/1.1\r\n", Some(false)),
            (b"get /ws HTTP/1.1\r\n", Some(false)),
            (b"PRI * HTTP/2.0\r\n", Some(false)),
            (b"\x16\x03\x01", Some(false)),
        ] {
            assert_eq!(
                is_direct_upgrade(bytes),
                expected,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[tokio::test]
    async fn upgrades_go_direct_and_the_rest_to_poem_with_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (direct_tx, mut direct_rx) = mpsc::unbounded_channel();
        let direct: DirectUpgrade = Arc::new(move |tcp: TcpStream, read, _peer| {
            let direct_tx = direct_tx.clone();
            Box::pin(async move {
                let _ = direct_tx.send((tcp, read));
            })
        });
        let mut acceptor = GatewayAcceptor::start(listener, direct).expect("start");
        assert_eq!(acceptor.local_addr()[0].as_socket_addr(), Some(&addr));

        let mut upgrade = TcpStream::connect(addr).await.expect("connect");
        // The request line arrives in pieces: the router waits for enough of it.
        upgrade.write_all(b"GET /w").await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        upgrade
            .write_all(b"s?token=t HTTP/1.1\r\n")
            .await
            .expect("write");
        let (tcp, read) = direct_rx.recv().await.expect("a direct upgrade");
        assert!(read.starts_with(b"GET /ws?token=t"));
        assert!(tcp.nodelay().expect("read TCP_NODELAY"));

        let mut plain = TcpStream::connect(addr).await.expect("connect");
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let (mut io, _, remote, _) = acceptor.accept().await.expect("accept");
        assert_eq!(
            remote.as_socket_addr(),
            Some(&plain.local_addr().expect("address"))
        );
        assert!(io.tcp.nodelay().expect("read TCP_NODELAY"));
        let mut head = [0u8; 25];
        io.read_exact(&mut head).await.expect("read");
        assert_eq!(&head, b"GET /healthz HTTP/1.1\r\n\r\n");
        assert!(direct_rx.try_recv().is_err());

        // Dropping the acceptor closes the listener.
        drop(acceptor);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    /// How many connections complete, one after another, before one waits longer
    /// than a retransmitted SYN would (nothing accepts them).
    async fn connects_before_a_stall(listener: &TcpListener, tries: usize) -> usize {
        let addr = listener.local_addr().expect("address");
        let mut held = Vec::new();
        while held.len() < tries {
            match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => held.push(tcp),
                _ => break,
            }
        }
        held.len()
    }

    #[tokio::test]
    async fn the_listener_queues_as_many_connections_as_its_backlog() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        // Linux queues one more than the backlog, then drops SYNs.
        let small = bind(addr, 2).expect("bind");
        let queued = connects_before_a_stall(&small, 10).await;
        assert!(
            (2..10).contains(&queued),
            "{queued} queued with a backlog of 2"
        );
        let large = bind(addr, 64).expect("bind");
        assert_eq!(connects_before_a_stall(&large, 40).await, 40);
    }

    #[tokio::test]
    async fn the_bytes_read_ahead_come_first_then_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (tcp, _) = listener.accept().await.expect("accept");
        client.write_all(b" world").await.expect("write");
        let mut io = Prefixed::new(b"hello".to_vec(), tcp);
        let mut first = [0u8; 3];
        io.read_exact(&mut first).await.expect("read");
        assert_eq!(&first, b"hel");
        let mut rest = [0u8; 8];
        io.read_exact(&mut rest).await.expect("read");
        assert_eq!(&rest, b"lo world");
        io.write_all(b"reply").await.expect("write");
        let mut reply = [0u8; 5];
        client.read_exact(&mut reply).await.expect("read");
        assert_eq!(&reply, b"reply");
    }
}
