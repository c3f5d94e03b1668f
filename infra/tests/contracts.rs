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
    use infra::session::{SessionRecord, SqlSessionStore};
    use std::time::Duration;
    use uuid::Uuid;

    async fn store() -> Arc<dyn SessionStore> {
        // A fresh SQLite file per test; the directory lives as long as the process.
        let dir = Box::leak(Box::new(tempfile::tempdir().expect("temp dir")));
        let url = format!("sqlite://{}/sessions.db?mode=rwc", dir.path().display());
        let db = infra::db::connect(&url).await.expect("connect");
        infra::db::migrate(&db).await.expect("migrate");
        Arc::new(SqlSessionStore::new(db)) as Arc<dyn SessionStore>
    }

    infra::session_contract_tests!(store);

    /// The store caches reads: a read racing with a revocation must never leave the
    /// revoked session in the cache.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_racing_a_delete_never_revives_the_session() {
        let store = store().await;
        for _ in 0..200 {
            let now = chrono::Utc::now();
            let s = SessionRecord {
                id: Uuid::new_v4(),
                user_id: Uuid::new_v4(),
                created_at: now,
                last_seen: now,
                ip: None,
                user_agent: None,
                refresh_hash: "h".into(),
            };
            store
                .create(s.clone(), Duration::from_secs(60))
                .await
                .expect("create");
            let reader = {
                let store = store.clone();
                tokio::spawn(async move { store.get(s.id).await })
            };
            assert!(store.delete(s.id).await.expect("delete"));
            reader.await.expect("join").expect("get");
            assert!(
                store.get(s.id).await.expect("get").is_none(),
                "a deleted session was served"
            );
        }
    }
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
