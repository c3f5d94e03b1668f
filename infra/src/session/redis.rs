//! Sessions in Redis (distributed mode): every gateway sees the same sessions, and an
//! operator can inspect or revoke one with `redis-cli`.
//!
//! Keys (DESIGN.md section 5), under the configured prefix:
//! - `session:<sid>`: hash {user_id, created_at, last_seen, ip, user_agent,
//!   refresh_hash}, TTL = refresh lifetime. Times are RFC 3339 (readable in
//!   `redis-cli`); `ip` and `user_agent` are absent when unknown.
//! - `user_sessions:<uid>`: set of sids. It has no TTL (a rotation extends one
//!   session, not the set); sids whose hash has expired are pruned when the set is
//!   listed and when the user creates a session, so it stays as small as the user's
//!   live sessions plus those expired since their last login.
//!
//! Every script names all the keys it touches in `KEYS`, so none builds key names
//! from data.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::{Rotation, SessionError, SessionRecord, SessionStore};
use crate::redis_conn::{KeyPrefix, ttl_ms};

/// Compares the presented hash with the stored one and, only if they match, stores
/// the new hash and last_seen and extends the TTL. One script, so two concurrent
/// rotations of the same token cannot both match.
/// Returns {0, nil} missing, {1, nil} reused, {2, <HGETALL>} rotated.
const ROTATE: &str = r"
local current = redis.call('HGET', KEYS[1], 'refresh_hash')
if not current then
  return {0, false}
end
if current ~= ARGV[1] then
  return {1, false}
end
redis.call('HSET', KEYS[1], 'refresh_hash', ARGV[2], 'last_seen', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {2, redis.call('HGETALL', KEYS[1])}
";

/// Sets last_seen only on an existing hash: a plain HSET on an expired or deleted
/// session would recreate it as a fragment without a TTL.
const TOUCH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
end
return 0
";

const ROTATE_MISSING: i64 = 0;
const ROTATE_REUSED: i64 = 1;
const ROTATE_ROTATED: i64 = 2;

pub struct RedisSessionStore {
    conn: ConnectionManager,
    prefix: KeyPrefix,
    rotate: redis::Script,
    touch: redis::Script,
}

impl RedisSessionStore {
    pub fn new(conn: ConnectionManager, prefix: KeyPrefix) -> Self {
        Self {
            conn,
            prefix,
            rotate: redis::Script::new(ROTATE),
            touch: redis::Script::new(TOUCH),
        }
    }

    fn session_key(&self, id: Uuid) -> String {
        self.prefix.key(format_args!("session:{id}"))
    }

    fn user_key(&self, user_id: Uuid) -> String {
        self.prefix.key(format_args!("user_sessions:{user_id}"))
    }

    /// Drops from `user_sessions:<uid>` the sids whose hash has expired.
    async fn prune(&self, user_id: Uuid, sids: &[String]) -> Result<(), SessionError> {
        if sids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for sid in sids {
            pipe.cmd("EXISTS")
                .arg(self.prefix.key(format_args!("session:{sid}")));
        }
        let exists: Vec<bool> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let dead: Vec<&String> = sids
            .iter()
            .zip(exists)
            .filter_map(|(sid, exists)| (!exists).then_some(sid))
            .collect();
        if !dead.is_empty() {
            redis::cmd("SREM")
                .arg(self.user_key(user_id))
                .arg(dead)
                .exec_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

fn unavailable(e: redis::RedisError) -> SessionError {
    SessionError::Unavailable(e.to_string())
}

/// A stored hash that does not decode: written by something else, or edited by hand.
#[derive(Debug, thiserror::Error)]
enum MalformedSession {
    #[error("session {id}: field {field} is missing")]
    Missing { id: Uuid, field: &'static str },
    #[error("session {id}: field {field} is invalid: {value:?}")]
    Invalid {
        id: Uuid,
        field: &'static str,
        value: String,
    },
}

impl From<MalformedSession> for SessionError {
    fn from(e: MalformedSession) -> Self {
        SessionError::Unavailable(e.to_string())
    }
}

fn format_time(t: DateTime<Utc>) -> String {
    // AutoSi keeps every stored digit, so a record reads back equal to what was written.
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn to_fields(r: &SessionRecord) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("user_id", r.user_id.to_string()),
        ("created_at", format_time(r.created_at)),
        ("last_seen", format_time(r.last_seen)),
        ("refresh_hash", r.refresh_hash.clone()),
    ];
    if let Some(ip) = &r.ip {
        fields.push(("ip", ip.clone()));
    }
    if let Some(ua) = &r.user_agent {
        fields.push(("user_agent", ua.clone()));
    }
    fields
}

/// `None` for an empty hash (HGETALL of a missing key).
fn from_fields(
    id: Uuid,
    mut f: HashMap<String, String>,
) -> Result<Option<SessionRecord>, MalformedSession> {
    if f.is_empty() {
        return Ok(None);
    }
    let mut take = |field: &'static str| {
        f.remove(field)
            .ok_or(MalformedSession::Missing { id, field })
    };
    let user_id = take("user_id")?;
    let created_at = take("created_at")?;
    let last_seen = take("last_seen")?;
    let refresh_hash = take("refresh_hash")?;
    let time = |field: &'static str, value: String| {
        DateTime::parse_from_rfc3339(&value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| MalformedSession::Invalid { id, field, value })
    };
    Ok(Some(SessionRecord {
        id,
        user_id: Uuid::parse_str(&user_id).map_err(|_| MalformedSession::Invalid {
            id,
            field: "user_id",
            value: user_id.clone(),
        })?,
        created_at: time("created_at", created_at)?,
        last_seen: time("last_seen", last_seen)?,
        ip: f.remove("ip"),
        user_agent: f.remove("user_agent"),
        refresh_hash,
    }))
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, record: SessionRecord, ttl: Duration) -> Result<(), SessionError> {
        let mut conn = self.conn.clone();
        let key = self.session_key(record.id);
        let user_key = self.user_key(record.user_id);
        // MULTI/EXEC: nobody sees the hash without its TTL or without its index entry.
        // SMEMBERS rides along so pruning needs no extra read.
        let (sids,): (Vec<String>,) = redis::pipe()
            .atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, &to_fields(&record))
            .ignore()
            .pexpire(&key, i64::try_from(ttl_ms(ttl)).unwrap_or(i64::MAX))
            .ignore()
            .sadd(&user_key, record.id.to_string())
            .ignore()
            .smembers(&user_key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        // Logins are rare: a good moment to drop the user's expired sids.
        let own = record.id.to_string();
        let others: Vec<String> = sids.into_iter().filter(|sid| *sid != own).collect();
        self.prune(record.user_id, &others).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<SessionRecord>, SessionError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.session_key(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(from_fields(id, fields)?)
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRecord>, SessionError> {
        let mut conn = self.conn.clone();
        let sids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.user_key(user_id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if sids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for sid in &sids {
            pipe.cmd("HGETALL")
                .arg(self.prefix.key(format_args!("session:{sid}")));
        }
        let hashes: Vec<HashMap<String, String>> =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut list = Vec::with_capacity(sids.len());
        let mut dead = Vec::new();
        for (sid, fields) in sids.into_iter().zip(hashes) {
            let record = match Uuid::parse_str(&sid) {
                Ok(id) => from_fields(id, fields)?,
                // Not a sid of ours: drop it from the index like an expired one.
                Err(_) => None,
            };
            match record {
                // A sid filed under the wrong user is not shown to this one.
                Some(r) if r.user_id == user_id => list.push(r),
                Some(_) => {}
                None => dead.push(sid),
            }
        }
        if !dead.is_empty() {
            redis::cmd("SREM")
                .arg(self.user_key(user_id))
                .arg(dead)
                .exec_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
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
        let mut conn = self.conn.clone();
        let (outcome, fields): (i64, Option<HashMap<String, String>>) = self
            .rotate
            .key(self.session_key(id))
            .arg(presented_hash)
            .arg(new_hash)
            .arg(format_time(Utc::now()))
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match outcome {
            ROTATE_MISSING => Ok(Rotation::Missing),
            ROTATE_REUSED => Ok(Rotation::Reused),
            ROTATE_ROTATED => match from_fields(id, fields.unwrap_or_default())? {
                Some(record) => Ok(Rotation::Rotated(record)),
                // The script read the hash right after writing it: it cannot be empty.
                None => Ok(Rotation::Missing),
            },
            other => Err(SessionError::Unavailable(format!(
                "rotate script returned unknown outcome {other}"
            ))),
        }
    }

    async fn touch(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), SessionError> {
        let mut conn = self.conn.clone();
        self.touch
            .key(self.session_key(id))
            .arg(format_time(at))
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, id: Uuid) -> Result<bool, SessionError> {
        let mut conn = self.conn.clone();
        let key = self.session_key(id);
        // The owner is needed to find the index entry; reading it and deleting in one
        // MULTI leaves no window where the hash is gone but its owner unknown.
        let (user_id, deleted): (Option<String>, u64) = redis::pipe()
            .atomic()
            .hget(&key, "user_id")
            .del(&key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if let Some(user_id) = user_id.and_then(|u| Uuid::parse_str(&u).ok()) {
            redis::cmd("SREM")
                .arg(self.user_key(user_id))
                .arg(id.to_string())
                .exec_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_hash_round_trip() {
        let now = Utc::now();
        let record = SessionRecord {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            created_at: now,
            last_seen: now + chrono::Duration::nanoseconds(1),
            ip: None,
            user_agent: Some(String::new()),
            refresh_hash: "h".into(),
        };
        let fields = to_fields(&record)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(
            from_fields(record.id, fields).expect("decodes"),
            Some(record)
        );
    }
}
