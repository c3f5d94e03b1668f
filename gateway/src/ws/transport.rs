//! The byte stream under a socket's WebSocket protocol.
//!
//! A connection whose first request is the upgrade is served on its own `TcpStream`
//! (see `http::acceptor`): the writer's every flush is then one call into the socket,
//! as in the baseline server. An upgrade that arrives on a kept-alive HTTP connection
//! (a proxy reusing its upstream connections) comes through hyper instead, as poem's
//! `Upgraded`, which sits on hyper's boxed stream over poem's boxed and split one.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use poem::Upgraded;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum Transport {
    Tcp(TcpStream),
    Upgraded(Upgraded),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            Transport::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            Transport::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Transport::Upgraded(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(io) => io.is_write_vectored(),
            Transport::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(io) => Pin::new(io).poll_flush(cx),
            Transport::Upgraded(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            Transport::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
