//! The byte stream under a socket's WebSocket protocol, split into the reader's and
//! the writer's half.
//!
//! A connection whose first request is the upgrade is served on its own `TcpStream`
//! (see `http::acceptor`), split without a lock: the writer's every batch is one call
//! into the socket, as in the baseline server. An upgrade that arrives on a kept-alive
//! HTTP connection (a proxy reusing its upstream connections) comes through hyper
//! instead, as poem's `Upgraded`, split by tokio behind a lock.
//!
//! The reader's half is what tungstenite reads frames from. tungstenite also writes
//! its automatic replies (pongs, the echo of a client's close) to it; those are
//! dropped here, because the writer task sends them itself (see `connection`): one
//! task writes to the socket, so no reply lands inside another frame.
//!
//! The writer's TCP half sends with `sendmsg(2)` (see [`send`]), not with the
//! `writev(2)` that tokio's `TcpStream` uses.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use poem::Upgraded;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub enum Transport {
    Tcp(TcpStream),
    Upgraded(Upgraded),
}

impl Transport {
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Transport::Tcp(tcp) => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Tcp(read), WriteHalf::Tcp(write))
            }
            Transport::Upgraded(io) => {
                let (read, write) = tokio::io::split(io);
                (ReadHalf::Upgraded(read), WriteHalf::Upgraded(write))
            }
        }
    }
}

pub enum ReadHalf {
    Tcp(OwnedReadHalf),
    Upgraded(tokio::io::ReadHalf<Upgraded>),
}

pub enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Upgraded(tokio::io::WriteHalf<Upgraded>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            ReadHalf::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

/// tungstenite's automatic replies, dropped: the writer task sends them (see the
/// module docs).
impl AsyncWrite for ReadHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes `bufs` to `stream` in one `sendmsg(2)` call. `writev(2)`, which tokio
/// issues, reaches the same socket code through the file layer first (the VFS's
/// `vfs_writev` and its checks). In profiles of the S2 set-up at 560 sends/s the
/// system call's path above TCP took 9.7 % of the gateway's samples with `writev`,
/// 7.5 % with `sendmsg`, and 7.0 % of the baseline's with its `send(2)`
/// (BENCHMARKS.md, optimisation 18).
fn send(stream: &TcpStream, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_write_ready(cx))?;
        // `try_io` clears the readiness on `WouldBlock`, so the next
        // `poll_write_ready` registers the task for the socket's next writable edge.
        match stream.try_io(Interest::WRITABLE, || {
            SockRef::from(stream).send_vectored(bufs)
        }) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            result => return Poll::Ready(result),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(io) => send(io.as_ref(), cx, &[IoSlice::new(buf)]),
            WriteHalf::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(io) => send(io.as_ref(), cx, bufs),
            WriteHalf::Upgraded(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Tcp(_) => true,
            WriteHalf::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(io) => Pin::new(io).poll_flush(cx),
            WriteHalf::Upgraded(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            WriteHalf::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
