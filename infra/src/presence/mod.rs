//! Who is in which room right now, as leases per connection. `memory.rs` serves
//! embedded mode; `redis.rs` serves distributed mode (one sorted set per room, scored
//! by lease expiry on the Redis clock). `contract.rs` is the shared test suite.

use std::time::Duration;

use uuid::Uuid;

pub mod contract;
mod memory;
mod redis;

pub use memory::MemoryPresence;
pub use redis::RedisPresence;

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("presence store unavailable: {0}")]
    Unavailable(String),
}

/// One connection's lease in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub room: Uuid,
    pub user: Uuid,
    pub conn: Uuid,
}

/// Presence leases.
///
/// Contract: a lease lives for its TTL unless refreshed; a user is present in a room
/// while at least one of their leases there is live; `join` says whether this was the
/// user's first live lease in the room and `leave` whether it was the last; `sweep`
/// removes expired leases and returns each (room, user) left with none; `refresh`
/// extends live leases only (it never brings back one that was left or swept).
#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    async fn join(&self, lease: Lease, ttl: Duration) -> Result<bool, PresenceError>;
    async fn leave(&self, lease: Lease) -> Result<bool, PresenceError>;
    /// Extends many leases at once (one round trip in networked stores).
    async fn refresh(&self, leases: &[Lease], ttl: Duration) -> Result<(), PresenceError>;
    async fn members(&self, room: Uuid) -> Result<Vec<Uuid>, PresenceError>;
    /// At most `limit` of [`Presence::members`] (which ones is the store's choice), and
    /// whether there are more: what a `joined` frame can show, at a cost that does not
    /// grow with the room in networked stores.
    async fn members_upto(
        &self,
        room: Uuid,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError>;
    /// One page of [`Presence::members`] in user-id order: at most `limit` users whose
    /// id sorts after `after` (from the first when `None`), and whether more follow.
    /// The REST list pages with it, at a cost that grows with the page, not the room,
    /// in networked stores.
    async fn members_page(
        &self,
        room: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError>;
    async fn is_present(&self, room: Uuid, user: Uuid) -> Result<bool, PresenceError>;
    async fn sweep(&self) -> Result<Vec<(Uuid, Uuid)>, PresenceError>;
}
