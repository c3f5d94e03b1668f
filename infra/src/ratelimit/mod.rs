//! Rate limits as GCRA (generic cell rate algorithm): one timestamp per key, exact
//! sustained rate plus a burst. `memory.rs` serves embedded mode; `redis.rs` serves
//! distributed mode (the same arithmetic in one Lua script, on the Redis clock).
//! `contract.rs` is the shared test suite.

use std::time::Duration;

pub mod contract;
mod gcra;
mod memory;
mod redis;

pub use gcra::{Quota, gcra_step};
pub use memory::MemoryRateLimiter;
pub use redis::RedisRateLimiter;

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

/// Keys are `<scope>:<id>`, e.g. `msg:<user id>` or `login:<ip>`.
///
/// Contract: a fresh key allows exactly `burst` requests at once, then refuses with a
/// `retry_after` after which one more request is allowed; keys are independent; a
/// refused request does not consume allowance.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError>;
}
