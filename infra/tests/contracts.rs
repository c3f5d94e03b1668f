//! The shared contract suites against the embedded implementations (memory, SQLite).

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

mod sql_sessions {
    use super::*;
    use infra::session::SqlSessionStore;

    async fn store() -> Arc<dyn SessionStore> {
        // A fresh SQLite file per test; the directory lives as long as the process.
        let dir = Box::leak(Box::new(tempfile::tempdir().expect("temp dir")));
        let url = format!("sqlite://{}/sessions.db?mode=rwc", dir.path().display());
        let db = infra::db::connect(&url).await.expect("connect");
        infra::db::migrate(&db).await.expect("migrate");
        Arc::new(SqlSessionStore::new(db)) as Arc<dyn SessionStore>
    }

    infra::session_contract_tests!(store);
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
