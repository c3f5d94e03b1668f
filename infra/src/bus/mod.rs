//! The message bus: durable, sequenced room messages plus ephemeral events.
//!
//! `local.rs` is the embedded, single-process implementation; `nats.rs` is the NATS
//! JetStream one for distributed mode. Gateway and worker code only see [`Bus`].
//! `contract.rs` is the one test suite every implementation must pass.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::protocol::{PresenceChange, UserRef};

pub mod contract;
mod local;
mod nats;

pub use local::{LocalBus, LocalBusOptions};
pub use nats::{NatsBus, NatsBusOptions};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus could not store or deliver in time (broker down, timeout).
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// A room feed fell behind further than the bus can fill in; its subscribers must
    /// resume from their last seq.
    #[error("room feed lagged past retention after seq {after}")]
    Lagged { after: u64 },
    #[error("bus: {0}")]
    Other(String),
}

/// A message as the gateway hands it to the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    /// Deterministic id (see [`crate::ids::message_id`]): the bus deduplicates on it.
    pub id: Uuid,
    pub room_id: Uuid,
    pub user: UserRef,
    pub body: String,
    pub client_msg_id: String,
    pub ts: DateTime<Utc>,
}

/// A message the bus has stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub seq: u64,
    #[serde(flatten)]
    pub message: NewMessage,
}

/// Answer to a publish: the message is stored under `seq`. `duplicate` says the id was
/// already stored (a retried send), and `seq` is then the ORIGINAL one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAck {
    pub seq: u64,
    pub duplicate: bool,
}

/// What the bus still holds of one room after a given seq.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Messages with seq > `since`, oldest first, that the bus retains: the first
    /// `limit` of them, so a client far behind costs one page, not the whole tail.
    pub messages: Vec<Arc<StoredMessage>>,
    /// The bus holds EVERY message of the room with seq > `complete_after`; anything at
    /// or below it must come from the database.
    pub complete_after: u64,
}

/// Ephemeral events: at most once, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusEvent {
    Presence {
        room: Uuid,
        user: UserRef,
        event: PresenceChange,
    },
    Typing {
        room: Uuid,
        user: UserRef,
    },
    Receipt {
        room: Uuid,
        user: UserRef,
        seq: u64,
    },
    RoomDeleted {
        room: Uuid,
        name: String,
    },
    SessionRevoked {
        session_id: Uuid,
    },
    /// A user's last connection is gone (for push-notification backends).
    UserOffline {
        user_id: Uuid,
    },
    /// A gateway's readiness probe of its own bus path.
    Canary {
        sent_ms: u64,
    },
}

/// Where ephemeral events go. Ids are UUIDs: user text never becomes a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Presence, typing and receipts of a room: `presence.room.<id>`.
    RoomEvents(Uuid),
    /// Room deleted or updated: `control.room.<id>`.
    RoomControl(Uuid),
    /// Session revocation: `control.session.<sid>`.
    Session(Uuid),
    /// Events for one user (offline notices, later DMs): `control.user.<id>`.
    User(Uuid),
    /// One gateway's own canary: `control.gateway.<id>`.
    Gateway(Uuid),
}

impl Topic {
    pub fn subject(&self) -> String {
        match self {
            Topic::RoomEvents(id) => format!("presence.room.{id}"),
            Topic::RoomControl(id) => format!("control.room.{id}"),
            Topic::Session(id) => format!("control.session.{id}"),
            Topic::User(id) => format!("control.user.{id}"),
            Topic::Gateway(id) => format!("control.gateway.{id}"),
        }
    }
}

/// Live messages of one room.
pub type RoomFeed = BoxStream<'static, Result<Arc<StoredMessage>, BusError>>;
/// Live events of one topic.
pub type EventFeed = BoxStream<'static, BusEvent>;

/// The message bus.
///
/// Contract (checked by `contract.rs` for every implementation):
/// - `publish` returns only once the message is stored; seqs increase across the
///   whole bus (one stream), so within a room they are increasing but not contiguous.
/// - Publishing an id that is already stored (within the dedup window) stores nothing
///   and returns the original seq with `duplicate = true`.
/// - A [`RoomFeed`] yields every message of its room stored after `subscribe_room`
///   returned, exactly once and in seq order, or an error after which it ends.
/// - `replay` and `room_head` describe what the bus retains; see [`Replay`]. A replay
///   returns at most its `limit` of messages, the oldest retained after `since`.
/// - Events are delivered at most once to the subscribers present when emitted.
/// - A persist consumer sees every stored message at least once; an unacked batch is
///   delivered again.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish(&self, message: NewMessage) -> Result<PublishAck, BusError>;
    async fn subscribe_room(&self, room: Uuid) -> Result<RoomFeed, BusError>;
    /// At most `limit` retained messages of the room with seq > `since`, oldest first.
    async fn replay(&self, room: Uuid, since: u64, limit: usize) -> Result<Replay, BusError>;
    /// The seq of the room's latest retained message, `None` when the bus holds none.
    async fn room_head(&self, room: Uuid) -> Result<Option<u64>, BusError>;
    async fn emit(&self, topic: Topic, event: BusEvent) -> Result<(), BusError>;
    async fn subscribe(&self, topic: Topic) -> Result<EventFeed, BusError>;
    async fn persist_consumer(&self) -> Result<Box<dyn PersistConsumer>, BusError>;
    /// Whether the bus currently reaches its broker (always true in-process).
    fn is_connected(&self) -> bool;
}

/// The worker's view of the stored stream.
#[async_trait::async_trait]
pub trait PersistConsumer: Send {
    /// Up to `max` messages, waiting at most `wait` for the first. Returns the
    /// previous batch again if it was not acked.
    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Arc<StoredMessage>>, BusError>;
    /// The last batch is safely persisted. `stored_before` lists messages of the batch
    /// whose id the database already held under another seq (a retry that came after
    /// the bus's dedup window): the bus must not deliver those copies and answers
    /// their publisher with the original seq where it still can.
    async fn ack_batch(&mut self, stored_before: &[(Uuid, u64)]) -> Result<(), BusError>;
}
