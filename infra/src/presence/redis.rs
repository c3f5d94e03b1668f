//! Presence in Redis (distributed mode): leases from every gateway in one place, so a
//! room's members are the same wherever they are asked for, and a crashed gateway's
//! leases run out and get swept.
//!
//! Keys (DESIGN.md section 5), under the configured prefix:
//! - `presence:<room_id>`: sorted set, member `<user_id>:<conn_id>`, score = expiry in
//!   Unix milliseconds.
//! - `presence_by_user:<room_id>`: sorted set of the same members, every score 0: a
//!   user's leases sort together, so `ZRANGEBYLEX` finds them in O(log n + k) instead of
//!   a scan of the room (a join, a leave and a presence check used to scan every lease
//!   of the room, so a room of n sockets reconnecting cost Redis n² reads; a sweep read
//!   the whole room to tell who was gone, even for one expired lease). It also walks
//!   the room in user-id order, a page at a time, for the `joined` frame and the REST
//!   list, without reading the rest of the room. Scripts add
//!   and remove a lease in both sets in the same atomic step; `refresh` also indexes a
//!   lease written by a gateway from before the index. While a room's index holds fewer
//!   leases than the room (such leases not yet refreshed), the scripts scan the room as
//!   they used to.
//! - `presence_rooms`: set of the room ids that have a `presence:` key, so `sweep` finds
//!   them without `SCAN`ning the keyspace. Scripts add a room when they add a lease and
//!   drop it when its sorted set is gone, in the same atomic step.
//!
//! Every expiry is computed and compared on the Redis clock (`TIME` inside the
//! scripts), never a gateway's: gateways with skewed clocks still agree on who is live.
//!
//! `refresh` only extends leases that still exist (`ZADD XX`): a lease removed by
//! `leave` or by a sweep (which has reported the user gone) is not brought back by a
//! refresh racing with it; the gateway joins again instead. This differs from the
//! in-memory store, which has no sweeper racing it.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::{Lease, Presence, PresenceError};
use crate::redis_conn::{KeyPrefix, ttl_ms};

/// Helpers every presence script starts with.
macro_rules! lua_prelude {
    () => {
        r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Integers as digits: Lua's tostring() prints 1.79e+12 and loses precision.
local function int(n)
  return string.format('%d', n)
end
-- Whether the room's index holds every lease of the room (see the module doc).
local function indexed(key, by_user)
  return redis.call('ZCARD', by_user) >= redis.call('ZCARD', key)
end
-- Whether `user` holds a lease in the room that expires after `after`: a live one when
-- `after` is now, any at all when it is -math.huge. With the index, only that user's
-- leases are read; without it, ZSCAN's MATCH filters the whole room in C.
local function has_lease_after(key, by_user, user, after)
  if indexed(key, by_user) then
    local from, to, offset = '[' .. user .. ':', '(' .. user .. ';', 0
    while true do
      local page = redis.call('ZRANGEBYLEX', by_user, from, to, 'LIMIT', offset, 8)
      if #page == 0 then
        return false
      end
      -- A lease in the index but no longer in the room reads as false.
      for _, expiry in ipairs(redis.call('ZMSCORE', key, unpack(page))) do
        if expiry and tonumber(expiry) > after then
          return true
        end
      end
      if #page < 8 then
        return false
      end
      offset = offset + #page
    end
  end
  local cursor = '0'
  repeat
    local page = redis.call('ZSCAN', key, cursor, 'MATCH', user .. ':*', 'COUNT', 1000)
    cursor = page[1]
    local entries = page[2]
    for i = 2, #entries, 2 do
      if tonumber(entries[i]) > after then
        return true
      end
    end
  until cursor == '0'
  return false
end
local function user_of(member)
  return string.match(member, '^([^:]+):')
end
-- Up to `count` users with a live lease, in user-id order, from the room's index
-- starting at the ZRANGEBYLEX bound `min`: pages of the index, a user's leases next to
-- each other; once one lease of a user is live, the rest of theirs are skipped.
local function live_users_in_index(key, by_user, min, count, now)
  local users, decided = {}, nil
  while #users < count do
    local page = redis.call('ZRANGEBYLEX', by_user, min, '+', 'LIMIT', 0, 16)
    if #page == 0 then
      break
    end
    local expiries = redis.call('ZMSCORE', key, unpack(page))
    for i, member in ipairs(page) do
      local user = user_of(member)
      if user and user ~= decided and expiries[i] and tonumber(expiries[i]) > now then
        users[#users + 1] = user
        decided = user
        if #users >= count then
          break
        end
      end
    end
    local last = page[#page]
    if decided and user_of(last) == decided then
      min = '(' .. decided .. ';'
    else
      min = '(' .. last
    end
  end
  return users
end
-- {more, users}: `users` cut to `limit`, and 1 when it held more (read limit + 1).
local function cut(users, limit)
  if #users > limit then
    users[#users] = nil
    return {1, users}
  end
  return {0, users}
end
"
    };
}

/// KEYS: room set, rooms index, room's by-user index. ARGV: room, user, conn, ttl_ms.
/// Checks for a live lease of the user before adding this one: 1 = first, 0 = not.
const JOIN: &str = concat!(
    lua_prelude!(),
    r"
local now = now_ms()
local first = not has_lease_after(KEYS[1], KEYS[3], ARGV[2], now)
local member = ARGV[2] .. ':' .. ARGV[3]
redis.call('ZADD', KEYS[1], int(now + tonumber(ARGV[4])), member)
redis.call('ZADD', KEYS[3], 0, member)
redis.call('SADD', KEYS[2], ARGV[1])
if first then return 1 end
return 0
"
);

/// KEYS: room set, rooms index, room's by-user index. ARGV: room, user, conn.
/// Removes the lease, then 1 = the user has no live lease left, 0 = they still do.
const LEAVE: &str = concat!(
    lua_prelude!(),
    r"
local now = now_ms()
local member = ARGV[2] .. ':' .. ARGV[3]
redis.call('ZREM', KEYS[1], member)
redis.call('ZREM', KEYS[3], member)
local last = not has_lease_after(KEYS[1], KEYS[3], ARGV[2], now)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3])
end
if last then return 1 end
return 0
"
);

/// KEYS[2i - 1], KEYS[2i]: room set and by-user index of lease i. ARGV[1]: ttl_ms;
/// ARGV[i + 1]: member of lease i. One clock reading for the whole batch; XX never
/// recreates a removed lease. A lease that exists is indexed too (a no-op unless a
/// gateway from before the index wrote it).
const REFRESH: &str = concat!(
    lua_prelude!(),
    r"
local expiry = int(now_ms() + tonumber(ARGV[1]))
for i = 1, #KEYS / 2 do
  local member = ARGV[i + 1]
  if redis.call('ZADD', KEYS[2 * i - 1], 'XX', 'CH', expiry, member) == 1 then
    redis.call('ZADD', KEYS[2 * i], 'NX', 0, member)
  end
end
return #KEYS / 2
"
);

/// KEYS: room set. Returns each user with a live lease once.
const MEMBERS: &str = concat!(
    lua_prelude!(),
    r"
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(now_ms()), '+inf')
local seen, users = {}, {}
for _, member in ipairs(live) do
  local user = user_of(member)
  if user and not seen[user] then
    seen[user] = true
    users[#users + 1] = user
  end
end
return users
"
);

/// KEYS: room set, room's by-user index. ARGV: limit. Returns {more, users}: at most
/// `limit` users with a live lease, and 1 when there are more. A room of more than
/// `limit` leases is read through the index, in user-id order: the leases of about
/// `limit` users, the rest of a user's leases skipped once one is live, however many
/// the room holds. A smaller room (or one not fully indexed) is read in one range of
/// its live leases, which is cheaper there, until limit + 1 users are seen.
const MEMBERS_UPTO: &str = concat!(
    lua_prelude!(),
    r"
local limit = tonumber(ARGV[1])
local now = now_ms()
if redis.call('ZCARD', KEYS[1]) > limit and indexed(KEYS[1], KEYS[2]) then
  return cut(live_users_in_index(KEYS[1], KEYS[2], '-', limit + 1, now), limit)
end
local seen, users = {}, {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(now), '+inf')) do
  local user = user_of(member)
  if user and not seen[user] then
    seen[user] = true
    users[#users + 1] = user
    if #users > limit then
      break
    end
  end
end
return cut(users, limit)
"
);

/// KEYS: room set, room's by-user index. ARGV: limit, after (a user id, or empty for the
/// first page). Returns {more, users}: at most `limit` users with a live lease whose id
/// sorts after `after`, in id order, and 1 when more follow. A room of more than `limit`
/// leases is read through the index: the leases of about `limit` users past the cursor,
/// however many the room holds. A smaller room (or one not fully indexed) is read in
/// one range of its live leases and sorted, which is cheaper there.
const MEMBERS_PAGE: &str = concat!(
    lua_prelude!(),
    r"
local limit, after = tonumber(ARGV[1]), ARGV[2]
local now = now_ms()
if redis.call('ZCARD', KEYS[1]) > limit and indexed(KEYS[1], KEYS[2]) then
  local min = '-'
  if after ~= '' then
    min = '(' .. after .. ';'
  end
  return cut(live_users_in_index(KEYS[1], KEYS[2], min, limit + 1, now), limit)
end
local seen, all = {}, {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(now), '+inf')) do
  local user = user_of(member)
  if user and not seen[user] and user > after then
    seen[user] = true
    all[#all + 1] = user
  end
end
table.sort(all)
local users = {}
for i = 1, math.min(#all, limit + 1) do
  users[i] = all[i]
end
return cut(users, limit)
"
);

/// KEYS: room set, room's by-user index. ARGV: user. 1 = the user holds a live lease.
const IS_PRESENT: &str = concat!(
    lua_prelude!(),
    r"
if has_lease_after(KEYS[1], KEYS[2], ARGV[1], now_ms()) then return 1 end
return 0
"
);

/// KEYS: room set, rooms index, room's by-user index. ARGV: room, batch size.
/// Removes up to a batch of expired leases and returns {more, gone}: `gone` holds each
/// user whose removed lease was their last entry of any kind, so a user whose other
/// expired leases wait for the next batch is reported by that batch, exactly once.
/// The script is atomic, so of several sweepers only the one that removed a lease
/// can report it. An indexed room is asked about each removed user's own leases; a room
/// not fully indexed is read whole, once per batch.
const SWEEP: &str = concat!(
    lua_prelude!(),
    r"
local limit = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now_ms()), 'LIMIT', 0, limit)
local removed = {}
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[3], member)
  local user = user_of(member)
  if user then
    removed[#removed + 1] = user
  end
end
local gone = {}
if #removed > 0 and indexed(KEYS[1], KEYS[3]) then
  -- Each removed user's own entries, through the index: a few expired leases in a big
  -- room cost as little as in a small one.
  local decided = {}
  for _, user in ipairs(removed) do
    if not decided[user] then
      decided[user] = true
      if not has_lease_after(KEYS[1], KEYS[3], user, -math.huge) then
        gone[#gone + 1] = user
      end
    end
  end
elseif #removed > 0 then
  local remaining = {}
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local user = user_of(member)
    if user then
      remaining[user] = true
    end
  end
  for _, user in ipairs(removed) do
    if not remaining[user] then
      remaining[user] = true
      gone[#gone + 1] = user
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3])
end
local more = 0
if #expired == limit then more = 1 end
return {more, gone}
"
);

/// Leases per refresh script call. A gateway's refresh is normally one call; past
/// this, the batch is split so one script never blocks Redis for long (the calls go
/// out together on the multiplexed connection, so it stays about one round trip).
const REFRESH_BATCH: usize = 1000;

/// Expired leases one sweep script call removes, for the same reason.
const SWEEP_BATCH: usize = 1000;

/// Rooms swept at once: enough to hide round trips, few enough to leave room on the
/// connection for the gateways' own calls.
const SWEEP_CONCURRENCY: usize = 16;

pub struct RedisPresence {
    conn: ConnectionManager,
    prefix: KeyPrefix,
    join: redis::Script,
    leave: redis::Script,
    refresh: redis::Script,
    members: redis::Script,
    members_upto: redis::Script,
    members_page: redis::Script,
    is_present: redis::Script,
    sweep: redis::Script,
}

impl RedisPresence {
    pub fn new(conn: ConnectionManager, prefix: KeyPrefix) -> Self {
        Self {
            conn,
            prefix,
            join: redis::Script::new(JOIN),
            leave: redis::Script::new(LEAVE),
            refresh: redis::Script::new(REFRESH),
            members: redis::Script::new(MEMBERS),
            members_upto: redis::Script::new(MEMBERS_UPTO),
            members_page: redis::Script::new(MEMBERS_PAGE),
            is_present: redis::Script::new(IS_PRESENT),
            sweep: redis::Script::new(SWEEP),
        }
    }

    fn room_key(&self, room: impl std::fmt::Display) -> String {
        self.prefix.key(format_args!("presence:{room}"))
    }

    fn by_user_key(&self, room: impl std::fmt::Display) -> String {
        self.prefix.key(format_args!("presence_by_user:{room}"))
    }

    fn rooms_key(&self) -> String {
        self.prefix.key("presence_rooms")
    }

    async fn refresh_batch(&self, leases: &[Lease], ttl_ms: u64) -> Result<(), PresenceError> {
        let mut invocation = self.refresh.prepare_invoke();
        invocation.arg(ttl_ms);
        for lease in leases {
            invocation
                .key(self.room_key(lease.room))
                .key(self.by_user_key(lease.room))
                .arg(format!("{}:{}", lease.user, lease.conn));
        }
        invocation
            .invoke_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    /// Sweeps one room until it has no expired lease left. On an error it still
    /// returns what earlier batches removed: those users are gone from Redis and no
    /// later sweep will report them.
    async fn sweep_room(&self, room: String) -> (Vec<(Uuid, Uuid)>, Option<PresenceError>) {
        let mut gone = Vec::new();
        let Ok(room_id) = Uuid::parse_str(&room) else {
            // Not written by us; keep it out of the results but still clean it up.
            tracing::warn!(room, "presence index holds a room that is not a UUID");
            return (gone, self.sweep_batches(&room, |_| {}).await.err());
        };
        let result = self
            .sweep_batches(&room, |users| {
                gone.extend(
                    users
                        .iter()
                        .filter_map(|u| Uuid::parse_str(u).ok())
                        .map(|user| (room_id, user)),
                );
            })
            .await;
        (gone, result.err())
    }

    async fn sweep_batches(
        &self,
        room: &str,
        mut on_gone: impl FnMut(&[String]),
    ) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        loop {
            let (more, users): (i64, Vec<String>) = self
                .sweep
                .key(self.room_key(room))
                .key(self.rooms_key())
                .key(self.by_user_key(room))
                .arg(room)
                .arg(SWEEP_BATCH)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            on_gone(&users);
            if more == 0 {
                return Ok(());
            }
        }
    }
}

fn unavailable(e: redis::RedisError) -> PresenceError {
    PresenceError::Unavailable(e.to_string())
}

fn parse_users(users: Vec<String>) -> Vec<Uuid> {
    users
        .iter()
        .filter_map(|u| Uuid::parse_str(u).ok())
        .collect()
}

#[async_trait::async_trait]
impl Presence for RedisPresence {
    async fn join(&self, lease: Lease, ttl: Duration) -> Result<bool, PresenceError> {
        let first: i64 = self
            .join
            .key(self.room_key(lease.room))
            .key(self.rooms_key())
            .key(self.by_user_key(lease.room))
            .arg(lease.room.to_string())
            .arg(lease.user.to_string())
            .arg(lease.conn.to_string())
            .arg(ttl_ms(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(first == 1)
    }

    async fn leave(&self, lease: Lease) -> Result<bool, PresenceError> {
        let last: i64 = self
            .leave
            .key(self.room_key(lease.room))
            .key(self.rooms_key())
            .key(self.by_user_key(lease.room))
            .arg(lease.room.to_string())
            .arg(lease.user.to_string())
            .arg(lease.conn.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(last == 1)
    }

    async fn refresh(&self, leases: &[Lease], ttl: Duration) -> Result<(), PresenceError> {
        let ttl_ms = ttl_ms(ttl);
        let batches = leases
            .chunks(REFRESH_BATCH)
            .map(|batch| self.refresh_batch(batch, ttl_ms));
        futures_util::future::try_join_all(batches).await?;
        Ok(())
    }

    async fn members(&self, room: Uuid) -> Result<Vec<Uuid>, PresenceError> {
        let users: Vec<String> = self
            .members
            .key(self.room_key(room))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(parse_users(users))
    }

    async fn members_upto(
        &self,
        room: Uuid,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError> {
        let (more, users): (i64, Vec<String>) = self
            .members_upto
            .key(self.room_key(room))
            .key(self.by_user_key(room))
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok((parse_users(users), more == 1))
    }

    async fn members_page(
        &self,
        room: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError> {
        let (more, users): (i64, Vec<String>) = self
            .members_page
            .key(self.room_key(room))
            .key(self.by_user_key(room))
            .arg(limit)
            .arg(after.map(|u| u.to_string()).unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok((parse_users(users), more == 1))
    }

    async fn is_present(&self, room: Uuid, user: Uuid) -> Result<bool, PresenceError> {
        let present: i64 = self
            .is_present
            .key(self.room_key(room))
            .key(self.by_user_key(room))
            .arg(user.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(present == 1)
    }

    async fn sweep(&self) -> Result<Vec<(Uuid, Uuid)>, PresenceError> {
        // SMEMBERS, not SSCAN: the index holds one short id per room with presence,
        // and the sweeper needs all of them anyway.
        let rooms: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.rooms_key())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let swept: Vec<_> = stream::iter(rooms)
            .map(|room| self.sweep_room(room))
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut gone = Vec::new();
        let mut first_error = None;
        for (room_gone, error) in swept {
            gone.extend(room_gone);
            if let Some(e) = error {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            // Removed leases are reported only here: returning an error would lose the
            // rooms that were swept, so a partial result wins and the error is logged.
            Some(e) if !gone.is_empty() => {
                tracing::warn!(error = %e, "presence sweep incomplete");
                Ok(gone)
            }
            Some(e) => Err(e),
            None => Ok(gone),
        }
    }
}
