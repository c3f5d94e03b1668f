//! What a socket's writer receives, and the handle others use to reach a socket.
//!
//! Ordering rule: a socket's queue is FIFO, and room messages pass a per-room seq
//! filter in the writer. `Hold(room)` is queued BEFORE the socket joins the room's
//! fan-out and `Joined` after the replay was read, so live messages that race the
//! replay are buffered, deduplicated against it and released in order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

use super::{frame, heartbeat, queue};
use crate::metrics::Metrics;

/// One queue slot. Kept to 24 bytes: a socket's queue holds up to its capacity of
/// them. Frames come encoded (see `frame`): the writer hands their bytes to the
/// socket as they are.
pub enum Outbound {
    /// A frame for this socket only: a reply or notice (see [`Outbound::text`]), a
    /// pong.
    Frame(Box<[u8]>),
    /// An event encoded once for many sockets.
    Shared(Arc<[u8]>),
    /// A room message encoded once for many sockets.
    Message(Arc<RoomFrame>),
    /// Buffer this room's messages until `Joined`.
    Hold(Uuid),
    /// Write the `joined` reply, then release buffered messages with seq > `upto`.
    Joined(Box<JoinedReply>),
    /// The join failed: drop what was buffered for the room.
    Unhold(Uuid),
    /// The socket left the room: forget its seq position.
    Forget(Uuid),
    /// A WebSocket ping (see `heartbeat`).
    Ping,
}

impl Outbound {
    /// A text frame for this socket only.
    pub fn text(text: String) -> Self {
        Outbound::Frame(frame::text(&text))
    }
}

/// A room message as every member socket writes it: the same frame bytes for all.
///
/// Aligned to a cache line so that its fields do not share one with the `Arc`'s
/// reference counts, which every member socket's writer updates from either core.
#[repr(align(64))]
pub struct RoomFrame {
    pub room: Uuid,
    pub seq: u64,
    /// The encoded text frame.
    pub frame: Box<[u8]>,
}

pub struct JoinedReply {
    pub room: Uuid,
    pub upto: u64,
    /// The encoded `joined` frame.
    pub frame: Box<[u8]>,
}

/// Why and how a socket is being closed by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// How others reach one socket. Cloned into the hub's tables and the socket's own
/// tasks; everything but the ids and the queue sits behind one `Arc`.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: Uuid,
    pub user_id: Uuid,
    pub session_id: Uuid,
    tx: queue::Sender<Outbound>,
    shared: Arc<ConnShared>,
}

struct ConnShared {
    username: String,
    close: CloseSignal,
    metrics: Arc<Metrics>,
    /// Rooms the hub currently fans out to this socket.
    rooms: Mutex<HashSet<Uuid>>,
    /// When the reader last read a frame ([`heartbeat::now_ms`]).
    last_read_ms: AtomicU64,
}

/// The server's request to close a socket: set once (the first reason wins). The
/// reader waits for it here; the writer learns of it through its queue (see
/// [`queue::Sender::request_close`]), which it looks at anyway on every wake-up.
#[derive(Default)]
struct CloseSignal {
    reason: Mutex<Option<CloseReason>>,
    /// The reader waits here.
    notify: Notify,
}

impl CloseSignal {
    fn set(&self, reason: CloseReason) -> bool {
        {
            let mut current = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
        }
        self.notify.notify_waiters();
        true
    }

    fn reason(&self) -> Option<CloseReason> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves once a close was requested (at once if it already was).
    async fn requested(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check: a close between the two still wakes us.
            notified.as_mut().enable();
            if self.reason().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// The writer's ends: the queue and the close signal. It holds no sender, so the
/// queue ends when the last [`ConnHandle`] is gone.
pub struct ConnEnds {
    pub rx: queue::Receiver<Outbound>,
    pub close: CloseWatch,
}

/// The writer's view of [`CloseSignal`]: why it was asked to close.
pub struct CloseWatch(Arc<ConnShared>);

impl CloseWatch {
    pub fn reason(&self) -> Option<CloseReason> {
        self.0.close.reason()
    }
}

impl ConnHandle {
    pub fn new(
        user_id: Uuid,
        username: String,
        session_id: Uuid,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, ConnEnds) {
        let (tx, rx) = queue::channel(capacity);
        let conn = Self {
            id: Uuid::new_v4(),
            user_id,
            session_id,
            tx,
            shared: Arc::new(ConnShared {
                username,
                close: CloseSignal::default(),
                metrics,
                rooms: Mutex::new(HashSet::new()),
                last_read_ms: AtomicU64::new(heartbeat::now_ms()),
            }),
        };
        let ends = ConnEnds {
            rx,
            close: CloseWatch(conn.shared.clone()),
        };
        (conn, ends)
    }

    pub fn username(&self) -> &str {
        &self.shared.username
    }

    /// Queues an item; a full queue marks a slow consumer and closes it with 4008
    /// (the client resumes with `since` and loses nothing). `false` when not queued.
    pub fn send(&self, item: Outbound) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(queue::TrySendError::Full(_)) => {
                if self.close(
                    infra::protocol::close_code::SLOW_CONSUMER,
                    "slow consumer: resume with since",
                ) {
                    self.shared
                        .metrics
                        .slow_consumers
                        .fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            Err(queue::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues an item that may be lost under pressure (typing indicators).
    pub fn send_droppable(&self, item: Outbound) {
        let _ = self.tx.try_send(item);
    }

    /// Asks the writer to close the socket; the first reason wins (`true` when this
    /// one did).
    pub fn close(&self, code: u16, reason: &str) -> bool {
        let first = self.shared.close.set(CloseReason {
            code,
            reason: reason.to_string(),
        });
        if first {
            self.tx.request_close();
        }
        first
    }

    /// Resolves when the socket's writer has ended (write error, peer gone): the
    /// reader then has nobody to answer through and stops too.
    pub async fn writer_gone(&self) {
        self.tx.closed().await;
    }

    /// Resolves when someone asked to close this socket.
    pub async fn close_requested(&self) {
        self.shared.close.requested().await;
    }

    /// The reader read a frame: the socket is not idle.
    pub fn mark_read(&self) {
        self.shared
            .last_read_ms
            .store(heartbeat::now_ms(), Ordering::Relaxed);
    }

    pub fn last_read_ms(&self) -> u64 {
        self.shared.last_read_ms.load(Ordering::Relaxed)
    }

    pub fn in_room(&self, room: Uuid) -> bool {
        self.shared
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&room)
    }

    pub(crate) fn set_room(&self, room: Uuid, member: bool) {
        let mut rooms = self.shared.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if member {
            rooms.insert(room);
        } else {
            rooms.remove(&room);
        }
    }

    pub fn joined_rooms(&self) -> Vec<Uuid> {
        self.shared
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_slot_stays_three_words() {
        assert_eq!(std::mem::size_of::<Outbound>(), 24);
    }
}
