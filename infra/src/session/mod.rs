//! Login sessions: who is signed in where, and the hash of each session's current
//! refresh token. `sql.rs` serves embedded mode (sessions survive a restart, like the
//! SQLite file beside them); `memory.rs` is for a process that keeps nothing;
//! `redis.rs` serves distributed mode (hashes under `session:<sid>`, TTL = refresh
//! lifetime). `contract.rs` is the shared test suite.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod contract;
mod memory;
mod redis;
mod sql;

pub use memory::MemorySessionStore;
pub use redis::RedisSessionStore;
pub use sql::SqlSessionStore;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub refresh_hash: String,
}

/// Result of presenting a refresh token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The hash matched and was replaced: the new token is now the only valid one.
    Rotated(SessionRecord),
    /// The session exists but the hash is not its current one: an old token was
    /// replayed. Callers revoke the session.
    Reused,
    /// No such session (expired, logged out or revoked).
    Missing,
}

/// Session storage.
///
/// Contract: records expire after their TTL; `rotate_refresh` is atomic (two
/// concurrent rotations with the same old hash: exactly one gets `Rotated`);
/// `delete` removes the record from `list_for_user` too.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn create(&self, record: SessionRecord, ttl: Duration) -> Result<(), SessionError>;
    async fn get(&self, id: Uuid) -> Result<Option<SessionRecord>, SessionError>;
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRecord>, SessionError>;
    async fn rotate_refresh(
        &self,
        id: Uuid,
        presented_hash: &str,
        new_hash: &str,
        ttl: Duration,
    ) -> Result<Rotation, SessionError>;
    /// Records activity; a missing session is not an error.
    async fn touch(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), SessionError>;
    /// `true` when a session was removed.
    async fn delete(&self, id: Uuid) -> Result<bool, SessionError>;
}
