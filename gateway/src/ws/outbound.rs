//! What a socket's writer receives, and the handle others use to reach a socket.
//!
//! Ordering rule: a socket's queue is FIFO, and room messages pass a per-room seq
//! filter in the writer. `Hold(room)` is queued BEFORE the socket joins the room's
//! fan-out and `Joined` after the replay was read, so live messages that race the
//! replay are buffered, deduplicated against it and released in order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::metrics::Metrics;

/// One queue slot. Kept to 24 bytes: every socket's queue allocates its first block
/// of 32 slots up front, idle or not.
pub enum Outbound {
    /// A reply or notice for this socket only (see [`Outbound::text`]).
    Text(Box<str>),
    /// An event serialized once for many sockets.
    Shared(Arc<Utf8Bytes>),
    /// A room message serialized once for many sockets.
    Message(Arc<RoomFrame>),
    /// Buffer this room's messages until `Joined`.
    Hold(Uuid),
    /// Write the `joined` reply, then release buffered messages with seq > `upto`.
    Joined(Box<JoinedReply>),
    /// The join failed: drop what was buffered for the room.
    Unhold(Uuid),
    /// The socket left the room: forget its seq position.
    Forget(Uuid),
}

impl Outbound {
    pub fn text(text: String) -> Self {
        Outbound::Text(text.into_boxed_str())
    }
}

/// A room message as every member socket writes it: the same bytes for all.
pub struct RoomFrame {
    pub room: Uuid,
    pub seq: u64,
    pub text: Utf8Bytes,
}

pub struct JoinedReply {
    pub room: Uuid,
    pub upto: u64,
    pub text: String,
}

/// Why and how a socket is being closed by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

#[derive(Clone)]
pub struct ConnHandle {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub session_id: Uuid,
    tx: mpsc::Sender<Outbound>,
    close: Arc<watch::Sender<Option<CloseReason>>>,
    metrics: Arc<Metrics>,
    /// Rooms the hub currently fans out to this socket.
    pub rooms: Arc<Mutex<HashSet<Uuid>>>,
}

pub struct ConnEnds {
    pub rx: mpsc::Receiver<Outbound>,
    pub close_rx: watch::Receiver<Option<CloseReason>>,
}

impl ConnHandle {
    pub fn new(
        user_id: Uuid,
        username: String,
        session_id: Uuid,
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, ConnEnds) {
        let (tx, rx) = mpsc::channel(queue);
        let (close, close_rx) = watch::channel(None);
        (
            Self {
                id: Uuid::new_v4(),
                user_id,
                username,
                session_id,
                tx,
                close: Arc::new(close),
                metrics,
                rooms: Arc::new(Mutex::new(HashSet::new())),
            },
            ConnEnds { rx, close_rx },
        )
    }

    /// Queues an item; a full queue marks a slow consumer and closes it with 4008
    /// (the client resumes with `since` and loses nothing). `false` when not queued.
    pub fn send(&self, item: Outbound) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.close.borrow().is_none() {
                    self.metrics
                        .slow_consumers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                self.close(
                    infra::protocol::close_code::SLOW_CONSUMER,
                    "slow consumer: resume with since",
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues an item that may be lost under pressure (typing indicators).
    pub fn send_droppable(&self, item: Outbound) {
        let _ = self.tx.try_send(item);
    }

    /// Asks the writer to close the socket; the first reason wins.
    pub fn close(&self, code: u16, reason: &str) {
        self.close.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(CloseReason {
                code,
                reason: reason.to_string(),
            });
            true
        });
    }

    /// Resolves when the socket's writer has ended (write error, peer gone): the
    /// reader then has nobody to answer through and stops too.
    pub async fn writer_gone(&self) {
        self.tx.closed().await;
    }

    /// Resolves (changes) when someone asked to close this socket.
    pub fn close_signal(&self) -> watch::Receiver<Option<CloseReason>> {
        self.close.subscribe()
    }

    pub fn in_room(&self, room: Uuid) -> bool {
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&room)
    }

    pub(crate) fn set_room(&self, room: Uuid, member: bool) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if member {
            rooms.insert(room);
        } else {
            rooms.remove(&room);
        }
    }

    pub fn joined_rooms(&self) -> Vec<Uuid> {
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }
}
