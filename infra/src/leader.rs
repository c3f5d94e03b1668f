//! A leader lease in Redis (`SET NX PX`, renewed by its holder): of many workers, one
//! runs the presence sweep at a time; if it dies, the lease expires and another
//! takes over.

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

/// Renews the lease if we hold it, takes it if it is free; 1 when we hold it after.
const ACQUIRE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
";

pub struct Leader {
    conn: ConnectionManager,
    key: String,
    holder: String,
    ttl: Duration,
    script: Script,
}

impl Leader {
    pub fn new(conn: ConnectionManager, key: String, holder: String, ttl: Duration) -> Self {
        Self {
            conn,
            key,
            holder,
            ttl,
            script: Script::new(ACQUIRE),
        }
    }

    /// `true` while this holder leads; call more often than the TTL.
    pub async fn acquire_or_renew(&self) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn.clone();
        let held: i64 = self
            .script
            .key(&self.key)
            .arg(&self.holder)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }
}
