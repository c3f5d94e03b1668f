//! In-memory GCRA for embedded mode (single node only).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{Decision, Quota, RateLimitError, RateLimiter, gcra_step};

pub struct MemoryRateLimiter {
    origin: Instant,
    tats: Mutex<HashMap<String, u64>>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            tats: Mutex::new(HashMap::new()),
        }
    }
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Past this many keys, entries whose allowance is full again are dropped.
const PRUNE_ABOVE: usize = 100_000;

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        // Start at one second so that a fresh key (tat 0) is never "ahead".
        let now = self.origin.elapsed().as_micros() as u64 + 1_000_000;
        let mut tats = self.tats.lock().unwrap_or_else(|p| p.into_inner());
        if tats.len() > PRUNE_ABOVE {
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.get(key).copied().unwrap_or(0);
        let (decision, new_tat) = gcra_step(now, tat, quota);
        if let Some(new_tat) = new_tat {
            tats.insert(key.to_string(), new_tat);
        }
        Ok(decision)
    }
}
