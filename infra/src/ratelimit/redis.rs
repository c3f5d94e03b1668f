//! GCRA in Redis (distributed mode): every gateway draws on the same allowance, so a
//! user cannot multiply their rate by spreading sockets over gateways.
//!
//! Key (DESIGN.md section 5), under the configured prefix: `rl:<key>` (e.g.
//! `rl:msg:<uid>`), a string holding the theoretical arrival time (TAT) in Unix
//! microseconds. It expires when the TAT passes: by then a missing key and the stored
//! TAT mean the same (full allowance), so idle keys cost no memory.
//!
//! One Lua script does the read, the decision and the write, so concurrent checks on
//! one key from many gateways serialise in Redis. It mirrors `gcra_step` in `gcra.rs`
//! line for line (a test runs both on the same inputs); the clock is Redis `TIME`, so
//! gateways with skewed clocks share one timeline.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{Decision, Quota, RateLimitError, RateLimiter};
use crate::redis_conn::KeyPrefix;

/// `gcra_step` in Lua, after `now` (µs) is set. KEYS: the TAT. ARGV: interval_us,
/// burst. Returns {1, 0} allowed or {0, retry_after_us} limited. Lua numbers are
/// doubles: exact for integers below 2^53 µs (year 2255), and written back with
/// `%d` because tostring() would print 1.7e+15 and lose the low digits.
macro_rules! gcra_lua {
    () => {
        r"
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > tolerance then
  return {0, ahead - tolerance}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', math.ceil(ahead / 1000)))
return {1, 0}
"
    };
}

/// The production script: the clock is the Redis server's.
const GCRA: &str = concat!(
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
",
    gcra_lua!()
);

pub struct RedisRateLimiter {
    conn: ConnectionManager,
    prefix: KeyPrefix,
    script: redis::Script,
}

impl RedisRateLimiter {
    pub fn new(conn: ConnectionManager, prefix: KeyPrefix) -> Self {
        Self {
            conn,
            prefix,
            script: redis::Script::new(GCRA),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Reads the script's `{allowed, retry_after_us}` reply.
fn decision((allowed, retry_after_us): (i64, i64)) -> Decision {
    if allowed == 1 {
        Decision::Allowed
    } else {
        Decision::Limited {
            retry_after: Duration::from_micros(u64::try_from(retry_after_us).unwrap_or(0)),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        let key = self.prefix.key(format_args!("rl:{key}"));
        let reply: (i64, i64) = self
            .script
            .key(key)
            .arg(micros(quota.interval))
            .arg(quota.burst)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| RateLimitError::Unavailable(e.to_string()))?;
        Ok(decision(reply))
    }
}

#[cfg(test)]
mod tests {
    //! Runs the Lua arithmetic and `gcra_step` on the same inputs. Needs the Redis at
    //! `REDIS_URL` (default `redis://127.0.0.1:6379`); touches only its own keys.

    use super::super::gcra_step;
    use super::*;

    /// The same arithmetic with the clock passed in (ARGV[3]) instead of read.
    const GCRA_WITH_CLOCK: &str = concat!("local now = tonumber(ARGV[3])\n", gcra_lua!());

    #[tokio::test]
    async fn the_script_decides_like_gcra_step() {
        let url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
        let mut conn = crate::redis_conn::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} (set REDIS_URL): {e}"));
        let key = format!("chatx-test:{}:rl:mirror", uuid::Uuid::new_v4());
        let script = redis::Script::new(GCRA_WITH_CLOCK);
        // A realistic clock (Unix µs, above 2^50). The key's PX is set from these fake
        // times while real time runs on: intervals of 30 ms and more keep it alive
        // between two calls of this test.
        let start: u64 = 1_795_829_577_855_282;
        let quotas = [
            Quota {
                interval: Duration::from_millis(50),
                burst: 1,
            },
            Quota {
                interval: Duration::from_millis(400),
                burst: 3,
            },
            Quota {
                interval: Duration::from_micros(33_333),
                burst: 30,
            },
            Quota {
                interval: Duration::from_secs(120),
                burst: 5,
            },
        ];
        let steps = [
            0, 0, 0, 0, 1, 150_000, 7, 399_999, 400_000, 1_000_000, 0, 3, 90_000_000,
        ];
        for quota in quotas {
            redis::cmd("DEL")
                .arg(&key)
                .exec_async(&mut conn)
                .await
                .expect("del");
            let (mut now, mut tat) = (start, 0);
            for step in steps {
                now += step;
                let (expected, new_tat) = gcra_step(now, tat, quota);
                let reply: (i64, i64) = script
                    .key(&key)
                    .arg(micros(quota.interval))
                    .arg(quota.burst)
                    .arg(now)
                    .invoke_async(&mut conn)
                    .await
                    .expect("script");
                assert_eq!(decision(reply), expected, "{quota:?} at {now}");
                if let Some(new_tat) = new_tat {
                    tat = new_tat;
                    let stored: u64 = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("get");
                    assert_eq!(stored, tat, "the TAT is stored to the microsecond");
                }
            }
        }
        redis::cmd("DEL")
            .arg(&key)
            .exec_async(&mut conn)
            .await
            .expect("del");
    }
}
