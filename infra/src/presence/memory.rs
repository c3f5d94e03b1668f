//! In-memory presence for embedded mode (single node only).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Lease, Presence, PresenceError};

/// room -> (user, conn) -> expiry
type Rooms = HashMap<Uuid, HashMap<(Uuid, Uuid), Instant>>;

#[derive(Default)]
pub struct MemoryPresence {
    rooms: Mutex<Rooms>,
}

impl MemoryPresence {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Rooms) -> R) -> R {
        f(&mut self.rooms.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn live_leases_of(room: &HashMap<(Uuid, Uuid), Instant>, user: Uuid, now: Instant) -> usize {
    room.iter()
        .filter(|((u, _), expires)| *u == user && **expires > now)
        .count()
}

#[async_trait::async_trait]
impl Presence for MemoryPresence {
    async fn join(&self, lease: Lease, ttl: Duration) -> Result<bool, PresenceError> {
        let now = Instant::now();
        Ok(self.with(|rooms| {
            let room = rooms.entry(lease.room).or_default();
            let first = live_leases_of(room, lease.user, now) == 0;
            room.insert((lease.user, lease.conn), now + ttl);
            first
        }))
    }

    async fn leave(&self, lease: Lease) -> Result<bool, PresenceError> {
        let now = Instant::now();
        Ok(self.with(|rooms| {
            let Some(room) = rooms.get_mut(&lease.room) else {
                return true;
            };
            room.remove(&(lease.user, lease.conn));
            let last = live_leases_of(room, lease.user, now) == 0;
            if room.is_empty() {
                rooms.remove(&lease.room);
            }
            last
        }))
    }

    async fn refresh(&self, leases: &[Lease], ttl: Duration) -> Result<(), PresenceError> {
        let expires = Instant::now() + ttl;
        self.with(|rooms| {
            for lease in leases {
                // Only extends live entries: a lease that was left or swept (and
                // announced) is not brought back by a refresh racing with it.
                if let Some(entry) = rooms
                    .get_mut(&lease.room)
                    .and_then(|room| room.get_mut(&(lease.user, lease.conn)))
                {
                    *entry = expires;
                }
            }
        });
        Ok(())
    }

    async fn members(&self, room: Uuid) -> Result<Vec<Uuid>, PresenceError> {
        let now = Instant::now();
        let mut users: Vec<Uuid> = self.with(|rooms| {
            rooms.get(&room).map_or_else(Vec::new, |r| {
                r.iter()
                    .filter(|(_, expires)| **expires > now)
                    .map(|((user, _), _)| *user)
                    .collect()
            })
        });
        users.sort_unstable();
        users.dedup();
        Ok(users)
    }

    async fn members_upto(
        &self,
        room: Uuid,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError> {
        self.members_page(room, None, limit).await
    }

    async fn members_page(
        &self,
        room: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError> {
        // `members` is sorted by id: the page starts past `after`.
        let mut users = self.members(room).await?;
        let start = after.map_or(0, |after| users.partition_point(|u| *u <= after));
        users.drain(..start);
        let more = users.len() > limit;
        users.truncate(limit);
        Ok((users, more))
    }

    async fn is_present(&self, room: Uuid, user: Uuid) -> Result<bool, PresenceError> {
        let now = Instant::now();
        Ok(self.with(|rooms| {
            rooms
                .get(&room)
                .is_some_and(|r| live_leases_of(r, user, now) > 0)
        }))
    }

    async fn sweep(&self) -> Result<Vec<(Uuid, Uuid)>, PresenceError> {
        let now = Instant::now();
        Ok(self.with(|rooms| {
            let mut gone = Vec::new();
            for (room_id, room) in rooms.iter_mut() {
                let expired: Vec<_> = room
                    .iter()
                    .filter(|(_, expires)| **expires <= now)
                    .map(|(key, _)| *key)
                    .collect();
                for (user, conn) in expired {
                    room.remove(&(user, conn));
                    if live_leases_of(room, user, now) == 0 && !gone.contains(&(*room_id, user)) {
                        gone.push((*room_id, user));
                    }
                }
            }
            rooms.retain(|_, room| !room.is_empty());
            gone
        }))
    }
}
