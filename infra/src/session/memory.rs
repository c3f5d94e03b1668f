//! In-memory sessions for embedded mode (single node only; gone on restart).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Rotation, SessionError, SessionRecord, SessionStore};

#[derive(Default)]
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<Uuid, (SessionRecord, Instant)>>,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Uuid, (SessionRecord, Instant)>) -> R) -> R {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, (_, expires)| *expires > now);
        f(&mut sessions)
    }
}

#[async_trait::async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, record: SessionRecord, ttl: Duration) -> Result<(), SessionError> {
        self.with(|s| s.insert(record.id, (record, Instant::now() + ttl)));
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<SessionRecord>, SessionError> {
        Ok(self.with(|s| s.get(&id).map(|(r, _)| r.clone())))
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRecord>, SessionError> {
        let mut list: Vec<_> = self.with(|s| {
            s.values()
                .filter(|(r, _)| r.user_id == user_id)
                .map(|(r, _)| r.clone())
                .collect()
        });
        list.sort_by_key(|r| r.created_at);
        Ok(list)
    }

    async fn rotate_refresh(
        &self,
        id: Uuid,
        presented_hash: &str,
        new_hash: &str,
        ttl: Duration,
    ) -> Result<Rotation, SessionError> {
        Ok(self.with(|s| match s.get_mut(&id) {
            None => Rotation::Missing,
            Some((record, _)) if record.refresh_hash != presented_hash => Rotation::Reused,
            Some((record, expires)) => {
                record.refresh_hash = new_hash.to_string();
                record.last_seen = Utc::now();
                *expires = Instant::now() + ttl;
                Rotation::Rotated(record.clone())
            }
        }))
    }

    async fn touch(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), SessionError> {
        self.with(|s| {
            if let Some((record, _)) = s.get_mut(&id) {
                record.last_seen = at;
            }
        });
        Ok(())
    }

    async fn delete(&self, id: Uuid) -> Result<bool, SessionError> {
        Ok(self.with(|s| s.remove(&id).is_some()))
    }
}
