//! The shared contract suites against the in-memory implementations.

use std::sync::Arc;

use infra::bus::{Bus, LocalBus, LocalBusOptions};
use infra::presence::{MemoryPresence, Presence};
use infra::ratelimit::{MemoryRateLimiter, RateLimiter};
use infra::session::{MemorySessionStore, SessionStore};

mod local_bus {
    use super::*;
    infra::bus_contract_tests!(|| async {
        Arc::new(LocalBus::new(LocalBusOptions::default())) as Arc<dyn Bus>
    });
}

mod memory_sessions {
    use super::*;
    infra::session_contract_tests!(|| async {
        Arc::new(MemorySessionStore::new()) as Arc<dyn SessionStore>
    });
}

mod memory_presence {
    use super::*;
    infra::presence_contract_tests!(|| async {
        Arc::new(MemoryPresence::new()) as Arc<dyn Presence>
    });
}

mod memory_rate_limiter {
    use super::*;
    infra::ratelimit_contract_tests!(|| async {
        Arc::new(MemoryRateLimiter::new()) as Arc<dyn RateLimiter>
    });
}
