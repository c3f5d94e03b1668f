//! [`Observer`]: a window on what a client receives, socket by socket, below its
//! de-duplication. The [`crate::checker::Checker`] is one; a metrics exporter could be
//! another. Callbacks run on the client's task: keep them short and never block.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Ack, Message};

/// One WebSocket connection, unique within the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

impl SocketId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SocketId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket#{}", self.0)
    }
}

/// How a message reached a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A live `message` frame.
    Live,
    /// `joined.recovered` of the first join of the room on this socket.
    Recovered,
    /// `joined.recovered` of a further join on the same socket (catch-up after a cut
    /// replay). It overlaps live messages the socket already had, by request.
    CatchUp,
}

/// Receives what a client sees. Every method has an empty default.
pub trait Observer: Send + Sync {
    /// A socket greeted the client (`hello`).
    fn socket_opened(&self, _client: &str, _socket: SocketId) {}
    /// A socket ended; `code` is the close code (`None`: no close frame).
    fn socket_closed(&self, _client: &str, _socket: SocketId, _code: Option<u16>) {}
    /// The client's first join of `room` completed: from now on it must receive every
    /// message of the room with a seq above `seq`.
    fn member_since(&self, _client: &str, _room: &str, _seq: u64) {}
    /// A message arrived on a socket (before de-duplication).
    fn received(&self, _client: &str, _socket: SocketId, _message: &Message, _via: Via) {}
    /// A send was acknowledged on a socket.
    fn acked(&self, _client: &str, _socket: SocketId, _ack: &Ack) {}
    /// A send was answered with an error `code` (retried when transient).
    fn send_refused(&self, _client: &str, _room: &str, _client_msg_id: &str, _code: &str) {}
    /// A message was handed to the application (after de-duplication and ordering).
    fn delivered(&self, _client: &str, _message: &Message) {}
}
