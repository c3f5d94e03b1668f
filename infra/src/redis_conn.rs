//! The Redis connection shared by the distributed-mode stores (sessions, presence,
//! rate limits), the key prefix every one of their keys starts with, and the TTL
//! conversion they share.
//!
//! This module only opens connections and names keys; what is stored under a key
//! belongs to the store that owns it (`session/redis.rs`, `presence/redis.rs`,
//! `ratelimit/redis.rs`).

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Each connection attempt gives up after this long: a blackholed Redis (host down,
/// packets dropped) must not keep a request waiting for the OS TCP timeout (minutes).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// A command gives up after this long. The crate default (500 ms) is tight for a
/// presence sweep script on a large room under load; 2 s still fails a request fast
/// while Redis hangs.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Reconnect attempts per outage before the pending calls fail. Calls issued while
/// Redis is down wait for the reconnect in progress, so few quick retries keep them
/// bounded (about 2 x `CONNECTION_TIMEOUT` plus the delays below); the next call
/// starts a new reconnect anyway, so nothing is lost by giving up early.
const RECONNECT_RETRIES: usize = 1;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_min_delay(RECONNECT_MIN_DELAY)
        .set_max_delay(RECONNECT_MAX_DELAY)
}

/// Connects to `url` (e.g. `redis://127.0.0.1:6379`) and waits for the first
/// connection. The manager reconnects by itself after a loss; it is cheap to clone
/// and every clone shares one multiplexed connection.
pub async fn connect(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    ConnectionManager::new_with_config(client, manager_config()).await
}

/// Like [`connect`], but returns at once and connects on first use: a process can
/// start while Redis is down and report "not ready" instead of exiting. Only a
/// malformed `url` fails here.
pub fn connect_lazy(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    ConnectionManager::new_lazy_with_config(client, manager_config())
}

/// A TTL as the milliseconds `PEXPIRE` and `PX` take: rounded up, so a sub-millisecond
/// remainder never shortens it, and at least 1, because `PEXPIRE key 0` deletes the key
/// at once and a lease or session would be born expired.
pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The string every ChatX key starts with (`chatx:` unless configured), so several
/// deployments or test runs can share one Redis without seeing each other's keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub const DEFAULT: &'static str = "chatx:";

    /// Any string is a valid prefix (an empty one too, for a dedicated Redis); end it
    /// with `:` to keep keys readable in `redis-cli`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self(prefix.into())
    }

    /// `<prefix><suffix>`, e.g. `chatx:session:<sid>`.
    pub fn key(&self, suffix: impl fmt::Display) -> String {
        format!("{}{suffix}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for KeyPrefix {
    fn default() -> Self {
        Self::new(Self::DEFAULT)
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_a_whole_millisecond() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_ms(Duration::from_secs(60)), 60_000);
    }

    #[test]
    fn keys_start_with_the_prefix() {
        assert_eq!(KeyPrefix::default().key("session:1"), "chatx:session:1");
        assert_eq!(
            KeyPrefix::new("t:").key(format_args!("rl:{}", "msg:u")),
            "t:rl:msg:u"
        );
    }

    // A tokio test: the lazy manager spawns its reconnect task on the runtime.
    #[tokio::test]
    async fn a_malformed_url_fails_without_connecting() {
        assert!(connect_lazy("not a url").is_err());
    }
}
